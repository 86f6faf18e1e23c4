//! `flotilla bench`: the bus's performance figures, measured against bare JetStream on the same
//! server in the same run (DESIGN.md, "Targets").

use flotilla_bench::{BenchError, HopArgs, HopReport, run_hop};
use flotilla_bus::NatsArgs;

use crate::error::CliError;
use crate::render::Output;

/// Measure the bus against bare JetStream.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Two hops through the bus and through bare async-nats: latency and throughput.
    ///
    /// Each pipeline publishes an event, has a worker answer it with another event and receives
    /// that at a consumer: bare async-nats, then Flotilla's publisher and worker runtime. Prints
    /// latency p50/p99 (one message in flight) and pipelined msgs/s of both, and whether the
    /// bus stays within the targets (latency ≤ 1.5× bare, throughput ≥ 50% of bare).
    ///
    /// Uses streams of its own, never FLOTILLA, and deletes them afterwards; it does load the
    /// server for the length of the run.
    #[command(after_help = "Examples:
  flotilla bench hop
  flotilla bench hop --count 5000 --pipelined 50000 --payload 1024")]
    Hop(HopArgs),
}

pub async fn run(nats: &NatsArgs, command: Command) -> Result<(), CliError> {
    match command {
        Command::Hop(args) => hop(nats, args).await,
    }
}

async fn hop(nats: &NatsArgs, args: HopArgs) -> Result<(), CliError> {
    eprintln!(
        "measuring two hops, bare and through the bus, against {} ...",
        nats.url
    );
    let nats = nats.clone();
    // The CLI runs on one thread, but workers run on a runtime with a thread per core: the
    // benchmark gets a runtime like theirs, its NATS connection included, or it would measure
    // a bus no worker runs.
    let report = tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|source| CliError::System {
                what: "start the benchmark's runtime",
                source,
            })?
            .block_on(measure(&nats, &args))
    })
    .await
    .map_err(|e| CliError::nats("bench hop", e))??;
    let mut out = Output::live();
    out.line(report)?;
    out.finish()
}

async fn measure(nats: &NatsArgs, args: &HopArgs) -> Result<HopReport, CliError> {
    let client = nats.connect("flotilla-bench").await?;
    run_hop(client, args).await.map_err(|e| match e {
        BenchError::Args(_) => CliError::Usage(e.to_string()),
        e => CliError::nats("bench hop", e),
    })
}
