//! `env-manager`: writes preview and staging environments into the GitOps repository, promotes
//! tested changes to production, and removes environments when asked.
//!
//! Exit codes: 0 after a clean SIGTERM, 64 for invalid settings, 69 when NATS or the GitOps
//! repository never answered, 1 for anything else.

use std::process::ExitCode;

use clap::Parser;
use env_manager::gitops::GitOps;
use env_manager::{Args, Config, EnvManager, WORKER, worker_config};
use flotilla_bus::service::{self, EX_UNAVAILABLE, ServiceArgs, run_worker};
use flotilla_bus::{Bus, Names};
use flotilla_env::Registry;

/// Turn every successful build into an environment in the GitOps repository, and every staging
/// environment whose tests passed into a release.
#[derive(Debug, Parser)]
#[command(name = "env-manager", version)]
struct Cli {
    #[command(flatten)]
    envs: Args,
    #[command(flatten, next_help_heading = "Worker")]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let (cli, _telemetry) = match service::start::<Cli>(WORKER) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let config = match Config::from_args(&cli.envs) {
        Ok(config) => config,
        Err(e) => return service::usage(&e),
    };
    let handler = match start(config, &cli.service).await {
        Ok(handler) => handler,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    service::exit_code(run_worker(worker_config(), &cli.service, handler).await)
}

/// Opens the working copy and the registry bucket. The registry has its own connection: the
/// bus runtime does not hand its client to handlers.
async fn start(config: Config, service: &ServiceArgs) -> Result<EnvManager, String> {
    let gitops = GitOps::open(config.gitops.clone())
        .await
        .map_err(|e| format!("GitOps repository {}: {e}", config.gitops.url))?;
    let client = service
        .nats
        .connect_with_retry(WORKER, service.connect_deadline)
        .await
        .map_err(|e| e.to_string())?;
    let envs = Bus::new(client, Names::default())
        .envs()
        .await
        .map_err(|e| format!("{e} (run `flotilla init`)"))?;
    tracing::info!(
        gitops = %config.gitops.url,
        branch = %config.gitops.branch,
        ttl = %humantime::format_duration(config.env_ttl),
        group_max = config.gitops.group_max,
        promote = ?config.promote,
        github = config.github.is_some(),
        "env-manager configured"
    );
    Ok(EnvManager::new(config, gitops, Registry::new(envs)))
}
