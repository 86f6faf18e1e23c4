//! `run_hop`: both pipelines, set up side by side on one server, measured taking turns.

use crate::args::{HopArgs, split};
use crate::bare::{self, BareEntry};
use crate::error::BenchError;
use crate::fixture::{Fixture, after_cleanup};
use crate::lane::Lane;
use crate::payload;
use crate::pipeline::Phase;
use crate::report::{HopReport, SideReport};
use crate::via_bus::{self, BusEntry};

/// Measures two hops through the bus against the same two hops in bare async-nats, on the
/// server `client` is connected to, and removes every stream it made before returning.
///
/// Safe to run against a server in use: it works only on streams named for this run.
pub async fn run_hop(client: async_nats::Client, args: &HopArgs) -> Result<HopReport, BenchError> {
    let server = client.server_info();
    args.validate(server.max_payload)?;
    let fixture = Fixture::new(client);
    let measured = measure(&fixture, args, server.version).await;
    after_cleanup(measured, fixture.delete().await)
}

async fn measure(
    fixture: &Fixture,
    args: &HopArgs,
    server: String,
) -> Result<HopReport, BenchError> {
    let (bus_stream, bare_stream) = fixture.create().await?;
    let config = via_bus::worker_config(args.concurrency);
    let concurrency = config.concurrency;
    let grace = config.grace;
    let build = payload::build_of_size(args.payload);
    let payload = payload::bare_payload(&build);
    let payload_len = payload.len();

    let (mut bare, relay) =
        bare::start(fixture, &bare_stream, &config, payload, args.window).await?;
    let (mut bus, worker) =
        via_bus::start(fixture, &bus_stream, config, build, args.window).await?;
    let sides = alternate(&mut bare, &mut bus, args).await;
    worker.stop(grace).await;
    drop(relay);
    let (bare, bus) = sides?;

    Ok(HopReport {
        args: args.clone(),
        concurrency,
        payload: payload_len,
        server,
        bare,
        bus,
        streams: fixture.stream_names().to_vec(),
    })
}

/// Warms both pipelines up, then measures them taking turns, so that a noisy machine (other
/// processes, page cache, stream growth) weighs on both alike.
async fn alternate(
    bare: &mut Lane<BareEntry>,
    bus: &mut Lane<BusEntry>,
    args: &HopArgs,
) -> Result<(SideReport, SideReport), BenchError> {
    bare.run(Phase::Warmup, args.warmup).await?;
    bus.run(Phase::Warmup, args.warmup).await?;
    // Latency samples are independent of each other, so the pipelines alternate message by
    // message and sample the same moments.
    for turn in 0..args.count {
        in_turn(bare, bus, turn, Phase::Latency, 1).await?;
    }
    // Pipelined runs would compete if interleaved, so they alternate by round instead.
    for (round, count) in split(args.pipelined, args.rounds).into_iter().enumerate() {
        tracing::debug!(round, count, "pipelined round");
        in_turn(bare, bus, round, Phase::Pipelined, count).await?;
    }
    match (bare.report(), bus.report()) {
        (Some(bare), Some(bus)) => Ok((bare, bus)),
        // `validate` asks for at least one latency message.
        _ => Err(BenchError::Args("no latency was measured".into())),
    }
}

/// Runs `phase` on both pipelines: bare first on even turns, the bus first on odd ones.
async fn in_turn(
    bare: &mut Lane<BareEntry>,
    bus: &mut Lane<BusEntry>,
    turn: usize,
    phase: Phase,
    count: usize,
) -> Result<(), BenchError> {
    if turn.is_multiple_of(2) {
        bare.run(phase, count).await?;
        bus.run(phase, count).await
    } else {
        bus.run(phase, count).await?;
        bare.run(phase, count).await
    }
}
