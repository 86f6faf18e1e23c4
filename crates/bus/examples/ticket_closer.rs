//! A complete small worker to copy when writing your own: it reacts to events any system posts to
//! the generic webhook and publishes a catalog event in answer.
//!
//! Here an issue tracker posts `{"type": "source.custom", "key": "tracker", "data": {"kind":
//! "ticket.closed", "data": {"env": "pr-ping-42"}}}` to source-listener's `/webhooks/generic`
//! when a ticket closes; this worker asks for the ticket's preview environment to be torn down
//! (`env.teardown.requested`, reason `manual`), which env-manager and the reaper act on.
//!
//! Run it against a bus set up with `flotilla init`:
//!
//! ```sh
//! cargo run -p flotilla-bus --example ticket_closer -- --help
//! NATS_URL=nats://127.0.0.1:4222 FLOTILLA_HTTP_ADDR=127.0.0.1:9191 \
//!   cargo run -p flotilla-bus --example ticket_closer
//! ```
//!
//! Everything a worker needs besides its logic comes from the process runtime: one connection,
//! a durable consumer named after the worker (replicas share it), retries with backoff, dead
//! letters, `/healthz`, `/readyz`, `/metrics`, and a clean stop on SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use flotilla_bus::service::{self, ServiceArgs, WORKER_HTTP_ADDR};
use flotilla_bus::{Ctx, Event, EventType, HandlerError, Outgoing, WorkerArgs, WorkerConfig};
use flotilla_proto::v1::{Custom, TeardownRequest};

/// The worker's name: its consumer, its `ce-source` (`flotilla/ticket-closer`), its dead
/// letters (`flotilla-dlq.ticket-closer`) and its metric label.
const WORKER: &str = "ticket-closer";

/// Tear down the preview environment of every closed ticket.
#[derive(Debug, Parser)]
#[command(name = "ticket-closer")]
struct Cli {
    #[command(flatten, next_help_heading = "Worker")]
    worker: WorkerArgs,
    #[command(flatten, next_help_heading = "Process")]
    service: ServiceArgs,
}

/// The logic: one event in, the events it causes out. A pure function of its input is the
/// easiest kind to test; side effects would go through the context.
async fn handle(event: Event, _ctx: Ctx) -> Result<Vec<Outgoing>, HandlerError> {
    let custom: Custom = event.decode()?;
    if custom.kind != "ticket.closed" {
        // Not ours: handled with nothing to say, and acknowledged.
        return Ok(Vec::new());
    }
    let env = custom
        .data
        .as_ref()
        .and_then(|data| data.fields.get("env"))
        .and_then(|value| match &value.kind {
            Some(prost_types::value::Kind::StringValue(env)) => Some(env.clone()),
            _ => None,
        })
        // A malformed event will never succeed: it goes to the dead-letter stream at once.
        .ok_or_else(|| HandlerError::permanent("ticket.closed without data.env"))?;
    let request = TeardownRequest {
        env: env.clone(),
        reason: "manual".into(),
        message: format!("ticket closed ({})", custom.source),
        ..Default::default()
    };
    let out = Outgoing::new(EventType::EnvTeardownRequested, &env, &request)
        .map_err(HandlerError::permanent)?;
    Ok(vec![out])
}

#[tokio::main]
async fn main() -> ExitCode {
    let (cli, _telemetry) = match service::start::<Cli>(WORKER) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let config = WorkerConfig::new(WORKER, &["source.custom.>"]);
    service::run(WORKER, &cli.service, WORKER_HTTP_ADDR, async |process| {
        process.worker_args(&cli.worker).worker(config, handle);
        Ok(())
    })
    .await
}
