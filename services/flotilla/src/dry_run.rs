//! `flotilla replay --dry-run WORKER`: stored events fed to a worker's handler built in dry
//! run, printing per event the side effects it would have and the events it would emit.
//! Nothing is published or written: every interface of the handler records instead.

use std::collections::BTreeMap;
use std::path::Path;

use flotilla_bus::dry_run::{self, Effect, Recorder};
use flotilla_bus::{Bus, Ctx, Event, Handler, HandlerError, Outgoing, Publisher, subject};
use serde::Serialize;
use serde_json::Value;

use crate::error::CliError;
use crate::events::{Reader, Stored};
use crate::render::Output;

/// The workers this binary can build in dry run.
pub const WORKERS: &[&str] = &[env_manager::WORKER, builder_trigger::WORKER];

/// A worker's handler in dry run.
// One per replay: the size of env-manager's handler is no cost.
#[allow(clippy::large_enum_variant)]
enum DryWorker {
    EnvManager(env_manager::EnvManager),
    BuilderTrigger(builder_trigger::BuilderTrigger),
}

impl DryWorker {
    /// `worker`'s handler configured as `flotilla up` configures it, recording into `recorder`.
    /// The GitOps working copy is a scratch one in `scratch`: fetching into it only reads the
    /// remote.
    async fn build(
        worker: &str,
        bus: &Bus,
        data_dir: &Path,
        scratch: &Path,
        recorder: &Recorder,
    ) -> Result<DryWorker, CliError> {
        let config_error = |why: String| CliError::Usage(format!("{worker}: {why}"));
        match worker {
            env_manager::WORKER => {
                let mut config =
                    crate::fleet::env_manager_config(data_dir, false).map_err(config_error)?;
                config.gitops.dir = scratch.join("gitops");
                let url = config.gitops.url.clone();
                let gitops = env_manager::gitops::GitOps::open(config.gitops.clone())
                    .await
                    .map_err(|e| config_error(format!("GitOps repository {url}: {e}")))?;
                let envs = bus
                    .envs()
                    .await
                    .map_err(|e| config_error(format!("{e} (run `flotilla init`)")))?;
                let registry = flotilla_env::Registry::new(envs);
                Ok(DryWorker::EnvManager(env_manager::EnvManager::recording(
                    config, gitops, registry, recorder,
                )))
            }
            builder_trigger::WORKER => {
                let config = crate::fleet::builder_trigger_config().map_err(config_error)?;
                let (runner, _routes) = builder_trigger::runner(&config)
                    .await
                    .map_err(|e| config_error(e.to_string()))?;
                Ok(DryWorker::BuilderTrigger(
                    builder_trigger::BuilderTrigger::recording(config, runner, recorder),
                ))
            }
            other => Err(CliError::Usage(format!(
                "--dry-run {other}: this binary can dry-run only {}",
                WORKERS.join(", ")
            ))),
        }
    }

    async fn handle(&self, event: Event, ctx: Ctx) -> Result<Vec<Outgoing>, HandlerError> {
        match self {
            DryWorker::EnvManager(handler) => handler.handle(event, ctx).await,
            DryWorker::BuilderTrigger(handler) => handler.handle(event, ctx).await,
        }
    }
}

/// What one event would have caused.
#[derive(Debug, Serialize)]
struct Report {
    seq: u64,
    subject: String,
    #[serde(rename = "type")]
    event_type: String,
    id: String,
    effects: Vec<Effect>,
    emits: Vec<Emitted>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// An event the handler would emit.
#[derive(Debug, Serialize)]
struct Emitted {
    #[serde(rename = "type")]
    event_type: String,
    key: String,
    subject: String,
    id: String,
    data: Value,
}

/// Feeds every event `reader` yields that `worker` consumes to its handler in dry run, and
/// prints what each would have caused. Returns (handled, skipped by type).
pub async fn run(
    bus: &Bus,
    worker: &str,
    data_dir: &Path,
    reader: &mut Reader,
    json: bool,
) -> Result<(u64, BTreeMap<String, u64>), CliError> {
    let scratch = tempfile::tempdir().map_err(|source| CliError::System {
        what: "create a scratch directory for the dry run",
        source,
    })?;
    let recorder = Recorder::new();
    let handler = DryWorker::build(worker, bus, data_dir, scratch.path(), &recorder).await?;
    let publisher = bus.publisher(worker).recording(recorder.clone());
    let patterns: Vec<String> = flotilla_bus::topology::worker_subjects(worker)
        .unwrap_or_default()
        .iter()
        .map(|s| format!("{}.{s}", bus.names().prefix))
        .collect();
    let mut out = Output::buffered();
    let mut handled = 0;
    let mut skipped = BTreeMap::new();
    while let Some(stored) = reader.next().await? {
        let consumed = patterns
            .iter()
            .any(|p| subject::matches(p, &stored.subject));
        let event = Event::from_parts(
            &stored.subject,
            stored.headers.as_ref(),
            stored.payload.clone(),
        );
        let event = match event {
            Ok(event) if consumed => event,
            Ok(event) => {
                *skipped.entry(event.event_type().to_owned()).or_default() += 1;
                continue;
            }
            Err(_) => {
                *skipped.entry("(no valid envelope)".to_owned()).or_default() += 1;
                continue;
            }
        };
        let ctx = Ctx {
            worker: worker.into(),
            publisher: publisher.clone(),
            delivered: 1,
            stream_seq: stored.seq,
            dry_run: Some(recorder.clone()),
        };
        let outcome = handler.handle(event.clone(), ctx).await;
        let report = report(&stored, &event, outcome, &recorder, &publisher).await;
        handled += 1;
        if json {
            out.json(&report)?;
        } else {
            out.line(text(&report))?;
        }
    }
    out.finish()?;
    Ok((handled, skipped))
}

async fn report(
    stored: &Stored,
    event: &Event,
    outcome: Result<Vec<Outgoing>, HandlerError>,
    recorder: &Recorder,
    publisher: &Publisher,
) -> Report {
    let mut report = Report {
        seq: stored.seq,
        subject: stored.subject.clone(),
        event_type: event.event_type().to_owned(),
        id: event.id.clone(),
        effects: Vec::new(),
        emits: Vec::new(),
        error: None,
    };
    match outcome {
        Ok(outputs) => {
            let data: Vec<(String, String, Value)> = outputs
                .iter()
                .map(|o| {
                    (
                        o.spec.event_type.to_owned(),
                        o.key.clone(),
                        dry_run::data_json(o),
                    )
                })
                .collect();
            // The ids and subjects the runtime would publish them with, recorded apart so
            // they are listed as emitted events rather than as effects.
            let aside = publisher.clone().recording(Recorder::new());
            match aside.publish_all(outputs, Some(event)).await {
                Ok(published) => {
                    report.emits = data
                        .into_iter()
                        .zip(published)
                        .map(|((event_type, key, data), p)| Emitted {
                            event_type,
                            key,
                            subject: p.subject,
                            id: p.id,
                            data,
                        })
                        .collect();
                }
                Err(e) => report.error = Some(e.to_string()),
            }
        }
        Err(e) => report.error = Some(format!("the handler failed: {e}")),
    }
    report.effects = recorder.take();
    report
}

/// The report for people: the event, then one line per effect (details indented below it) and
/// per emitted event.
fn text(report: &Report) -> String {
    let mut text = format!(
        "{:>6}  {}  {}  id={}",
        report.seq, report.subject, report.event_type, report.id
    );
    for effect in &report.effects {
        text.push_str(&format!("\n        {:<10} {}", effect.kind, effect.summary));
        if let Some(detail) = &effect.detail {
            for line in detail.lines() {
                text.push_str("\n                   | ");
                text.push_str(line);
            }
        }
    }
    for emitted in &report.emits {
        text.push_str(&format!(
            "\n        {:<10} {} {}  {}",
            "emit", emitted.event_type, emitted.key, emitted.data
        ));
    }
    if report.effects.is_empty() && report.emits.is_empty() && report.error.is_none() {
        text.push_str("\n        (nothing: no side effect, no event)");
    }
    if let Some(error) = &report.error {
        text.push_str(&format!("\n        error      {error}"));
    }
    text
}
