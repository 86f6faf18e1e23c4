//! The shared start of a worker binary: the settings every process takes, parsing the command
//! line, logging, and exit codes. The process itself is [`crate::Process`].
//!
//! Exit codes (sysexits): 0 after a clean stop, 64 for invalid settings, 69 when NATS never
//! answered, 1 for anything else.

use std::net::SocketAddr;
use std::process::ExitCode;

use crate::error::BusError;
use crate::process::Process;
pub use crate::settings::{ServiceArgs, WEBHOOK_HTTP_ADDR, WORKER_HTTP_ADDR};

pub const EX_USAGE: u8 = 64;
pub const EX_UNAVAILABLE: u8 = 69;

/// Parses the command line and sets up logging for `worker`: the common start of every
/// worker's `main`. `Err` is the exit code, after saying why (`--help` and `--version` exit 0).
pub fn start<C: clap::Parser>(worker: &str) -> Result<(C, flotilla_telemetry::Guard), ExitCode> {
    let cli = C::try_parse().map_err(|e| {
        let _ = e.print();
        // `--help` and `--version` arrive as "errors" meant for stdout.
        ExitCode::from(if e.use_stderr() { EX_USAGE } else { 0 })
    })?;
    let guard = flotilla_telemetry::init(worker, "info").map_err(|e| usage(&e))?;
    Ok((cli, guard))
}

/// Exit code 64 after printing `error`: for settings that cannot work.
pub fn usage(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(EX_USAGE)
}

/// Exit code 69 after printing `error`: for a dependency (NATS, a repository) that never
/// answered.
pub fn unavailable(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(EX_UNAVAILABLE)
}

/// The exit code of a process that stopped with `result`.
pub fn exit_code(result: Result<(), BusError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_retryable() => unavailable(&e),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The life of a worker binary once its settings are read: connect as `name`, let `assemble` add
/// the worker's parts (workers, routes, tasks, metrics) to the process, serve on
/// `FLOTILLA_HTTP_ADDR` (or `default_addr`), and stop in order on SIGTERM. `assemble` returns
/// the exit code of a set-up that cannot work, after saying why.
pub async fn run(
    name: &str,
    args: &ServiceArgs,
    default_addr: SocketAddr,
    assemble: impl AsyncFnOnce(&mut Process) -> Result<(), ExitCode>,
) -> ExitCode {
    let mut process = match Process::connect(name, args).await {
        Ok(Some(process)) => process,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => return exit_code(Err(e)),
    };
    if let Err(code) = assemble(&mut process).await {
        process.abandon().await;
        return code;
    }
    let running = match process.serve(args.http_addr_or(default_addr)).await {
        Ok(running) => running,
        Err(e) => return exit_code(Err(e)),
    };
    tracing::info!(process = name, addr = %running.addr(), nats = %args.nats.url, "started");
    let stopped = running.stopped().await;
    tracing::info!(process = name, "stopped");
    exit_code(stopped)
}
