//! `canary-analyzer`: judges each release's canary, reports every step and measurement, and
//! publishes `canary.promoted` or `canary.aborted`.
//!
//! Exit codes: 0 after a clean SIGTERM, 64 for invalid settings, 69 when NATS never answered,
//! 1 for anything else.

use std::process::ExitCode;

use canary_analyzer::{Args, Config, Kube, WORKER};
use clap::Parser;
use flotilla_bus::WorkerArgs;
use flotilla_bus::service::{self, ServiceArgs, WORKER_HTTP_ADDR};

/// On `release.requested`, run the release's named analysis templates (Argo Rollouts
/// AnalysisTemplate YAML) with the analysis engine, report each step and measurement, and
/// publish `canary.promoted` when every one passed, else `canary.aborted` with the failing
/// metric and value.
#[derive(Debug, Parser)]
#[command(name = "canary-analyzer", version)]
struct Cli {
    #[command(flatten)]
    canary: Args,
    #[command(flatten, next_help_heading = "Worker")]
    worker: WorkerArgs,
    #[command(flatten, next_help_heading = "Process")]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let (cli, _telemetry) = match service::start::<Cli>(WORKER) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let config = match Config::from_args(&cli.canary) {
        Ok(config) => config,
        Err(e) => return service::usage(&e),
    };
    let templates = config
        .analysis_dir
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|| "nowhere (FLOTILLA_ANALYSIS_DIR unset)".into());
    let client = match config.kube {
        Kube::Off => None,
        // No kubeconfig and no service account: no cluster to follow, analysis-only.
        Kube::Auto => match kube::Client::try_default().await {
            Ok(client) => Some(client),
            Err(e) => {
                tracing::info!(error = %e, "no Kubernetes cluster reachable");
                None
            }
        },
    };
    if client.is_some() {
        tracing::info!(templates = %templates, namespace = %config.namespace, sync_timeout = ?config.sync_timeout, "following each release's Rollout (label flotilla.dev/app) through the Kubernetes API");
    } else {
        tracing::warn!(templates = %templates, steps = ?config.steps, min_samples = config.min_samples, "analysis-only: the named templates run against their providers, no Rollout is followed");
    }
    service::run(WORKER, &cli.service, WORKER_HTTP_ADDR, async |process| {
        let leases = process
            .bus()
            .canaries()
            .await
            .map_err(|e| service::unavailable(&format!("{e} (run `flotilla init`)")))?;
        process.worker_args(&cli.worker);
        match client {
            Some(client) => canary_analyzer::install_cluster(process, &config, leases, client),
            None => canary_analyzer::install(process, &config, leases),
        }
        .map_err(|e| service::usage(&e))?;
        Ok(())
    })
    .await
}
