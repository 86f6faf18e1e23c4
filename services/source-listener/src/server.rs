//! The HTTP side: routes, reading bodies within the limit, publishing, answering.
//!
//! A token endpoint's sender is authenticated from the headers first (401 before a byte of the
//! body is read). A delivery is then read (413 past `FLOTILLA_MAX_BODY`, 408 when slower than
//! `FLOTILLA_REQUEST_TIMEOUT`, 503 at once past `FLOTILLA_MAX_IN_FLIGHT`), handed to the pure
//! [`Intake`], and its events published; the answer is 202 only once JetStream acknowledged every one. While the
//! NATS connection is down the answer is 503 at once, without waiting for a publish timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::connection::State;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::extract::State as Shared;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_LENGTH;
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use flotilla_bus::{Bus, Health, Outgoing, Process, Published, Publisher};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::sync::Semaphore;
use tracing::{Instrument, field};

use crate::answer::{self, Answer};
use crate::config::Config;
use crate::delivery::{Verdict, header};
use crate::error::WebhookError;
use crate::intake::{Endpoint, Intake};
use crate::metrics::Metrics;

/// The worker's name: `ce-source` is `flotilla/source-listener`.
pub const WORKER: &str = "source-listener";

/// Room left for the envelope headers when checking an event against NATS' `max_payload`.
const HEADER_ALLOWANCE: usize = 4096;

/// The webhook intake: cheap to clone, one per process.
#[derive(Clone)]
pub struct SourceListener {
    inner: Arc<Inner>,
}

struct Inner {
    intake: Intake,
    publisher: Publisher,
    client: async_nats::Client,
    max_body: usize,
    publish_timeout: Duration,
    request_timeout: Duration,
    /// One permit per delivery whose sender is known, being read or handled
    /// (`FLOTILLA_MAX_IN_FLIGHT`).
    in_flight: Semaphore,
    /// One permit per body read before its sender can be known (a signed endpoint's): half of
    /// `FLOTILLA_MAX_IN_FLIGHT` again, apart from `in_flight`.
    unverified: Semaphore,
    max_in_flight: usize,
    metrics: Metrics,
}

impl std::fmt::Debug for SourceListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceListener")
            .field("intake", &self.inner.intake)
            .field("max_body", &self.inner.max_body)
            .finish_non_exhaustive()
    }
}

impl SourceListener {
    /// A listener publishing on `bus`, with its metrics and readiness registered in `health`.
    pub fn new(bus: &Bus, config: Config, health: &Health) -> SourceListener {
        health.watch_connection(bus.client());
        SourceListener {
            inner: Arc::new(Inner {
                intake: Intake::new(config.secrets, config.filters).with_tokens(config.tokens),
                publisher: bus.publisher(WORKER),
                client: bus.client().clone(),
                max_body: config.max_body,
                publish_timeout: config.publish_timeout,
                request_timeout: config.request_timeout,
                in_flight: Semaphore::new(config.max_in_flight),
                unverified: Semaphore::new(unverified_slots(config.max_in_flight)),
                max_in_flight: config.max_in_flight,
                metrics: Metrics::register(health),
            }),
        }
    }

    /// Serves the webhooks on `process`, whose connections get `FLOTILLA_REQUEST_TIMEOUT` to
    /// send their headers as they get it to send their bodies.
    pub fn install(&self, process: &mut Process) {
        process
            .route(self.router())
            .header_timeout(self.inner.request_timeout);
    }

    /// The webhook routes alone, to merge into a router that serves more (as `flotilla up` does).
    pub fn router(&self) -> Router {
        Router::new()
            .route(Endpoint::GitHub.path(), post(github))
            .route(Endpoint::GitLab.path(), post(gitlab))
            .route(Endpoint::Generic.path(), post(generic))
            .with_state(self.clone())
    }

    /// Answers a delivery. It takes the whole request, not axum's `HeaderMap` extractor, which
    /// would copy every header.
    async fn receive(&self, endpoint: Endpoint, request: Request) -> Response {
        let started = Instant::now();
        let (parts, body) = request.into_parts();
        let headers = parts.headers;
        let provider = endpoint.provider(&headers);
        // A change's trace starts here (or under the sender's context, when it sends one).
        let span = tracing::info_span!(
            "webhook",
            otel.name = flotilla_bus::trace::exporting().then(|| span_name(
                endpoint,
                provider.as_str(),
                &headers
            )),
            otel.kind = "server",
            provider = provider.as_str(),
            event_id = field::Empty,
            event = field::Empty,
            token = field::Empty,
        );
        set_trace_parent(&span, &headers);
        let mut seen = Seen::default();
        let answer = self
            .answer(endpoint, &headers, body, &mut seen)
            .instrument(span.clone())
            .await;
        let event = seen.event.unwrap_or_else(|| endpoint.event_label(&headers));
        let response = span.in_scope(|| match answer {
            Ok(answer) => answer.log_and_respond(),
            Err(error) => answer::refused(error),
        });
        if flotilla_bus::trace::exporting() {
            flotilla_bus::trace::http_server(
                &span,
                "POST",
                endpoint.path(),
                response.status().as_u16(),
            );
        }
        let metrics = &self.inner.metrics;
        metrics.observe(provider, event, response.status(), started.elapsed());
        if let Some(token) = seen.token {
            metrics.observe_token(token, response.status());
        }
        response
    }

    /// The answer to a delivery; what it learnt of the delivery on the way goes in `seen`.
    ///
    /// A token endpoint authenticates from the headers, before it takes a slot or reads a
    /// byte of the body: a sender without the token holds nothing. A signed endpoint can only
    /// authenticate once it has the body, so it reads in slots of its own (`unverified`) and
    /// moves to an authenticated slot once the signature holds; unauthenticated reads never
    /// take the slots of senders who proved who they are.
    async fn answer(
        &self,
        endpoint: Endpoint,
        headers: &HeaderMap,
        body: Body,
        seen: &mut Seen,
    ) -> Result<Answer, WebhookError> {
        let inner = &self.inner;
        let sender = inner.intake.sender(endpoint, headers)?;
        if let Some(token) = sender.token() {
            tracing::Span::current().record("token", token);
            seen.token = Some(token.to_owned());
        }
        // Shed load at once rather than queue: a queued delivery would wait past the sender's
        // own timeout (GitHub gives up after 10 s) and be sent again anyway.
        let slots = if sender.is_authenticated() {
            &inner.in_flight
        } else {
            &inner.unverified
        };
        let permit = slots.try_acquire().map_err(|_| self.busy())?;
        let timeout = inner.request_timeout;
        let read = tokio::time::timeout(timeout, read_body(headers, body, inner.max_body));
        let body = read
            .await
            .map_err(|_| WebhookError::RequestTimeout(timeout))??;
        let (sender, _permit) = if sender.is_authenticated() {
            (sender, permit)
        } else {
            let sender = inner.intake.verify(endpoint, headers, &body)?;
            let authenticated = inner.in_flight.try_acquire().map_err(|_| self.busy())?;
            drop(permit);
            (sender, authenticated)
        };
        let parsed = inner.intake.parse(endpoint, sender, headers, &body)?;
        let span = tracing::Span::current();
        span.record("event_id", parsed.delivery.id.as_str());
        span.record("event", parsed.delivery.event);
        seen.event = Some(parsed.delivery.event);
        let delivery = inner.intake.admit(parsed)?;
        match delivery.verdict {
            Verdict::Ignore(why) => Ok(Answer::Ignored(why)),
            Verdict::Publish(events) => self.publish(events).await.map(Answer::Accepted),
        }
    }

    fn busy(&self) -> WebhookError {
        WebhookError::Busy(self.inner.max_in_flight)
    }

    async fn publish(&self, events: Vec<Outgoing>) -> Result<Vec<Published>, WebhookError> {
        let state = self.inner.client.connection_state();
        if state != State::Connected {
            return Err(WebhookError::Unavailable(state.to_string()));
        }
        // Refused here rather than by the server, whose refusal would read as retryable.
        let max = self.inner.client.server_info().max_payload;
        if let Some(size) = events
            .iter()
            .map(|e| e.payload.len() + HEADER_ALLOWANCE)
            .find(|size| *size > max)
        {
            return Err(WebhookError::EventTooLarge { size, max });
        }
        let timeout = self.inner.publish_timeout;
        // A publish cut short here may still be stored later; the sender's retry carries the
        // same delivery id, so JetStream drops it as a duplicate.
        match tokio::time::timeout(timeout, self.inner.publisher.publish_all(events, None)).await {
            Ok(Ok(published)) => Ok(published),
            Ok(Err(error)) => Err(WebhookError::Publish(error)),
            Err(_) => Err(WebhookError::PublishTimeout(timeout)),
        }
    }
}

async fn github(Shared(listener): Shared<SourceListener>, request: Request) -> Response {
    listener.receive(Endpoint::GitHub, request).await
}

async fn gitlab(Shared(listener): Shared<SourceListener>, request: Request) -> Response {
    listener.receive(Endpoint::GitLab, request).await
}

async fn generic(Shared(listener): Shared<SourceListener>, request: Request) -> Response {
    listener.receive(Endpoint::Generic, request).await
}

/// What a delivery's handling learnt for its metrics: its event label and generic token.
#[derive(Default)]
struct Seen {
    event: Option<&'static str>,
    token: Option<String>,
}

/// Slots for bodies read before their signature can be checked: half the authenticated ones, at
/// least one.
fn unverified_slots(max_in_flight: usize) -> usize {
    (max_in_flight / 2).max(1)
}

/// Reads the body, refusing it as soon as it is known to be over `limit`: from
/// `Content-Length` before reading anything, or while reading a chunked body.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, WebhookError> {
    let declared = header(headers, CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(WebhookError::TooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(WebhookError::TooLarge { limit }),
        Err(error) => Err(WebhookError::bad_request(format!(
            "cannot read the request body: {error}"
        ))),
    }
}

/// The webhook span's name in a trace UI: `webhook github push` (the event from its header),
/// `webhook generic`. Fixed when the span starts: OpenTelemetry names a span once.
fn span_name(endpoint: Endpoint, provider: &str, headers: &HeaderMap) -> String {
    match endpoint {
        Endpoint::Generic => format!("webhook {provider}"),
        _ => format!("webhook {provider} {}", endpoint.event_label(headers)),
    }
}

/// Continues the sender's trace, when it sends W3C trace context (a CI system might).
fn set_trace_parent(span: &tracing::Span, headers: &HeaderMap) {
    let mut carrier = async_nats::HeaderMap::new();
    for name in ["traceparent", "tracestate"] {
        if let Some(value) = header(headers, name) {
            carrier.insert(name, value);
        }
    }
    if !carrier.is_empty() {
        flotilla_bus::trace::set_parent(span, &carrier);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_without_content_length_is_cut_off_at_the_limit() {
        let headers = HeaderMap::new();
        let error = read_body(&headers, Body::from(vec![b'x'; 2048]), 1024)
            .await
            .expect_err("over the limit");
        assert_eq!(error.status().as_u16(), 413);
        let body = read_body(&headers, Body::from(vec![b'x'; 1024]), 1024)
            .await
            .expect("at the limit");
        assert_eq!(body.len(), 1024);
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, "999999".parse().expect("valid header"));
        let error = read_body(&headers, Body::empty(), 1024)
            .await
            .expect_err("declared too large");
        assert!(
            matches!(error, WebhookError::TooLarge { limit: 1024 }),
            "{error}"
        );
    }
}
