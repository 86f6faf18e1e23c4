//! What a backend in a dry run records instead of running: the command, request or Job a run
//! would be. The run succeeds, so the handler takes the path a successful run leads to.

use flotilla_bus::dry_run::{EffectKind, Recorder};

use super::Runner;
use crate::run::{Kind, Outcome, Run, Status};

/// What the dry run of `run` on `backend` records; the run succeeds.
pub(super) fn record(backend: &Runner, recorder: &Recorder, run: &Run) -> Outcome {
    let what = match (run.kind, &run.env) {
        (Kind::Build, _) => format!("build of {}", run.change_id),
        (Kind::Test, Some(env)) => format!("tests of {} against {env}", run.change_id),
        (Kind::Test, None) => format!("tests of {}", run.change_id),
        (Kind::Hook, env) => format!(
            "{} hook {} of {} for {}",
            run.var("FLOTILLA_HOOK_PHASE"),
            run.var("FLOTILLA_HOOK"),
            env.as_deref().unwrap_or("(no env)"),
            run.change_id
        ),
    };
    let vars: Vec<String> = run.vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let vars = vars.join("\n");
    let name = backend.name();
    match backend {
        Runner::Command(command) => {
            let command = command.command(run).unwrap_or("(none configured)");
            recorder.record_with(
                EffectKind::Build,
                format!("would run {what} with {name}: sh -c {command:?}"),
                vars,
            );
        }
        Runner::Http(http) => {
            let request = http
                .request_line(run)
                .unwrap_or_else(|| "(none configured)".into());
            recorder.record_with(
                EffectKind::Build,
                format!("would run {what} with {name}: {request}"),
                vars,
            );
        }
        Runner::Job(job) => {
            let spec = serde_json::to_string_pretty(&job.job(run))
                .unwrap_or_else(|e| format!("(the Job does not serialize: {e})"));
            recorder.record_with(
                EffectKind::Kubernetes,
                format!(
                    "would run {what} with {name}: create Job {} in namespace {}",
                    run.id,
                    job.namespace()
                ),
                spec,
            );
        }
        Runner::Recording(inner, _) => return record(inner, recorder, run),
    }
    Outcome::new(Status::Succeeded)
}
