//! reaper: environments never outlive their purpose, and nothing is left behind.
//!
//! | consumes | writes | emits |
//! |---|---|---|
//! | `env.requested/ready/failed`, `build.*`, `tests.*`, `source.pull_request` | the env's `last_activity` (registry) | |
//! | (its timers, from the registry) | a claim in the env's record (compare-and-set) | `env.teardown.requested.<env>` (`ttl`, `idle`) |
//! | (records `deleting`) | record `deleted` once nothing is left | `env.deleted.<env>` |
//! | `env.teardown.requested`, `env.deleted` | | (a sweep, sooner) |
//!
//! Teardowns on events stay with env-manager (a closed pull request, a promoted staging
//! change); the reaper adds the timers, verifies every teardown (the env file gone from git, its
//! Argo CD Applications and Namespace gone from the cluster) and finds orphans.
//!
//! Layers: [`timer`] computes an env's timers from its record (pure), [`orphans`] compares the
//! registry, git and the cluster (pure), [`cluster`] lists and deletes labelled objects,
//! [`sweep`] is the task that ties them together, [`handler`] records activity, and `GET
//! /reaper` shows the last sweep.

pub mod cluster;
pub mod config;
pub mod handler;
pub mod hibernation;
pub mod orphans;
pub mod sweep;
pub mod timer;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use flotilla_bus::{Process, WorkerConfig};
use flotilla_env::Registry;
use flotilla_gitops::Mirror;
use tokio::sync::Notify;

pub use config::{Args, Config, Kube, Orphans, SharedArgs};
pub use handler::Reaper;
pub use sweep::{Report, Sweeper};
pub use timer::Clock;

/// The worker's name: its durable consumer and its `ce-source` (`flotilla/reaper`).
pub const WORKER: &str = "reaper";

/// The runtime settings of the reaper, with its subscriptions from the bus topology.
pub fn worker_config() -> WorkerConfig {
    WorkerConfig::for_worker(WORKER).expect("the reaper is one of the bus topology's workers")
}

/// Installs the reaper in `process`: the handler, the sweep task, and `GET /reaper`.
/// `mirror` is a read-only mirror of the GitOps repository env-manager writes; with `kube`,
/// teardowns are verified in the cluster too and orphans looked for there.
pub fn install(
    process: &mut Process,
    config: &Config,
    registry: Registry,
    mirror: Mirror,
    kube: Option<kube::Client>,
    clock: Clock,
) {
    let cluster = kube.map(|client| cluster::Cluster::new(client, &config.argocd_namespace));
    let sweeper = Sweeper::new(
        config.clone(),
        registry.clone(),
        process.bus().publisher(WORKER),
        mirror,
        cluster,
        clock,
    );
    let reports = sweeper.reports();
    let nudge = Arc::new(Notify::new());
    let sweeping = nudge.clone();
    process
        .tasks()
        .spawn("reaper sweep", move |stop| sweeper.run(sweeping, stop));
    process.route(routes(reports));
    process.worker(worker_config(), Reaper::new(registry, nudge, clock));
}

/// `GET /reaper`: the last sweep's report (JSON).
pub fn routes(reports: Arc<Mutex<Report>>) -> Router {
    Router::new()
        .route("/reaper", get(last_report))
        .with_state(reports)
}

async fn last_report(State(reports): State<Arc<Mutex<Report>>>) -> Response {
    let report = reports.lock().map(|r| r.clone()).unwrap_or_default();
    Json(report).into_response()
}

/// The Kubernetes client `config` asks for, and why there is none: `kube: off`, or no
/// kubeconfig or service account found (then teardowns are verified in git alone).
pub async fn kube_client(config: &Config) -> Result<kube::Client, String> {
    if config.kube == Kube::Off {
        return Err("FLOTILLA_REAP_KUBE=off".into());
    }
    let kube = kube::Config::infer()
        .await
        .map_err(|e| format!("no Kubernetes cluster ({e})"))?;
    kube::Client::try_from(kube).map_err(|e| format!("no Kubernetes cluster ({e})"))
}
