//! `flotilla replay --dry-run WORKER`: stored events fed to a worker's handler built in dry
//! run, printing per event the side effects it would have and the events it would emit.
//! Nothing is published or written: every interface of the handler records instead.

use std::collections::BTreeMap;
use std::path::Path;

use flotilla_bus::dry_run::Recorder;
use flotilla_bus::envelope::header;
use flotilla_bus::{Bus, Ctx, Event, Handler, HandlerError, Outgoing, subject};
use time::OffsetDateTime;

use crate::error::CliError;
use crate::events::{Reader, Start};
use crate::fleet::WorkerSettings;
use crate::render::Output;

mod report;

use report::{report, text};

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
        target: &DryRun<'_>,
        bus: &Bus,
        scratch: &Path,
        recorder: &Recorder,
    ) -> Result<DryWorker, CliError> {
        let DryRun {
            worker,
            settings,
            data_dir,
            ..
        } = *target;
        let config_error = |why: String| CliError::Usage(format!("{worker}: {why}"));
        match worker {
            env_manager::WORKER => {
                let mut config = crate::fleet::env_manager_config(settings, data_dir, false)
                    .map_err(config_error)?;
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
                let config = crate::fleet::builder_trigger_config(settings, data_dir)
                    .map_err(config_error)?;
                let (runner, _routes) = builder_trigger::runner(&config)
                    .await
                    .map_err(|e| config_error(e.to_string()))?;
                let envs = bus
                    .envs()
                    .await
                    .map_err(|e| config_error(format!("{e} (run `flotilla init`)")))?;
                let registry = flotilla_env::Registry::new(envs);
                Ok(DryWorker::BuilderTrigger(
                    builder_trigger::BuilderTrigger::recording(config, runner, registry, recorder),
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

/// Which worker a dry run builds, and how.
#[derive(Debug, Clone, Copy)]
pub struct DryRun<'a> {
    pub worker: &'a str,
    /// The workers' settings, as `flotilla up` reads them.
    pub settings: &'a WorkerSettings,
    /// Where `flotilla up` keeps its local GitOps repository.
    pub data_dir: &'a Path,
    /// One JSON object per event instead of text.
    pub json: bool,
}

/// `--dry-run WORKER`: the worker is checked first, so one this binary cannot run fails
/// before anything is read.
pub async fn replay(
    bus: &Bus,
    target: DryRun<'_>,
    filter: &str,
    start: Start,
    until: Option<OffsetDateTime>,
) -> Result<(), CliError> {
    let worker = target.worker;
    if !WORKERS.contains(&worker) {
        return Err(CliError::Usage(format!(
            "--dry-run {worker}: this binary can dry-run only {}",
            WORKERS.join(", ")
        )));
    }
    let mut reader = Reader::snapshot(bus, &bus.names().stream, filter, start, until).await?;
    let (handled, skipped) = run(bus, &target, &mut reader).await?;
    eprintln!("{}", dry_run_summary(worker, filter, handled, &skipped));
    Ok(())
}

fn dry_run_summary(
    worker: &str,
    filter: &str,
    handled: u64,
    skipped: &BTreeMap<String, u64>,
) -> String {
    let noun = |n: u64| if n == 1 { "event" } else { "events" };
    let mut text = format!(
        "dry run of {worker}: {handled} {} of {filter} handled; nothing was written or published",
        noun(handled)
    );
    if !skipped.is_empty() {
        let total: u64 = skipped.values().sum();
        let types: Vec<String> = skipped.iter().map(|(t, n)| format!("{t} ({n})")).collect();
        text.push_str(&format!(
            "\nskipped {total} {} {worker} does not consume: {}",
            noun(total),
            types.join(", ")
        ));
    }
    text
}

/// Feeds every event `reader` yields that `worker` consumes to its handler in dry run, and
/// prints what each would have caused. Returns (handled, skipped by type).
async fn run(
    bus: &Bus,
    target: &DryRun<'_>,
    reader: &mut Reader,
) -> Result<(u64, BTreeMap<String, u64>), CliError> {
    let (worker, json) = (target.worker, target.json);
    let scratch = tempfile::tempdir().map_err(|source| CliError::System {
        what: "create a scratch directory for the dry run",
        source,
    })?;
    let recorder = Recorder::new();
    let handler = DryWorker::build(target, bus, scratch.path(), &recorder).await?;
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
        // As the runtime does: a dead letter put back for another worker is not this one's.
        let retried_for_another = stored
            .header(header::RETRY_FOR)
            .is_some_and(|target| target != worker);
        let consumed = !retried_for_another
            && patterns
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
