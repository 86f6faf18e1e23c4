//! The blocking git operations behind [`GitOps`](super::GitOps), run on tokio's blocking pool
//! with the working copy locked.

use std::cell::RefCell;
use std::path::Path;

use git2::{
    Cred, CredentialType, FetchOptions, PushOptions, RemoteCallbacks, Repository, ResetType,
    Signature, build::CheckoutBuilder,
};

use super::{Credentials, FileChange, GitError, Pushed, Settings, Snapshot, git};

const REMOTE: &str = "origin";
const AUTHOR_NAME: &str = "flotilla env-manager";
const AUTHOR_EMAIL: &str = "env-manager@flotilla.invalid";

pub(super) fn open_or_clone(settings: &Settings) -> Result<Repository, GitError> {
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

pub(super) fn commit_and_push<T, E, F>(
    repo: &Repository,
    settings: &Settings,
    message: &str,
    mut change: F,
) -> Result<(Pushed, T), E>
where
    E: From<GitError>,
    F: FnMut(&Snapshot<'_>) -> Result<(Vec<FileChange>, T), E>,
{
    let attempts = settings.push_attempts.max(1);
    let mut reason = String::new();
    for attempt in 1..=attempts {
        let head = sync(repo, settings)?;
        let (files, value) = change(&snapshot(repo)?)?;
        let Some(commit) = commit_files(repo, head, &files, message)? else {
            let revision = head.map(|h| h.to_string());
            return Ok((
                Pushed {
                    revision,
                    committed: false,
                },
                value,
            ));
        };
        match push(repo, settings)? {
            None => {
                tracing::info!(revision = %commit, branch = %settings.branch, "pushed to the GitOps repository");
                let revision = Some(commit.to_string());
                return Ok((
                    Pushed {
                        revision,
                        committed: true,
                    },
                    value,
                ));
            }
            Some(rejected) => {
                tracing::info!(attempt, reason = %rejected, "push rejected: the remote moved; writing again on its new head");
                reason = rejected;
            }
        }
    }
    Err(GitError::Contended {
        branch: settings.branch.clone(),
        attempts,
        reason,
    }
    .into())
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

pub(super) fn snapshot(repo: &Repository) -> Result<Snapshot<'_>, GitError> {
    repo.workdir().map(|root| Snapshot { root }).ok_or_else(|| {
        git("find the working copy")(git2::Error::from_str("the repository is bare"))
    })
}

/// Writes `files` and commits them on `parent`; `None` when the tree did not change.
fn commit_files(
    repo: &Repository,
    parent: Option<git2::Oid>,
    files: &[FileChange],
    message: &str,
) -> Result<Option<git2::Oid>, GitError> {
    let root = snapshot(repo)?.root.to_path_buf();
    let mut index = repo.index().map_err(git("open the index"))?;
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
    index.write().map_err(git("write the index"))?;
    let tree_id = index.write_tree().map_err(git("write the tree"))?;
    let parent = match parent {
        Some(oid) => Some(repo.find_commit(oid).map_err(git("find the head commit"))?),
        None => None,
    };
    let unchanged = match &parent {
        Some(parent) => parent.tree_id() == tree_id,
        None => index.is_empty(),
    };
    if unchanged {
        return Ok(None);
    }
    let tree = repo.find_tree(tree_id).map_err(git("find the tree"))?;
    let author = Signature::now(AUTHOR_NAME, AUTHOR_EMAIL).map_err(git("sign the commit"))?;
    let parents: Vec<_> = parent.iter().collect();
    repo.commit(Some("HEAD"), &author, &author, message, &tree, &parents)
        .map(Some)
        .map_err(git("commit"))
}

/// Pushes the branch; `Some(reason)` when the remote rejected it because it moved.
fn push(repo: &Repository, settings: &Settings) -> Result<Option<String>, GitError> {
    let branch = &settings.branch;
    let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
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
    match remote.push(&[&refspec], Some(&mut options)) {
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

/// Answers the remote's credential requests from `credentials`, once per kind: libgit2 asks
/// again after a refusal, and a wrong key must fail rather than loop.
fn callbacks(credentials: &Credentials) -> RemoteCallbacks<'_> {
    let mut callbacks = RemoteCallbacks::new();
    let mut tried = CredentialType::empty();
    callbacks.credentials(move |_url, username, allowed| {
        let user = username.unwrap_or("git");
        if allowed.contains(CredentialType::SSH_KEY) && !tried.contains(CredentialType::SSH_KEY) {
            tried |= CredentialType::SSH_KEY;
            if let Some(key) = &credentials.ssh_key {
                return Cred::ssh_key(user, None, key, None);
            }
            return Cred::ssh_key_from_agent(user);
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
            && !tried.contains(CredentialType::USER_PASS_PLAINTEXT)
        {
            tried |= CredentialType::USER_PASS_PLAINTEXT;
            if let Some(token) = &credentials.token {
                return Cred::userpass_plaintext(username.unwrap_or("x-access-token"), token);
            }
        }
        Err(git2::Error::from_str("no credentials accepted by the GitOps remote (set FLOTILLA_GITOPS_SSH_KEY or FLOTILLA_GITOPS_TOKEN)"))
    });
    callbacks
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
