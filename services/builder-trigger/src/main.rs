//! `builder-trigger`: builds pushed and proposed changes, and tests them once their
//! environment is ready.
//!
//! Exit codes: 0 after a clean SIGTERM, 64 for invalid settings, 69 when NATS never answered,
//! 1 for anything else.

use std::process::ExitCode;

use builder_trigger::{Args, BuilderTrigger, Config, WORKER, worker_config};
use clap::Parser;
use flotilla_bus::service::{ServiceArgs, run_worker};

const EX_USAGE: u8 = 64;
const EX_UNAVAILABLE: u8 = 69;

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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // `--help` and `--version` arrive as "errors" meant for stdout.
            return ExitCode::from(if e.use_stderr() { EX_USAGE } else { 0 });
        }
    };
    let _telemetry = match flotilla_telemetry::init(WORKER, "info") {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let config = match Config::from_args(&cli.builds) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    tracing::info!(
        backend = ?cli.builds.backend,
        tests = config.test.is_some(),
        build_timeout = %humantime::format_duration(config.build.timeout),
        "builder-trigger configured"
    );
    match run_worker(worker_config(), &cli.service, BuilderTrigger::new(config)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if e.is_retryable() { EX_UNAVAILABLE } else { 1 })
        }
    }
}
