//! Environment hooks: `provision` when an env is requested (`env.requested`), `deprovision`
//! after its teardown is confirmed (`env.deleted`), each run through the build backend with the
//! env's facts as variables.
//!
//! The registry record is the contract: env-manager records the hooks of a change `pending`
//! when it requests the env; here each run moves to `running` (compare-and-set, with its
//! attempt, run id and deadline) before it starts, and to `succeeded` or `failed` when it ends,
//! and `env.hook.started` / `succeeded` / `failed` are published as that happens. So a hook runs
//! once per env and change: a redelivered event finds a finished run and skips it, finds a
//! running one and follows it (the command backend's process outlives its worker, a Job stays),
//! and runs it again (the next attempt, marked `rerun`) only when it died without a result.
//! Runs of one env are serialized: a run waits while another of the env runs, before its
//! deadline.
//!
//! [`provision`] walks a change's hooks in file order and stops at the first failure (the rest
//! are skipped); [`deprovision`] walks every hook whose provision started, in reverse order;
//! [`step`] runs one hook's phase, [`resume`] follows runs found running; [`facts`] holds what
//! a run is told and what its events say.

mod deprovision;
mod facts;
mod provision;
mod resume;
mod step;

use std::path::PathBuf;

use flotilla_bus::{Event, Publisher};
use flotilla_env::{EnvRecord, Registry};
use flotilla_proto::v1::{AppVersion, Environment};

use crate::backend::Runner;
use crate::config::HookSettings;
use crate::error::Error;

/// What running hooks for one event needs: the settings, the backend, the registry, and how
/// to publish as the handler of `cause`.
pub struct Hooks<'a> {
    pub settings: &'a HookSettings,
    pub runner: &'a Runner,
    pub registry: &'a Registry,
    pub publisher: &'a Publisher,
    pub cause: &'a Event,
    /// A dry run: nothing written on disk either.
    pub dry_run: bool,
}

/// The env a hook runs for, from its registry record (or, without one, the event).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub env: String,
    pub kind: String,
    /// The change the runs belong to: the requested one, or the one torn down.
    pub change_id: String,
    pub repo: String,
    pub pr: u64,
    pub sha: String,
    pub apps: Vec<AppVersion>,
    pub url: String,
}

impl Target {
    fn of(env: &str, record: &EnvRecord, event: &Environment) -> Target {
        Target {
            env: env.to_owned(),
            kind: record.kind.clone(),
            change_id: record.change_id.clone(),
            repo: record.repo.clone(),
            pr: record.pr,
            sha: record.sha.clone(),
            apps: record
                .apps
                .iter()
                .map(flotilla_env::App::to_proto)
                .collect(),
            url: event.url.clone(),
        }
    }

    fn unrecorded(event: &Environment) -> Target {
        Target {
            env: event.env.clone(),
            kind: event.kind.clone(),
            change_id: event.change_id.clone(),
            repo: event.repo.clone(),
            pr: event.pr,
            sha: String::new(),
            apps: event.apps.clone(),
            url: event.url.clone(),
        }
    }
}

impl Hooks<'_> {
    /// The record of `env`.
    async fn record(&self, env: &str) -> Result<Option<EnvRecord>, Error> {
        self.registry
            .get(env)
            .await
            .map_err(|e| Error::Registry(e.to_string()))
    }

    /// Where the command backend's hooks keep the env's state (`FLOTILLA_HOOK_STATE_DIR`);
    /// `None` for the other backends, whose runs happen elsewhere.
    fn state_dir(&self, env: &str) -> Option<PathBuf> {
        matches!(self.runner.base(), Runner::Command(_)).then(|| self.settings.state_dir.join(env))
    }

    /// The event is not a hook's business to act on (an env id that names no file).
    fn bad_env(&self, env: &str) -> Option<Error> {
        (!flotilla_env::is_dns_label(env)).then(|| Error::BadEvent {
            event_type: self.cause.event_type().to_owned(),
            event_id: self.cause.id.clone(),
            reason: format!("env id {env:?} is not a DNS-1123 label"),
        })
    }
}
