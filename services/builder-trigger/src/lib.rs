//! builder-trigger: turns source events into builds, and ready environments into test runs.
//!
//! | consumes | emits |
//! |---|---|
//! | `source.push.<repo>` to the default branch (or a branch in `FLOTILLA_BUILD_BRANCHES`) | `build.started`, then `build.succeeded` or `build.failed` (key: change id) |
//! | `source.pull_request.<repo>`: `opened`, `synchronize`, `reopened`; `labeled` with `FLOTILLA_PR_LABEL` | the same, with `pr` set |
//! | `env.ready.<env>` of a change | `tests.passed` or `tests.failed` (key: env) |
//!
//! The version of a build is `v<UTC yyyyMMddHHmmss>-<sha7>` from the event's `ce-time`, so a
//! redelivered event decides the same version and its outputs are deduplicated; its change id
//! is `<app>-<version>`, the app coming from `FLOTILLA_APPS` or the repo's name. The logic is
//! layered so each part is testable alone: [`decide`] is pure (event and rules in, decision
//! out), [`command`] runs a job as `sh -c` with a timeout and its output logged, and
//! [`handler`] ties them to the bus.
//!
//! Only the `command` backend exists so far; `http` (a CI system's API) and `job` (a
//! Kubernetes Job) are planned behind the same [`config::Backend`] switch.

pub mod command;
pub mod config;
pub mod decide;
pub mod error;
pub mod handler;

pub use config::{Args, Config};
pub use error::Error;
pub use handler::BuilderTrigger;

use flotilla_bus::WorkerConfig;

/// The worker's name: its durable consumer and its `ce-source` (`flotilla/builder-trigger`).
pub const WORKER: &str = "builder-trigger";

/// The runtime settings of builder-trigger, with its subscriptions from the bus topology.
pub fn worker_config() -> WorkerConfig {
    WorkerConfig::for_worker(WORKER).expect("builder-trigger is one of the bus topology's workers")
}
