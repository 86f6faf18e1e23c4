//! A worker process for the runtime's process-level tests (kill before ack, drain on SIGTERM).
//!
//! It consumes `build.started`, prints `handling <event id> delivered=<n>` on stdout, sleeps
//! `--handler-sleep`, and emits `build.succeeded` for the same change.

use std::io::Write;
use std::time::Duration;

use std::process::ExitCode;

use clap::Parser;
use flotilla_bus::service::{self, ServiceArgs, WORKER_HTTP_ADDR};
use flotilla_bus::{Ctx, Event, EventType, HandlerError, Outgoing, WorkerArgs, WorkerConfig};
use flotilla_proto::v1::Build;

#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    service: ServiceArgs,
    #[command(flatten)]
    worker: WorkerArgs,
    /// Worker (and durable consumer) name.
    #[arg(long, default_value = "test-worker")]
    name: String,
    /// How long each event takes to handle.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    handler_sleep: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let Ok(_telemetry) = flotilla_telemetry::init("test-worker", "info") else {
        return ExitCode::FAILURE;
    };
    let sleep = args.handler_sleep;
    let handler = move |event: Event, ctx: Ctx| async move {
        println!("handling {} delivered={}", event.id, ctx.delivered);
        let _ = std::io::stdout().flush();
        tokio::time::sleep(sleep).await;
        let build: Build = event.decode()?;
        let out = Outgoing::new(EventType::BuildSucceeded, &build.change_id, &build)
            .map_err(HandlerError::permanent)?
            .with_change_id(&build.change_id);
        Ok(vec![out])
    };
    let config = WorkerConfig::new(&args.name, &["build.started.>"]);
    let code = service::run(
        &args.name,
        &args.service,
        WORKER_HTTP_ADDR,
        async |process| {
            process.worker_args(&args.worker).worker(config, handler);
            Ok(())
        },
    )
    .await;
    println!("stopped");
    code
}
