//! W3C trace context across the bus: `traceparent`/`tracestate` headers in, span parents out.
//!
//! With the telemetry crate's tracer installed, each handled event gets a span whose parent is
//! the incoming context, and events it publishes carry that span's context. Without a tracer
//! (a library used alone), the incoming headers are passed through unchanged, so a trace is
//! never cut in two by a worker that does not export.

use async_nats::HeaderMap;
use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::envelope::header;

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|value| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .iter()
            .map(|(name, _)| AsRef::<str>::as_ref(name))
            .collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

/// Makes the trace context in `headers` the parent of `span`.
pub fn set_parent(span: &tracing::Span, headers: &HeaderMap) {
    let parent = global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Writes the current span's trace context into `headers`, or copies `cause`'s when there is
/// no active trace.
pub fn inject(headers: &mut HeaderMap, cause: Option<&HeaderMap>) {
    let context = tracing::Span::current().context();
    if context.span().span_context().is_valid() {
        global::get_text_map_propagator(|p| p.inject_context(&context, &mut HeadersMut(headers)));
    }
    if headers.get(header::TRACEPARENT).is_some() {
        return;
    }
    if let Some(cause) = cause {
        for name in [header::TRACEPARENT, header::TRACESTATE] {
            if let Some(value) = cause.get(name) {
                headers.insert(name, value.as_str());
            }
        }
    }
}
