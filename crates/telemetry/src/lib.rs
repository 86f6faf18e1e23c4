//! Logging and tracing set-up shared by every Flotilla binary.
//!
//! - Logs go to stderr, filtered by `RUST_LOG` (default `info`); `FLOTILLA_LOG_FORMAT=json`
//!   switches to one JSON object a line. Text logs are coloured only when stderr is a terminal
//!   and `NO_COLOR` is unset or empty, so a file or a pipe gets plain text.
//! - `OTEL_EXPORTER_OTLP_ENDPOINT` (OTLP over HTTP/protobuf) turns span export on;
//!   `OTEL_SERVICE_NAME` overrides the service name. Each handled event is then a span whose
//!   parent is the incoming `traceparent`.
//! - Without an exporter no OpenTelemetry layer is installed (it costs a noticeable share of a
//!   worker's CPU per event); the bus then passes `traceparent` through unchanged, so traces
//!   still join up across workers that do export.

use std::ffi::OsString;
use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("flotilla")));

    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.is_empty() => EnvFilter::try_new(value)?,
        _ => EnvFilter::try_new(default_filter)?,
    };
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    if std::env::var("FLOTILLA_LOG_FORMAT").is_ok_and(|f| f == "json") {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()?;
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(colour(
                        std::io::stderr().is_terminal(),
                        std::env::var_os("NO_COLOR"),
                    ))
                    .with_writer(std::io::stderr),
            )
            .try_init()?;
    }
    Ok(Guard { provider })
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
