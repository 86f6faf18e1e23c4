//! `builder-trigger`: builds pushed and proposed changes, and tests them once their
//! environment is ready.
//!
//! Exit codes: 0 after a clean SIGTERM, 64 for invalid settings, 69 when NATS never answered,
//! 1 for anything else.

use std::process::ExitCode;

use builder_trigger::{Args, BuilderTrigger, Config, WORKER, worker_config};
use clap::Parser;
use flotilla_bus::service::{self, ServiceArgs, run_worker};

/// Build every change pushed to a default branch or proposed in a pull request, and test it in
/// its environment once that is ready.
#[derive(Debug, Parser)]
#[command(name = "builder-trigger", version)]
struct Cli {
    #[command(flatten)]
    builds: Args,
    #[command(flatten, next_help_heading = "Worker")]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let (cli, _telemetry) = match service::start::<Cli>(WORKER) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let config = match Config::from_args(&cli.builds) {
        Ok(config) => config,
        Err(e) => return service::usage(&e),
    };
    tracing::info!(
        backend = ?cli.builds.backend,
        tests = config.test.is_some(),
        build_timeout = %humantime::format_duration(config.build.timeout),
        "builder-trigger configured"
    );
    service::exit_code(run_worker(worker_config(), &cli.service, BuilderTrigger::new(config)).await)
}
