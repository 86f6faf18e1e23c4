//! `/healthz`, `/readyz` and `/metrics`, served the same way by every worker.
//!
//! Readiness is a set of latches, one per component, set once it is connected and its consumer
//! is bound; `/readyz` also checks that the NATS connection is up right now.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::error::BusError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabel {
    pub worker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub worker: String,
    /// The handler error's own label (e.g. `git`, `bad_event`; `retryable` or `permanent` for
    /// an error built from a message), or the runtime's: `panic`, `publish`, `envelope`,
    /// `unfinished`.
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnhandledLabels {
    pub worker: String,
    /// The event type as received (`<domain>.<event>`).
    pub r#type: String,
}

/// The runtime's metrics, labelled by worker.
#[derive(Debug)]
pub struct Metrics {
    pub handled: Family<WorkerLabel, Counter>,
    pub failed: Family<FailureLabels, Counter>,
    pub redelivered: Family<WorkerLabel, Counter>,
    pub dead_lettered: Family<WorkerLabel, Counter>,
    pub skipped: Family<WorkerLabel, Counter>,
    pub unhandled: Family<UnhandledLabels, Counter>,
    pub duration: Family<WorkerLabel, Histogram>,
}

impl Metrics {
    fn new() -> Self {
        Metrics {
            duration: Family::new_with_constructor(|| {
                // 1 ms .. ~65 s: handlers range from pure transforms to git pushes.
                Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                    0.001, 2.0, 17,
                ))
            }),
            handled: Family::default(),
            failed: Family::default(),
            redelivered: Family::default(),
            dead_lettered: Family::default(),
            skipped: Family::default(),
            unhandled: Family::default(),
        }
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "flotilla_events_handled",
            "Events a worker handled and acknowledged",
            self.handled.clone(),
        );
        registry.register(
            "flotilla_events_failed",
            "Handler attempts that failed, by reason",
            self.failed.clone(),
        );
        registry.register(
            "flotilla_events_redelivered",
            "Deliveries that were not the first of their event",
            self.redelivered.clone(),
        );
        registry.register(
            "flotilla_events_dead_lettered",
            "Events copied to the dead-letter stream",
            self.dead_lettered.clone(),
        );
        registry.register(
            "flotilla_events_skipped",
            "Events acknowledged without handling (outside the worker's subjects, or a retry for another worker)",
            self.skipped.clone(),
        );
        registry.register(
            "flotilla_events_unhandled",
            "Events acknowledged because the worker's handler has nothing to do for their type",
            self.unhandled.clone(),
        );
        registry.register(
            "flotilla_handler_duration_seconds",
            "Time from delivery to ack, outputs included",
            self.duration.clone(),
        );
    }

    pub fn worker(worker: &str) -> WorkerLabel {
        WorkerLabel {
            worker: worker.to_owned(),
        }
    }
}

/// A readiness latch of one component.
#[derive(Clone, Debug)]
pub struct Ready(Arc<AtomicBool>);

impl Ready {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A component's own readiness check: `Some(why)` while it cannot do its work.
type Check = Box<dyn Fn() -> Option<String> + Send + Sync>;

struct Inner {
    registry: Mutex<Registry>,
    metrics: Metrics,
    latches: Mutex<Vec<(String, Ready)>>,
    /// Conditions that come and go (a worker that cannot store dead letters right now).
    checks: Mutex<Vec<(String, Check)>>,
    /// Components that failed for good (a background task that returned an error), with why.
    failures: Mutex<Vec<(String, String)>>,
    client: OnceLock<async_nats::Client>,
}

/// Health state and metrics registry of a process. Cheap to clone.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").finish_non_exhaustive()
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    pub fn new() -> Health {
        let mut registry = Registry::default();
        let metrics = Metrics::new();
        metrics.register(&mut registry);
        Health {
            inner: Arc::new(Inner {
                registry: Mutex::new(registry),
                metrics,
                latches: Mutex::new(Vec::new()),
                checks: Mutex::new(Vec::new()),
                failures: Mutex::new(Vec::new()),
                client: OnceLock::new(),
            }),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Lets a component register metrics of its own.
    pub fn register(&self, f: impl FnOnce(&mut Registry)) {
        let mut registry = self
            .inner
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut registry);
    }

    /// The NATS connection whose state `/readyz` reports.
    pub fn watch_connection(&self, client: &async_nats::Client) {
        let _ = self.inner.client.set(client.clone());
    }

    /// A new latch, unset, named after the component it belongs to.
    pub fn latch(&self, component: &str) -> Ready {
        let ready = Ready(Arc::new(AtomicBool::new(false)));
        self.lock_latches()
            .push((component.to_owned(), ready.clone()));
        ready
    }

    /// Marks `component` failed: `/readyz` answers 503 naming it from now on, so an orchestrator
    /// restarts a process that lost a part of itself instead of leaving it half alive.
    pub fn fail(&self, component: &str, why: &str) {
        self.inner
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((component.to_owned(), why.to_owned()));
    }

    /// Adds a check `/readyz` runs on every probe: while it answers `Some(why)`, the process is
    /// not ready and the answer says `<component>: <why>`.
    pub fn check(
        &self,
        component: &str,
        check: impl Fn() -> Option<String> + Send + Sync + 'static,
    ) {
        self.inner
            .checks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((component.to_owned(), Box::new(check)));
    }

    /// `None` when ready, else why not.
    pub fn not_ready(&self) -> Option<String> {
        let mut waiting: Vec<String> = self
            .lock_latches()
            .iter()
            .filter(|(_, ready)| !ready.get())
            .map(|(name, _)| format!("{name} not ready"))
            .collect();
        waiting.extend(
            self.inner
                .failures
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .iter()
                .map(|(name, why)| format!("{name} failed: {why}")),
        );
        waiting.extend(
            self.inner
                .checks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .iter()
                .filter_map(|(name, check)| check().map(|why| format!("{name}: {why}"))),
        );
        if let Some(client) = self.inner.client.get()
            && client.connection_state() != async_nats::connection::State::Connected
        {
            waiting.push(format!("NATS {}", client.connection_state()));
        }
        (!waiting.is_empty()).then(|| waiting.join("; "))
    }

    fn lock_latches(&self) -> std::sync::MutexGuard<'_, Vec<(String, Ready)>> {
        self.inner
            .latches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The metrics in Prometheus text format.
    pub fn encode_metrics(&self) -> String {
        let mut text = String::new();
        let registry = self
            .inner
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }

    /// The probe and metrics routes, to merge into a component's own router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }
}

async fn readyz(State(health): State<Health>) -> impl IntoResponse {
    match health.not_ready() {
        None => (StatusCode::OK, "ready\n".to_owned()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn metrics(State(health): State<Health>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        health.encode_metrics(),
    )
}

/// How long a client may take to send a request's headers when nothing else is set: a client
/// that dribbles them (a slow-loris) is cut off rather than holding a connection forever.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `addr` and serves `router` until `shutdown` resolves. Returns the bound address (so
/// `127.0.0.1:0` works in tests) and the server task.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), BusError> {
    serve_with(addr, router, shutdown, HEADER_TIMEOUT).await
}

/// [`serve`], closing a connection whose request headers take longer than `header_timeout`.
///
/// hyper enforces its header timeout only with a timer, which `axum::serve` does not give it,
/// so connections are served here with one.
pub async fn serve_with(
    addr: SocketAddr,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    header_timeout: Duration,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), BusError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| BusError::Http {
            addr: addr.to_string(),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| BusError::Http {
        addr: addr.to_string(),
        source,
    })?;
    let task = tokio::spawn(accept(listener, router, shutdown, header_timeout));
    Ok((bound, task))
}

/// Serves every accepted connection until `shutdown`, then lets the open ones finish.
async fn accept(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    header_timeout: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin, as axum::serve does.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // An answer is one small write the client waits for: Nagle's algorithm would hold it
        // back while an earlier segment is unacknowledged (and the client delays its ack).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(router.clone());
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
