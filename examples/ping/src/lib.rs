//! ping, the example app Flotilla ships changes of (the seed's app). `GET /ping` answers `pong`,
//! or `{"value":"pong"}` in the new version; `GET /status` says `{"status":"ok"}` (or
//! `"degraded"` while faults are injected) with ping's own count of its `/ping` answers since it
//! started (`requests`, `errors`, and `success_rate` once there was one); `GET /metrics`
//! exposes, in Prometheus' text format,
//! `ping_http_requests_total{code}` and the `ping_http_request_duration_seconds` histogram, so a
//! canary analysis can judge a version on its success rate and latency. Faults are injected by
//! settings: a share of 5xx answers and extra latency, to make a bad version.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// What `/ping` answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Answer {
    /// `pong`, text: the version in production.
    Text,
    /// `{"value":"pong"}`: the change.
    Json,
}

/// How ping behaves.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// What `/ping` answers: `text` (`pong`) or `json` (`{"value":"pong"}`).
    #[arg(long, env = "PING_ANSWER", value_enum, default_value_t = Answer::Text)]
    pub answer: Answer,
    /// The share of `/ping` requests answered 500, from 0 to 1 (a bad version).
    #[arg(long, env = "PING_ERROR_RATE", default_value_t = 0.0)]
    pub error_rate: f64,
    /// Latency added to every `/ping`.
    #[arg(long, env = "PING_EXTRA_LATENCY", default_value = "0s", value_parser = humantime::parse_duration)]
    pub extra_latency: Duration,
    /// The version this ping runs as, added to every metric as the label `version`, so that a
    /// canary analysis can tell the canary's answers from the stable version's.
    #[arg(long, env = "PING_VERSION", value_name = "VERSION")]
    pub app_version: Option<String>,
}

impl Settings {
    /// Checks the settings.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!(
                "PING_ERROR_RATE must be between 0 and 1, not {}",
                self.error_rate
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Code {
    code: String,
}

struct App {
    settings: Settings,
    registry: Registry,
    requests: Family<Code, Counter>,
    duration: Histogram,
    /// Counts `/ping` requests, to spread errors evenly: every request whose running error
    /// count falls behind `error_rate` fails. Deterministic, so a test knows the rate it gets.
    served: AtomicU64,
    failed: AtomicU64,
}

/// The app's routes: `/ping`, `/metrics`, `/healthz`.
pub fn router(settings: Settings) -> Router {
    let mut registry = match &settings.app_version {
        Some(version) => Registry::with_labels(std::iter::once((
            std::borrow::Cow::Borrowed("version"),
            std::borrow::Cow::Owned(version.clone()),
        ))),
        None => Registry::default(),
    };
    let requests = Family::<Code, Counter>::default();
    registry.register(
        "ping_http_requests",
        "Requests to /ping by status code",
        requests.clone(),
    );
    let duration = Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]);
    registry.register(
        "ping_http_request_duration_seconds",
        "How long /ping took",
        duration.clone(),
    );
    let app = Arc::new(App {
        settings,
        registry,
        requests,
        duration,
        served: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    Router::new()
        .route("/ping", get(ping))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(app)
}

async fn ping(State(app): State<Arc<App>>) -> Response {
    let started = Instant::now();
    if !app.settings.extra_latency.is_zero() {
        tokio::time::sleep(app.settings.extra_latency).await;
    }
    let served = app.served.fetch_add(1, Ordering::Relaxed) + 1;
    let due = (served as f64 * app.settings.error_rate).floor() as u64;
    let fail = app.failed.load(Ordering::Relaxed) < due;
    let response = if fail {
        app.failed.fetch_add(1, Ordering::Relaxed);
        (StatusCode::INTERNAL_SERVER_ERROR, "injected failure\n").into_response()
    } else {
        match app.settings.answer {
            Answer::Text => "pong".into_response(),
            Answer::Json => axum::Json(serde_json::json!({"value": "pong"})).into_response(),
        }
    };
    app.requests
        .get_or_create(&Code {
            code: response.status().as_u16().to_string(),
        })
        .inc();
    app.duration.observe(started.elapsed().as_secs_f64());
    response
}

/// `{"status":"ok"}`, or `"degraded"` while faults are injected, and the answers counted so far:
/// what a web check reads where no Prometheus scrapes ping. `success_rate` (the share of `/ping`
/// answers that were not 5xx) is absent until a first request, so that no traffic is no data
/// rather than a perfect score.
async fn status(State(app): State<Arc<App>>) -> Response {
    let faulty = app.settings.error_rate > 0.0 || !app.settings.extra_latency.is_zero();
    let status = if faulty { "degraded" } else { "ok" };
    let requests = app.served.load(Ordering::Relaxed);
    let errors = app.failed.load(Ordering::Relaxed).min(requests);
    let mut body = serde_json::json!({"status": status, "requests": requests, "errors": errors});
    if requests > 0 {
        body["success_rate"] = ((requests - errors) as f64 / requests as f64).into();
    }
    axum::Json(body).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &app.registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
