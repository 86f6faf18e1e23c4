//! builder-trigger: turns source events into builds, and ready environments into test runs.
//!
//! | consumes | emits |
//! |---|---|
//! | `source.push.<repo>` to the default branch (or a branch in `FLOTILLA_BUILD_BRANCHES`) | `build.started`, then `build.succeeded` or `build.failed` (key: change id) |
//! | `source.pull_request.<repo>`: `opened`, `synchronize`, `reopened`; `labeled` with `FLOTILLA_PR_LABEL` | the same, with `pr` set |
//! | `env.ready.<env>` of a change | `tests.passed` or `tests.failed` (key: env) |
//! | `env.requested.<env>` whose record names provision hooks | `env.hook.started`, then `env.hook.succeeded` or `env.hook.failed`, per hook (key: env) |
//! | `env.deleted.<env>` whose record has hooks that created something | the same, for their deprovision |
//!
//! The version of a build is `v<UTC yyyyMMddHHmmss>-<sha7>` from the source's own time (the
//! pushed commit's timestamp, a pull request's `updated_at`; the event's `ce-time` only when it
//! gives none), so a redelivered event decides the same version and its outputs are
//! deduplicated, and a late delivery is never the newest version; its change id
//! is `<app>-<version>`, the app coming from `FLOTILLA_APPS` or the repo's name. The logic is
//! layered so each part is testable alone: [`decide`] is pure (event and rules in, decision
//! out); [`backend`] is what every backend is given and reports; [`command`] (a shell command
//! here), [`http`] (a CI system's API and its callback or status URL) and [`job`] (a
//! Kubernetes Job) run builds and tests; [`supersede`] lets a newer push to a pull request
//! cancel its running build; [`hook`] runs environment hooks (`FLOTILLA_HOOKS`) through the
//! same backends; [`handler`] ties them to the bus. [`BuilderTrigger::recording`]
//! builds the handler for a dry run: runs recorded and reported successful, nothing started.

pub mod args;
pub mod backend;
pub mod command;
pub mod config;
pub mod decide;
mod dry_run;
pub mod error;
pub mod handler;
pub mod hook;
pub mod http;
pub mod input;
pub mod job;
mod run;
pub mod supersede;

pub use backend::Runner;
pub use config::{Args, BackendConfig, Config, HookSettings};
pub use error::Error;
pub use handler::BuilderTrigger;

use flotilla_bus::WorkerConfig;

/// The worker's name: its durable consumer and its `ce-source` (`flotilla/builder-trigger`).
pub const WORKER: &str = "builder-trigger";

/// The runtime settings of builder-trigger, with its subscriptions from the bus topology.
pub fn worker_config() -> WorkerConfig {
    let mut config = WorkerConfig::for_worker(WORKER)
        .expect("builder-trigger is one of the bus topology's workers");
    // A handler waits for its build or test run, which has its own timeout (30m by default).
    config.handler_timeout = std::time::Duration::from_secs(60 * 60);
    config
}

/// The backend `config` names, connected: a Kubernetes client for `job` (from the kubeconfig
/// or the pod's service account), an HTTP client for `http`. The routes are the http
/// backend's callback endpoint, to serve beside the probes (empty for other backends).
pub async fn runner(config: &Config) -> Result<(Runner, axum::Router), Error> {
    match &config.backend {
        BackendConfig::Command(settings) => Ok((
            Runner::Command(command::Backend::new(settings.clone())),
            axum::Router::new(),
        )),
        BackendConfig::Http(settings) => {
            let backend = http::Backend::new(settings.clone())?;
            let routes = backend.callback_routes();
            Ok((Runner::Http(backend), routes))
        }
        BackendConfig::Job(settings) => {
            let kube = kube::Config::infer()
                .await
                .map_err(|e| Error::Kube(format!("no Kubernetes configuration: {e}")))?;
            let backend = job::Backend::from_config(settings.clone(), kube)?;
            Ok((Runner::Job(backend), axum::Router::new()))
        }
    }
}
