//! The bus pipeline: [`Publisher`] → a [`Worker`] whose handler answers `build.started` with
//! `build.succeeded` → the end consumer.

use std::net::SocketAddr;
use std::time::Duration;

use async_nats::jetstream::stream;
use flotilla_bus::{
    Bus, Ctx, Event, EventType, Handler, HandlerError, Outgoing, Process, Publisher, Running,
    WorkerConfig,
};
use flotilla_proto::v1::Build;

use crate::error::{BenchError, BoxError};
use crate::fixture::Fixture;
use crate::lane::{Inject, Lane};
use crate::pipeline::Pipeline;
use crate::sink::Sink;

/// The worker under test; also the name of its durable consumer.
const WORKER: &str = "bench-hop";
/// The event types of the two hops; the bare pipeline uses the same subject shapes.
pub(crate) const INPUT: EventType = EventType::BuildStarted;
pub(crate) const OUTPUT: EventType = EventType::BuildSucceeded;

/// How long the worker may take to bind its consumer.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The config of the worker under test: the runtime's defaults, except `concurrency` when
/// given.
pub(crate) fn worker_config(concurrency: Option<usize>) -> WorkerConfig {
    let mut config = WorkerConfig::new(WORKER, &[&format!("{INPUT}.>")]);
    if let Some(concurrency) = concurrency {
        config.concurrency = concurrency;
    }
    config
}

/// Publishes `build.started` about change key `<seq>`, as a webhook intake would.
pub(crate) struct BusEntry {
    publisher: Publisher,
    build: Build,
}

impl Inject for BusEntry {
    async fn send(&self, seq: u64) -> Result<(), BoxError> {
        let event = Outgoing::new(INPUT, &seq.to_string(), &self.build)?
            .with_change_id(self.build.change_id.as_str());
        self.publisher.publish(event).await?;
        Ok(())
    }
}

/// The handler under test: every started build has succeeded, so what is measured is the
/// runtime around the handler and not the work.
async fn succeed(event: Event, _ctx: Ctx) -> Result<Vec<Outgoing>, HandlerError> {
    let build: Build = event.decode()?;
    Ok(vec![Outgoing::new(OUTPUT, &event.key, &build)?])
}

/// The worker under test, in a process of its own on the bench's connection, running until
/// stopped (or dropped, which stops it without waiting).
pub(crate) struct RunningWorker {
    running: Running,
}

impl RunningWorker {
    /// Asks the worker to drain and waits for it, within its grace period.
    pub(crate) async fn stop(self, grace: Duration) {
        match tokio::time::timeout(grace, self.running.stop()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "benchmark worker failed"),
            Err(_) => tracing::warn!("benchmark worker did not stop in time"),
        }
    }
}

/// Starts the bus pipeline on the bus's `stream`: the worker (once its consumer is bound), the
/// end consumer and the publisher that feeds them.
pub(crate) async fn start(
    fixture: &Fixture,
    stream: &stream::Stream,
    config: WorkerConfig,
    build: Build,
    window: usize,
) -> Result<(Lane<BusEntry>, RunningWorker), BenchError> {
    let bus = &fixture.bus;
    let worker = start_worker(bus, config, succeed, "start the bus worker").await?;
    let middle = stream
        .get_consumer(WORKER)
        .await
        .map_err(|e| BenchError::setup("read the worker's consumer", e))?;
    let output = bus.names().subject(OUTPUT.as_str());
    let sink = Sink::start(
        Pipeline::Bus,
        stream,
        "bench-bus-end",
        format!("{output}.>"),
    )
    .await?;
    let entry = BusEntry {
        publisher: bus.publisher("bench"),
        build,
    };
    Ok((
        Lane::new(Pipeline::Bus, entry, middle, sink, window),
        worker,
    ))
}

/// Runs `handler` as a worker on `bus` and waits until it has bound its consumer.
pub(crate) async fn start_worker<H: Handler>(
    bus: &Bus,
    config: WorkerConfig,
    handler: H,
    what: &str,
) -> Result<RunningWorker, BenchError> {
    let mut process = Process::new(bus.clone());
    process.grace(config.grace).worker(config, handler);
    // Probes on a free loopback port: the benchmark reads readiness in-process.
    let running = process
        .serve(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| BenchError::setup(what, e))?;
    if let Err(why) = running.ready(READY_TIMEOUT).await {
        return Err(BenchError::setup(
            what,
            format!("not ready after {READY_TIMEOUT:?}: {why}"),
        ));
    }
    Ok(RunningWorker { running })
}
