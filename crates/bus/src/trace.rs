//! W3C trace context across the bus: `traceparent`/`tracestate` headers in, span parents out.
//!
//! With the telemetry crate's exporter installed, each handled event is a CONSUMER span
//! `handle <type>` whose parent is the incoming context, and each published event a PRODUCER
//! span `publish <type>` under the span that publishes it; the event carries the PRODUCER
//! span's context. An event published outside a handler (a background task acting on state
//! that lasts, such as a registry record) continues the trace context kept with that state
//! ([`traceparent`], [`Outgoing::with_traceparent`]). Without a tracer (a library used alone,
//! or export off), the incoming or kept `traceparent` is passed through unchanged, so a trace is
//! never cut in two by a worker that does not export. The whole model is in `docs/tracing.md`.

use async_nats::HeaderMap;
use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use serde_json::Value;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::envelope::{CONTENT_TYPE_JSON, Event, Outgoing, header};

/// The messaging system, as OpenTelemetry's semantic conventions name it.
const MESSAGING_SYSTEM: &str = "nats";

/// The fields of an event's data that say which change, env or release it is about; each one
/// present becomes a span attribute of the same name (the log field names).
const DATA_FIELDS: [(&str, &str); 6] = [
    ("app", "app"),
    ("version", "version"),
    ("env", "env"),
    ("release", "release"),
    ("repo", "repo"),
    ("sha", "sha"),
];

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

/// Whether spans are exported (the telemetry crate installed an exporter).
pub fn exporting() -> bool {
    flotilla_telemetry::exporting()
}

/// Makes the trace context in `headers` the parent of `span`. Does nothing unless spans are
/// exported: without an OpenTelemetry layer a span has no context to set.
pub fn set_parent(span: &tracing::Span, headers: &HeaderMap) {
    if !exporting() {
        return;
    }
    let parent = global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Makes a kept `traceparent` (see [`traceparent`]) the parent of `span`; an empty or
/// malformed one leaves `span` where it is.
pub fn set_parent_from(span: &tracing::Span, traceparent: &str) {
    if traceparent.is_empty() {
        return;
    }
    let mut carrier = HeaderMap::new();
    carrier.insert(header::TRACEPARENT, traceparent);
    set_parent(span, &carrier);
}

/// The `traceparent` to keep with state that outlives this handling (a registry record, a
/// lease), so that what a background task later publishes about it stays in the change's
/// trace: the current span's context, or, without a tracer, the one `cause` came with.
pub fn traceparent(cause: Option<&HeaderMap>) -> Option<String> {
    let context = tracing::Span::current().context();
    if context.span().span_context().is_valid() {
        let mut carrier = HeaderMap::new();
        global::get_text_map_propagator(|p| {
            p.inject_context(&context, &mut HeadersMut(&mut carrier))
        });
        if let Some(value) = carrier.get(header::TRACEPARENT) {
            return Some(value.as_str().to_owned());
        }
    }
    cause
        .and_then(|headers| headers.get(header::TRACEPARENT))
        .map(|value| value.as_str().to_owned())
        .filter(|value| !value.is_empty())
}

/// Writes the trace context of `span` (the event's PRODUCER span), else of the current span,
/// into `headers`. Without a tracer it copies the context the event carries (`kept`), else its
/// `cause`'s.
pub fn inject(
    headers: &mut HeaderMap,
    span: Option<&tracing::Span>,
    kept: Option<&str>,
    cause: Option<&HeaderMap>,
) {
    // Without an exporter no span has a context (there is no OpenTelemetry layer), and
    // looking for one costs every event published.
    if exporting() {
        let context = match span {
            Some(span) => span.context(),
            None => tracing::Span::current().context(),
        };
        if context.span().span_context().is_valid() {
            global::get_text_map_propagator(|p| {
                p.inject_context(&context, &mut HeadersMut(headers))
            });
        }
    }
    if headers.get(header::TRACEPARENT).is_some() {
        return;
    }
    if let Some(kept) = kept.filter(|k| !k.is_empty()) {
        headers.insert(header::TRACEPARENT, kept);
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

/// The span name of handling events of `event_type` (`handle build.succeeded`), computed only
/// when spans are exported: a log line has the event type as a field already.
pub fn handle_name(event_type: &str) -> Option<String> {
    exporting().then(|| format!("handle {event_type}"))
}

/// The attributes a trace UI searches by, on the CONSUMER span of `event` handled by
/// `worker`: OpenTelemetry's messaging conventions, and what the event's data says of its
/// change. Does nothing unless spans are exported (decoding the data costs).
pub fn describe_handling(span: &tracing::Span, event: &Event, worker: &str) {
    if !exporting() {
        return;
    }
    messaging(span, &event.subject, &event.id, "process");
    span.set_attribute("messaging.consumer.group.name", worker.to_owned());
    if let Ok(data) = event.data_json() {
        data_attributes(span, &data);
    }
}

/// The PRODUCER span of publishing `event` as `id` on `subject`, child of the context the
/// event keeps (published outside a handler) or of the current span; `None` unless spans are
/// exported.
pub fn publishing(
    event: &Outgoing,
    subject: &str,
    id: &str,
    change_id: Option<&str>,
) -> Option<tracing::Span> {
    if !exporting() {
        return None;
    }
    let span = tracing::info_span!(
        "publish",
        otel.name = format!("publish {}", event.spec.event_type),
        otel.kind = "producer",
        event_type = event.spec.event_type,
        change_id,
    );
    if let Some(kept) = &event.traceparent {
        set_parent_from(&span, kept);
    }
    messaging(&span, subject, id, "send");
    let data = if event.content_type == CONTENT_TYPE_JSON {
        serde_json::from_slice(&event.payload).ok()
    } else {
        flotilla_proto::json::protobuf_to_json(event.spec.message, &event.payload).ok()
    };
    if let Some(data) = data {
        data_attributes(&span, &data);
    }
    Some(span)
}

/// OpenTelemetry's HTTP server attributes of a `method` request to `route` answered `status`;
/// an answer in the 5xx range marks the span an error. For a SERVER span (`otel.kind =
/// "server"`).
pub fn http_server(span: &tracing::Span, method: &'static str, route: &'static str, status: u16) {
    span.set_attribute("http.request.method", method);
    span.set_attribute("http.route", route);
    span.set_attribute("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.set_status(opentelemetry::trace::Status::error(format!(
            "HTTP {status}"
        )));
    }
}

/// OpenTelemetry's messaging attributes of an operation on one message.
fn messaging(span: &tracing::Span, subject: &str, id: &str, operation: &'static str) {
    span.set_attribute("messaging.system", MESSAGING_SYSTEM);
    span.set_attribute("messaging.destination.name", subject.to_owned());
    span.set_attribute("messaging.message.id", id.to_owned());
    span.set_attribute("messaging.operation.type", operation);
}

/// The change's attributes found in an event's data (proto3 JSON).
fn data_attributes(span: &tracing::Span, data: &Value) {
    for (field, attribute) in DATA_FIELDS {
        if let Some(value) = data.get(field).and_then(Value::as_str)
            && !value.is_empty()
        {
            span.set_attribute(attribute, value.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn with(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, *v);
        }
        map
    }

    #[test]
    fn without_a_tracer_the_kept_context_is_what_a_handling_keeps() {
        let cause = with(&[(header::TRACEPARENT, PARENT)]);
        assert_eq!(traceparent(Some(&cause)).as_deref(), Some(PARENT));
        assert_eq!(traceparent(None), None);
        assert_eq!(traceparent(Some(&with(&[(header::TRACEPARENT, "")]))), None);
    }

    #[test]
    fn without_a_tracer_an_event_carries_its_kept_context_before_its_causes() {
        let cause = with(&[
            (
                header::TRACEPARENT,
                "00-11111111111111111111111111111111-2222222222222222-01",
            ),
            (header::TRACESTATE, "k=v"),
        ]);
        let mut headers = HeaderMap::new();
        inject(&mut headers, None, Some(PARENT), Some(&cause));
        assert_eq!(
            headers.get(header::TRACEPARENT).map(|v| v.as_str()),
            Some(PARENT),
            "a background publish continues the context kept with its state"
        );

        let mut headers = HeaderMap::new();
        inject(&mut headers, None, Some(""), Some(&cause));
        assert_eq!(
            headers.get(header::TRACEPARENT).map(|v| v.as_str()),
            cause.get(header::TRACEPARENT).map(|v| v.as_str()),
            "nothing kept: the cause's context passes through"
        );
        assert_eq!(
            headers.get(header::TRACESTATE).map(|v| v.as_str()),
            Some("k=v")
        );
    }
}
