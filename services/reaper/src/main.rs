//! `reaper`: tears environments down on their TTL or when idle, verifies that every teardown
//! left nothing, and reports (or removes, by policy) orphans.
//!
//! Exit codes: 0 after a clean SIGTERM, 64 for invalid settings, 69 when NATS never answered,
//! 1 for anything else.

use std::process::ExitCode;

use clap::Parser;
use flotilla_bus::WorkerArgs;
use flotilla_bus::service::{self, ServiceArgs, WORKER_HTTP_ADDR};
use flotilla_env::Registry;
use flotilla_gitops::{GitopsArgs, Mirror, redact_url};
use reaper::{Args, Clock, Config, SharedArgs, WORKER};

/// Publish `env.teardown.requested` when an env's TTL (its `expires_at`, else FLOTILLA_ENV_TTL
/// after its build) or idle time (FLOTILLA_ENV_IDLE) runs out, once across replicas; after
/// every teardown, check that its file is gone from git and its Argo CD Applications and
/// Namespace from the cluster, then publish `env.deleted`. `GET /reaper` shows the last sweep.
#[derive(Debug, Parser)]
#[command(name = "reaper", version)]
struct Cli {
    #[command(flatten)]
    reap: Args,
    #[command(flatten)]
    shared: SharedArgs,
    /// The GitOps repository env-manager writes, read through a mirror of the reaper's own.
    #[command(flatten, next_help_heading = "GitOps repository")]
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
    let config = match Config::from_args(&cli.reap, &cli.shared) {
        Ok(config) => config,
        Err(e) => return service::usage(&e),
    };
    let remote = match cli.gitops.remote() {
        Ok(remote) => remote,
        Err(why) => return service::usage(&why.0),
    };
    let url = redact_url(&remote.url);
    let mirror = match Mirror::open(remote, cli.gitops.mirror_dir(WORKER)).await {
        Ok(mirror) => mirror,
        Err(e) => return service::usage(&format!("the GitOps repository {url}: {e}")),
    };
    let kube = match reaper::kube_client(&config).await {
        Ok(client) => {
            tracing::info!(namespace = %config.argocd_namespace, gitops = %url, "teardowns verified in git and in the cluster");
            Some(client)
        }
        Err(why) => {
            tracing::warn!(why = %why, gitops = %url, "teardowns verified in git alone");
            None
        }
    };
    service::run(WORKER, &cli.service, WORKER_HTTP_ADDR, async |process| {
        let envs = process
            .bus()
            .envs()
            .await
            .map_err(|e| service::unavailable(&format!("{e} (run `flotilla init`)")))?;
        process.worker_args(&cli.worker);
        reaper::install(
            process,
            &config,
            Registry::new(envs),
            mirror,
            kube,
            Clock::System,
        );
        Ok(())
    })
    .await
}
