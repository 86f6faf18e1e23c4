//! `sync-watcher`: follows each requested environment's Argo CD Applications (and its PostSync
//! reports) until it is ready or failed.
//!
//! Exit codes: 0 after a clean SIGTERM, 64 for invalid settings, 69 when NATS never answered,
//! 1 for anything else.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use flotilla_bus::WorkerArgs;
use flotilla_bus::service::{self, ServiceArgs, WORKER_HTTP_ADDR};
use flotilla_env::Registry;
use flotilla_gitops::{GitopsArgs, Mirror, redact_url};
use sync_watcher::history::{History, SameRevisionOnly};
use sync_watcher::{Args, Config, Sources, WORKER};

/// Publish `env.ready` when every app of a requested environment is ready: reported by its
/// PostSync hook (`POST /report/{env}/{app}`), or seen Synced and Healthy in Argo CD at the
/// pushed GitOps revision for a stable window. `env.failed` on Degraded, a failed sync or
/// report, or the timeout.
#[derive(Debug, Parser)]
#[command(name = "sync-watcher", version)]
struct Cli {
    #[command(flatten)]
    ready: Args,
    /// The GitOps repository env-manager writes: an app synced to a later revision than the
    /// one pushed counts when that revision holds it. Without it, only the pushed revision
    /// itself counts.
    #[command(flatten, next_help_heading = "GitOps repository (revision ancestry)")]
    gitops: GitopsArgs,
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
    let config = match Config::from_args(&cli.ready) {
        Ok(config) => config,
        Err(e) => return service::usage(&e),
    };
    let (kube, sources) = sync_watcher::kube_client(&config).await;
    match &sources {
        Sources::ArgoCdAndReports { namespace } => {
            tracing::info!(namespace = %namespace, "readiness from Argo CD Applications and PostSync reports")
        }
        Sources::ReportsOnly { why } => {
            tracing::warn!(why = %why, "readiness from PostSync reports alone (POST /report/{{env}}/{{app}})")
        }
    }
    let history: Arc<dyn History> = match cli.gitops.remote() {
        Ok(remote) => {
            let url = redact_url(&remote.url);
            match Mirror::open(remote, cli.gitops.mirror_dir(WORKER)).await {
                Ok(mirror) => {
                    tracing::info!(gitops = %url, "revision ancestry from the GitOps repository");
                    Arc::new(mirror)
                }
                Err(e) => {
                    return service::usage(&format!("the GitOps repository {url}: {e}"));
                }
            }
        }
        Err(why) => {
            tracing::warn!(why = %why.0, "no GitOps repository: only the pushed revision itself counts");
            Arc::new(SameRevisionOnly)
        }
    };
    service::run(WORKER, &cli.service, WORKER_HTTP_ADDR, async |process| {
        let envs = process
            .bus()
            .envs()
            .await
            .map_err(|e| service::unavailable(&format!("{e} (run `flotilla init`)")))?;
        process.worker_args(&cli.worker);
        sync_watcher::install(process, &config, Registry::new(envs), kube, history);
        Ok(())
    })
    .await
}
