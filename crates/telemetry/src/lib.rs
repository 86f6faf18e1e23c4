//! Logging and tracing set-up shared by every Flotilla binary.
//!
//! - Logs go to stderr, filtered by `RUST_LOG` (default `info`); `FLOTILLA_LOG_FORMAT=json`
//!   switches to one JSON object a line. Text logs are coloured only when stderr is a terminal
//!   and `NO_COLOR` is unset or empty, so a file or a pipe gets plain text.
//! - `OTEL_EXPORTER_OTLP_ENDPOINT` (OTLP over HTTP/protobuf) turns span export on;
//!   `OTEL_SERVICE_NAME` overrides the service name, and the SDK's `OTEL_BSP_*` variables tune
//!   the batching. Each handled event is then a span whose parent is the incoming
//!   `traceparent` (the trace model is in `docs/tracing.md`). Spans at `info` and above are
//!   exported whatever `RUST_LOG` says: it chooses what is logged, not what is traced (the CLI
//!   logs at `warn`, and `flotilla up` would otherwise export nothing).
//! - Without an exporter no OpenTelemetry layer is installed (it costs a noticeable share of a
//!   worker's CPU per event); the bus then passes `traceparent` through unchanged, so traces
//!   still join up across workers that do export. [`exporting`] tells the bus which case holds,
//!   so that what only spans need is not computed without them.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::filter::{self, FilterExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Set once a span exporter is installed.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: an OpenTelemetry layer is installed by [`init`].
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid RUST_LOG: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("a global subscriber is already set: {0}")]
    Init(#[from] tracing_subscriber::util::TryInitError),
}

/// Flushes exported spans when dropped; keep it alive for the life of `main`.
#[must_use = "dropping the guard stops span export"]
#[derive(Debug)]
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = &self.provider {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber for `service` (e.g. `env-manager`). `default_filter` applies
/// when `RUST_LOG` is unset (`info` for workers, `warn` for the CLI).
pub fn init(service: &str, default_filter: &str) -> Result<Guard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let exporting = std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
    let provider = if exporting {
        let service_name =
            std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| format!("flotilla-{service}"));
        let resource = Resource::builder().with_service_name(service_name).build();
        // The exporter reads the endpoint and headers from the standard OTEL_* variables.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()?;
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_batch_exporter(exporter)
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        Some(provider)
    } else {
        None
    };
    let filter = || match std::env::var("RUST_LOG") {
        Ok(value) if !value.is_empty() => EnvFilter::try_new(value),
        _ => EnvFilter::try_new(default_filter),
    };
    match &provider {
        // Without export one global filter, as cheap as it gets: per-layer filters cost every
        // span and event a little more.
        None => tracing_subscriber::registry()
            .with(filter()?)
            .with(fmt_layer())
            .try_init()?,
        Some(provider) => {
            // Spans at `info` and above whatever `RUST_LOG` says; log events only where it
            // lets them through, attached to their span.
            let spans = filter::filter_fn(|meta| meta.is_span() && *meta.level() <= Level::INFO);
            let otel = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("flotilla"))
                .with_filter(spans.or(filter()?));
            tracing_subscriber::registry()
                .with(otel)
                .with(fmt_layer().with_filter(filter()?))
                .try_init()?
        }
    }
    EXPORTING.store(provider.is_some(), Ordering::Relaxed);
    Ok(Guard { provider })
}

/// Logs on stderr: JSON lines with `FLOTILLA_LOG_FORMAT=json`, else text.
fn fmt_layer<S>() -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    if std::env::var("FLOTILLA_LOG_FORMAT").is_ok_and(|f| f == "json") {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR"),
            ))
            .with_writer(std::io::stderr)
            .boxed()
    }
}

/// Whether text logs carry ANSI colours: only for a person at a terminal, and never when
/// `NO_COLOR` is set to anything but the empty string (https://no-color.org).
fn colour(stderr_is_terminal: bool, no_color: Option<OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_coloured_only_at_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(
            colour(true, Some(OsString::new())),
            "empty NO_COLOR counts as unset"
        );
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None), "a file or a pipe gets plain text");
        assert!(!colour(false, Some("1".into())));
    }
}
