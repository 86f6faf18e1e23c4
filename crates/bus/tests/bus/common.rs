//! Shared fixtures of the bus's component tests: a private server with Flotilla's streams, an
//! in-process worker, and reading back what was stored.

#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use flotilla_bus::{Bus, Event, EventType, Handler, Outgoing, Published, WorkerConfig};
use flotilla_proto::v1::Build;
use flotilla_testing::NatsServer;

/// A private server with FLOTILLA, FLOTILLA_DLQ and the env registry.
pub async fn setup() -> Result<(NatsServer, Bus)> {
    let (server, bus) = flotilla_testing::bus().await?;
    Ok((server, bus))
}

/// A worker config with test-friendly timings.
pub fn config(name: &str, subjects: &[&str]) -> WorkerConfig {
    let mut config = WorkerConfig::new(name, subjects);
    config.backoff = Duration::from_millis(50);
    config.max_deliver = 3;
    config.grace = Duration::from_secs(5);
    config
}

pub use flotilla_testing::Served as Running;

/// Starts `handler` as worker `config` and returns once its consumer is bound.
pub async fn run(bus: &Bus, config: WorkerConfig, handler: impl Handler) -> Result<Running> {
    flotilla_testing::run_worker(bus, config, handler).await
}

pub fn build(change_id: &str) -> Build {
    Build {
        change_id: change_id.into(),
        app: "ping".into(),
        version: "v20240101120000-1a2b3c4".into(),
        ..Default::default()
    }
}

pub async fn publish_build(bus: &Bus, event_type: EventType, change_id: &str) -> Result<Published> {
    let event = Outgoing::new(event_type, change_id, &build(change_id))?.with_change_id(change_id);
    Ok(bus.publisher("test").publish(event).await?)
}

/// The raw messages stored under `filter` in `stream`, waiting up to `within` for `want`.
pub async fn stored_raw(
    bus: &Bus,
    stream: &str,
    filter: &str,
    want: usize,
    within: Duration,
) -> Result<Vec<async_nats::jetstream::Message>> {
    flotilla_testing::stored_messages(bus.jetstream(), stream, filter, want, within)
        .await
        .map_err(|e| anyhow!(e))
}

/// The events stored under `filter` on the main stream.
pub async fn stored(bus: &Bus, filter: &str, want: usize, within: Duration) -> Result<Vec<Event>> {
    flotilla_testing::stored_events(bus, filter, want, within)
        .await
        .map_err(|e| anyhow!(e))
}

/// The first dead letter of `worker`, waiting up to `within` for it.
pub async fn dead_letter(
    bus: &Bus,
    worker: &str,
    within: Duration,
) -> Result<async_nats::jetstream::Message> {
    let subject = format!("flotilla-dlq.{worker}");
    stored_raw(bus, "FLOTILLA_DLQ", &subject, 1, within)
        .await?
        .into_iter()
        .next()
        .with_context(|| format!("no dead letter on {subject} within {within:?}"))
}

/// A header of a stored message, empty when absent.
pub fn header<'a>(message: &'a async_nats::jetstream::Message, name: &str) -> &'a str {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str())
        .unwrap_or_default()
}

/// Counts handler calls, shared between a test and the handler it runs.
#[derive(Clone, Default)]
pub struct Calls(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Calls {
    pub fn record(&self) -> usize {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    }

    pub fn count(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until at least `n` calls happened, then a moment more so that an extra call
    /// (the bug a test looks for) would show; returns the count.
    pub async fn settle_at(&self, n: usize, within: Duration) -> usize {
        flotilla_testing::eventually(within, || self.count() >= n).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.count()
    }
}
