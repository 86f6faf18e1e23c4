//! The blocking git operations behind [`GitOps`](super::GitOps), run on tokio's blocking pool
//! with the working copy locked.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use flotilla_gitops::auth::callbacks;
use flotilla_gitops::locks::{Claim, claim, under_push_lock};
use flotilla_gitops::set_network_timeout;
use git2::{FetchOptions, FileMode, ObjectType, Oid, PushOptions, Repository, Signature, Tree};

use super::{Author, GitError, Settings, git};

const REMOTE: &str = "origin";

/// Opens the working copy in `settings.dir` (creating it when absent) and claims it: lock
/// files a killed predecessor left are removed, and a second process sharing the directory is
/// refused (see [`flotilla_gitops::locks`]).
pub(super) fn open_or_clone(settings: &Settings) -> Result<(Repository, Claim), GitError> {
    set_network_timeout(settings.network_timeout)?;
    if settings.dir.join(".git").exists() {
        let repo = Repository::open(&settings.dir).map_err(git("open the working copy"))?;
        let held = claim(repo.path())?;
        // The URL may have changed since the clone (a new token host, a moved repository).
        repo.remote_set_url(REMOTE, &settings.url)
            .map_err(git("set the remote URL"))?;
        point_head(&repo, settings)?;
        return Ok((repo, held));
    }
    std::fs::create_dir_all(&settings.dir).map_err(|source| GitError::Io {
        op: "create",
        path: settings.dir.clone(),
        source,
    })?;
    let repo = Repository::init(&settings.dir).map_err(git("init the working copy"))?;
    let held = claim(repo.path())?;
    repo.remote(REMOTE, &settings.url)
        .map_err(git("add the remote"))?;
    point_head(&repo, settings)?;
    Ok((repo, held))
}

/// HEAD names the branch env-manager writes, so the repository reads as it would after a
/// clone of it (`git log` in it shows the branch).
fn point_head(repo: &Repository, settings: &Settings) -> Result<(), GitError> {
    repo.set_head(&format!("refs/heads/{}", settings.branch))
        .map_err(git("set HEAD"))
}

/// Where the branch's head is fetched to.
pub(super) fn tracking(branch: &str) -> String {
    format!("refs/remotes/{REMOTE}/{branch}")
}

/// Brings the remote's head in and points the local branch at it; returns the head (`None`
/// when the branch has no commit yet).
///
/// A remote on this machine whose branch is still where the last fetch or push left it is
/// not fetched from: libgit2's local transport opens the remote and lists its refs on every
/// fetch, a good part of a write. Network remotes are fetched every time (the server's answer
/// is the only way to learn its head).
pub(super) fn sync(repo: &Repository, settings: &Settings) -> Result<Option<Oid>, GitError> {
    let tracking = tracking(&settings.branch);
    let known = target(repo, &tracking)?;
    let unchanged = match local_path(&settings.url) {
        Some(path) => {
            let remote = Repository::open(&path).map_err(git("open the remote"))?;
            target(&remote, &format!("refs/heads/{}", settings.branch))? == known
        }
        None => false,
    };
    let head = if unchanged {
        known
    } else {
        fetch(repo, settings, &tracking)?;
        target(repo, &tracking)?
    };
    if let Some(oid) = head {
        set_branch(
            repo,
            &settings.branch,
            oid,
            "env-manager: sync with the remote",
        )?;
    }
    Ok(head)
}

fn fetch(repo: &Repository, settings: &Settings, tracking: &str) -> Result<(), GitError> {
    let refspec = format!("+refs/heads/{}:{tracking}", settings.branch);
    let mut remote = repo.find_remote(REMOTE).map_err(git("find the remote"))?;
    let mut options = FetchOptions::new();
    options.remote_callbacks(callbacks(&settings.credentials));
    remote
        .fetch(&[&refspec], Some(&mut options), None)
        .map_err(git("fetch"))
}

/// The commit `name` points at; `None` when there is no such ref.
fn target(repo: &Repository, name: &str) -> Result<Option<Oid>, GitError> {
    match repo.find_reference(name) {
        Ok(reference) => Ok(reference.target()),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(git("read a branch")(e)),
    }
}

/// Points the local `branch` (what [`file_history`] walks, and what a network push sends)
/// at `oid`, unless it does already.
pub(super) fn set_branch(
    repo: &Repository,
    branch: &str,
    oid: Oid,
    message: &str,
) -> Result<(), GitError> {
    let local = format!("refs/heads/{branch}");
    if target(repo, &local)? != Some(oid) {
        repo.reference(&local, oid, true, message)
            .map_err(git("move the branch"))?;
    }
    Ok(())
}

/// Records that the remote's branch is now `oid` (after a push), so the next write need not
/// fetch to learn it.
pub(super) fn set_tracking(repo: &Repository, branch: &str, oid: Oid) -> Result<(), GitError> {
    repo.reference(&tracking(branch), oid, true, "env-manager: pushed")
        .map(|_| ())
        .map_err(git("move the remote branch"))
}

/// The tree of commit `head`, `None` on an empty branch.
pub(super) fn head_tree(
    repo: &Repository,
    head: Option<Oid>,
) -> Result<Option<Tree<'_>>, GitError> {
    head.map(|oid| {
        repo.find_commit(oid)
            .and_then(|commit| commit.tree())
            .map_err(git("read the head commit"))
    })
    .transpose()
}

/// What a file of the tree is: its blob and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) blob: Oid,
    pub(super) mode: FileMode,
}

/// A path as a tree names it: components joined by single slashes (`envs//a.json` and
/// `./envs/a.json` are `envs/a.json`).
pub(super) fn tree_path(path: &str) -> Result<String, GitError> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    if parts.is_empty()
        || parts
            .iter()
            .any(|part| *part == ".." || part.contains('\0'))
    {
        return Err(git("name a file")(git2::Error::from_str(&format!(
            "{path:?} is not a file path inside the repository"
        ))));
    }
    Ok(parts.join("/"))
}

/// The file at `path` (a [`tree_path`]) in `tree`; `None` when there is none. A directory
/// there is an error: a change writes and reads files.
pub(super) fn entry(tree: Option<&Tree<'_>>, path: &str) -> Result<Option<Entry>, GitError> {
    let Some(tree) = tree else {
        return Ok(None);
    };
    let found = match tree.get_path(Path::new(path)) {
        Ok(found) => found,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(git("look a file up")(e)),
    };
    match found.kind() {
        Some(ObjectType::Blob) => Ok(Some(Entry {
            blob: found.id(),
            mode: if found.filemode() == i32::from(FileMode::BlobExecutable) {
                FileMode::BlobExecutable
            } else {
                FileMode::Blob
            },
        })),
        _ => Err(git("read a file")(git2::Error::from_str(&format!(
            "{path} is not a file in the repository"
        )))),
    }
}

/// The contents of blob `oid`.
pub(super) fn blob(repo: &Repository, oid: Oid) -> Result<Vec<u8>, GitError> {
    repo.find_blob(oid)
        .map(|blob| blob.content().to_vec())
        .map_err(git("read a file"))
}

/// Commits `tree` on `parent` (no ref moves: the caller points the branch at it).
pub(super) fn commit_tree(
    repo: &Repository,
    parent: Option<Oid>,
    tree: Oid,
    message: &str,
    author: &Author,
) -> Result<Oid, GitError> {
    let tree = repo.find_tree(tree).map_err(git("find the tree"))?;
    let parent = match parent {
        Some(oid) => Some(repo.find_commit(oid).map_err(git("find the head commit"))?),
        None => None,
    };
    let signature = Signature::now(&author.name, &author.email).map_err(git("sign the commit"))?;
    let parents: Vec<_> = parent.iter().collect();
    repo.commit(None, &signature, &signature, message, &tree, &parents)
        .map_err(git("commit"))
}

/// Pushes commit `new`, made on `expected` (the remote's head when the write started), to the
/// branch; `Some(reason)` when the remote rejected it because it moved.
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
/// written into the remote's object database, and the branch is then moved with
/// compare-and-swap under the branch's lock, as a git server does (and under the remote's
/// push lock: [`flotilla_gitops::locks`]). No ref is created on the way:
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
    // Under the remote's push lock, so that a branch lock file a killed writer left is removed
    // rather than rejecting every push after it.
    let moved = under_push_lock(target.path(), &branch, || match expected {
        Some(old) => target
            .reference_matching(&branch, new, true, old, message)
            .map(|_| ()),
        None => target.reference(&branch, new, false, message).map(|_| ()),
    })?;
    match moved {
        Ok(()) => Ok(None),
        Err(e) => match e.code() {
            git2::ErrorCode::Modified | git2::ErrorCode::Exists | git2::ErrorCode::Locked => {
                Ok(Some(format!("the branch moved: {}", e.message())))
            }
            _ => Err(git("update the remote branch")(e)),
        },
    }
}

/// Writes commit `new` and the trees and blobs it has that its parent `expected` has not into
/// `target`, as loose objects.
///
/// Only the changed part of the tree is walked: a pack built from a revision walk reads every
/// tree and blob of both commits, and a pack per push leaves the remote with as many packs as
/// pushes, each of which every later object lookup searches. Objects `target` has already are
/// harmless to write again (libgit2 only freshens them).
fn copy_objects(
    repo: &Repository,
    target: &Repository,
    expected: Option<Oid>,
    new: Oid,
) -> Result<(), git2::Error> {
    let commit = repo.find_commit(new)?;
    let old = match expected {
        Some(oid) => Some(repo.find_commit(oid)?.tree()?),
        None => None,
    };
    let mut objects = Vec::new();
    new_objects(repo, old.as_ref(), &commit.tree()?, &mut objects)?;
    objects.push(new);
    let (ours, theirs) = (repo.odb()?, target.odb()?);
    for oid in objects {
        let object = ours.read(oid)?;
        theirs.write(object.kind(), object.data())?;
    }
    Ok(())
}

/// `new` and every tree and blob under it that `old` does not have at the same place.
fn new_objects(
    repo: &Repository,
    old: Option<&Tree<'_>>,
    new: &Tree<'_>,
    out: &mut Vec<Oid>,
) -> Result<(), git2::Error> {
    if old.is_some_and(|old| old.id() == new.id()) {
        return Ok(());
    }
    out.push(new.id());
    for entry in new.iter() {
        let before = old.and_then(|old| old.get_name_bytes(entry.name_bytes()));
        if before.as_ref().is_some_and(|b| b.id() == entry.id()) {
            continue;
        }
        match entry.kind() {
            Some(ObjectType::Tree) => {
                let subtree = repo.find_tree(entry.id())?;
                let old_subtree = match before.filter(|b| b.kind() == Some(ObjectType::Tree)) {
                    Some(b) => Some(repo.find_tree(b.id())?),
                    None => None,
                };
                new_objects(repo, old_subtree.as_ref(), &subtree, out)?;
            }
            Some(ObjectType::Blob) => out.push(entry.id()),
            // Submodule commits live in other repositories.
            _ => {}
        }
    }
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
