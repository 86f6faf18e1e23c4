//! The shared `main` of a worker binary: parse the command line, set up logging, connect,
//! serve probes and metrics, run the worker, drain on SIGTERM or Ctrl-C, exit 0.
//!
//! Exit codes (sysexits): 0 after a clean stop, 64 for invalid settings, 69 when NATS never
//! answered, 1 for anything else.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::connect::NatsArgs;
use crate::error::BusError;
use crate::health::{self, Health};
use crate::runtime::{Handler, Worker, WorkerArgs, WorkerConfig};
use crate::topology::{Bus, Names};

/// Settings every worker binary takes, as flags or environment variables.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// Address serving GET /healthz, /readyz and /metrics.
    #[arg(
        long = "http-addr",
        env = "FLOTILLA_HTTP_ADDR",
        default_value = "127.0.0.1:9090"
    )]
    pub http_addr: SocketAddr,
    /// How long to keep retrying the first NATS connection at start-up.
    #[arg(long, env = "FLOTILLA_CONNECT_DEADLINE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub connect_deadline: Duration,
}

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

/// The exit code of a worker that stopped with `result`.
pub fn exit_code(result: Result<(), BusError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if e.is_retryable() { EX_UNAVAILABLE } else { 1 })
        }
    }
}

/// Cancelled on SIGTERM or Ctrl-C.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        trigger.cancel();
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops this process");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs one worker until SIGTERM: the whole life of a worker binary after argument parsing.
pub async fn run_worker<H: Handler>(
    config: WorkerConfig,
    args: &ServiceArgs,
    handler: H,
) -> Result<(), BusError> {
    run_worker_with_routes(config, args, handler, axum::Router::new()).await
}

/// [`run_worker`], serving `routes` (e.g. a CI system's callbacks) beside the probes on
/// `FLOTILLA_HTTP_ADDR`.
pub async fn run_worker_with_routes<H: Handler>(
    config: WorkerConfig,
    args: &ServiceArgs,
    handler: H,
    routes: axum::Router,
) -> Result<(), BusError> {
    let config = config.with_args(&args.worker);
    let shutdown = shutdown_token();
    let client = tokio::select! {
        client = args.nats.connect_with_retry(&config.name, args.connect_deadline) => client?,
        () = shutdown.cancelled() => return Ok(()),
    };
    let bus = Bus::new(client.clone(), Names::default());
    let health = Health::new();
    let (addr, http) = health::serve(
        args.http_addr,
        health.router().merge(routes),
        shutdown.clone().cancelled_owned(),
    )
    .await?;
    tracing::info!(worker = %config.name, %addr, nats = %args.nats.url, "worker started");
    let result = Worker::new(bus, config, handler, health)
        .run(shutdown.clone().cancelled_owned())
        .await;
    shutdown.cancel();
    let _ = http.await;
    // Push out acks still buffered in the client before the process exits; bounded, because
    // with the server gone a flush waits for a reconnect.
    let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    result
}
