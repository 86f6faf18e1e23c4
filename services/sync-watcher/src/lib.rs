//! sync-watcher: knows when an environment is really ready.
//!
//! | consumes | emits |
//! |---|---|
//! | `env.requested.<env>` (its registry record still `requested`, at that change) | `env.ready.<env>` when every app of the env is ready and every provision hook of its change succeeded; `env.failed.<env>` on the first failure (an app's or a hook's) or at `FLOTILLA_READY_TIMEOUT` |
//! | `env.hook.succeeded.<env>`, `env.hook.failed.<env>` of a provision | (the wait hears the record's hook states at once) |
//!
//! An app is ready when a PostSync hook reported it succeeded (`POST /report/{env}/{app}`), or
//! when its Argo CD Application (label `flotilla.dev/env`) was Synced and Healthy, with no sync
//! operation running, at the GitOps revision env-manager pushed or a later one holding it, for
//! the whole stable window (`FLOTILLA_READY_STABLE`). It fails on Degraded health or a failed
//! sync at that revision, or a failed report, naming the app and Argo CD's message.
//!
//! Layers: [`app`] reads an Application (pure), [`wait`] judges one env (pure, time passed
//! in), [`tracker`] holds every wait and publishes verdicts, [`watch`] is the kube-runtime
//! watch feeding it, [`report`] the HTTP route, [`handler`] the bus side.

pub mod app;
pub mod config;
pub mod handler;
pub mod history;
pub mod report;
pub mod tracker;
pub mod wait;
pub mod watch;

use std::sync::Arc;

pub use config::{Args, Config, Kube};
pub use handler::SyncWatcher;

use flotilla_bus::{Process, WorkerConfig};
use flotilla_env::Registry;

use history::History;
use tracker::Tracker;

/// The worker's name: its durable consumer and its `ce-source` (`flotilla/sync-watcher`).
pub const WORKER: &str = "sync-watcher";

/// The runtime settings of sync-watcher, with its subscriptions from the bus topology.
pub fn worker_config() -> WorkerConfig {
    WorkerConfig::for_worker(WORKER).expect("sync-watcher is one of the bus topology's workers")
}

/// Where readiness comes from, for the start-up line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sources {
    /// Argo CD Applications through the Kubernetes API, and reports.
    ArgoCdAndReports { namespace: String },
    /// Reports alone, and why.
    ReportsOnly { why: String },
}

/// Installs sync-watcher in `process`: the handler, the tracker task, the Application watch
/// (with `kube`), and the report route.
pub fn install(
    process: &mut Process,
    config: &Config,
    registry: Registry,
    kube: Option<kube::Client>,
    history: Arc<dyn History>,
) {
    let (tracker, inputs) = Tracker::channel();
    let task = tracker::Task::new(
        config.tracker.clone(),
        registry.clone(),
        process.bus().publisher(WORKER),
        history,
    );
    process
        .tasks()
        .spawn("readiness tracker", move |stop| task.run(inputs, stop));
    if let Some(client) = kube {
        let api = watch::applications(client, &config.argocd_namespace);
        let watching = tracker.clone();
        process.tasks().spawn("Application watch", move |stop| {
            watch::run(api, watching, stop)
        });
    }
    process.route(report::routes(report::Reports {
        registry: registry.clone(),
        tracker: tracker.clone(),
        token: config.report_token.clone(),
    }));
    process.worker(worker_config(), SyncWatcher::new(registry, tracker));
}

/// The Kubernetes client `config` asks for: `None` with `kube: off`, or when no kubeconfig or
/// service account is found (then readiness comes from reports alone).
pub async fn kube_client(config: &Config) -> (Option<kube::Client>, Sources) {
    if config.kube == Kube::Off {
        return (
            None,
            Sources::ReportsOnly {
                why: "FLOTILLA_KUBE=off".into(),
            },
        );
    }
    let connected = match kube::Config::infer().await {
        Ok(kube) => kube::Client::try_from(kube).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match connected {
        Ok(client) => (
            Some(client),
            Sources::ArgoCdAndReports {
                namespace: config.argocd_namespace.clone(),
            },
        ),
        Err(why) => (
            None,
            Sources::ReportsOnly {
                why: format!("no Kubernetes cluster ({why})"),
            },
        ),
    }
}
