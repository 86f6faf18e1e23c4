//! The GitOps repository: a working copy of one branch that env-manager writes, commits and
//! pushes.
//!
//! env-manager is the repository's single writer, but people push too. Every write starts from
//! the remote's current head: fetch, compute the change from what is there, commit, push. A
//! remote on this machine is not fetched from while its branch is where the last write left it.
//! Nothing is checked out: changes read and write blobs, and a group's tree is made from the
//! head's tree and the files that changed, so a write costs the same whether the repository
//! holds ten envs or ten thousand. A push rejected because the remote moved starts over from the
//! new head after a short, jittered backoff; since the changes are computed afresh each time
//! (they are whole files), that is a rebase without conflicts, and the other writer's commit
//! stays the parent of ours. A change that leaves the tree as it was makes no commit, so
//! writing the same file twice is idempotent.
//!
//! Writes wait in a queue. One writer at a time takes everything that is waiting (up to
//! [`Settings::group_max`]) and makes it one commit and one push: events that arrive together
//! cost one round trip to the remote instead of one each. Each caller still gets its answer only
//! once the commit that holds its change is pushed (or its own change failed, alone: the rest of
//! the group goes on without it). A write to a file that an earlier write of the group changed
//! waits for the next group, so that every version of a file is in the history: the version a
//! promotion replaced is read from there (to roll back to it), and two promotions of one app in
//! one commit would leave the first one out.
//!
//! git2 is blocking: the writer runs on tokio's blocking pool, and a mutex guards the
//! repository.
//!
//! A write costs about 50 file opens (`strace` of `flotilla bench env`), which is what it costs
//! on a machine with a slow filesystem. A local remote is opened twice per write (to sync, to
//! push), each time reading its config, `/etc/gitconfig` and `~/.gitconfig` and listing its
//! packs. Three reflogs of the working copy are rewritten. An object lookup that misses lists
//! the pack directory again.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use flotilla_bus::dry_run::Recorder;
use git2::{Repository, Tree};
use tokio::sync::oneshot;

use batch::{Job, TypedJob, write_batch};
use ops::{Entry, blob, entry, file_history, head_tree, open_or_clone, sync, tree_path};

mod batch;
mod dry_run;
mod ops;

// The remote's credentials and URL redaction are shared with the other workers that reach the
// repository; they are re-exported here for env-manager's callers.
pub use flotilla_gitops::{Answer, Credentials, Remote, Secret, redact_url};

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
    /// The failure of a grouped commit, shared by every change it held.
    #[error(transparent)]
    Shared(Arc<GitError>),
    /// Setting up access to the remote failed (libgit2's network timeouts).
    #[error(transparent)]
    Access(#[from] flotilla_gitops::GitError),
}

fn git(op: &'static str) -> impl FnOnce(git2::Error) -> GitError {
    move |source| GitError::Git { op, source }
}

/// Where the repository is, how to reach it and how to write it.
#[derive(Clone)]
pub struct Settings {
    /// A path, `file://`, `ssh://`, `git@host:path` or `https://` URL.
    pub url: String,
    pub branch: String,
    /// The working copy: cloned here when absent, reused when present.
    pub dir: PathBuf,
    pub credentials: Credentials,
    /// Pushes tried before giving up on a busy remote (the event is then retried later).
    pub push_attempts: u32,
    /// The author and committer of env-manager's commits.
    pub author: Author,
    /// Writes grouped into one commit at most; 1 commits every write on its own.
    pub group_max: usize,
    /// How long connecting to the remote, and each read or write on the connection, may take.
    /// libgit2 waits forever by default: a remote that accepts the connection and never
    /// answers would hold env-manager's writer for good.
    pub network_timeout: Duration,
}

/// The URL is shown without its credentials: `Settings` reaches logs through `GitOps`.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("url", &redact_url(&self.url))
            .field("branch", &self.branch)
            .field("dir", &self.dir)
            .field("credentials", &self.credentials)
            .field("push_attempts", &self.push_attempts)
            .field("author", &self.author)
            .field("group_max", &self.group_max)
            .field("network_timeout", &self.network_timeout)
            .finish()
    }
}

impl Settings {
    /// The remote these settings write to, as the shared GitOps pieces take it.
    pub fn remote(&self) -> Remote {
        Remote {
            url: self.url.clone(),
            branch: self.branch.clone(),
            credentials: self.credentials.clone(),
            network_timeout: self.network_timeout,
        }
    }
}

/// Who env-manager's commits are by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Default for Author {
    fn default() -> Self {
        Author {
            name: "flotilla env-manager".into(),
            email: "env-manager@flotilla.invalid".into(),
        }
    }
}

/// One file change, relative to the repository root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileChange {
    Write { path: String, contents: Vec<u8> },
    Remove { path: String },
}

impl FileChange {
    /// The file it changes.
    pub fn path(&self) -> &str {
        match self {
            FileChange::Write { path, .. } | FileChange::Remove { path } => path,
        }
    }
}

/// The branch head after a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The head commit's id, which holds the change; `None` when the branch has no commit yet
    /// and nothing was written.
    pub revision: Option<String>,
    /// Whether this write changed the tree (and a commit holding it was pushed).
    pub committed: bool,
    /// How many writes the pushed commit holds (1 when the write was not grouped; 0 when
    /// nothing was committed).
    pub grouped: usize,
}

/// The branch as of the remote's head (plus the writes grouped before this one), for a change
/// to read what it builds on. Files are read from the object database: nothing is checked out.
pub struct Snapshot<'a> {
    repo: &'a Repository,
    tree: Option<&'a Tree<'a>>,
    /// Files the writes grouped before this one changed: their new blob, `None` when removed.
    changed: Option<&'a HashMap<String, Option<Entry>>>,
}

impl std::fmt::Debug for Snapshot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("tree", &self.tree.map(Tree::id))
            .finish_non_exhaustive()
    }
}

impl<'a> Snapshot<'a> {
    fn new(
        repo: &'a Repository,
        tree: Option<&'a Tree<'a>>,
        changed: Option<&'a HashMap<String, Option<Entry>>>,
    ) -> Self {
        Snapshot {
            repo,
            tree,
            changed,
        }
    }

    /// The contents of `path`, `None` when there is no such file.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let path = tree_path(path)?;
        self.entry(&path)?
            .map(|entry| blob(self.repo, entry.blob))
            .transpose()
    }

    /// The file at `path` (a [`tree_path`]).
    fn entry(&self, path: &str) -> Result<Option<Entry>, GitError> {
        match self.changed.and_then(|changed| changed.get(path)) {
            Some(entry) => Ok(*entry),
            None => entry(self.tree, path),
        }
    }
}

/// The GitOps working copy. Cheap to clone; clones share the working copy, its lock and the
/// queue of writes.
#[derive(Clone)]
pub struct GitOps {
    inner: Arc<Inner>,
    /// Set in a dry run: commits are computed against the remote's head and recorded here,
    /// never committed or pushed.
    recorder: Option<Recorder>,
}

struct Inner {
    settings: Settings,
    repo: Mutex<Repository>,
    queue: Mutex<Queue>,
    /// Held while the working copy is open: no other process writes it.
    _claim: flotilla_gitops::locks::Claim,
}

/// Writes waiting for the writer, and whether a writer is running.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Box<dyn Job>>,
    writing: bool,
}

impl std::fmt::Debug for GitOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitOps")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl GitOps {
    /// Opens the working copy in `settings.dir`, cloning the remote there first if needed. The
    /// directory is this process's while the value lives: lock files a killed predecessor left
    /// are removed, and another process opening it waits, then fails.
    pub async fn open(settings: Settings) -> Result<GitOps, GitError> {
        let opening = settings.clone();
        let (repo, claim) = blocking(move || open_or_clone(&opening)).await?;
        Ok(GitOps {
            inner: Arc::new(Inner {
                settings,
                repo: Mutex::new(repo),
                queue: Mutex::new(Queue::default()),
                _claim: claim,
            }),
            recorder: None,
        })
    }

    /// This working copy in a dry run: [`commit`](Self::commit) fetches, computes the change
    /// against the remote's head and records each file it would write or remove (with the new
    /// contents or a diff), then answers with the current head and `committed: false`. The
    /// remote is only fetched from. Its local branch is moved to the remote's head on every
    /// call, so it must not be one a running env-manager uses.
    pub fn recording(mut self, recorder: Recorder) -> GitOps {
        self.recorder = Some(recorder);
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Commits what `change` computes from the remote's head, and pushes it; returns once the
    /// commit holding the change is on the remote.
    ///
    /// `change` may run more than once (once per push attempt), each time on the then current
    /// head, after the changes grouped before it in the same commit; it returns the files to
    /// change and a value passed back with the result. Its error type carries git errors too,
    /// so it can fail for its own reasons (a manifest that does not parse): then nothing of it
    /// is written and the error comes back, while the rest of its group is committed.
    /// `message` is the commit message, or one line of a grouped commit's.
    pub async fn commit<T, E, F>(&self, message: String, change: F) -> Result<(Pushed, T), E>
    where
        T: Send + 'static,
        E: From<GitError> + Send + 'static,
        F: FnMut(&Snapshot<'_>) -> Result<(Vec<FileChange>, T), E> + Send + 'static,
    {
        if let Some(recorder) = &self.recorder {
            return self.dry_commit(recorder.clone(), message, change).await;
        }
        let (done, answer) = oneshot::channel();
        self.enqueue(Box::new(TypedJob::new(message, change, done)));
        match answer.await {
            Ok(result) => result,
            // The writer dropped the job without answering: it panicked.
            Err(_) => Err(GitError::Task("the git writer stopped before pushing".into()).into()),
        }
    }

    /// Writes waiting for the writer (not counting the group being pushed).
    pub fn queued(&self) -> usize {
        let queue = self
            .inner
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        queue.jobs.len()
    }

    /// Queues `job`, starting a writer when none runs.
    fn enqueue(&self, job: Box<dyn Job>) {
        let start = {
            let mut queue = self
                .inner
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            queue.jobs.push_back(job);
            !std::mem::replace(&mut queue.writing, true)
        };
        if start {
            let inner = self.inner.clone();
            tokio::task::spawn_blocking(move || inner.write_all());
        }
    }

    /// Reads `path` at the remote's head.
    pub async fn read(&self, path: String) -> Result<Option<Vec<u8>>, GitError> {
        let inner = self.inner.clone();
        blocking(move || {
            let repo = inner.repo.lock().unwrap_or_else(PoisonError::into_inner);
            let head = sync(&repo, &inner.settings)?;
            let tree = head_tree(&repo, head)?;
            Snapshot::new(&repo, tree.as_ref(), None).read(&path)
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
        let inner = self.inner.clone();
        blocking(move || {
            let repo = inner.repo.lock().unwrap_or_else(PoisonError::into_inner);
            file_history(&repo, &inner.settings.branch, Path::new(&path), limit)
        })
        .await
    }
}

impl Inner {
    /// The writer: commits what waits, group by group, until the queue is empty.
    fn write_all(&self) {
        loop {
            let group: Vec<Box<dyn Job>> = {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                let take = queue.jobs.len().min(self.settings.group_max.max(1));
                if take == 0 {
                    queue.writing = false;
                    return;
                }
                queue.jobs.drain(..take).collect()
            };
            // A change that panics drops its group's jobs, whose callers then get an error;
            // the writer itself goes on. Each group starts with a hard reset to the remote's
            // head, so what a panic left in the working copy does not matter.
            let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let repo = self.repo.lock().unwrap_or_else(PoisonError::into_inner);
                write_batch(&repo, &self.settings, group)
            }));
            match written {
                // Writes of a file the group changed already go first in the next group.
                Ok(deferred) => {
                    let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                    for job in deferred.into_iter().rev() {
                        queue.jobs.push_front(job);
                    }
                }
                Err(_) => tracing::error!("a GitOps write panicked; its group was not pushed"),
            }
        }
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
