//! The supervisor: one background task that runs a follower task per release this replica
//! holds, and sweeps the lease bucket for releases nobody judges (a replica that died, a
//! restart), taking them over once their lease expired.
//!
//! A follower judges its release (analysis-only, or following its Rollout), renewing its lease
//! meanwhile, then stores the verdict, publishes it and marks it published. Its events are
//! published by a reporter beside it, in the order taken, with ids derived from the release, the
//! lease attempt and what they are about: a repeat is a duplicate JetStream drops.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use flotilla_bus::{EventType, Outgoing, Publisher};
use flotilla_proto::v1::Canary;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::judge::{Failure, Judge, Report};
use crate::lease::{Claim, Decided, Held, LeaseError, Leases};
use crate::release::Job;
use crate::rollout::{self, Cluster};

/// How a release is judged.
#[derive(Clone)]
pub enum Mode {
    /// No cluster: the named templates at each configured weight.
    AnalysisOnly { steps: Vec<u32> },
    /// Following the release's Argo Rollout.
    Cluster(Cluster),
}

/// What every follower shares.
pub struct Shared {
    pub leases: Leases,
    pub publisher: Publisher,
    pub judge: Judge,
    pub mode: Mode,
}

/// Sends claimed releases to the supervisor. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Supervisor {
    tx: mpsc::Sender<Held>,
}

impl Supervisor {
    pub fn channel() -> (Supervisor, mpsc::Receiver<Held>) {
        let (tx, rx) = mpsc::channel(256);
        (Supervisor { tx }, rx)
    }

    /// Hands a release this replica holds to its follower; `Err` when the task has stopped.
    pub async fn send(&self, held: Held) -> Result<(), String> {
        self.tx
            .send(held)
            .await
            .map_err(|_| "the canary supervisor has stopped".to_owned())
    }
}

/// The supervisor's task.
pub struct Task {
    shared: Arc<Shared>,
    sweep: Duration,
    running: HashMap<String, CancellationToken>,
    ids: HashMap<tokio::task::Id, String>,
    followers: JoinSet<()>,
    /// Releases whose verdict is published: not read again by the sweep.
    finished: HashSet<String>,
}

impl Task {
    pub fn new(shared: Shared, sweep: Duration) -> Task {
        Task {
            shared: Arc::new(shared),
            sweep,
            running: HashMap::new(),
            ids: HashMap::new(),
            followers: JoinSet::new(),
            finished: HashSet::new(),
        }
    }

    /// Runs until `stop`; then every follower gives its lease up.
    pub async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Held>,
        stop: CancellationToken,
    ) -> Result<(), String> {
        let mut sweep = tokio::time::interval(self.sweep);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                held = inputs.recv() => match held {
                    Some(held) => self.start(held, &stop),
                    None => break,
                },
                _ = sweep.tick() => {
                    if let Err(e) = self.sweep(&stop).await {
                        tracing::warn!(error = %e, "could not read the canary leases; trying again at the next sweep");
                    }
                }
                Some(done) = self.followers.join_next_with_id(), if !self.followers.is_empty() => {
                    let id = match &done {
                        Ok((id, ())) => *id,
                        Err(e) => {
                            tracing::error!(error = %e, "a release follower failed");
                            e.id()
                        }
                    };
                    if let Some(key) = self.ids.remove(&id) {
                        self.running.remove(&key);
                    }
                }
            }
        }
        for token in self.running.values() {
            token.cancel();
        }
        while self.followers.join_next().await.is_some() {}
        Ok(())
    }

    fn start(&mut self, held: Held, stop: &CancellationToken) {
        if self.running.contains_key(&held.key) {
            return;
        }
        let token = stop.child_token();
        self.running.insert(held.key.clone(), token.clone());
        let key = held.key.clone();
        let handle = self
            .followers
            .spawn(follow(self.shared.clone(), held, token));
        self.ids.insert(handle.id(), key);
    }

    /// Takes every release without a published verdict whose lease is free.
    async fn sweep(&mut self, stop: &CancellationToken) -> Result<(), LeaseError> {
        let shared = self.shared.clone();
        let leases = &shared.leases;
        for key in leases.keys().await? {
            if self.running.contains_key(&key) || self.finished.contains(&key) {
                continue;
            }
            let Some((revision, record)) = leases.read(&key).await? else {
                continue;
            };
            match leases.take(key.clone(), revision, record).await? {
                Claim::Mine(held) => {
                    tracing::info!(release = %held.record.job.release, attempt = held.record.attempt, "taking the release over");
                    self.start(*held, stop);
                }
                Claim::Finished => {
                    self.finished.insert(key);
                }
                Claim::Taken { .. } => {}
            }
        }
        Ok(())
    }
}

/// Judges one release to its published verdict, unless stopped or its lease is lost.
async fn follow(shared: Arc<Shared>, mut held: Held, stop: CancellationToken) {
    let job = held.record.job.clone();
    let decided = match held.record.verdict.clone() {
        // Decided by an earlier owner that stopped before publishing: published as decided.
        Some(decided) => decided,
        None => {
            tracing::info!(release = %job.release, attempt = held.record.attempt, "judging the release");
            let Some(outcome) = judge(&shared, &mut held, &stop).await else {
                return;
            };
            let decided = match outcome {
                Ok(()) => Decided {
                    promoted: true,
                    reason: String::new(),
                    metric: String::new(),
                    value: String::new(),
                },
                Err(Failure {
                    reason,
                    metric,
                    value,
                }) => Decided {
                    promoted: false,
                    reason,
                    metric,
                    value,
                },
            };
            let stored = retry(&stop, "store the verdict", || {
                shared.leases.decide(&held, decided.clone())
            })
            .await;
            match stored {
                Some(next) => held = next,
                None => return give_up(&shared, &held, &stop).await,
            }
            decided
        }
    };
    let event = match verdict_event(&job, &decided) {
        Ok(event) => event.with_traceparent(&held.record.traceparent),
        Err(e) => {
            tracing::error!(release = %job.release, error = %e, "could not encode the verdict");
            return;
        }
    };
    let published = retry(&stop, "publish the verdict", || async {
        shared
            .publisher
            .publish(event.clone())
            .await
            .map_err(|e| LeaseError::Store(e.to_string()))
    })
    .await;
    if published.is_none() {
        return give_up(&shared, &held, &stop).await;
    }
    if decided.promoted {
        tracing::info!(release = %job.release, "canary promoted");
    } else {
        tracing::warn!(release = %job.release, reason = %decided.reason, "canary aborted");
    }
    if retry(&stop, "mark the verdict published", || {
        shared.leases.finish(&held)
    })
    .await
    .is_none()
    {
        give_up(&shared, &held, &stop).await;
    }
}

/// Runs the judgement with its reporter, renewing the lease meanwhile; `None` when stopped or
/// the lease was lost (then nothing is decided here).
async fn judge(
    shared: &Shared,
    held: &mut Held,
    stop: &CancellationToken,
) -> Option<Result<(), Failure>> {
    let job = held.record.job.clone();
    let attempt = held.record.attempt;
    let traceparent = held.record.traceparent.clone();
    let (reports, received) = mpsc::unbounded_channel();
    let judging = async {
        let outcome = match &shared.mode {
            Mode::AnalysisOnly { steps } => shared.judge.analysis_only(&job, steps, &reports).await,
            Mode::Cluster(cluster) => rollout::follow(cluster, &shared.judge, &job, &reports).await,
        };
        drop(reports);
        outcome
    };
    let reporting = report(&shared.publisher, &job, attempt, &traceparent, received);
    let both = async { tokio::join!(judging, reporting).0 };
    tokio::pin!(both);
    let every = shared.leases.ttl() / 3;
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                give_up(shared, held, stop).await;
                return None;
            }
            outcome = &mut both => return Some(outcome),
            _ = renew.tick() => match shared.leases.renew(held).await {
                Ok(next) => *held = next,
                Err(LeaseError::Lost) => {
                    tracing::warn!(release = %job.release, "lost the release to another replica; stopping");
                    return None;
                }
                Err(e) => tracing::warn!(release = %job.release, error = %e, "could not renew the lease; trying again"),
            },
        }
    }
}

/// Publishes what the judgement reports, in order, until it ends, in the trace of
/// `traceparent`.
async fn report(
    publisher: &Publisher,
    job: &Job,
    attempt: u32,
    traceparent: &str,
    mut reports: mpsc::UnboundedReceiver<Report>,
) {
    while let Some(report) = reports.recv().await {
        let event = match report_event(job, attempt, &report) {
            Ok(event) => event.with_traceparent(traceparent),
            Err(e) => {
                tracing::warn!(release = %job.release, error = %e, "could not encode a canary event");
                continue;
            }
        };
        // A measurement that cannot be published is logged and skipped: the verdict matters,
        // and it does not wait on a bus that is down for a lost progress report.
        for attempt in 1..=3 {
            match publisher.publish(event.clone()).await {
                Ok(_) => break,
                Err(e) if attempt == 3 => {
                    tracing::warn!(release = %job.release, error = %e, "could not publish a canary event; skipped");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// The event of one report, with an id derived from what it is about.
pub fn report_event(job: &Job, attempt: u32, report: &Report) -> Result<Outgoing, String> {
    let (event_type, canary, id) = match report {
        Report::Step { index, weight } => (
            EventType::CanaryStep,
            Canary {
                step: *index,
                weight: *weight,
                phase: "Running".into(),
                ..job.canary()
            },
            format!(
                "canary-analyzer:canary.step:{}:{attempt}:{index}",
                job.release
            ),
        ),
        Report::Measurement(m) => {
            let value = m.value.clone().unwrap_or_default();
            let mut reason = m.message.clone();
            if reason.is_empty() && !value.is_empty() {
                reason = format!("{} = {value}", m.metric);
            }
            (
                EventType::CanaryMeasurement,
                Canary {
                    step: m.step,
                    metric: m.metric.clone(),
                    value: numeric(&value),
                    phase: m.phase.to_string(),
                    reason,
                    analysis_run: m.template.clone(),
                    ..job.canary()
                },
                format!(
                    "canary-analyzer:canary.measurement:{}:{attempt}:{}:{}:{}:{}",
                    job.release, m.step, m.template, m.metric, m.ordinal
                ),
            )
        }
    };
    Ok(Outgoing::new(event_type, &job.release, &canary)
        .map_err(|e| e.to_string())?
        .with_change_id(&job.change_id)
        .with_id(id))
}

/// `canary.promoted` or `canary.aborted`: one per release, whoever publishes it.
pub fn verdict_event(job: &Job, decided: &Decided) -> Result<Outgoing, String> {
    let event_type = if decided.promoted {
        EventType::CanaryPromoted
    } else {
        EventType::CanaryAborted
    };
    let canary = Canary {
        metric: decided.metric.clone(),
        value: numeric(&decided.value),
        phase: if decided.promoted {
            "Successful"
        } else {
            "Failed"
        }
        .into(),
        reason: decided.reason.clone(),
        ..job.canary()
    };
    let id = format!("canary-analyzer:{}:{}", event_type.as_str(), job.release);
    Ok(Outgoing::new(event_type, &job.release, &canary)
        .map_err(|e| e.to_string())?
        .with_change_id(&job.change_id)
        .with_id(id))
}

/// The number in a measured value: `0.5`, `[0.99]` (a vector's first), else 0.
fn numeric(value: &str) -> f64 {
    let inner = value.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(',')
        .next()
        .and_then(|first| first.trim().parse::<f64>().ok())
        .filter(|x| x.is_finite())
        .unwrap_or(0.0)
}

/// Calls `op` until it succeeds (a store or bus that is down is retried every second); `None`
/// when stopped or the lease was lost.
async fn retry<F, Fut, T>(stop: &CancellationToken, what: &str, mut op: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, LeaseError>>,
{
    loop {
        match op().await {
            Ok(value) => return Some(value),
            Err(LeaseError::Lost) => {
                tracing::warn!(what, "lost the release to another replica; stopping");
                return None;
            }
            Err(e) => tracing::warn!(what, error = %e, "failed; trying again"),
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// This replica stops judging `held`: the lease is released so another replica takes it at
/// once (an expired lease would do, later).
async fn give_up(shared: &Shared, held: &Held, stop: &CancellationToken) {
    if !stop.is_cancelled() {
        return;
    }
    if let Err(e) = shared.leases.release(held).await {
        tracing::debug!(release = %held.record.job.release, error = %e, "lease not released; it expires");
    }
}

/// What the handler does with a release: claim it and hand it over, or leave it to its owner.
/// The release's events continue the trace of `traceparent` (the handling's).
pub async fn claim(
    leases: &Leases,
    supervisor: &Supervisor,
    job: &Job,
    traceparent: &str,
) -> Result<(), String> {
    match leases
        .claim(job, traceparent)
        .await
        .map_err(|e| e.to_string())?
    {
        Claim::Mine(held) => supervisor.send(*held).await,
        Claim::Taken { owner } => {
            tracing::info!(release = %job.release, owner = %owner, "another replica judges the release");
            Ok(())
        }
        Claim::Finished => {
            tracing::debug!(release = %job.release, "the release was judged already");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_as_numbers_where_they_are_some() {
        assert_eq!(numeric("[0.99]"), 0.99);
        assert_eq!(numeric("0.5"), 0.5);
        assert_eq!(numeric("[1, 2]"), 1.0);
        assert_eq!(numeric("\"ok\""), 0.0);
        assert_eq!(numeric("NaN"), 0.0);
    }
}
