//! env-manager: turns builds into environments in the GitOps repository, promotes staging
//! changes whose tests passed, rolls production back when a canary aborts, and removes
//! environments when asked; reports each change's progress as GitHub commit statuses.
//!
//! | consumes | writes | emits |
//! |---|---|---|
//! | `build.succeeded.<change>` | `envs/<env>.json`: production with the change's version; registry record `requested` | `env.requested.<env>` |
//! | `tests.passed.<env>` of a staging env | `apps/production.json` at the tested version (or a pull request) | `release.requested.<app>`, `env.teardown.requested.<env>` (`promoted`) |
//! | `tests.failed.<env>` | registry record `failed` with the reason | `env.failed.<env>` |
//! | `canary.aborted.<release>` | `apps/production.json` back at the version the release replaced | `release.rolled_back.<app>` |
//! | `source.pull_request.<repo>` `closed` | | `env.teardown.requested.pr-<repo>-<n>` (`pr_closed`) |
//! | `source.pull_request.<repo>` `unlabeled` (the preview label) | | `env.teardown.requested.pr-<repo>-<n>` (`pr_unlabeled`) |
//! | `env.teardown.requested.<env>` | `envs/<env>.json` removed; registry record `deleting` | |
//! | `env.ready`, `env.failed`, `canary.promoted` | | (commit statuses) |
//!
//! The layers are testable alone: [`manifest`] is pure, [`gitops`] is the git working copy
//! (fetch, grouped commits, push, redo on a moved remote), [`github`] the REST API, and
//! [`handler`] ties them to the bus. Env ids and the registry's records (compare-and-set) are
//! the environment contract shared with the other workers, in `flotilla_env`.
//! [`EnvManager::recording`] builds the handler for a dry run, in which each of those layers
//! reads real state and records its writes instead of making them.

pub mod config;
mod dry_run;
pub mod error;
pub mod github;
pub mod gitops;
pub mod handler;
pub mod manifest;

pub use config::{Args, Config};
pub use error::Error;
pub use handler::EnvManager;

use flotilla_bus::WorkerConfig;

/// The worker's name: its durable consumer and its `ce-source` (`flotilla/env-manager`).
pub const WORKER: &str = "env-manager";

/// The runtime settings of env-manager, with its subscriptions from the bus topology.
pub fn worker_config() -> WorkerConfig {
    WorkerConfig::for_worker(WORKER).expect("env-manager is one of the bus topology's workers")
}
