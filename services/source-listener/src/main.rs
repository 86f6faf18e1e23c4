//! `source-listener`: serves Flotilla's webhooks and publishes what they report.
//!
//! Exit codes: 0 after a clean SIGTERM, 64 for invalid settings or filters, 69 when NATS never
//! answered, 1 for anything else.

use std::process::ExitCode;

use clap::Parser;
use flotilla_bus::service::{self, ServiceArgs, WEBHOOK_HTTP_ADDR};
use source_listener::{Args, Config, SourceListener, WORKER};

/// Receive GitHub, Gitea, GitLab and generic webhooks and publish them as Flotilla events.
#[derive(Debug, Parser)]
#[command(name = "source-listener", version)]
struct Cli {
    #[command(flatten)]
    listener: Args,
    #[command(flatten, next_help_heading = "Process")]
    service: ServiceArgs,
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
    service::run(WORKER, &cli.service, WEBHOOK_HTTP_ADDR, async |process| {
        if let Err(e) = process.bus().stream().await {
            tracing::warn!(error = %e, "deliveries are answered 503 until the stream exists; run `flotilla init`");
        }
        tracing::info!(filters = config.filters.len(), "source-listener configured");
        let listener = SourceListener::new(process.bus(), config, process.health());
        listener.install(process);
        Ok(())
    })
    .await
}
