//! The worker runtime: consume, handle, publish, acknowledge.
//!
//! A worker is a [`Handler`] plus a [`WorkerConfig`]. The runtime owns everything else: the
//! durable pull consumer (shared by all replicas of the worker), bounded concurrency, progress
//! acks while a handler runs, a deadline on each attempt, ack only after the handler's outputs
//! are stored, nak with exponential backoff for retryable errors, dead letters after
//! `max_deliver` or for poison (held, never nak'd, when the copy fails on the server's last
//! delivery), and draining on shutdown within a grace period.

mod config;
mod counters;
mod delivery;
mod dlq;
mod process;
mod trouble;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use config::{WorkerArgs, WorkerConfig};

use crate::dry_run::Recorder;
use crate::envelope::{Event, Outgoing};
use crate::error::{BusError, HandlerError};
use crate::health::{Health, Ready};
use crate::publish::Publisher;
use crate::tasks::Tasks;
use crate::topology::Bus;

/// The logic of a worker: one event in, the events it causes out.
///
/// A handler must be safe to run again for the same event (it may be redelivered); the
/// runtime makes its outputs idempotent by deriving their ids from the input. Dispatch on the
/// typed [`Event::kind`], and return [`HandlerError::unhandled_type`] for a type the worker
/// receives but does not act on, so it is counted rather than silently acknowledged. A
/// complete worker to copy is `crates/bus/examples/ticket_closer.rs`.
///
/// ```no_run
/// use flotilla_bus::{Ctx, Event, EventType, Handler, HandlerError, Outgoing};
/// use flotilla_proto::v1::{Build, TestResult};
///
/// /// Passes the tests of every successful build's staging env (a toy judge).
/// struct Judge;
///
/// impl Handler for Judge {
///     async fn handle(&self, event: Event, _ctx: Ctx) -> Result<Vec<Outgoing>, HandlerError> {
///         match event.kind() {
///             Some(EventType::BuildSucceeded) => {
///                 let build: Build = event.decode()?;
///                 let env = format!("stg-{}", build.change_id);
///                 let verdict = TestResult {
///                     env: env.clone(),
///                     change_id: build.change_id.clone(),
///                     ..Default::default()
///                 };
///                 let out = Outgoing::new(EventType::TestsPassed, &env, &verdict)
///                     .map_err(HandlerError::permanent)?
///                     .with_change_id(&build.change_id);
///                 Ok(vec![out])
///             }
///             Some(other) => Err(HandlerError::unhandled_type(other)),
///             None => Err(HandlerError::permanent("not a Flotilla event type")),
///         }
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        event: Event,
        ctx: Ctx,
    ) -> impl Future<Output = Result<Vec<Outgoing>, HandlerError>> + Send;

    /// Called once before the first event, for what a handler must do while no event has come
    /// yet (say, listen on a control subject in a background task). Does nothing by default.
    fn start(&self, start: Start<'_>) -> impl Future<Output = ()> + Send {
        let _ = start;
        async {}
    }
}

/// What a handler may use before its first event: the process's connection and its background
/// tasks (stopped and awaited when the process stops; a failure shows in `/readyz`).
#[derive(Debug, Clone, Copy)]
pub struct Start<'a> {
    pub bus: &'a Bus,
    pub tasks: &'a Tasks,
}

impl<F, Fut> Handler for F
where
    F: Fn(Event, Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<Outgoing>, HandlerError>> + Send,
{
    fn handle(
        &self,
        event: Event,
        ctx: Ctx,
    ) -> impl Future<Output = Result<Vec<Outgoing>, HandlerError>> + Send {
        self(event, ctx)
    }
}

/// What a handler knows about the delivery it is handling.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub worker: Arc<str>,
    /// Publishes as this worker, for events a handler must emit before it returns.
    pub publisher: Publisher,
    /// 1 for the first delivery.
    pub delivered: u64,
    pub stream_seq: u64,
    /// Set when this is a dry run (`flotilla replay --dry-run`): the side effects the handler's
    /// interfaces record instead of performing; `publisher` records into it too.
    pub dry_run: Option<Recorder>,
}

impl Ctx {
    /// Whether this is a dry run, in which nothing may be written.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run.is_some()
    }
}

const PULL_EXPIRES: Duration = Duration::from_secs(10);
const PULL_HEARTBEAT: Duration = Duration::from_secs(3);

/// A worker bound to a bus: call [`Worker::run`].
pub struct Worker<H> {
    bus: Bus,
    config: WorkerConfig,
    handler: Arc<H>,
    health: Health,
    ready: Ready,
    tasks: Tasks,
    /// Whether the tasks are this worker's own (stopped when it stops) or its process's.
    owns_tasks: bool,
}

impl<H: Handler> Worker<H> {
    /// Registers the worker's readiness latch (unset) at once, so a probe never reports ready
    /// before the worker has bound its consumer.
    pub fn new(bus: Bus, config: WorkerConfig, handler: H, health: Health) -> Self {
        let ready = health.latch(&config.name);
        health.watch_connection(bus.client());
        Worker {
            bus,
            config,
            handler: Arc::new(handler),
            tasks: Tasks::new(health.clone()),
            owns_tasks: true,
            health,
            ready,
        }
    }

    /// Runs the handler's background tasks as `tasks` (its process's) instead of its own.
    pub fn with_tasks(mut self, tasks: Tasks) -> Self {
        self.tasks = tasks;
        self.owns_tasks = false;
        self
    }

    /// Consumes until `shutdown` resolves, then stops taking work, finishes what is in flight
    /// within the grace period and returns. Errors only when the consumer cannot be set up.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), BusError> {
        let Worker {
            bus,
            config,
            handler,
            health,
            ready,
            tasks,
            owns_tasks,
        } = self;
        handler
            .start(Start {
                bus: &bus,
                tasks: &tasks,
            })
            .await;
        // Told apart from `shutdown` so a delivery task can see the worker stopping.
        let stopping = tokio_util::sync::CancellationToken::new();
        let job = Arc::new(process::Job::new(
            &bus,
            &config,
            handler,
            &health,
            stopping.clone(),
        ));
        let shutdown = async {
            shutdown.await;
            stopping.cancel();
        };
        let mut pool = Pool {
            permits: Arc::new(Semaphore::new(config.concurrency)),
            tasks: JoinSet::new(),
        };
        tokio::pin!(shutdown);

        let mut first = true;
        loop {
            if !first {
                // The message stream ended or failed: pause briefly and bind again.
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            let mut messages = match bind(&bus, &config).await {
                Ok(messages) => messages,
                Err(e) if first => return Err(e),
                Err(e) => {
                    tracing::warn!(worker = %config.name, error = %e, "binding failed; retrying");
                    continue;
                }
            };
            first = false;
            ready.set(true);
            let stopped = pool
                .consume(&mut messages, &job, &config, &mut shutdown)
                .await;
            ready.set(false);
            if stopped {
                job.release_buffered(&mut messages, config.concurrency)
                    .await;
                break;
            }
        }
        drain(&config, pool.tasks).await;
        if owns_tasks {
            tasks.stop(config.grace).await;
        }
        Ok(())
    }
}

/// Binds the worker's durable consumer and opens a message stream on it.
async fn bind(bus: &Bus, config: &WorkerConfig) -> Result<pull::Stream, BusError> {
    let (consumer, reconciled) = bus.ensure_consumer(&config.consumer_spec()).await?;
    tracing::info!(worker = %config.name, consumer = %reconciled, "consumer bound");
    consumer
        .stream()
        .max_messages_per_batch(config.concurrency)
        // Short pull requests bound how long a lost one can stall the worker.
        .heartbeat(PULL_HEARTBEAT)
        .expires(PULL_EXPIRES)
        .messages()
        .await
        .map_err(|e| BusError::jetstream(format!("pull from consumer {}", config.name), e))
}

/// The tasks handling events, at most `concurrency` at once.
struct Pool {
    permits: Arc<Semaphore>,
    tasks: JoinSet<()>,
}

impl Pool {
    /// Hands each message to a task until the stream fails (false: bind again) or shutdown
    /// is requested (true).
    async fn consume<H: Handler>(
        &mut self,
        messages: &mut pull::Stream,
        job: &Arc<process::Job<H>>,
        config: &WorkerConfig,
        shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> bool {
        loop {
            let permit = tokio::select! {
                biased;
                () = shutdown.as_mut() => return true,
                permit = self.permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return true,
                },
            };
            let next = tokio::select! {
                biased;
                () = shutdown.as_mut() => return true,
                next = messages.next() => next,
            };
            match next {
                Some(Ok(message)) => {
                    let job = job.clone();
                    self.tasks.spawn(async move {
                        job.process(message).await;
                        drop(permit);
                    });
                }
                Some(Err(e)) if e.kind() == pull::MessagesErrorKind::MissingHeartbeat => {
                    // The server holds no pull request of ours any more (seen with
                    // async-nats 0.51 against 2.9 under load): pulling again beats idling
                    // with work pending until the request would have expired.
                    tracing::warn!(worker = %config.name, "missed a pull heartbeat; pulling again");
                    return false;
                }
                Some(Err(e)) => {
                    tracing::warn!(worker = %config.name, error = %e, "message stream failed; rebinding");
                    return false;
                }
                None => return false,
            }
            while self.tasks.try_join_next().is_some() {}
        }
    }
}

/// Waits for in-flight events up to the grace period; what is left is abandoned unacked and
/// will be redelivered to another replica.
async fn drain(config: &WorkerConfig, mut tasks: JoinSet<()>) {
    let in_flight = tasks.len();
    if in_flight > 0 {
        tracing::info!(worker = %config.name, in_flight, grace = ?config.grace, "draining");
    }
    let finished = tokio::time::timeout(config.grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            worker = %config.name,
            abandoned = tasks.len(),
            "grace period over; abandoning in-flight events, they will be redelivered"
        );
        tasks.abort_all();
    }
    tracing::info!(worker = %config.name, "stopped");
}
