//! The tracker: one background task that holds every env's [`Wait`], feeds it what the
//! Application watch and the PostSync reports say, and how the env's provision hooks stand (from
//! its record), and publishes the verdict.
//!
//! The registry is the state that lasts: a wait is made for every env the registry says is
//! `requested` (on start, and by a sweep every few seconds, so a restarted or second replica
//! takes over), reports are stored in the env's record, and a verdict moves the record to `ready`
//! or `failed`. Events are published before the record moves, with ids derived from the env and
//! its GitOps revision: a crash in between publishes the same event again (deduplicated), and two
//! replicas publish one event.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use flotilla_bus::{EventType, Outgoing, Publisher};
use flotilla_env::{EnvRecord, Registry, State};
use flotilla_proto::v1::Environment;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::app::AppStatus;
use crate::history::History;
use crate::wait::{At, HookWait, Verdict, Wait};

/// The key of the reports in an env's registry record.
pub const REPORTS: &str = "reports";

/// How the tracker judges.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long an env may take to become ready.
    pub timeout: Duration,
    /// How long every app must stay Synced and Healthy before it counts.
    pub stable: Duration,
    /// How often the registry is read for envs to wait on (restarts, other replicas).
    pub sweep: Duration,
    /// Where an env answers: `{env}` is replaced by its id.
    pub env_url: Option<String>,
}

/// What the tracker is told.
#[derive(Debug, Clone)]
pub enum Input {
    /// An env of a change was requested (its record says so), handled with `traceparent`.
    Requested {
        env: String,
        record: EnvRecord,
        traceparent: Option<String>,
    },
    /// Argo CD's status of an app's Application.
    App(AppStatus),
    /// An app's Application was deleted.
    AppGone { env: String, app: String },
    /// A provision hook of the env ended (its record, read after the event said so).
    Hooks { env: String, record: EnvRecord },
    /// A PostSync hook reported on an app (already stored in the record).
    Report {
        env: String,
        app: String,
        change_id: String,
        succeeded: bool,
        message: String,
    },
}

/// Sends to the tracker. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Tracker {
    tx: mpsc::Sender<Input>,
}

impl Tracker {
    /// A tracker and the receiving end its task runs on.
    pub fn channel() -> (Tracker, mpsc::Receiver<Input>) {
        let (tx, rx) = mpsc::channel(1024);
        (Tracker { tx }, rx)
    }

    /// Tells the tracker; `Err` when its task has stopped.
    pub async fn send(&self, input: Input) -> Result<(), String> {
        self.tx
            .send(input)
            .await
            .map_err(|_| "the readiness tracker has stopped".to_owned())
    }
}

/// One env being waited on, with what its events carry.
struct Waiting {
    wait: Wait,
    record: EnvRecord,
    /// The trace its verdict continues: the `env.requested` handling's, or the record's when
    /// the wait was found by a sweep (another replica's request, a restart).
    traceparent: String,
}

/// The tracker's task state.
pub struct Task {
    settings: Settings,
    registry: Registry,
    publisher: Publisher,
    history: Arc<dyn History>,
    waits: HashMap<String, Waiting>,
    /// The last status of every env app Application seen, by (env, app).
    seen: HashMap<(String, String), AppStatus>,
    /// Revisions known to hold another: (later, earlier).
    ancestry: HashSet<(String, String)>,
}

impl Task {
    pub fn new(
        settings: Settings,
        registry: Registry,
        publisher: Publisher,
        history: Arc<dyn History>,
    ) -> Task {
        Task {
            settings,
            registry,
            publisher,
            history,
            waits: HashMap::new(),
            seen: HashMap::new(),
            ancestry: HashSet::new(),
        }
    }

    /// Runs until `stop`; a registry that cannot be read is retried at the next sweep.
    pub async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        stop: CancellationToken,
    ) -> Result<(), String> {
        let mut sweep = tokio::time::interval(self.settings.sweep);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next = Instant::now() + self.settings.sweep;
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                input = inputs.recv() => match input {
                    Some(input) => self.apply(input).await,
                    None => return Ok(()),
                },
                _ = sweep.tick() => {
                    if let Err(e) = self.sweep().await {
                        tracing::warn!(error = %e, "could not read the registry; trying again at the next sweep");
                    }
                }
                () = tokio::time::sleep_until(next) => {}
            }
            next = self.settle().await;
        }
    }

    async fn apply(&mut self, input: Input) {
        match input {
            Input::Requested {
                env,
                record,
                traceparent,
            } => self.begin(env, record, traceparent, Instant::now()).await,
            Input::Hooks { env, record } => {
                if let Some(waiting) = self.waits.get_mut(&env)
                    && waiting.wait.change_id == record.change_id
                    && waiting.wait.revision == record.revision
                {
                    waiting.wait.hooks(hook_waits(&record, Instant::now()));
                }
            }
            Input::App(status) => {
                let key = (status.env.clone(), status.app.clone());
                self.seen.insert(key, status.clone());
                self.observe(&status).await;
            }
            Input::AppGone { env, app } => {
                self.seen.remove(&(env.clone(), app.clone()));
                if let Some(waiting) = self.waits.get_mut(&env) {
                    waiting.wait.forget(&app);
                }
            }
            Input::Report {
                env,
                app,
                change_id,
                succeeded,
                message,
            } => {
                if let Some(waiting) = self.waits.get_mut(&env)
                    && waiting.wait.change_id == change_id
                {
                    waiting.wait.report(&app, succeeded, &message);
                }
            }
        }
    }

    /// Starts (or restarts, for a newer change) the wait of `env` as `record` describes it,
    /// in the trace of `traceparent` (else the record's). A wait for the same change is kept
    /// as it is, in the trace of the handling, when one comes after a sweep found the wait.
    async fn begin(
        &mut self,
        env: String,
        record: EnvRecord,
        traceparent: Option<String>,
        now: Instant,
    ) {
        if record.state != State::Requested || record.revision.is_empty() {
            return;
        }
        if let Some(current) = self.waits.get_mut(&env)
            && current.wait.change_id == record.change_id
            && current.wait.revision == record.revision
        {
            current.wait.hooks(hook_waits(&record, now));
            if let Some(traceparent) = traceparent {
                current.traceparent = traceparent;
            }
            return;
        }
        let traceparent = traceparent.unwrap_or_else(|| record.traceparent.clone());
        let started = started_at(&record, now);
        let mut wait = Wait::new(
            env.clone(),
            record.change_id.clone(),
            record.revision.clone(),
            record.apps.iter().map(|a| a.name.clone()),
            started,
            self.settings.timeout,
        );
        for (app, succeeded, message) in reports(&record) {
            wait.report(&app, succeeded, &message);
        }
        wait.hooks(hook_waits(&record, now));
        if let Some(older) = self.waits.get(&env) {
            tracing::info!(env = %env, older = %older.wait.change_id, newer = %record.change_id, "a newer change supersedes the wait");
        }
        tracing::info!(env = %env, change_id = %record.change_id, revision = %record.revision, apps = ?wait.apps().collect::<Vec<_>>(), "waiting for the env to be ready");
        self.waits.insert(
            env.clone(),
            Waiting {
                wait,
                record,
                traceparent,
            },
        );
        let statuses: Vec<AppStatus> = self
            .seen
            .iter()
            .filter(|((e, _), _)| *e == env)
            .map(|(_, status)| status.clone())
            .collect();
        for status in statuses {
            self.observe(&status).await;
        }
    }

    /// Feeds an Application's status to its env's wait, judging its revision first.
    async fn observe(&mut self, status: &AppStatus) {
        let Some(pushed) = self.waits.get(&status.env).map(|w| w.wait.revision.clone()) else {
            return;
        };
        let revision = if status.failure().is_some() {
            status.failure_revision().to_owned()
        } else {
            status.revision.clone()
        };
        let at = if self.contains(&revision, &pushed).await {
            At::PushedOrLater
        } else {
            At::Elsewhere
        };
        if let Some(waiting) = self.waits.get_mut(&status.env) {
            waiting.wait.observe(status, at, Instant::now());
        }
    }

    /// Whether `revision` is `pushed` or a later commit holding it. Answers are kept: commits
    /// do not change.
    async fn contains(&mut self, revision: &str, pushed: &str) -> bool {
        if revision.is_empty() {
            return false;
        }
        if revision == pushed {
            return true;
        }
        let key = (revision.to_owned(), pushed.to_owned());
        if self.ancestry.contains(&key) {
            return true;
        }
        match self.history.contains(revision, pushed).await {
            Ok(answer) => {
                // Only a yes is final: a no can be a commit the mirror has not fetched yet.
                if answer {
                    self.ancestry.insert(key);
                }
                answer
            }
            Err(e) => {
                // Not kept: the next status of the app asks again.
                tracing::warn!(revision, pushed, error = %e, "could not tell whether a revision holds the pushed one");
                false
            }
        }
    }

    /// Reads the registry: a wait for every `requested` env, none for the others.
    async fn sweep(&mut self) -> Result<(), String> {
        let records = self.registry.list().await.map_err(|e| e.to_string())?;
        let now = Instant::now();
        let mut live = std::collections::HashSet::new();
        for (env, record) in records {
            if record.state != State::Requested || record.revision.is_empty() {
                continue;
            }
            live.insert(env.clone());
            let known = self.waits.get(&env).is_some_and(|w| {
                w.wait.change_id == record.change_id && w.wait.revision == record.revision
            });
            if known {
                // Reports another replica took, and how the hooks stand.
                if let Some(waiting) = self.waits.get_mut(&env) {
                    for (app, succeeded, message) in reports(&record) {
                        waiting.wait.report(&app, succeeded, &message);
                    }
                    waiting.wait.hooks(hook_waits(&record, now));
                }
            } else {
                self.begin(env, record, None, now).await;
            }
        }
        self.waits.retain(|env, waiting| {
            let keep = live.contains(env);
            if !keep {
                tracing::debug!(env = %env, change_id = %waiting.wait.change_id, "no longer requested: the wait ends");
            }
            keep
        });
        Ok(())
    }

    /// Publishes every verdict reached; the time to look again.
    async fn settle(&mut self) -> Instant {
        let now = Instant::now();
        let mut next = now + self.settings.sweep;
        let mut decided = Vec::new();
        for (env, waiting) in &self.waits {
            match waiting.wait.verdict(now, self.settings.stable) {
                Verdict::Waiting { next: at } => next = next.min(at),
                verdict => decided.push((env.clone(), verdict)),
            }
        }
        for (env, verdict) in decided {
            let Some(waiting) = self.waits.remove(&env) else {
                continue;
            };
            if let Err(e) = self.finish(&env, &waiting, &verdict, now).await {
                // Kept: the next round tries again.
                tracing::warn!(env = %env, error = %e, "could not report the verdict; trying again");
                next = next.min(now + Duration::from_secs(1));
                self.waits.insert(env, waiting);
            }
        }
        next
    }

    /// Publishes the verdict and moves the record, unless the record moved on meanwhile (a newer
    /// change, a teardown): then the older change is never reported.
    async fn finish(
        &self,
        env: &str,
        waiting: &Waiting,
        verdict: &Verdict,
        now: Instant,
    ) -> Result<(), String> {
        let wait = &waiting.wait;
        let current = self.registry.get(env).await.map_err(|e| e.to_string())?;
        let same_change =
            |r: &EnvRecord| r.change_id == wait.change_id && r.revision == wait.revision;
        let (event_type, state, reason) = match verdict {
            Verdict::Ready => (EventType::EnvReady, State::Ready, String::new()),
            Verdict::Failed { reason } => (EventType::EnvFailed, State::Failed, reason.clone()),
            Verdict::Waiting { .. } => return Ok(()),
        };
        match &current {
            Some(record)
                if same_change(record)
                    && (record.state == State::Requested || record.state == state) => {}
            _ => {
                tracing::info!(env, change_id = %wait.change_id, "the env moved on before its verdict: not reported");
                return Ok(());
            }
        }
        let took = now.saturating_duration_since(wait.started);
        let environment = self.environment(env, &waiting.record, &reason, took);
        let id = format!(
            "sync-watcher:{}:{env}:{}",
            event_type.as_str(),
            wait.revision
        );
        let event = Outgoing::new(event_type, env, &environment)
            .map_err(|e| e.to_string())?
            .with_change_id(&wait.change_id)
            .with_id(id)
            .with_traceparent(&waiting.traceparent);
        self.publisher
            .publish(event)
            .await
            .map_err(|e| e.to_string())?;
        let mut moved_on = false;
        self.registry
            .update(env, |current| {
                moved_on = false;
                let Some(record) =
                    current.filter(|r| same_change(r) && r.state == State::Requested)
                else {
                    moved_on = true;
                    return None;
                };
                Some(EnvRecord {
                    state: state.clone(),
                    reason: reason.clone(),
                    traceparent: waiting.traceparent.clone(),
                    ..record
                })
            })
            .await
            .map_err(|e| e.to_string())?;
        if moved_on {
            // Published with the id of this revision: a second replica's verdict is the same
            // event. The record says what happened since; nothing here moves it.
            tracing::info!(env, change_id = %wait.change_id, verdict = event_type.as_str(), "verdict published; the record had moved on meanwhile and is left as it is");
            return Ok(());
        }
        match verdict {
            Verdict::Ready => {
                tracing::info!(env, change_id = %wait.change_id, took_ms = took.as_millis() as u64, "env ready")
            }
            _ => {
                tracing::warn!(env, change_id = %wait.change_id, reason = %reason, "env failed")
            }
        }
        Ok(())
    }

    fn environment(
        &self,
        env: &str,
        record: &EnvRecord,
        reason: &str,
        took: Duration,
    ) -> Environment {
        Environment {
            reason: reason.to_owned(),
            url: self
                .settings
                .env_url
                .as_deref()
                .map(|template| template.replace("{env}", env))
                .unwrap_or_default(),
            duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            ..record.to_environment(env)
        }
    }
}

/// When the wait of `record` began: its `created_at` (the build that requested it) when that is
/// in the past, else now. A restarted tracker keeps counting from the request.
fn started_at(record: &EnvRecord, now: Instant) -> Instant {
    let Ok(created) = OffsetDateTime::parse(&record.created_at, &Rfc3339) else {
        return now;
    };
    let ago = OffsetDateTime::now_utc() - created;
    match Duration::try_from(ago) {
        Ok(ago) => now.checked_sub(ago).unwrap_or(now),
        Err(_) => now,
    }
}

/// The provision hooks of `record`'s change as the wait takes them, their deadlines on the
/// clock of `now`.
pub fn hook_waits(record: &EnvRecord, now: Instant) -> Vec<HookWait> {
    flotilla_env::hooks::of_change(&record.hooks, &record.change_id)
        .map(|hook| HookWait {
            name: hook.name.clone(),
            state: hook.provision.state,
            deadline: instant_of(&hook.provision.deadline, now),
            reason: hook.provision.reason.clone(),
        })
        .collect()
}

/// An RFC 3339 time as an instant on the clock where `now` is the present.
fn instant_of(at: &str, now: Instant) -> Option<Instant> {
    let at = OffsetDateTime::parse(at, &Rfc3339).ok()?;
    let ahead = at - OffsetDateTime::now_utc();
    match Duration::try_from(ahead) {
        Ok(ahead) => Some(now + ahead),
        Err(_) => Duration::try_from(-ahead)
            .ok()
            .and_then(|ago| now.checked_sub(ago))
            .or(Some(now)),
    }
}

/// The reports stored in `record` for its current change: (app, succeeded, message).
pub fn reports(record: &EnvRecord) -> Vec<(String, bool, String)> {
    let Some(Value::Object(reports)) = record.other.get(REPORTS) else {
        return Vec::new();
    };
    reports
        .iter()
        .filter(|(_, r)| r.get("change_id").and_then(Value::as_str) == Some(&record.change_id))
        .map(|(app, r)| {
            let text = |name: &str| {
                r.get(name)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            (app.clone(), text("status") == "succeeded", text("message"))
        })
        .collect()
}

/// `record` with a report for `app` of its current change.
pub fn with_report(mut record: EnvRecord, app: &str, succeeded: bool, message: &str) -> EnvRecord {
    let report = json!({
        "change_id": record.change_id,
        "status": if succeeded { "succeeded" } else { "failed" },
        "message": message,
    });
    let reports = record
        .other
        .entry(REPORTS)
        .or_insert_with(|| Value::Object(Default::default()));
    if !reports.is_object() {
        *reports = Value::Object(Default::default());
    }
    if let Some(reports) = reports.as_object_mut() {
        reports.insert(app.to_owned(), report);
    }
    record
}
