//! The sweep: one background task that reads the registry, the GitOps repository and the
//! cluster, fires the timers that are due, verifies teardowns and finds orphans; then sleeps
//! until the next timer or the next sweep, whichever is first.
//!
//! Nothing lasting is held in memory: every timer is computed from the env's record at each
//! sweep, so a restarted reaper fires on time and a second replica fires nothing twice. A timer
//! fires by writing a claim into the env's record with compare-and-set; only the replica whose
//! write lands publishes `env.teardown.requested`, with an id derived from the env and the
//! deadline (a crash between the claim and the publish publishes it again at the next sweep,
//! deduplicated by that id).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use flotilla_bus::{EventType, Outgoing, Publisher};
use flotilla_env::{EnvRecord, Registry, State};
use flotilla_gitops::Mirror;
use flotilla_proto::v1::TeardownRequest;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Cluster, Object};
use crate::config::{Config, Orphans};
use crate::orphans::{self, Orphan, Seen};
use crate::timer::{self, Claim, Clock, Timer};

/// The record key env-manager writes with the reason an env was suspended for.
pub const SUSPENDED_BY: &str = "suspended_by";
/// The reason of a suspension the reaper asked for.
const HIBERNATE: &str = "hibernate";

/// The record key of what a teardown left behind, as the last sweep saw it.
pub const LINGERING: &str = "lingering";

/// What one sweep found and did: `GET /reaper` shows the last one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    /// When it ran (RFC 3339).
    pub at: String,
    /// How many envs the registry holds.
    pub envs: usize,
    /// Teardowns requested by this sweep: env → reason.
    pub fired: BTreeMap<String, String>,
    /// Envs confirmed gone (`env.deleted` published).
    pub deleted: Vec<String>,
    /// Envs torn down with something left: env → what.
    pub lingering: BTreeMap<String, Vec<String>>,
    /// Envs whose leftovers outlived `FLOTILLA_REAP_VERIFY_TIMEOUT`.
    pub stuck: Vec<String>,
    pub orphans: Vec<Orphan>,
    /// Hibernation requested by this sweep: env → `suspend` or `resume`.
    pub hibernated: BTreeMap<String, String>,
    /// The next timer: env, reason, when.
    pub next: Option<(String, String, String)>,
    /// What could not be read or written (tried again at the next sweep).
    pub errors: Vec<String>,
}

/// The sweep's task state.
pub struct Sweeper {
    pub(crate) config: Config,
    pub(crate) registry: Registry,
    pub(crate) publisher: Publisher,
    pub(crate) mirror: Mirror,
    pub(crate) cluster: Option<Cluster>,
    pub(crate) clock: Clock,
    pub(crate) last: Arc<Mutex<Report>>,
}

impl Sweeper {
    pub fn new(
        config: Config,
        registry: Registry,
        publisher: Publisher,
        mirror: Mirror,
        cluster: Option<Cluster>,
        clock: Clock,
    ) -> Sweeper {
        Sweeper {
            config,
            registry,
            publisher,
            mirror,
            cluster,
            clock,
            last: Arc::default(),
        }
    }

    /// The last report, shared with the route.
    pub fn reports(&self) -> Arc<Mutex<Report>> {
        self.last.clone()
    }

    /// Sweeps until `stop`: at once, then at the next timer or after `FLOTILLA_REAP_SWEEP`,
    /// or sooner when `nudge` is notified (a teardown was requested).
    pub async fn run(self, nudge: Arc<Notify>, stop: CancellationToken) -> Result<(), String> {
        loop {
            let report = self.sweep().await;
            let mut wake = tokio::time::Instant::now() + self.config.sweep;
            if let Some((_, _, at)) = &report.next
                && let Some(at) = timer::parse(at)
            {
                wake = wake.min(self.clock.instant_of(at));
            }
            if let Ok(mut last) = self.last.lock() {
                *last = report;
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = nudge.notified() => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// One sweep. Never fails: what cannot be read is in the report's errors and tried again.
    pub async fn sweep(&self) -> Report {
        let mut report = Report {
            at: timer::rfc3339(self.clock.now()),
            ..Report::default()
        };
        let records = match self.registry.list().await {
            Ok(records) => records,
            Err(e) => {
                report.errors.push(format!("the registry: {e}"));
                tracing::warn!(error = %e, "could not read the registry; trying again at the next sweep");
                return report;
            }
        };
        report.envs = records.len();
        // Git after the registry: env-manager pushes a removal before it marks the env
        // `deleting`, so every `deleting` read above has its removal in this fetch.
        let files = match self.git_files().await {
            Ok(files) => Some(files),
            Err(e) => {
                report.errors.push(e.clone());
                tracing::warn!(error = %e, "could not read the GitOps repository; teardowns are verified at the next sweep");
                None
            }
        };
        let objects = match &self.cluster {
            Some(cluster) => match cluster.objects().await {
                Ok(objects) => Some(objects),
                Err(e) => {
                    report.errors.push(e.clone());
                    tracing::warn!(error = %e, "could not read the cluster; teardowns are verified at the next sweep");
                    None
                }
            },
            None => None,
        };
        let cluster_known = self.cluster.is_none() || objects.is_some();

        let now = self.clock.now();
        let mut next: Option<(String, Timer)> = None;
        for (env, record) in &records {
            if let Some(claim) = Claim::of(record)
                && !claim.published
                && timer::applies(env, record)
            {
                self.publish_claim(env, record, &claim, &mut report).await;
                continue;
            }
            if let Some(timer) = timer::next(env, record, &self.config.timers) {
                if timer.is_due(now) {
                    self.fire(env, now, &mut report).await;
                } else if next.as_ref().is_none_or(|(_, n)| timer.at < n.at) {
                    next = Some((env.clone(), timer));
                }
            }
            self.hibernate(env, record, now, &mut report).await;
            if record.state == State::Deleting
                && let Some(files) = &files
                && cluster_known
            {
                self.verify(env, record, files, objects.as_deref(), now, &mut report)
                    .await;
            }
        }
        report.next =
            next.map(|(env, t)| (env, t.reason.as_str().to_owned(), timer::rfc3339(t.at)));

        let by_env: HashMap<&str, &EnvRecord> =
            records.iter().map(|(env, r)| (env.as_str(), r)).collect();
        let seen = Seen {
            records: &by_env,
            files: files.as_ref(),
            envs_dir: &self.config.envs_dir,
            objects: objects.as_deref(),
        };
        let (mut orphans, removable) = orphans::find(&seen, now, self.config.orphan_grace);
        if self.config.orphans == Orphans::Remove
            && let Some(cluster) = &self.cluster
        {
            for object in removable {
                let action = match cluster.delete(&object).await {
                    Ok(()) => {
                        tracing::warn!(env = %object.env, object = %object.describe(cluster.argocd_namespace()), "orphan removed");
                        "removed".to_owned()
                    }
                    Err(e) => {
                        report.errors.push(e.clone());
                        format!("not removed: {e}")
                    }
                };
                if let Some(orphan) = orphans
                    .iter_mut()
                    .find(|o| o.kind == object.kind.as_str() && o.name == object.name)
                {
                    orphan.action = action;
                }
            }
        }
        for orphan in &orphans {
            if orphan.action != "removed" {
                tracing::info!(kind = %orphan.kind, name = %orphan.name, env = %orphan.env, why = %orphan.why, action = %orphan.action, "orphan");
            }
        }
        report.orphans = orphans;
        report
    }

    /// The env files' names at the head of the GitOps branch, fetched now.
    async fn git_files(&self) -> Result<BTreeSet<String>, String> {
        let head = self
            .mirror
            .fetch()
            .await
            .map_err(|e| format!("fetch the GitOps repository: {e}"))?;
        if head.is_none() {
            return Ok(BTreeSet::new());
        }
        self.mirror
            .files(&self.config.envs_dir)
            .await
            .map_err(|e| {
                format!(
                    "read {} in the GitOps repository: {e}",
                    self.config.envs_dir
                )
            })
            .map(Option::unwrap_or_default)
    }

    /// Inside the hibernation window a live preview env is asked to suspend; outside it, one the
    /// reaper suspended is asked to resume (an env suspended by hand stays so). env-manager does
    /// both idempotently, and each request's id is derived from the env, its change and the hour,
    /// so replicas sweeping in the same hour publish one request.
    async fn hibernate(
        &self,
        env: &str,
        record: &EnvRecord,
        now: OffsetDateTime,
        report: &mut Report,
    ) {
        let Some(window) = &self.config.hibernation else {
            return;
        };
        if flotilla_env::Kind::of(env) != Some(flotilla_env::Kind::Preview) {
            return;
        }
        let at = jiff::Timestamp::from_second(now.unix_timestamp())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let on = window.contains(at);
        let hibernated_by_us =
            record.other.get(SUSPENDED_BY).and_then(Value::as_str) == Some(HIBERNATE);
        let (event_type, action, reason) = match (on, &record.state) {
            (true, State::Requested | State::Ready | State::Failed) => {
                (EventType::EnvSuspendRequested, "suspend", HIBERNATE)
            }
            (false, State::Suspended) if hibernated_by_us => {
                (EventType::EnvResumeRequested, "resume", "wake")
            }
            _ => return,
        };
        let request = TeardownRequest {
            env: env.to_owned(),
            reason: reason.to_owned(),
            change_id: record.change_id.clone(),
            message: format!("hibernation window {}", window.describe()),
        };
        let id = format!(
            "reaper:{action}:{env}:{}:{}",
            record.change_id,
            now.unix_timestamp() / 3600
        );
        let event = match Outgoing::new(event_type, env, &request) {
            Ok(event) => event
                .with_change_id(&record.change_id)
                .with_id(id)
                .with_traceparent(&record.traceparent),
            Err(e) => {
                report
                    .errors
                    .push(format!("encode the {action} of {env}: {e}"));
                return;
            }
        };
        match self.publisher.publish(event).await {
            Ok(published) => {
                if !published.duplicate {
                    tracing::info!(env, action, window = %window.describe(), "hibernation requested");
                }
                report.hibernated.insert(env.to_owned(), action.to_owned());
            }
            Err(e) => {
                report
                    .errors
                    .push(format!("publish the {action} of {env}: {e}"));
            }
        }
    }

    /// Claims the env's due timer with compare-and-set and, when this replica's claim landed,
    /// publishes the teardown.
    async fn fire(&self, env: &str, now: OffsetDateTime, report: &mut Report) {
        let timers = &self.config.timers;
        let mut won: Option<(Claim, EnvRecord)> = None;
        let claimed = self
            .registry
            .update(env, |current| {
                won = None;
                let record = current?;
                let timer = timer::next(env, &record, timers).filter(|t| t.is_due(now))?;
                let claim = Claim::new(&timer, &record.change_id);
                let record = claim.put(record);
                won = Some((claim, record.clone()));
                Some(record)
            })
            .await;
        match claimed {
            Ok(()) => {}
            Err(e) => {
                report.errors.push(format!("claim {env}: {e}"));
                return;
            }
        }
        let Some((claim, record)) = won else {
            tracing::debug!(env, "another replica fired the timer, or the env moved on");
            return;
        };
        self.publish_claim(env, &record, &claim, report).await;
    }

    /// Publishes the teardown `claim` asks for, then marks it published.
    async fn publish_claim(
        &self,
        env: &str,
        record: &EnvRecord,
        claim: &Claim,
        report: &mut Report,
    ) {
        let message = match claim.reason.as_str() {
            "idle" => format!("no event about {env} since {}", activity_of(record)),
            _ => format!("{env} expired at {}", claim.deadline),
        };
        let request = TeardownRequest {
            env: env.to_owned(),
            reason: claim.reason.clone(),
            change_id: claim.change_id.clone(),
            message: message.clone(),
        };
        let event = match Outgoing::new(EventType::EnvTeardownRequested, env, &request) {
            Ok(event) => event
                .with_change_id(&claim.change_id)
                .with_id(claim.event_id(env))
                .with_traceparent(&record.traceparent),
            Err(e) => {
                report
                    .errors
                    .push(format!("encode the teardown of {env}: {e}"));
                return;
            }
        };
        if let Err(e) = self.publisher.publish(event).await {
            report
                .errors
                .push(format!("publish the teardown of {env}: {e}"));
            tracing::warn!(env, error = %e, "could not publish the teardown; again at the next sweep");
            return;
        }
        tracing::info!(env, reason = %claim.reason, change_id = %claim.change_id, %message, "teardown requested");
        report.fired.insert(env.to_owned(), claim.reason.clone());
        let marked = self
            .registry
            .update(env, |current| {
                let record = current?;
                let mine = Claim::of(&record).filter(|c| c == claim)?;
                Some(
                    Claim {
                        published: true,
                        ..mine
                    }
                    .put(record),
                )
            })
            .await;
        if let Err(e) = marked {
            // Published again at the next sweep, under the same id.
            report
                .errors
                .push(format!("mark the teardown of {env}: {e}"));
        }
    }

    /// Checks that the torn-down env left nothing: its file gone from git, its Applications and
    /// Namespace gone from the cluster. Then `env.deleted` and the record `deleted`; else what
    /// lingers is recorded and checked again at the next sweep.
    async fn verify(
        &self,
        env: &str,
        record: &EnvRecord,
        files: &BTreeSet<String>,
        objects: Option<&[Object]>,
        now: OffsetDateTime,
        report: &mut Report,
    ) {
        let mut lingering = Vec::new();
        if files.contains(&format!("{env}.json")) {
            lingering.push(format!("file {}/{env}.json", self.config.envs_dir));
        }
        if let (Some(objects), Some(cluster)) = (objects, &self.cluster) {
            lingering.extend(
                objects
                    .iter()
                    .filter(|o| o.env == env)
                    .map(|o| o.describe(cluster.argocd_namespace())),
            );
        }
        if lingering.is_empty() {
            self.deleted(env, record, report).await;
            return;
        }
        let since = timer::parse(&record.deleted_at);
        let stuck = since.is_some_and(|since| since + self.config.verify_timeout <= now);
        if stuck {
            tracing::warn!(env, lingering = ?lingering, deleted_at = %record.deleted_at, "torn down, and still there after FLOTILLA_REAP_VERIFY_TIMEOUT");
            report.stuck.push(env.to_owned());
        } else {
            tracing::info!(env, lingering = ?lingering, "torn down; waiting for what is left to go");
        }
        let list = Value::from(lingering.clone());
        if record.other.get(LINGERING) != Some(&list) {
            let written = self
                .registry
                .update(env, |current| {
                    let mut record = current.filter(|r| r.state == State::Deleting)?;
                    if record.other.get(LINGERING) == Some(&list) {
                        return None;
                    }
                    record.other.insert(LINGERING.into(), list.clone());
                    Some(record)
                })
                .await;
            if let Err(e) = written {
                report
                    .errors
                    .push(format!("record what lingers of {env}: {e}"));
            }
        }
        report.lingering.insert(env.to_owned(), lingering);
    }

    /// Publishes `env.deleted`, then marks the record `deleted` (unless it moved on: a new
    /// change requested meanwhile).
    async fn deleted(&self, env: &str, record: &EnvRecord, report: &mut Report) {
        let environment = record.to_environment(env);
        let id = format!(
            "reaper:env.deleted:{env}:{}:{}",
            record.change_id, record.deleted_at
        );
        let event = match Outgoing::new(EventType::EnvDeleted, env, &environment) {
            // In the trace of the teardown that marked the env `deleting`.
            Ok(event) => event
                .with_change_id(&record.change_id)
                .with_id(id)
                .with_traceparent(&record.traceparent),
            Err(e) => {
                report
                    .errors
                    .push(format!("encode env.deleted of {env}: {e}"));
                return;
            }
        };
        if let Err(e) = self.publisher.publish(event).await {
            report
                .errors
                .push(format!("publish env.deleted of {env}: {e}"));
            return;
        }
        let (change_id, deleted_at) = (record.change_id.clone(), record.deleted_at.clone());
        let marked = self
            .registry
            .update(env, |current| {
                let mut record = current.filter(|r| {
                    r.state == State::Deleting
                        && r.change_id == change_id
                        && r.deleted_at == deleted_at
                })?;
                record.state = State::Deleted;
                record.other.remove(LINGERING);
                Some(record)
            })
            .await;
        match marked {
            Ok(()) => {
                tracing::info!(env, reason = %record.reason, "env confirmed gone");
                report.deleted.push(env.to_owned());
            }
            Err(e) => report.errors.push(format!("mark {env} deleted: {e}")),
        }
    }
}

fn activity_of(record: &EnvRecord) -> String {
    record
        .other
        .get(timer::LAST_ACTIVITY)
        .and_then(Value::as_str)
        .unwrap_or(&record.created_at)
        .to_owned()
}
