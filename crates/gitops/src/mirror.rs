//! A read-only bare clone of the GitOps branch, for questions about its history: is the
//! revision Argo CD synced a descendant of the one env-manager pushed?
//!
//! It lives in a directory of its own (never env-manager's working copy) and only ever
//! fetches. git2 is blocking: each call runs on tokio's blocking pool, one at a time per
//! mirror, behind an async mutex, so callers waiting for the mirror hold no thread.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use git2::{AutotagOption, FetchOptions, Oid, Repository};
use tokio::sync::Mutex;

use crate::auth::callbacks;
use crate::error::{GitError, git};
use crate::locks::{Claim, claim};
use crate::remote::Remote;
use crate::timeout::set_network_timeout;

const REMOTE: &str = "origin";

/// A bare clone of one branch of the remote. Cheap to clone; clones share the repository and
/// its lock.
#[derive(Clone)]
pub struct Mirror {
    remote: Arc<Remote>,
    dir: Arc<Path>,
    repo: Arc<Mutex<Repository>>,
    /// Held while any clone lives: nobody else writes the directory.
    _claim: Arc<Claim>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("remote", &self.remote)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Mirror {
    /// Opens the bare repository in `dir`, creating it when `dir` is absent or empty, and
    /// points it at `remote.url` (which may have changed since it was created). Nothing is
    /// fetched yet. A `dir` holding anything else is refused and left as it is. The directory
    /// is [claimed](crate::locks::claim) for as long as the mirror lives: lock files a killed
    /// predecessor left are removed, and a second process is refused. Sets libgit2's
    /// process-wide network timeout to `remote.network_timeout`.
    pub async fn open(remote: Remote, dir: PathBuf) -> Result<Mirror, GitError> {
        let (opening, at) = (remote.clone(), dir.clone());
        let (repo, claim) = tokio::task::spawn_blocking(move || open_bare(&opening, &at))
            .await
            .map_err(|e| GitError::Task(e.to_string()))??;
        Ok(Mirror {
            remote: Arc::new(remote),
            dir: dir.into(),
            repo: Arc::new(Mutex::new(repo)),
            _claim: Arc::new(claim),
        })
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Fetches the branch; returns its head (`None` while the remote has no such branch).
    pub async fn fetch(&self) -> Result<Option<String>, GitError> {
        self.with_repo(|repo, remote| {
            fetch(repo, remote)?;
            head(repo, &remote.branch)
        })
        .await
    }

    /// The branch's head as of the last fetch, without reaching the remote.
    pub async fn head(&self) -> Result<Option<String>, GitError> {
        self.with_repo(|repo, remote| head(repo, &remote.branch))
            .await
    }

    /// The names of the files directly in `dir` (a path from the repository root, e.g.
    /// `envs`) at the branch's head as of the last [`fetch`](Self::fetch): empty when the
    /// directory is absent, `None` while the branch is. What the reaper compares with the
    /// registry: an env's file gone, files with no env.
    pub async fn files(&self, dir: &str) -> Result<Option<BTreeSet<String>>, GitError> {
        let dir = dir.trim_matches('/').to_owned();
        self.with_repo(move |repo, remote| files(repo, &remote.branch, &dir))
            .await
    }

    /// Whether `descendant` is `ancestor` or has it in its history. Both must be full commit
    /// ids (else an error, not retryable). Equal ids are `true` without looking anything up.
    /// When either commit is not in the mirror yet, the branch is fetched first (once per
    /// call); a commit still unknown after that (not on the branch, or never pushed) answers
    /// `false`: the caller asks again after a later push. A fetch that fails is an error.
    pub async fn contains(&self, descendant: &str, ancestor: &str) -> Result<bool, GitError> {
        let descendant = commit_id(descendant)?;
        let ancestor = commit_id(ancestor)?;
        if descendant == ancestor {
            return Ok(true);
        }
        self.with_repo(move |repo, remote| {
            let both_known = |repo: &Repository| {
                Ok::<_, GitError>(known(repo, descendant)? && known(repo, ancestor)?)
            };
            if !both_known(repo)? {
                fetch(repo, remote)?;
                if !both_known(repo)? {
                    return Ok(false);
                }
            }
            repo.graph_descendant_of(descendant, ancestor)
                .map_err(git("walk the history"))
        })
        .await
    }

    /// Runs `f` on the blocking pool once the repository is free. The lock is held by the
    /// blocking task, so a caller that stops waiting cannot release it mid-fetch.
    async fn with_repo<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Repository, &Remote) -> Result<T, GitError> + Send + 'static,
    ) -> Result<T, GitError> {
        let repo = self.repo.clone().lock_owned().await;
        let remote = self.remote.clone();
        tokio::task::spawn_blocking(move || f(&repo, &remote))
            .await
            .map_err(|e| GitError::Task(e.to_string()))?
    }
}

fn open_bare(remote: &Remote, dir: &Path) -> Result<(Repository, Claim), GitError> {
    set_network_timeout(remote.network_timeout)?;
    let not_a_mirror = || GitError::NotAMirror {
        path: dir.to_owned(),
    };
    let repo = match Repository::open_bare(dir) {
        Ok(repo) => repo,
        Err(e) if e.code() == git2::ErrorCode::NotFound => {
            if !is_empty_or_absent(dir)? {
                return Err(not_a_mirror());
            }
            std::fs::create_dir_all(dir).map_err(|source| GitError::Io {
                op: "create",
                path: dir.to_owned(),
                source,
            })?;
            Repository::init_bare(dir).map_err(git("init the mirror"))?
        }
        Err(e) => return Err(git("open the mirror")(e)),
    };
    // `open_bare` also opens a working copy's `.git` (and calls it bare): its config tells.
    // Fetching into it would fight the working copy's owner.
    let bare = repo
        .config()
        .and_then(|config| config.get_bool("core.bare"))
        .unwrap_or(true);
    if !bare {
        return Err(not_a_mirror());
    }
    let held = claim(repo.path())?;
    match repo.find_remote(REMOTE) {
        Ok(_) => repo
            .remote_set_url(REMOTE, &remote.url)
            .map_err(git("set the remote URL"))?,
        Err(e) if e.code() == git2::ErrorCode::NotFound => {
            repo.remote(REMOTE, &remote.url)
                .map_err(git("add the remote"))?;
        }
        Err(e) => return Err(git("find the remote")(e)),
    }
    Ok((repo, held))
}

fn is_empty_or_absent(dir: &Path) -> Result<bool, GitError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(source) => Err(GitError::Io {
            op: "read",
            path: dir.to_owned(),
            source,
        }),
    }
}

/// Where the fetched branch is kept.
fn tracking(branch: &str) -> String {
    format!("refs/remotes/{REMOTE}/{branch}")
}

fn fetch(repo: &Repository, remote: &Remote) -> Result<(), GitError> {
    let refspec = format!("+refs/heads/{}:{}", remote.branch, tracking(&remote.branch));
    let mut origin = repo.find_remote(REMOTE).map_err(git("find the remote"))?;
    let mut options = FetchOptions::new();
    options.remote_callbacks(callbacks(&remote.credentials));
    options.download_tags(AutotagOption::None);
    origin
        .fetch(&[&refspec], Some(&mut options), None)
        .map_err(git("fetch"))
}

fn head(repo: &Repository, branch: &str) -> Result<Option<String>, GitError> {
    match repo.find_reference(&tracking(branch)) {
        Ok(reference) => Ok(reference.target().map(|oid| oid.to_string())),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(git("read the branch")(e)),
    }
}

fn files(repo: &Repository, branch: &str, dir: &str) -> Result<Option<BTreeSet<String>>, GitError> {
    let reference = match repo.find_reference(&tracking(branch)) {
        Ok(reference) => reference,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(git("read the branch")(e)),
    };
    let root = reference
        .peel_to_tree()
        .map_err(git("read the head tree"))?;
    let tree = if dir.is_empty() {
        root
    } else {
        let entry = match root.get_path(Path::new(dir)) {
            Ok(entry) => entry,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(Some(BTreeSet::new())),
            Err(e) => return Err(git("read a directory")(e)),
        };
        if entry.kind() != Some(git2::ObjectType::Tree) {
            return Ok(Some(BTreeSet::new()));
        }
        repo.find_tree(entry.id())
            .map_err(git("read a directory"))?
    };
    Ok(Some(
        tree.iter()
            .filter(|entry| entry.kind() == Some(git2::ObjectType::Blob))
            .filter_map(|entry| entry.name().map(str::to_owned))
            .collect(),
    ))
}

/// Whether the mirror holds commit `oid` (a force-pushed-away commit stays known: a fetch
/// never removes objects).
fn known(repo: &Repository, oid: Oid) -> Result<bool, GitError> {
    match repo.find_commit(oid) {
        Ok(_) => Ok(true),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(false),
        Err(e) => Err(git("read a commit")(e)),
    }
}

/// A full SHA-1 commit id. `Oid::from_str` pads a short prefix with zeros, which would name
/// another commit, so prefixes are refused rather than looked up.
fn commit_id(revision: &str) -> Result<Oid, GitError> {
    let invalid = || GitError::Revision {
        revision: revision.chars().take(80).collect(),
    };
    if revision.len() != 40 || !revision.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    Oid::from_str(revision).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commits a file named `name` on the bare repository's `main`; returns the commit.
    fn commit(repo: &Repository, name: &str) -> anyhow::Result<String> {
        let blob = repo.blob(name.as_bytes())?;
        let mut tree = repo.treebuilder(None)?;
        tree.insert(name, blob, 0o100644)?;
        let tree = repo.find_tree(tree.write()?)?;
        let parent = repo
            .find_reference("refs/heads/main")
            .ok()
            .and_then(|r| r.peel_to_commit().ok());
        let me = git2::Signature::now("someone", "someone@example.com")?;
        let parents: Vec<_> = parent.iter().collect();
        let oid = repo.commit(Some("refs/heads/main"), &me, &me, name, &tree, &parents)?;
        Ok(oid.to_string())
    }

    #[tokio::test]
    async fn a_mirror_reopened_after_its_reader_was_killed_mid_fetch_fetches_again()
    -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let origin = Repository::init_bare(dir.path().join("origin.git"))?;
        commit(&origin, "a")?;
        let remote = Remote::new(dir.path().join("origin.git").display().to_string(), "main");
        let at = dir.path().join("mirror.git");
        Mirror::open(remote.clone(), at.clone())
            .await?
            .fetch()
            .await?;
        // Killed while fetching: the tracking branch and FETCH_HEAD were being rewritten.
        for lock in ["FETCH_HEAD.lock", "refs/remotes/origin/main.lock"] {
            std::fs::write(at.join(lock), b"")?;
        }
        let newer = commit(&origin, "b")?;

        let fetched = Mirror::open(remote, at).await?.fetch().await?;

        assert_eq!(fetched, Some(newer));
        Ok(())
    }

    #[test]
    fn only_full_hex_commit_ids_are_accepted() {
        // What the check is for: git2 takes a prefix and pads it into another id.
        assert!(Oid::from_str("0123456").is_ok());
        let full = "0123456789abcdef0123456789ABCDEF01234567";
        assert!(commit_id(full).is_ok());
        for bad in [
            "",
            "0123456",
            &format!("{full}0"),
            &full.replace('a', "g"),
            "HEAD",
        ] {
            let error = commit_id(bad).expect_err(bad);
            assert!(!error.is_retryable(), "{bad:?}");
        }
    }
}
