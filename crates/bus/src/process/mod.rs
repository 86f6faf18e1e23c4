//! The process runtime: what a worker's `main` hands its parts to.
//!
//! One [`Process`] per OS process owns the one NATS connection, the health state and metrics
//! registry, the shutdown token, the background [`Tasks`] and the one HTTP server. Event workers,
//! tasks and routes are added to it; [`Process::serve`] starts them all, and
//! [`Running::stopped`] takes them down in order on SIGTERM: stop pulling and answering, drain
//! in-flight events, stop the background tasks (which in-flight events may still need), flush.
//!
//! ```no_run
//! # async fn example(args: flotilla_bus::service::ServiceArgs) -> Result<(), flotilla_bus::BusError> {
//! use flotilla_bus::{Ctx, Event, HandlerError, Outgoing, Process, WorkerConfig};
//!
//! async fn handle(event: Event, _ctx: Ctx) -> Result<Vec<Outgoing>, HandlerError> {
//!     tracing::info!(subject = %event.subject, "seen");
//!     Ok(Vec::new())
//! }
//!
//! let Some(mut process) = Process::connect("watcher", &args).await? else {
//!     return Ok(()); // stopped before NATS answered
//! };
//! process.worker(WorkerConfig::new("watcher", &["source.custom.>"]), handle);
//! process.tasks().spawn("heartbeat", |stop| async move {
//!     stop.cancelled().await;
//!     Ok::<(), std::convert::Infallible>(())
//! });
//! let addr = args.http_addr_or(flotilla_bus::service::WORKER_HTTP_ADDR);
//! process.serve(addr).await?.stopped().await
//! # }
//! ```

mod running;
mod signals;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use crate::tasks::Tasks;
pub use running::Running;

use crate::error::BusError;
use crate::health::{self, Health};
use crate::runtime::{Handler, Worker, WorkerArgs, WorkerConfig};
use crate::settings::ServiceArgs;
use crate::topology::{Bus, Names};

type Run = Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, Result<(), BusError>> + Send>;

/// A process being assembled: add workers, tasks and routes, then [`serve`](Process::serve).
pub struct Process {
    bus: Bus,
    health: Health,
    shutdown: CancellationToken,
    tasks: Tasks,
    routes: Router,
    workers: Vec<(String, Run)>,
    worker_args: Option<WorkerArgs>,
    grace: Duration,
    header_timeout: Duration,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let workers: Vec<&str> = self.workers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Process")
            .field("workers", &workers)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl Process {
    /// A process on an existing connection, stopped by cancelling [`Process::shutdown`] (tests,
    /// and `flotilla up`, which handles its own signals).
    pub fn new(bus: Bus) -> Process {
        let health = Health::new();
        let tasks = Tasks::new(health.clone());
        Process::with(bus, health, tasks, CancellationToken::new())
    }

    fn with(bus: Bus, health: Health, tasks: Tasks, shutdown: CancellationToken) -> Process {
        health.watch_connection(bus.client());
        Process {
            bus,
            health,
            shutdown,
            tasks,
            routes: Router::new(),
            workers: Vec::new(),
            worker_args: None,
            grace: Duration::from_secs(30),
            header_timeout: health::HEADER_TIMEOUT,
        }
    }

    /// The process of a worker binary: stops on SIGTERM or Ctrl-C, and connects as `name` with
    /// the settings in `args` (retrying up to their deadline; its drain grace is theirs too).
    /// `None` when a stop signal came before NATS answered.
    pub async fn connect(name: &str, args: &ServiceArgs) -> Result<Option<Process>, BusError> {
        let shutdown = CancellationToken::new();
        let health = Health::new();
        let tasks = Tasks::new(health.clone());
        let trigger = shutdown.clone();
        tasks.spawn("signals", |stop| async move {
            tokio::select! {
                () = signals::stop_requested() => {
                    tracing::info!("shutdown requested");
                    trigger.cancel();
                }
                () = stop.cancelled() => {}
            }
            Ok::<(), std::convert::Infallible>(())
        });
        let client = tokio::select! {
            client = args.nats.connect_with_retry(name, args.connect_deadline) => client,
            () = shutdown.cancelled() => {
                tasks.stop(Duration::ZERO).await;
                return Ok(None);
            }
        };
        let client = match client {
            Ok(client) => client,
            Err(e) => {
                tasks.stop(Duration::ZERO).await;
                return Err(e);
            }
        };
        let mut process =
            Process::with(Bus::new(client, Names::default()), health, tasks, shutdown);
        process.grace(args.shutdown_grace);
        Ok(Some(process))
    }

    /// The process's one connection, for handlers, buckets and control subjects.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Readiness latches and the metrics registry (`Health::register` adds a worker's own).
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Background tasks, stopped and awaited when the process stops.
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// Cancelled when the process is asked to stop.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Applies runtime settings (concurrency, retries, ack wait) to the workers added from now
    /// on.
    pub fn worker_args(&mut self, args: &WorkerArgs) -> &mut Self {
        self.worker_args = Some(args.clone());
        self
    }

    /// The time allowed to drain on shutdown (`FLOTILLA_SHUTDOWN_GRACE` for a binary).
    pub fn grace(&mut self, grace: Duration) -> &mut Self {
        self.grace = grace;
        self
    }

    /// The time a client has to send a request's headers before its connection is closed
    /// ([`health::HEADER_TIMEOUT`] unless set).
    pub fn header_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.header_timeout = timeout;
        self
    }

    /// Serves `routes` on the process's HTTP server, beside `/healthz`, `/readyz`, `/metrics`.
    pub fn route(&mut self, routes: Router) -> &mut Self {
        self.routes = std::mem::take(&mut self.routes).merge(routes);
        self
    }

    /// Hosts an event worker. Its readiness latch is registered at once, so the process is not
    /// ready before the worker has bound its consumer.
    pub fn worker<H: Handler>(&mut self, config: WorkerConfig, handler: H) -> &mut Self {
        let mut config = match &self.worker_args {
            Some(args) => config.with_args(args),
            None => config,
        };
        config.grace = self.grace;
        let name = config.name.clone();
        let worker = Worker::new(self.bus.clone(), config, handler, self.health.clone())
            .with_tasks(self.tasks.clone());
        let run: Run = Box::new(move |stop| worker.run(stop.cancelled_owned()).boxed());
        self.workers.push((name, run));
        self
    }

    /// Gives up before serving (a part could not be set up): stops what already runs.
    pub async fn abandon(self) {
        self.tasks.stop(Duration::ZERO).await;
    }

    /// Binds `addr` and starts the HTTP server, the workers and (already running) the tasks.
    pub async fn serve(self, addr: SocketAddr) -> Result<Running, BusError> {
        let Process {
            bus,
            health,
            shutdown,
            tasks,
            routes,
            workers,
            grace,
            header_timeout,
            ..
        } = self;
        let serving = health.latch("http");
        let unready = serving.clone();
        let stop_http = shutdown.clone();
        let http_stopped = async move {
            stop_http.cancelled().await;
            // Load balancers stop sending before the listener stops taking.
            unready.set(false);
        };
        let router = health.router().merge(routes);
        let bound = health::serve_with(addr, router, http_stopped, header_timeout).await;
        let (addr, http) = match bound {
            Ok(bound) => bound,
            Err(e) => {
                tasks.stop(Duration::ZERO).await;
                return Err(e);
            }
        };
        serving.set(true);
        let mut running = JoinSet::new();
        for (name, run) in workers {
            let stop = shutdown.clone();
            running.spawn(async move { (name, run(stop).await) });
        }
        Ok(Running {
            addr,
            bus,
            health,
            shutdown,
            tasks,
            http,
            workers: running,
            grace,
            _serving: serving,
        })
    }
}
