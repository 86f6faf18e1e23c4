//! The shared `main` of a worker binary: connect, serve probes and metrics, run the worker,
//! drain on SIGTERM or Ctrl-C, exit 0.

use std::net::SocketAddr;
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
        health.router(),
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
