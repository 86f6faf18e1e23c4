//! canary-analyzer: confirms or rolls back each release.
//!
//! | consumes | emits |
//! |---|---|
//! | `release.requested.<app>` | `canary.step.<release>` at each step (index, weight), `canary.measurement.<release>` for each measurement (metric, value, phase), then `canary.promoted.<release>` or `canary.aborted.<release>` (the failing metric and value in `reason`) |
//!
//! Analysis-only (no cluster: `flotilla up`, the demo): the release's named templates (from
//! `FLOTILLA_ANALYSIS_DIR`) run with the analysis engine at each configured weight, with args
//! from the release; every one Successful promotes, anything else aborts. The opt-in
//! minimum-sample policy refuses a pass on empty data.
//!
//! Cluster mode (`FLOTILLA_KUBE=auto` and a cluster, [`rollout`]): the release's Argo Rollout
//! (label `flotilla.dev/app`) is watched until it runs the version (within
//! `FLOTILLA_SYNC_TIMEOUT`), then followed: its steps reported; its own AnalysisRuns'
//! measurements reported (the engine not run); otherwise the named templates judged at each
//! indefinite pause, then the Rollout promoted or aborted through the API. Fully promoted and
//! Healthy promotes the release; aborted or Degraded aborts it.
//!
//! One replica judges a release at a time: a lease per release in the `flotilla-canaries` KV
//! bucket, compare-and-set. A release without a published verdict is taken over by a sweep once
//! its lease expires (or at once, when its replica stopped cleanly).
//!
//! Layers: [`release`] the checked release, [`templates`] where templates come from, [`judge`]
//! the engine runs, [`rollout`] the Rollout followed, [`lease`] the bucket, [`supervisor`] the followers and their events,
//! [`handler`] the bus side.

pub mod config;
pub mod handler;
pub mod judge;
pub mod lease;
pub mod release;
pub mod rollout;
pub mod supervisor;
pub mod templates;

use std::sync::Arc;

pub use config::{Args, Config, Kube};
pub use handler::CanaryAnalyzer;

use async_nats::jetstream::kv;
use flotilla_analysis::{HttpProvider, Provider};
use flotilla_bus::{Process, WorkerConfig};

use judge::Judge;
use lease::Leases;
use rollout::Cluster;
use supervisor::{Mode, Shared, Supervisor};
use templates::Library;

/// The worker's name: its durable consumer and its `ce-source` (`flotilla/canary-analyzer`).
pub const WORKER: &str = "canary-analyzer";

/// The runtime settings of canary-analyzer, with its subscriptions from the bus topology.
pub fn worker_config() -> WorkerConfig {
    WorkerConfig::for_worker(WORKER).expect("canary-analyzer is one of the bus topology's workers")
}

/// The name of this replica in the lease bucket: the host and a fresh id, so a restarted
/// replica is a new owner (its old leases expire or were released).
pub fn replica_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "canary-analyzer".into());
    format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Installs canary-analyzer in `process`: the handler and the supervisor task, judging with
/// the analysis engine over HTTP.
pub fn install(process: &mut Process, config: &Config, leases: kv::Store) -> Result<(), String> {
    let provider = HttpProvider::new().map_err(|e| format!("the HTTP client: {e}"))?;
    install_with(process, config, leases, Arc::new(provider));
    Ok(())
}

/// [`install`] with the provider measurements are taken with.
pub fn install_with(
    process: &mut Process,
    config: &Config,
    leases: kv::Store,
    provider: Arc<dyn Provider>,
) {
    install_in(process, config, leases, provider, None);
}

/// Installs canary-analyzer following each release's Argo Rollout through `client` (cluster
/// mode), judging pauses with the analysis engine over HTTP.
pub fn install_cluster(
    process: &mut Process,
    config: &Config,
    leases: kv::Store,
    client: kube::Client,
) -> Result<(), String> {
    let provider = HttpProvider::new().map_err(|e| format!("the HTTP client: {e}"))?;
    install_in(process, config, leases, Arc::new(provider), Some(client));
    Ok(())
}

/// Installs canary-analyzer: following Rollouts through `client` when there is one, else
/// analysis-only.
pub fn install_in(
    process: &mut Process,
    config: &Config,
    leases: kv::Store,
    provider: Arc<dyn Provider>,
    client: Option<kube::Client>,
) {
    let leases = Leases::new(leases, replica_id(), config.lease);
    let judge = Judge {
        library: Library::new(config.analysis_dir.clone()),
        provider,
        namespace: config.namespace.clone(),
        min_samples: config.min_samples,
    };
    let shared = Shared {
        leases: leases.clone(),
        publisher: process.bus().publisher(WORKER),
        judge,
        mode: match client {
            Some(client) => Mode::Cluster(Cluster {
                client,
                namespace: config.namespace.clone(),
                sync_timeout: config.sync_timeout,
            }),
            None => Mode::AnalysisOnly {
                steps: config.steps.clone(),
            },
        },
    };
    let (supervisor, inputs) = Supervisor::channel();
    let task = supervisor::Task::new(shared, config.sweep);
    process
        .tasks()
        .spawn("canary supervisor", move |stop| task.run(inputs, stop));
    process.worker(worker_config(), CanaryAnalyzer::new(leases, supervisor));
}
