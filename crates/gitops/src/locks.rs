//! Lock files a killed process leaves behind.
//!
//! git and libgit2 guard every file they rewrite (a ref, the config, `FETCH_HEAD`,
//! `packed-refs`) with `<file>.lock`: created exclusively, written, renamed over the file. A
//! process killed in between leaves the lock file, and every later update of that file fails
//! with "failed to lock file" until someone removes it, which git never does. Workers do get
//! killed (out of memory, a node lost, `kill -9`), so a worker that restarted would stop
//! writing for good. Two cases:
//!
//! - A repository one process keeps for itself (env-manager's working copy, a reader's mirror)
//!   is [`claim`]ed while it is open: an advisory lock (`flock`) on a file in it, which the
//!   kernel releases however the process ends. Whoever holds the claim is the only live writer,
//!   so every lock file in the repository is a dead process's, and is removed.
//! - A remote on this machine, which several workers write, has its branch moved
//!   [`under_push_lock`]: the same kind of advisory lock around each update. Holding it, a lock
//!   file on the branch is either a dead writer's or a live git process's (someone pushing by
//!   hand), which holds it for milliseconds: one older than [`STALE`] is removed.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::error::GitError;

/// The file whose advisory lock is a repository's claim. Not `*.lock`: the sweep leaves it.
const CLAIM: &str = "flotilla.flock";
/// The file whose advisory lock writers of a shared remote take around each branch update.
const PUSH: &str = "flotilla-push.flock";
/// A branch lock file in a shared remote older than this is a dead process's: git holds one
/// for the few milliseconds of an update.
pub const STALE: Duration = Duration::from_secs(5);
/// How long [`claim`] waits for a repository another process holds (a restarted worker's
/// predecessor may still be exiting), and [`under_push_lock`] for the push lock.
const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// A repository this process alone writes, for as long as the value lives.
#[derive(Debug)]
pub struct Claim {
    _file: File,
}

/// Claims the repository whose git directory is `git_dir` (a bare repository, or a working
/// copy's `.git`), then removes every lock file in it: holding the claim, nobody alive holds
/// one. Waits up to ten seconds while another process holds the claim, then fails: two
/// processes must not share a repository directory. Blocking.
pub fn claim(git_dir: &Path) -> Result<Claim, GitError> {
    let path = git_dir.join(CLAIM);
    let file = open(&path)?;
    acquire(&file, &path)?;
    for (lock, age) in sweep(git_dir)? {
        tracing::warn!(path = %lock.display(), age = ?age, "removed a lock file a killed process left in the repository");
    }
    Ok(Claim { _file: file })
}

/// Runs `update` (which moves `reference`, e.g. `refs/heads/main`, in the repository at
/// `git_dir`) holding the remote's push lock, after removing the reference's lock file if a
/// dead process left it. Blocking; the lock is held only for `update`.
pub fn under_push_lock<T>(
    git_dir: &Path,
    reference: &str,
    update: impl FnOnce() -> T,
) -> Result<T, GitError> {
    let path = git_dir.join(PUSH);
    let file = open(&path)?;
    acquire(&file, &path)?;
    let lock = git_dir.join(format!("{reference}.lock"));
    if let Some(age) = age(&lock)?.filter(|age| *age >= STALE) {
        remove(&lock)?;
        tracing::warn!(path = %lock.display(), age = ?age, "removed the branch's lock file a killed process left in the remote");
    }
    let result = update();
    drop(file);
    Ok(result)
}

fn open(path: &Path) -> Result<File, GitError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io("open", path))
}

fn acquire(file: &File, path: &Path) -> Result<(), GitError> {
    let deadline = Instant::now() + WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => std::thread::sleep(POLL),
            Err(TryLockError::WouldBlock) => {
                return Err(GitError::InUse {
                    path: path.to_owned(),
                    waited: WAIT,
                });
            }
            Err(TryLockError::Error(source)) => return Err(io("lock", path)(source)),
        }
    }
}

/// Removes the lock files under `git_dir` (its top level, `refs/` and `logs/`; objects are
/// written to temporary names, never locked) and returns each with its age.
fn sweep(git_dir: &Path) -> Result<Vec<(PathBuf, Duration)>, GitError> {
    let mut removed = Vec::new();
    let mut dirs = vec![git_dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(io("read", &dir)(source)),
        };
        for entry in entries {
            let entry = entry.map_err(io("read", &dir))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(io("read", &path))?;
            if kind.is_dir() {
                let top = dir == git_dir;
                if !top || matches!(entry.file_name().to_str(), Some("refs" | "logs")) {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|ext| ext == "lock") {
                let age = age(&path)?.unwrap_or_default();
                remove(&path)?;
                removed.push((path, age));
            }
        }
    }
    Ok(removed)
}

/// How long ago the file at `path` was last written; `None` when there is none.
fn age(path: &Path) -> Result<Option<Duration>, GitError> {
    match std::fs::metadata(path).and_then(|meta| meta.modified()) {
        Ok(modified) => Ok(Some(
            SystemTime::now()
                .duration_since(modified)
                .unwrap_or_default(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(io("read", path)(source)),
    }
}

fn remove(path: &Path) -> Result<(), GitError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io("remove", path)(source)),
    }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> GitError {
    let path = path.to_owned();
    move |source| GitError::Io { op, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, age: Duration) -> anyhow::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = File::create(path)?;
        file.set_modified(SystemTime::now() - age)?;
        Ok(())
    }

    #[test]
    fn a_claim_removes_every_lock_file_and_nothing_else() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let git = dir.path();
        let locks = [
            "config.lock",
            "FETCH_HEAD.lock",
            "refs/heads/main.lock",
            "refs/remotes/origin/main.lock",
            "logs/refs/heads/main.lock",
        ];
        for lock in locks {
            touch(&git.join(lock), Duration::ZERO)?;
        }
        let kept = ["config", "refs/heads/main", "objects/ab/cd.lock"];
        for file in kept {
            touch(&git.join(file), Duration::ZERO)?;
        }

        let _claim = claim(git)?;

        for lock in locks {
            assert!(!git.join(lock).exists(), "{lock} removed");
        }
        for file in kept {
            assert!(git.join(file).exists(), "{file} kept");
        }
        assert!(git.join(CLAIM).exists());
        Ok(())
    }

    #[test]
    fn a_held_claim_is_refused_with_the_path_and_free_again_once_dropped() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let first = claim(dir.path())?;
        // flock belongs to the open file, so a second open in this process is refused as
        // another process's would be. Taken directly to skip the wait.
        let second = open(&dir.path().join(CLAIM))?;
        assert!(matches!(second.try_lock(), Err(TryLockError::WouldBlock)));
        drop(first);
        assert!(second.try_lock().is_ok());
        Ok(())
    }

    #[test]
    fn only_a_stale_branch_lock_is_removed_under_the_push_lock() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let lock = dir.path().join("refs/heads/main.lock");

        touch(&lock, Duration::from_millis(100))?;
        under_push_lock(dir.path(), "refs/heads/main", || ())?;
        assert!(lock.exists(), "a fresh lock is a live writer's");

        touch(&lock, STALE + Duration::from_secs(1))?;
        let seen = under_push_lock(dir.path(), "refs/heads/main", || lock.exists())?;
        assert!(!seen, "a stale lock is gone before the update");
        Ok(())
    }
}
