//! The blocking git operations behind [`GitOps`](super::GitOps), run on tokio's blocking pool
//! with the working copy locked.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use flotilla_gitops::auth::callbacks;
use flotilla_gitops::set_network_timeout;
use git2::{
    FetchOptions, Oid, PushOptions, Repository, ResetType, Signature, build::CheckoutBuilder,
};

use super::{Author, FileChange, GitError, Settings, Snapshot, git};

const REMOTE: &str = "origin";

pub(super) fn open_or_clone(settings: &Settings) -> Result<Repository, GitError> {
    set_network_timeout(settings.network_timeout)?;
    if settings.dir.join(".git").exists() {
        let repo = Repository::open(&settings.dir).map_err(git("open the working copy"))?;
        // The URL may have changed since the clone (a new token host, a moved repository).
        repo.remote_set_url(REMOTE, &settings.url)
            .map_err(git("set the remote URL"))?;
        return Ok(repo);
    }
    std::fs::create_dir_all(&settings.dir).map_err(|source| GitError::Io {
        op: "create",
        path: settings.dir.clone(),
        source,
    })?;
    let repo = Repository::init(&settings.dir).map_err(git("init the working copy"))?;
    repo.remote(REMOTE, &settings.url)
        .map_err(git("add the remote"))?;
    Ok(repo)
}

/// Fetches the branch and resets the working copy to it; returns its head (`None` when the
/// branch has no commit yet).
pub(super) fn sync(repo: &Repository, settings: &Settings) -> Result<Option<git2::Oid>, GitError> {
    let branch = &settings.branch;
    let tracking = format!("refs/remotes/{REMOTE}/{branch}");
    let refspec = format!("+refs/heads/{branch}:{tracking}");
    let mut remote = repo.find_remote(REMOTE).map_err(git("find the remote"))?;
    let mut options = FetchOptions::new();
    options.remote_callbacks(callbacks(&settings.credentials));
    remote
        .fetch(&[&refspec], Some(&mut options), None)
        .map_err(git("fetch"))?;
    let local = format!("refs/heads/{branch}");
    let head = match repo.find_reference(&tracking) {
        Ok(reference) => reference.target(),
        Err(e) if e.code() == git2::ErrorCode::NotFound => None,
        Err(e) => return Err(git("read the remote branch")(e)),
    };
    repo.set_head(&local).map_err(git("set HEAD"))?;
    let mut checkout = CheckoutBuilder::new();
    checkout.force().remove_untracked(true);
    match head {
        Some(oid) => {
            repo.reference(&local, oid, true, "env-manager: sync with the remote")
                .map_err(git("move the branch"))?;
            let commit = repo.find_object(oid, None).map_err(git("find the head"))?;
            repo.reset(&commit, ResetType::Hard, Some(&mut checkout))
                .map_err(git("reset to the remote head"))?;
        }
        None => {
            // An empty remote: start from an empty tree.
            let mut index = repo.index().map_err(git("open the index"))?;
            index.clear().map_err(git("clear the index"))?;
            index.write().map_err(git("write the index"))?;
            repo.checkout_index(Some(&mut index), Some(&mut checkout))
                .map_err(git("clean the working copy"))?;
        }
    }
    Ok(head)
}

/// The branch at commit `head` (`None`: the empty branch of an empty remote).
pub(super) fn snapshot(
    repo: &Repository,
    head: Option<git2::Oid>,
) -> Result<Snapshot<'_>, GitError> {
    let tree = match head {
        Some(oid) => repo
            .find_commit(oid)
            .map(|c| c.tree_id())
            .map_err(git("find the head commit"))?,
        None => repo
            .treebuilder(None)
            .and_then(|builder| builder.write())
            .map_err(git("write an empty tree"))?,
    };
    Ok(Snapshot::at(repo, tree))
}

/// Writes `files` into the working copy and stages them in `index`.
pub(super) fn apply_files(
    repo: &Repository,
    index: &mut git2::Index,
    files: &[FileChange],
) -> Result<(), GitError> {
    let root = repo
        .workdir()
        .ok_or_else(|| {
            git("find the working copy")(git2::Error::from_str("the repository is bare"))
        })?
        .to_path_buf();
    for file in files {
        match file {
            FileChange::Write { path, contents } => {
                let full = root.join(path);
                let io = |op, source| GitError::Io {
                    op,
                    path: full.clone(),
                    source,
                };
                if let Some(dir) = full.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| io("create", e))?;
                }
                std::fs::write(&full, contents).map_err(|e| io("write", e))?;
                index
                    .add_path(Path::new(path))
                    .map_err(git("stage a file"))?;
            }
            FileChange::Remove { path } => {
                let full = root.join(path);
                match std::fs::remove_file(&full) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(GitError::Io {
                            op: "remove",
                            path: full,
                            source,
                        });
                    }
                }
                index
                    .remove_path(Path::new(path))
                    .map_err(git("unstage a file"))?;
            }
        }
    }
    Ok(())
}

/// Commits `tree` on `parent` and moves the branch (HEAD) to the commit.
pub(super) fn commit_tree(
    repo: &Repository,
    parent: Option<git2::Oid>,
    tree: git2::Oid,
    message: &str,
    author: &Author,
) -> Result<git2::Oid, GitError> {
    let tree = repo.find_tree(tree).map_err(git("find the tree"))?;
    let parent = match parent {
        Some(oid) => Some(repo.find_commit(oid).map_err(git("find the head commit"))?),
        None => None,
    };
    let signature = Signature::now(&author.name, &author.email).map_err(git("sign the commit"))?;
    let parents: Vec<_> = parent.iter().collect();
    repo.commit(
        Some("HEAD"),
        &signature,
        &signature,
        message,
        &tree,
        &parents,
    )
    .map_err(git("commit"))
}

/// Pushes the branch, whose head is now `new` and was `expected` at the remote when the write
/// started; `Some(reason)` when the remote rejected it because it moved.
pub(super) fn push(
    repo: &Repository,
    settings: &Settings,
    expected: Option<Oid>,
    new: Oid,
) -> Result<Option<String>, GitError> {
    match local_path(&settings.url) {
        Some(path) => push_local(repo, settings, &path, expected, new),
        None => push_refspec(
            repo,
            settings,
            &format!("refs/heads/{0}:refs/heads/{0}", settings.branch),
        ),
    }
}

/// A push over the network: the server checks, under its ref lock, that the branch still is
/// what we saw, and rejects the update otherwise.
fn push_refspec(
    repo: &Repository,
    settings: &Settings,
    refspec: &str,
) -> Result<Option<String>, GitError> {
    let mut remote = repo.find_remote(REMOTE).map_err(git("find the remote"))?;
    let rejected = RefCell::new(None);
    let mut callbacks = callbacks(&settings.credentials);
    callbacks.push_update_reference(|_, status| {
        if let Some(status) = status {
            *rejected.borrow_mut() = Some(status.to_owned());
        }
        Ok(())
    });
    let mut options = PushOptions::new();
    options.remote_callbacks(callbacks);
    match remote.push(&[refspec], Some(&mut options)) {
        Ok(()) => {}
        // Local remotes report a moved branch as an error rather than through the callback.
        Err(e) if e.code() == git2::ErrorCode::NotFastForward => {
            return Ok(Some(e.message().to_owned()));
        }
        Err(e) => return Err(git("push")(e)),
    }
    drop(options);
    Ok(rejected.into_inner())
}

/// A push to a repository on this machine. libgit2's local transport sets the remote branch
/// without checking that it is still what the push saw, so two writers that fetched the same
/// head could both "fast-forward" it and one commit would be lost. So the new objects are
/// copied into the remote's object database as a pack, and the branch is then moved with
/// compare-and-swap under the branch's lock, as a git server does. No ref is created on the way:
/// the local transport lists every ref and then reads each, and a short-lived one would fail
/// other writers' fetches when it vanished in between.
fn push_local(
    repo: &Repository,
    settings: &Settings,
    path: &Path,
    expected: Option<Oid>,
    new: Oid,
) -> Result<Option<String>, GitError> {
    let target = Repository::open(path).map_err(git("open the remote"))?;
    copy_objects(repo, &target, expected, new).map_err(git("copy objects to the remote"))?;
    let branch = format!("refs/heads/{}", settings.branch);
    let message = "env-manager: push";
    let moved = match expected {
        Some(old) => target.reference_matching(&branch, new, true, old, message),
        None => target.reference(&branch, new, false, message),
    };
    match moved {
        Ok(_) => Ok(None),
        Err(e) => match e.code() {
            git2::ErrorCode::Modified | git2::ErrorCode::Exists | git2::ErrorCode::Locked => {
                Ok(Some(format!("the branch moved: {}", e.message())))
            }
            _ => Err(git("update the remote branch")(e)),
        },
    }
}

/// Writes the commits from `expected` (exclusive) to `new`, with their trees and blobs, into
/// `target` as one pack. Objects `target` has already are harmless to send again.
fn copy_objects(
    repo: &Repository,
    target: &Repository,
    expected: Option<Oid>,
    new: Oid,
) -> Result<(), git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.push(new)?;
    if let Some(old) = expected {
        walk.hide(old)?;
    }
    let mut pack = repo.packbuilder()?;
    pack.insert_walk(&mut walk)?;
    let odb = target.odb()?;
    let mut writer = odb.packwriter()?;
    let mut failed = None;
    pack.foreach(
        |chunk| match std::io::Write::write_all(&mut writer, chunk) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        },
    )?;
    if let Some(e) = failed {
        return Err(git2::Error::from_str(&format!("write the pack: {e}")));
    }
    writer.commit()?;
    Ok(())
}

/// Where a remote on this machine is: a path or a `file://` URL; `None` for network remotes
/// (`ssh://`, `https://`, `user@host:path`).
pub(super) fn local_path(url: &str) -> Option<PathBuf> {
    if let Some(path) = url.strip_prefix("file://") {
        return Some(PathBuf::from(path));
    }
    if url.contains("://") {
        return None;
    }
    // scp-like syntax: a colon before any slash.
    let scp_like = url
        .find(':')
        .is_some_and(|colon| !url[..colon].contains('/'));
    (!scp_like).then(|| PathBuf::from(url))
}

pub(super) fn file_history(
    repo: &Repository,
    branch: &str,
    path: &Path,
    limit: usize,
) -> Result<Vec<Option<Vec<u8>>>, GitError> {
    let mut walk = repo.revwalk().map_err(git("walk the history"))?;
    walk.simplify_first_parent()
        .map_err(git("walk the history"))?;
    match walk.push_ref(&format!("refs/heads/{branch}")) {
        Ok(()) => {}
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(git("walk the history")(e)),
    }
    let mut versions = Vec::new();
    for oid in walk.take(limit) {
        let oid = oid.map_err(git("walk the history"))?;
        let tree = repo
            .find_commit(oid)
            .and_then(|c| c.tree())
            .map_err(git("read a commit"))?;
        let contents = match tree.get_path(path) {
            Ok(entry) => Some(
                repo.find_blob(entry.id())
                    .map_err(git("read a file"))?
                    .content()
                    .to_vec(),
            ),
            Err(_) => None,
        };
        versions.push(contents);
    }
    Ok(versions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_file_urls_are_local_and_network_urls_are_not() {
        for (url, local) in [
            ("/srv/gitops.git", Some("/srv/gitops.git")),
            ("gitops.git", Some("gitops.git")),
            ("./a:b/gitops.git", Some("./a:b/gitops.git")),
            ("file:///srv/gitops.git", Some("/srv/gitops.git")),
            ("https://github.com/acme/gitops.git", None),
            ("ssh://git@github.com/acme/gitops.git", None),
            ("git@github.com:acme/gitops.git", None),
        ] {
            assert_eq!(local_path(url), local.map(PathBuf::from), "{url}");
        }
    }
}
