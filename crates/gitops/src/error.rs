//! Why the GitOps repository could not be opened or read.

use std::path::PathBuf;

/// Why a git operation failed. [`is_retryable`](GitError::is_retryable) tells a remote that may
/// come back from input that will never work.
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
    /// The mirror's directory holds something else: it is left as it is.
    #[error(
        "{} is neither a bare git repository nor empty; the mirror needs a directory of its own",
        path.display()
    )]
    NotAMirror { path: PathBuf },
    /// A revision that is not a full commit id.
    #[error("{revision:?} is not a full commit id (40 hex digits)")]
    Revision { revision: String },
    /// Another process holds the repository (or the remote's push lock) past the wait.
    #[error(
        "{} is held by another process (waited {waited:?}); each worker needs a repository directory of its own",
        path.display()
    )]
    InUse {
        path: PathBuf,
        waited: std::time::Duration,
    },
    #[error("the git task failed: {0}")]
    Task(String),
}

impl GitError {
    /// Whether trying again later may succeed (the remote may be back); a malformed revision
    /// or a directory that holds something else stays wrong.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            GitError::NotAMirror { .. } | GitError::Revision { .. }
        )
    }
}

/// Wraps a libgit2 error with what was being done.
pub(crate) fn git(op: &'static str) -> impl FnOnce(git2::Error) -> GitError {
    move |source| GitError::Git { op, source }
}
