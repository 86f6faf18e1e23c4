//! The GitOps repository: a working copy of one branch that env-manager writes, commits and
//! pushes.
//!
//! env-manager is the repository's single writer, but people push too. Every write starts from
//! the remote's current head: fetch, reset the working copy to it, compute the change from
//! what is there, commit, push. A push rejected because the remote moved starts over from the
//! new head; since the changes are computed afresh each time (they are whole files), that is a
//! rebase without conflicts. A change that leaves the tree as it was makes no commit, so
//! writing the same file twice is idempotent.
//!
//! git2 is blocking: each operation runs on tokio's blocking pool, one at a time (a mutex
//! guards the working copy).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use git2::Repository;

use ops::{commit_and_push, file_history, open_or_clone, snapshot, sync};

mod ops;

/// Why the repository could not be read or written. Always worth retrying: the remote may be
/// back, or have stopped moving.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git {op}: {source}")]
    Git {
        op: &'static str,
        #[source]
        source: git2::Error,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("push to {branch} still rejected after {attempts} attempts: {reason}")]
    Contended {
        branch: String,
        attempts: u32,
        reason: String,
    },
    #[error("the git task failed: {0}")]
    Task(String),
}

fn git(op: &'static str) -> impl FnOnce(git2::Error) -> GitError {
    move |source| GitError::Git { op, source }
}

/// Where the repository is and how to reach it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A path, `file://`, `ssh://`, `git@host:path` or `https://` URL.
    pub url: String,
    pub branch: String,
    /// The working copy: cloned here when absent, reused when present.
    pub dir: PathBuf,
    pub credentials: Credentials,
    /// Pushes tried before giving up on a busy remote.
    pub push_attempts: u32,
}

/// How to authenticate to the remote.
#[derive(Clone, Default)]
pub struct Credentials {
    /// A private key file, for SSH URLs.
    pub ssh_key: Option<PathBuf>,
    /// A token, for HTTPS URLs (sent as the password of `x-access-token` unless the URL names a
    /// user).
    pub token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("ssh_key", &self.ssh_key)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// One file change, relative to the repository root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileChange {
    Write { path: String, contents: Vec<u8> },
    Remove { path: String },
}

/// The branch head after a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The head commit's id; `None` when the branch has no commit yet and nothing was written.
    pub revision: Option<String>,
    /// Whether this write made (and pushed) a commit.
    pub committed: bool,
}

/// The working copy as of the remote's head, for a change to read what it builds on.
#[derive(Debug)]
pub struct Snapshot<'a> {
    root: &'a Path,
}

impl Snapshot<'_> {
    /// The contents of `path`, `None` when there is no such file.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let full = self.root.join(path);
        match std::fs::read(&full) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(GitError::Io {
                op: "read",
                path: full,
                source,
            }),
        }
    }
}

/// The GitOps working copy. Cheap to clone; clones share the working copy and its lock.
#[derive(Clone)]
pub struct GitOps {
    settings: Arc<Settings>,
    repo: Arc<Mutex<Repository>>,
}

impl std::fmt::Debug for GitOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitOps")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl GitOps {
    /// Opens the working copy in `settings.dir`, cloning the remote there first if needed.
    pub async fn open(settings: Settings) -> Result<GitOps, GitError> {
        let settings = Arc::new(settings);
        let opening = settings.clone();
        let repo = blocking(move || open_or_clone(&opening)).await?;
        Ok(GitOps {
            settings,
            repo: Arc::new(Mutex::new(repo)),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Commits what `change` computes from the remote's head, and pushes it.
    ///
    /// `change` may run more than once (once per push attempt), each time on the then current
    /// head; it returns the files to change and a value passed back with the result. Its error
    /// type carries git errors too, so it can fail for its own reasons (a manifest that does
    /// not parse) without a push being tried.
    pub async fn commit<T, E, F>(&self, message: String, change: F) -> Result<(Pushed, T), E>
    where
        T: Send + 'static,
        E: From<GitError> + Send + 'static,
        F: FnMut(&Snapshot<'_>) -> Result<(Vec<FileChange>, T), E> + Send + 'static,
    {
        let settings = self.settings.clone();
        let repo = self.repo.clone();
        let task = tokio::task::spawn_blocking(move || {
            // A panic mid-write leaves the working copy behind, but each write starts with a
            // hard reset to the remote's head, so the next one is unaffected.
            let repo = repo.lock().unwrap_or_else(PoisonError::into_inner);
            commit_and_push(&repo, &settings, &message, change)
        });
        match task.await {
            Ok(result) => result,
            Err(e) => Err(GitError::Task(e.to_string()).into()),
        }
    }

    /// Reads `path` at the remote's head.
    pub async fn read(&self, path: String) -> Result<Option<Vec<u8>>, GitError> {
        let settings = self.settings.clone();
        let repo = self.repo.clone();
        blocking(move || {
            let repo = repo.lock().unwrap_or_else(PoisonError::into_inner);
            sync(&repo, &settings)?;
            snapshot(&repo)?.read(&path)
        })
        .await
    }

    /// The contents `path` had at each of the last `limit` commits of the branch (first
    /// parents only), newest first, as of the last fetch; `None` where it did not exist.
    pub async fn file_history(
        &self,
        path: String,
        limit: usize,
    ) -> Result<Vec<Option<Vec<u8>>>, GitError> {
        let settings = self.settings.clone();
        let repo = self.repo.clone();
        blocking(move || {
            let repo = repo.lock().unwrap_or_else(PoisonError::into_inner);
            file_history(&repo, &settings.branch, Path::new(&path), limit)
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, GitError> + Send + 'static,
) -> Result<T, GitError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| GitError::Task(e.to_string()))?
}

#[cfg(test)]
mod tests;
