//! Handling one delivery: filter, decode, run the handler with progress acks, publish, ack.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_nats::jetstream::{AckKind, Message};
use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::counters::Counters;
use super::delivery::Delivery;
use super::trouble::Trouble;
use super::{Ctx, Handler, WorkerConfig, dlq};
use crate::envelope::{Event, Outgoing, header_name};
use crate::error::HandlerError;
use crate::health::{FailureLabels, Health, Metrics, UnhandledLabels};
use crate::publish::Publisher;
use crate::subject;
use crate::tasks::panic_text;
use crate::topology::Bus;

/// How long a stopping worker keeps handing back messages it fetched but had not started.
const RELEASE_WITHIN: Duration = Duration::from_secs(1);

/// Why an attempt did not complete.
enum Failure {
    Handler(HandlerError),
    Panic(String),
    /// The handler ran past the worker's deadline and was cancelled.
    Deadline,
}

/// Everything a delivery needs, shared by the tasks of one worker.
pub(super) struct Job<H> {
    name: Arc<str>,
    counters: Counters,
    config: WorkerConfig,
    handler: Arc<H>,
    publisher: Publisher,
    dlq_subject: String,
    /// Set when the consumer takes more than the worker's subjects (several filters on a
    /// server without multi-filter consumers): what does not match is acked unhandled.
    client_filter: Option<Vec<String>>,
    health: Health,
    trouble: Arc<Trouble>,
    /// Cancelled when the worker starts to stop: a message held on its final delivery is then
    /// put back on its subject rather than abandoned.
    stopping: CancellationToken,
}

impl<H: Handler> Job<H> {
    pub(super) fn new(
        bus: &Bus,
        config: &WorkerConfig,
        handler: Arc<H>,
        health: &Health,
        stopping: CancellationToken,
    ) -> Self {
        let trouble = Arc::new(Trouble::new(config.handler_timeout));
        let check = trouble.clone();
        health.check(&config.name, move || check.why());
        let spec = config.consumer_spec();
        let patterns = spec.patterns(bus.names());
        let client_filter =
            (patterns.len() > 1 && !bus.supports_multi_filter()).then_some(patterns);
        Job {
            name: Arc::from(config.name.as_str()),
            counters: Counters::new(health, &config.name),
            config: config.clone(),
            handler,
            publisher: bus.publisher(&config.name),
            dlq_subject: format!(
                "{}.{}",
                bus.names().dlq_prefix,
                subject::sanitize_key(&config.name)
            ),
            client_filter,
            health: health.clone(),
            trouble,
            stopping,
        }
    }

    fn metrics(&self) -> &Metrics {
        self.health.metrics()
    }

    pub(super) async fn process(&self, message: Message) {
        let started = Instant::now();
        let delivery = Delivery::new(message);
        if delivery.delivered > 1 {
            self.counters.redelivered().inc();
        }
        if self.skips(&delivery) {
            self.counters.skipped().inc();
            delivery.settle(AckKind::Ack).await;
            return;
        }
        let event = match Event::from_shared(
            &delivery.subject,
            delivery.headers.clone(),
            delivery.payload.clone(),
        ) {
            Ok(event) => event,
            Err(e) => {
                let span = tracing::info_span!(
                    "handle",
                    worker = %self.name,
                    subject = %delivery.subject,
                    stream_seq = delivery.stream_seq,
                    delivered = delivery.delivered,
                );
                let _enter = span.enter();
                self.count_failure("envelope");
                self.give_up(&delivery, &e.to_string(), AckKind::Term).await;
                return;
            }
        };
        // Every field given at creation (in the order the log has always shown them): each one
        // recorded afterwards is another call into every layer. The OpenTelemetry name and kind
        // are only given (and the name only computed) when spans are exported.
        let span = tracing::info_span!(
            "handle",
            otel.name = crate::trace::handle_name(event.event_type()),
            otel.kind = crate::trace::exporting().then_some("consumer"),
            worker = %self.name,
            subject = %delivery.subject,
            stream_seq = delivery.stream_seq,
            delivered = delivery.delivered,
            event_id = %event.id,
            event_type = event.event_type(),
            change_id = event.change_id.as_deref(),
        );
        crate::trace::set_parent(&span, &event.headers);
        crate::trace::describe_handling(&span, &event, &self.name);
        self.attempt(&delivery, event).instrument(span).await;
        self.counters
            .duration()
            .observe(started.elapsed().as_secs_f64());
    }

    fn skips(&self, delivery: &Delivery) -> bool {
        if let Some(patterns) = &self.client_filter
            && !patterns
                .iter()
                .any(|p| subject::matches(p, &delivery.subject))
        {
            return true;
        }
        delivery
            .headers
            .get(header_name::RETRY_FOR)
            .is_some_and(|target| target.as_str() != &*self.name)
    }

    async fn attempt(&self, delivery: &Delivery, event: Event) {
        if delivery.delivered as i64 > self.config.max_deliver {
            let reason = format!(
                "no attempt finished in {} deliveries (the worker stopped, or exceeded the ack wait of {}, while handling it; or its dead letter could not be stored)",
                self.config.max_deliver,
                humantime::format_duration(self.config.ack_wait)
            );
            self.count_failure("unfinished");
            self.give_up(delivery, &reason, AckKind::Ack).await;
            return;
        }
        let ctx = Ctx {
            worker: self.name.clone(),
            publisher: self.publisher.clone(),
            delivered: delivery.delivered,
            stream_seq: delivery.stream_seq,
            dry_run: None,
        };
        // The handler owns its event; the copy (headers shared) is the cause of the outputs.
        match self.run_handler(delivery, event.clone(), ctx).await {
            Ok(outputs) => match self.publisher.publish_all(outputs, Some(&event)).await {
                Ok(published) => {
                    delivery.settle(AckKind::Ack).await;
                    self.counters.handled().inc();
                    tracing::debug!(outputs = published.len(), "handled");
                }
                Err(e) => {
                    self.retry_or_give_up(delivery, "publish", &e.to_string())
                        .await;
                }
            },
            Err(Failure::Handler(e)) if e.is_unhandled() => {
                self.count_unhandled(event.event_type());
                tracing::debug!(reason = %e, "not handled by this worker");
                delivery.settle(AckKind::Ack).await;
            }
            Err(Failure::Handler(e)) if e.is_retryable() => {
                self.retry_or_give_up(delivery, e.metric_label(), &e.message())
                    .await;
            }
            Err(Failure::Handler(e)) => {
                self.count_failure(e.metric_label());
                self.give_up(delivery, &e.message(), AckKind::Term).await;
            }
            Err(Failure::Panic(text)) => {
                let reason = format!("handler panicked: {text}");
                self.retry_or_give_up(delivery, "panic", &reason).await;
            }
            Err(Failure::Deadline) => {
                let deadline = humantime::format_duration(self.config.handler_timeout);
                let reason = format!("handler ran past its deadline of {deadline}; cancelled");
                tracing::warn!(subject = %delivery.subject, %deadline, "handler ran past its deadline; cancelled");
                self.retry_or_give_up(delivery, "deadline", &reason).await;
            }
        }
    }

    /// Runs the handler, sending progress acks so a long handler keeps its event, cancelling it
    /// at its deadline, and turning a panic into a failure instead of a dead worker.
    async fn run_handler(
        &self,
        delivery: &Delivery,
        event: Event,
        ctx: Ctx,
    ) -> Result<Vec<Outgoing>, Failure> {
        let deadline = tokio::time::Instant::now() + self.config.handler_timeout;
        let work = AssertUnwindSafe(self.handler.handle(event, ctx)).catch_unwind();
        tokio::pin!(work);
        // Noted before the first poll: a handler that blocks its thread there is the one that
        // most needs to show on `/readyz`.
        let _running = self.trouble.running(&delivery.subject);
        // A handler that finishes at its first poll (a pure transform) needs no progress timer:
        // arming one costs a timer-wheel entry per event.
        if let Poll::Ready(result) = futures::poll!(&mut work) {
            self.trouble.finished_in_time();
            return outcome(result);
        }
        let result = tokio::time::timeout_at(deadline, self.keep_alive(delivery, work)).await;
        match result {
            Ok(result) => {
                self.trouble.finished_in_time();
                outcome(result)
            }
            Err(_) => {
                // Dropping the handler's future cancels it at its next await point.
                self.trouble.timed_out();
                Err(Failure::Deadline)
            }
        }
    }

    /// Runs `work`, sending progress acks meanwhile so the server does not redeliver the event.
    async fn keep_alive<F: std::future::Future>(&self, delivery: &Delivery, work: F) -> F::Output {
        tokio::pin!(work);
        let every = (self.config.ack_wait / 3).max(Duration::from_millis(100));
        let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                result = &mut work => return result,
                _ = progress.tick() => delivery.settle(AckKind::Progress).await,
            }
        }
    }

    async fn retry_or_give_up(&self, delivery: &Delivery, label: &str, reason: &str) {
        self.count_failure(label);
        let delivered = delivery.delivered;
        if delivered as i64 >= self.config.max_deliver {
            let reason = format!("{reason} (gave up after {delivered} attempts)");
            self.give_up(delivery, &reason, AckKind::Ack).await;
            return;
        }
        let delay = self.config.backoff_after(delivered);
        tracing::warn!(error = %reason, retry_in = ?delay, "attempt failed; will retry");
        delivery.settle(AckKind::Nak(Some(delay))).await;
    }

    /// Copies the message to the dead-letter stream, then settles it with `settle`. If the copy
    /// cannot be stored the message is nak'd instead, so nothing is lost; on the server's last
    /// delivery a nak would lose it, so it is held instead (see [`Job::hold`]).
    ///
    /// Boxed: its state (the copy, the hold loop and their progress timers) would otherwise be
    /// part of every event's future, doubling the task spawned per event (7.5 KB instead of
    /// 3.7 KB), copied and allocated on every event for a path few of them take.
    async fn give_up(&self, delivery: &Delivery, reason: &str, settle: AckKind) {
        Box::pin(self.dead_letter(delivery, reason, settle)).await;
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str, settle: AckKind) {
        let letter = dlq::Letter {
            worker: &self.name,
            subject: &delivery.subject,
            headers: &delivery.headers,
            payload: &delivery.payload,
            reason,
            delivered: delivery.delivered,
            stream_seq: delivery.stream_seq,
        };
        match self
            .keep_alive(
                delivery,
                dlq::send(&self.publisher, &self.dlq_subject, &letter),
            )
            .await
        {
            Ok(()) => self.dead_lettered(delivery, reason, settle).await,
            Err(e) if (delivery.delivered as i64) <= self.config.max_deliver => {
                self.trouble.dead_letter_failed(&e.to_string());
                let delay = self.config.backoff_after(delivery.delivered);
                tracing::error!(error = %e, retry_in = ?delay, "could not dead-letter; will retry");
                delivery.settle(AckKind::Nak(Some(delay))).await;
            }
            Err(e) => self.hold(delivery, &letter, settle, e).await,
        }
    }

    async fn dead_lettered(&self, delivery: &Delivery, reason: &str, settle: AckKind) {
        self.trouble.dead_letter_stored();
        tracing::error!(error = %reason, dlq = %self.dlq_subject, "event dead-lettered");
        self.counters.dead_lettered().inc();
        delivery.settle(settle).await;
    }

    /// The server's last delivery of a message whose dead letter cannot be stored: the server
    /// never redelivers it, whether nak'd or left to time out, so the worker keeps it (progress
    /// acks) and tries again with backoff until the copy is stored. If the worker stops first,
    /// the message is put back on its subject for this worker; only if that fails too is it
    /// left, still in the stream at its sequence, with an error naming it.
    async fn hold(
        &self,
        delivery: &Delivery,
        letter: &dlq::Letter<'_>,
        settle: AckKind,
        error: crate::error::BusError,
    ) {
        let mut error = error;
        let mut attempt = 1;
        loop {
            self.trouble.dead_letter_failed(&error.to_string());
            let delay = self.config.backoff_after(attempt);
            tracing::error!(
                error = %error,
                retry_in = ?delay,
                "could not dead-letter on the last delivery; holding the event"
            );
            let stopped = self
                .keep_alive(delivery, async {
                    tokio::select! {
                        () = self.stopping.cancelled() => true,
                        () = tokio::time::sleep(delay) => false,
                    }
                })
                .await;
            if stopped {
                break;
            }
            match self
                .keep_alive(
                    delivery,
                    dlq::send(&self.publisher, &self.dlq_subject, letter),
                )
                .await
            {
                Ok(()) => return self.dead_lettered(delivery, letter.reason, settle).await,
                Err(e) => error = e,
            }
            attempt += 1;
        }
        match self
            .keep_alive(delivery, dlq::requeue(&self.publisher, letter))
            .await
        {
            Ok(()) => {
                tracing::warn!(
                    error = %error,
                    "stopping with a dead letter unstored; event put back on its subject for this worker"
                );
                delivery.settle(AckKind::Ack).await;
            }
            Err(e) => tracing::error!(
                error = %e,
                dead_letter_error = %error,
                stream_seq = delivery.stream_seq,
                "stopping with a dead letter unstored and the event not put back: it stays in the stream at stream_seq, delivered no more"
            ),
        }
    }

    /// Hands back messages fetched but not started, so another replica takes them soon instead
    /// of after the ack wait. Bounded: at most one pull batch, within a second, because the
    /// stream keeps pulling while it is read. The nak is delayed past that second: an
    /// immediate one comes straight back to this stream, and each bounce spends a delivery
    /// (enough of them, and the event is never handled). A message on the server's last
    /// delivery is never nak'd (that would be final): it is dead-lettered now, as any replica
    /// would do with it.
    pub(super) async fn release_buffered(
        &self,
        messages: &mut async_nats::jetstream::consumer::pull::Stream,
        batch: usize,
    ) {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + RELEASE_WITHIN;
        for _ in 0..batch {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let wait = Duration::from_millis(20).min(left);
            let Ok(Some(Ok(message))) = tokio::time::timeout(wait, messages.next()).await else {
                return;
            };
            let last = message
                .info()
                .is_ok_and(|info| info.delivered > self.config.max_deliver);
            if last {
                self.process(message).await;
                continue;
            }
            let nak = AckKind::Nak(Some(RELEASE_WITHIN + Duration::from_secs(1)));
            if let Err(e) = message.ack_with(nak).await {
                tracing::debug!(error = %e, "could not hand back a fetched event; it will be redelivered");
            }
        }
    }

    fn count_unhandled(&self, event_type: &str) {
        self.metrics()
            .unhandled
            .get_or_create(&UnhandledLabels {
                worker: self.name.to_string(),
                r#type: event_type.to_owned(),
            })
            .inc();
    }

    fn count_failure(&self, reason: &str) {
        self.metrics()
            .failed
            .get_or_create(&FailureLabels {
                worker: self.name.to_string(),
                reason: reason.to_owned(),
            })
            .inc();
    }
}

/// What a handler's run (panic caught) amounts to.
fn outcome(
    result: std::thread::Result<Result<Vec<Outgoing>, HandlerError>>,
) -> Result<Vec<Outgoing>, Failure> {
    match result {
        Ok(Ok(outputs)) => Ok(outputs),
        Ok(Err(e)) => Err(Failure::Handler(e)),
        Err(panic) => Err(Failure::Panic(panic_text(panic.as_ref()))),
    }
}
