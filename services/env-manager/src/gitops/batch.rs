//! Grouped writes: the changes waiting in the queue become one commit and one push, redone
//! together on the new head when the push is rejected.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use git2::build::TreeUpdateBuilder;
use git2::{FileMode, Oid, Repository, Tree};
use tokio::sync::oneshot;

use super::ops::{
    Entry, commit_tree, entry, head_tree, push, set_branch, set_tracking, sync, tree_path,
};
use super::{FileChange, GitError, Pushed, Settings, Snapshot, git};

/// First pause after a rejected push; doubles each attempt, with jitter, up to [`BACKOFF_MAX`].
const BACKOFF: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// One queued write, whatever its caller's types.
pub(super) trait Job: Send {
    /// The line this write adds to the commit message.
    fn message(&self) -> &str;
    /// Computes the files from `tree`; `None` when the change failed (its error is kept for
    /// [`Job::finish`]).
    fn compute(&mut self, tree: &Snapshot<'_>) -> Option<Vec<FileChange>>;
    /// Answers the caller: the push (or the group's failure), unless the change itself failed.
    fn finish(self: Box<Self>, outcome: Result<Pushed, GitError>);
}

/// A [`Job`] around a caller's change closure and the channel its answer goes back on.
pub(super) struct TypedJob<T, E, F> {
    message: String,
    change: F,
    /// What the last run of `change` returned besides the files.
    last: Option<Result<T, E>>,
    done: oneshot::Sender<Result<(Pushed, T), E>>,
}

impl<T, E, F> TypedJob<T, E, F> {
    pub(super) fn new(
        message: String,
        change: F,
        done: oneshot::Sender<Result<(Pushed, T), E>>,
    ) -> Self {
        TypedJob {
            message,
            change,
            last: None,
            done,
        }
    }
}

impl<T, E, F> Job for TypedJob<T, E, F>
where
    T: Send + 'static,
    E: From<GitError> + Send + 'static,
    F: FnMut(&Snapshot<'_>) -> Result<(Vec<FileChange>, T), E> + Send + 'static,
{
    fn message(&self) -> &str {
        &self.message
    }

    fn compute(&mut self, tree: &Snapshot<'_>) -> Option<Vec<FileChange>> {
        match (self.change)(tree) {
            Ok((files, value)) => {
                self.last = Some(Ok(value));
                Some(files)
            }
            Err(e) => {
                self.last = Some(Err(e));
                None
            }
        }
    }

    fn finish(self: Box<Self>, outcome: Result<Pushed, GitError>) {
        let answer = match (self.last, outcome) {
            (Some(Err(own)), _) => Err(own),
            (Some(Ok(value)), Ok(pushed)) => Ok((pushed, value)),
            (_, Err(e)) => Err(E::from(e)),
            (None, Ok(_)) => Err(E::from(GitError::Task(
                "a write was answered before it ran".into(),
            ))),
        };
        // The caller may have gone away (its event was cancelled); the write stands anyway.
        let _ = self.done.send(answer);
    }
}

/// Commits `jobs` as one commit and pushes it, redoing them all on the new head when the push
/// is rejected; answers every job but those it hands back for the next group.
///
/// A job that changes a file an earlier job of the group changed is handed back: one commit
/// holds at most one change per file, so every version of a file is in the history. Callers
/// read the history (the version a promotion replaced, which a rollback restores); two
/// promotions of one app in one commit would leave the first out of it.
pub(super) fn write_batch(
    repo: &Repository,
    settings: &Settings,
    mut jobs: Vec<Box<dyn Job>>,
) -> Vec<Box<dyn Job>> {
    let attempts = settings.push_attempts.max(1);
    let mut reason = String::new();
    let mut later = Vec::new();
    for attempt in 1..=attempts {
        let (outcome, deferred) = attempt_once(repo, settings, jobs);
        later.extend(deferred);
        match outcome {
            Attempt::Done => return later,
            Attempt::Rejected(again, why) => {
                tracing::info!(attempt, writes = again.len(), reason = %why, "push rejected: the remote moved; writing again on its new head");
                jobs = again;
                reason = why;
                if attempt < attempts {
                    std::thread::sleep(backoff(attempt));
                }
            }
        }
    }
    fail_all(
        jobs,
        GitError::Contended {
            branch: settings.branch.clone(),
            attempts,
            reason,
        },
    );
    later
}

enum Attempt {
    /// Every job has its answer.
    Done,
    /// The push was rejected: these jobs (those whose change worked) are to be written again.
    Rejected(Vec<Box<dyn Job>>, String),
}

/// One fetch, compute, commit and push of the group; with the jobs deferred to the next group.
fn attempt_once(
    repo: &Repository,
    settings: &Settings,
    jobs: Vec<Box<dyn Job>>,
) -> (Attempt, Vec<Box<dyn Job>>) {
    let head = match sync(repo, settings) {
        Ok(head) => head,
        Err(e) => return (fail_all(jobs, e), Vec::new()),
    };
    let applied = match apply_all(repo, head, jobs) {
        Ok(applied) => applied,
        Err((jobs, e)) => return (fail_all(jobs, e), Vec::new()),
    };
    let deferred = applied.deferred;
    let changed: Vec<&str> = applied
        .jobs
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(job, _)| job.message())
        .collect();
    // The tree is made only when a write changed a file.
    let Some(tree) = applied.tree else {
        let revision = head.map(|h| h.to_string());
        for (job, _) in applied.jobs {
            job.finish(Ok(Pushed {
                revision: revision.clone(),
                committed: false,
                grouped: 0,
            }));
        }
        return (Attempt::Done, deferred);
    };
    let grouped = changed.len();
    let message = group_message(&changed);
    let commit =
        match commit_tree(repo, head, tree, &message, &settings.author).and_then(|commit| {
            set_branch(repo, &settings.branch, commit, "env-manager: commit")?;
            Ok(commit)
        }) {
            Ok(commit) => commit,
            Err(e) => return (fail_all(jobs_of(applied.jobs), e), deferred),
        };
    let outcome = match push(repo, settings, head, commit) {
        Ok(None) => {
            tracing::info!(revision = %commit, branch = %settings.branch, writes = grouped, "pushed to the GitOps repository");
            // Not knowing it only costs the next write a fetch.
            if let Err(e) = set_tracking(repo, &settings.branch, commit) {
                tracing::warn!(error = %e, "cannot record the pushed head; the next write fetches it");
            }
            for (job, changed) in applied.jobs {
                job.finish(Ok(Pushed {
                    revision: Some(commit.to_string()),
                    committed: changed,
                    grouped: if changed { grouped } else { 0 },
                }));
            }
            Attempt::Done
        }
        Ok(Some(rejected)) => Attempt::Rejected(jobs_of(applied.jobs), rejected),
        Err(e) => fail_all(jobs_of(applied.jobs), e),
    };
    (outcome, deferred)
}

/// The group's changes on top of the head's tree: each job with whether it changed a file,
/// and the tree they make together.
struct Applied {
    jobs: Vec<(Box<dyn Job>, bool)>,
    /// `None` when no job changed a file.
    tree: Option<Oid>,
    /// Jobs that change a file an earlier job changed: they wait for the next group.
    deferred: Vec<Box<dyn Job>>,
}

/// Computes each job in turn, each seeing the ones before it. A job whose change fails is
/// answered at once and leaves the others be.
///
/// Nothing is checked out: blobs go into the object database as they are computed, and the
/// group's tree is made once, from the head's tree and the files that changed (only the
/// directories on their paths are written again). Staging every file through an index and a
/// working copy cost time in proportion to the number of files in the repository, on every
/// write (a checkout, an index written whole, every entry of a rewritten directory looked up).
#[allow(clippy::type_complexity)]
fn apply_all(
    repo: &Repository,
    head: Option<Oid>,
    jobs: Vec<Box<dyn Job>>,
) -> Result<Applied, (Vec<Box<dyn Job>>, GitError)> {
    let base = match head_tree(repo, head) {
        Ok(base) => base,
        Err(e) => return Err((jobs, e)),
    };
    let mut changed: HashMap<String, Option<Entry>> = HashMap::new();
    let mut applied = Vec::with_capacity(jobs.len());
    let mut deferred = Vec::new();
    let mut touched: HashSet<String> = HashSet::new();
    let mut jobs = jobs.into_iter();
    while let Some(mut job) = jobs.next() {
        let files = job.compute(&Snapshot::new(repo, base.as_ref(), Some(&changed)));
        let Some(files) = files else {
            // The job's own error goes back to its caller (it wins over the outcome given
            // here); nothing of it was written.
            job.finish(Err(GitError::Task("the change failed".into())));
            continue;
        };
        let staged = files
            .iter()
            .map(|file| tree_path(file.path()))
            .collect::<Result<Vec<_>, _>>()
            .and_then(|paths| {
                if paths.iter().any(|path| touched.contains(path)) {
                    return Ok(None);
                }
                touched.extend(paths.iter().cloned());
                stage(repo, base.as_ref(), &mut changed, &files, paths).map(Some)
            });
        match staged {
            Ok(Some(did_change)) => applied.push((job, did_change)),
            Ok(None) => deferred.push(job),
            Err(e) => {
                let mut rest = jobs_of(applied);
                rest.push(job);
                rest.extend(deferred);
                rest.extend(jobs);
                return Err((rest, e));
            }
        }
    }
    let tree = if applied.iter().any(|(_, did_change)| *did_change) {
        build_tree(repo, base.as_ref(), &changed).map(Some)
    } else {
        Ok(None)
    };
    match tree {
        Ok(tree) => Ok(Applied {
            jobs: applied,
            tree,
            deferred,
        }),
        Err(e) => {
            let mut rest = jobs_of(applied);
            rest.extend(deferred);
            Err((rest, e))
        }
    }
}

/// Writes one job's `files` (at `paths`) into `changed`; whether any file ends up other than it
/// was before the job.
fn stage(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    changed: &mut HashMap<String, Option<Entry>>,
    files: &[FileChange],
    paths: Vec<String>,
) -> Result<bool, GitError> {
    let mut before: Vec<(String, Option<Entry>)> = Vec::with_capacity(paths.len());
    for (file, path) in files.iter().zip(paths) {
        let now = Snapshot::new(repo, base, Some(changed)).entry(&path)?;
        if !before.iter().any(|(p, _)| *p == path) {
            before.push((path.clone(), now));
        }
        let after = match file {
            FileChange::Write { contents, .. } => Some(Entry {
                blob: repo.blob(contents).map_err(git("write a file"))?,
                // A file keeps its mode (executable stays executable).
                mode: now.map_or(FileMode::Blob, |entry| entry.mode),
            }),
            FileChange::Remove { .. } => None,
        };
        changed.insert(path, after);
    }
    Ok(before
        .iter()
        .any(|(path, was)| changed.get(path).is_some_and(|now| now != was)))
}

/// The tree of `base` with the files in `changed` written or removed.
fn build_tree(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    changed: &HashMap<String, Option<Entry>>,
) -> Result<Oid, GitError> {
    let empty;
    let base = match base {
        Some(base) => base,
        None => {
            let oid = repo
                .treebuilder(None)
                .and_then(|builder| builder.write())
                .map_err(git("write the tree"))?;
            empty = repo.find_tree(oid).map_err(git("write the tree"))?;
            &empty
        }
    };
    let mut update = TreeUpdateBuilder::new();
    for (path, after) in changed {
        if entry(Some(base), path)? == *after {
            continue;
        }
        match after {
            Some(file) => update.upsert(path.as_str(), file.blob, file.mode),
            None => update.remove(path.as_str()),
        };
    }
    update
        .create_updated(repo, base)
        .map_err(git("write the tree"))
}

fn jobs_of(applied: Vec<(Box<dyn Job>, bool)>) -> Vec<Box<dyn Job>> {
    applied.into_iter().map(|(job, _)| job).collect()
}

/// Answers every job with `error`.
fn fail_all(jobs: Vec<Box<dyn Job>>, error: GitError) -> Attempt {
    let error = Arc::new(error);
    for job in jobs {
        job.finish(Err(GitError::Shared(error.clone())));
    }
    Attempt::Done
}

/// The message of a commit of `lines`: the line itself when there is one, else a summary line
/// and every line below it.
fn group_message(lines: &[&str]) -> String {
    match lines {
        [one] => (*one).to_owned(),
        many => {
            let mut message = format!("env-manager: {} changes\n\n", many.len());
            for line in many {
                message.push_str("- ");
                message.push_str(line);
                message.push('\n');
            }
            message
        }
    }
}

/// The pause after rejected attempt `attempt`: doubling, capped, with up to as much again of
/// jitter so that two writers that collided do not collide again in step.
fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(BACKOFF_MAX);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = base.mul_f64(f64::from(nanos % 1000) / 1000.0);
    base + jitter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_of_one_keeps_its_message_and_a_larger_one_lists_every_change() {
        assert_eq!(group_message(&["env-manager: a"]), "env-manager: a");
        let message = group_message(&["a", "b"]);
        assert!(
            message.starts_with("env-manager: 2 changes\n\n"),
            "{message}"
        );
        assert!(message.contains("- a\n- b\n"), "{message}");
    }

    #[test]
    fn the_backoff_grows_and_stays_under_twice_its_cap() {
        assert!(backoff(1) >= BACKOFF && backoff(1) < BACKOFF * 2);
        assert!(backoff(3) >= BACKOFF * 4);
        assert!(backoff(30) <= BACKOFF_MAX * 2);
    }
}
