//! `env-manager`: writes preview and staging environments into the GitOps repository, promotes
//! tested changes to production, and removes environments when asked.
//!
//! Exit codes: 0 after a clean SIGTERM, 64 for invalid settings, 69 when NATS or the GitOps
//! repository never answered, 1 for anything else.

use std::process::ExitCode;

use clap::Parser;
use env_manager::gitops::{GitOps, redact_url};
use env_manager::{Args, Config, EnvManager, WORKER, worker_config};
use flotilla_bus::WorkerArgs;
use flotilla_bus::service::{self, ServiceArgs, WORKER_HTTP_ADDR};
use flotilla_env::Registry;

/// Turn every successful build into an environment in the GitOps repository, and every staging
/// environment whose tests passed into a release.
#[derive(Debug, Parser)]
#[command(name = "env-manager", version)]
struct Cli {
    #[command(flatten)]
    envs: Args,
    #[command(flatten)]
    preview: flotilla_env::PreviewArgs,
    #[command(flatten)]
    hooks: flotilla_env::HooksArgs,
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
    let config = match Config::from_args(&cli.envs) {
        Ok(config) => config.with_preview(&cli.preview),
        Err(e) => return service::usage(&e),
    };
    let config = match cli.hooks.load() {
        Ok(hooks) => config.with_hooks(hooks),
        Err(e) => return service::usage(&e),
    };
    service::run(WORKER, &cli.service, WORKER_HTTP_ADDR, async |process| {
        let gitops = GitOps::open(config.gitops.clone()).await.map_err(|e| {
            service::unavailable(&format!(
                "GitOps repository {}: {e}",
                redact_url(&config.gitops.url)
            ))
        })?;
        // The registry shares the process's one connection.
        let envs = process
            .bus()
            .envs()
            .await
            .map_err(|e| service::unavailable(&format!("{e} (run `flotilla init`)")))?;
        tracing::info!(
            gitops = %redact_url(&config.gitops.url),
            branch = %config.gitops.branch,
            ttl = %humantime::format_duration(config.env_ttl),
            group_max = config.gitops.group_max,
            promote = ?config.promote,
            github = config.github.is_some(),
            hooks = config.hooks.len(),
            "env-manager configured"
        );
        let handler = EnvManager::new(config, gitops, Registry::new(envs));
        process
            .worker_args(&cli.worker)
            .worker(worker_config(), handler);
        Ok(())
    })
    .await
}
