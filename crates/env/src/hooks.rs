//! Environment hooks: work done beside the cluster for an env (a database, buckets, a dataset
//! restored into it), run by builder-trigger when the env is requested (`provision`) and after
//! its teardown is confirmed (`deprovision`).
//!
//! - [`config`]: the YAML file `FLOTILLA_HOOKS` names, parsed and checked once at start-up, and
//!   which hooks apply to an env (a pure function of its kind and apps);
//! - [`state`]: the hooks' runs as the env's registry record holds them. The record is the
//!   contract between the workers: env-manager writes the hooks of a change `pending` when it
//!   requests the env, builder-trigger moves each run through `running` to `succeeded` or
//!   `failed` (compare-and-set), sync-watcher holds the env's readiness until every provision
//!   run of its change succeeded.

pub mod config;
pub mod state;

pub use config::{Action, Hook, Hooks, HooksArgs, Phase, Request};
pub use state::{HookState, RunState, RunStatus, hook_key, of_change, requested, run_id};

#[cfg(test)]
mod tests;
