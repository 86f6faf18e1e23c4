//! `builder-trigger`: builds pushed and proposed changes, and tests them once their
//! environment is ready.
//!
//! Exit codes: 0 after a clean SIGTERM, 64 for invalid settings, 69 when NATS never answered,
//! 1 for anything else.

use std::process::ExitCode;

use builder_trigger::{Args, BuilderTrigger, Config, WORKER, worker_config};
use clap::Parser;
use flotilla_bus::WorkerArgs;
use flotilla_bus::service::{self, ServiceArgs, WORKER_HTTP_ADDR};

/// Build every change pushed to a default branch or proposed in a pull request, and test it in
/// its environment once that is ready. Builds and tests run as a shell command here
/// (`--backend command`), through a CI system's API (`http`) or as Kubernetes Jobs (`job`).
#[derive(Debug, Parser)]
#[command(name = "builder-trigger", version)]
struct Cli {
    #[command(flatten)]
    builds: Args,
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
    let config = match Config::from_args(&cli.builds) {
        Ok(config) => config.with_preview(&cli.preview),
        Err(e) => return service::usage(&e),
    };
    let config = match cli.hooks.load() {
        Ok(hooks) => match config.with_hooks(hooks) {
            Ok(config) => config,
            Err(e) => return service::usage(&e),
        },
        Err(e) => return service::usage(&e),
    };
    let (runner, routes) = match builder_trigger::runner(&config).await {
        Ok(connected) => connected,
        Err(e) => return service::usage(&e),
    };
    tracing::info!(
        backend = runner.name(),
        tests = runner.runs_tests(),
        build_timeout = %humantime::format_duration(config.build_timeout),
        hooks = config.hooks.hooks.len(),
        "builder-trigger configured"
    );
    service::run(WORKER, &cli.service, WORKER_HTTP_ADDR, async |process| {
        // The registry shares the process's one connection.
        let envs = process
            .bus()
            .envs()
            .await
            .map_err(|e| service::unavailable(&format!("{e} (run `flotilla init`)")))?;
        process
            .worker_args(&cli.worker)
            .worker(
                worker_config(),
                BuilderTrigger::new(config, runner, flotilla_env::Registry::new(envs)),
            )
            .route(routes);
        Ok(())
    })
    .await
}
