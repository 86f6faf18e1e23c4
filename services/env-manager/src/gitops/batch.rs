//! Grouped writes: the changes waiting in the queue become one commit and one push, redone
//! together on the new head when the push is rejected.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use git2::{Oid, Repository};
use tokio::sync::oneshot;

use super::ops::{apply_files, commit_tree, push, sync};
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
    if changed.is_empty() {
        let revision = head.map(|h| h.to_string());
        for (job, _) in applied.jobs {
            job.finish(Ok(Pushed {
                revision: revision.clone(),
                committed: false,
                grouped: 0,
            }));
        }
        return (Attempt::Done, deferred);
    }
    let grouped = changed.len();
    let message = group_message(&changed);
    let commit = match commit_tree(repo, head, applied.tree, &message, &settings.author) {
        Ok(commit) => commit,
        Err(e) => return (fail_all(jobs_of(applied.jobs), e), deferred),
    };
    let outcome = match push(repo, settings, head, commit) {
        Ok(None) => {
            tracing::info!(revision = %commit, branch = %settings.branch, writes = grouped, "pushed to the GitOps repository");
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

/// The group written into the working copy and index: each job with whether it changed the
/// tree, and the tree they make together.
struct Applied {
    jobs: Vec<(Box<dyn Job>, bool)>,
    tree: Oid,
    /// Jobs that change a file an earlier job changed: they wait for the next group.
    deferred: Vec<Box<dyn Job>>,
}

/// Computes and writes each job in turn, each seeing the ones before it. A job whose change
/// fails is answered at once and leaves the others be.
#[allow(clippy::type_complexity)]
fn apply_all(
    repo: &Repository,
    head: Option<Oid>,
    jobs: Vec<Box<dyn Job>>,
) -> Result<Applied, (Vec<Box<dyn Job>>, GitError)> {
    let mut index = match repo.index() {
        Ok(index) => index,
        Err(e) => return Err((jobs, git("open the index")(e))),
    };
    let mut tree = match head_tree(repo, head, &mut index) {
        Ok(tree) => tree,
        Err(e) => return Err((jobs, e)),
    };
    let mut applied = Vec::with_capacity(jobs.len());
    let mut deferred = Vec::new();
    let mut touched: HashSet<String> = HashSet::new();
    let mut jobs = jobs.into_iter();
    while let Some(mut job) = jobs.next() {
        let files = job.compute(&Snapshot::at(repo, tree));
        let Some(files) = files else {
            // The job's own error goes back to its caller (it wins over the outcome given
            // here); nothing of it was written.
            job.finish(Err(GitError::Task("the change failed".into())));
            continue;
        };
        if files.iter().any(|f| touched.contains(f.path())) {
            deferred.push(job);
            continue;
        }
        touched.extend(files.iter().map(|f| f.path().to_owned()));
        let written = apply_files(repo, &mut index, &files)
            .and_then(|()| index.write_tree().map_err(git("write the tree")));
        match written {
            Ok(after) => {
                applied.push((job, after != tree));
                tree = after;
            }
            Err(e) => {
                let mut rest = jobs_of(applied);
                rest.push(job);
                rest.extend(deferred);
                rest.extend(jobs);
                return Err((rest, e));
            }
        }
    }
    if let Err(e) = index.write() {
        let mut rest = jobs_of(applied);
        rest.extend(deferred);
        return Err((rest, git("write the index")(e)));
    }
    Ok(Applied {
        jobs: applied,
        tree,
        deferred,
    })
}

/// The tree of `head` (the empty tree on an empty branch), which the index now matches.
fn head_tree(
    repo: &Repository,
    head: Option<Oid>,
    index: &mut git2::Index,
) -> Result<Oid, GitError> {
    match head {
        Some(oid) => repo
            .find_commit(oid)
            .map(|c| c.tree_id())
            .map_err(git("find the head commit")),
        None => index.write_tree().map_err(git("write the tree")),
    }
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
