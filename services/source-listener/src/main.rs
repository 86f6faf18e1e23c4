//! `source-listener`: serves Flotilla's webhooks and publishes what they report.
//!
//! Exit codes: 0 after a clean SIGTERM, 64 for invalid settings or filters, 69 when NATS never
//! answered, 1 for anything else.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use flotilla_bus::service::{self, shutdown_token};
use flotilla_bus::{Bus, BusError, Health, Names, NatsArgs};
use source_listener::{Args, Config, SourceListener, WORKER};

/// Receive GitHub, Gitea, GitLab and generic webhooks and publish them as Flotilla events.
#[derive(Debug, Parser)]
#[command(name = "source-listener", version)]
struct Cli {
    #[command(flatten)]
    listener: Args,
    #[command(flatten, next_help_heading = "NATS connection")]
    nats: NatsArgs,
    /// How long to keep retrying the first NATS connection at start-up.
    #[arg(long, env = "FLOTILLA_CONNECT_DEADLINE", default_value = "60s", value_parser = humantime::parse_duration)]
    connect_deadline: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let (cli, _telemetry) = match service::start::<Cli>(WORKER) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let config = match Config::from_args(&cli.listener) {
        Ok(config) => config,
        Err(e) => return service::usage(&e),
    };
    service::exit_code(run(&cli, config).await)
}

async fn run(cli: &Cli, config: Config) -> Result<(), BusError> {
    let shutdown = shutdown_token();
    let client = tokio::select! {
        client = cli.nats.connect_with_retry(WORKER, cli.connect_deadline) => client?,
        () = shutdown.cancelled() => return Ok(()),
    };
    let bus = Bus::new(client.clone(), Names::default());
    if let Err(e) = bus.stream().await {
        tracing::warn!(error = %e, "deliveries are answered 503 until the stream exists; run `flotilla init`");
    }
    let health = Health::new();
    let filters = config.filters.len();
    let listener = SourceListener::new(&bus, config, &health);
    let server = listener
        .serve(cli.listener.http_addr, &health, shutdown.clone())
        .await?;
    tracing::info!(addr = %server.addr(), nats = %cli.nats.url, filters, "source-listener started");
    shutdown.cancelled().await;
    if !server.finished(cli.listener.shutdown_grace).await {
        tracing::warn!(grace = ?cli.listener.shutdown_grace, "in-flight deliveries did not finish in time");
    }
    // Bounded: with the server gone a flush would wait for a reconnect.
    let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    tracing::info!("source-listener stopped");
    Ok(())
}
