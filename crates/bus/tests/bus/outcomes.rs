//! How the runtime accounts for a handler's outcome: an unhandled type is acked and counted,
//! and a typed error's own label reaches the failure metric.

use crate::common;

use std::time::Duration;

use anyhow::Result;
use async_nats::jetstream::consumer;
use common::{Calls, header};
use flotilla_bus::envelope::header as h;
use flotilla_bus::{Bus, Ctx, Event, EventType, HandlerError, Labelled, Outgoing};

const SOON: Duration = Duration::from_secs(10);

/// Handles `build.started` only, the way a worker's dispatch on the enum does.
async fn started_only(event: Event, calls: Calls) -> Result<Vec<Outgoing>, HandlerError> {
    calls.record();
    match event.kind() {
        Some(EventType::BuildStarted) => Ok(Vec::new()),
        _ => Err(HandlerError::unhandled(event.event_type())),
    }
}

async fn ack_pending(bus: &Bus, worker: &str) -> Result<usize> {
    let mut consumer = bus
        .stream()
        .await?
        .get_consumer::<consumer::pull::Config>(worker)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(consumer.info().await?.num_ack_pending)
}

#[tokio::test]
async fn an_event_the_handler_does_not_handle_is_acked_and_counted() -> Result<()> {
    let (_server, bus) = common::setup().await?;
    let calls = Calls::default();
    let seen = calls.clone();
    let handler = move |event: Event, _ctx: Ctx| started_only(event, seen.clone());
    let worker = common::run(&bus, common::config("narrow", &["build.>"]), handler).await?;
    common::publish_build(&bus, EventType::BuildFailed, "ping-v1").await?;
    common::publish_build(&bus, EventType::BuildStarted, "ping-v2").await?;

    assert_eq!(calls.settle_at(2, SOON).await, 2, "each event handled once");
    let metrics = worker.health().encode_metrics();
    assert!(
        metrics
            .contains(r#"flotilla_events_unhandled_total{worker="narrow",type="build.failed"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"flotilla_events_handled_total{worker="narrow"} 1"#),
        "only the handled event counts as handled: {metrics}"
    );
    assert!(
        !metrics.contains("flotilla_events_failed_total{"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("flotilla_events_dead_lettered_total{"),
        "{metrics}"
    );
    assert_eq!(ack_pending(&bus, "narrow").await?, 0, "both acked");
    worker.shutdown().await
}

/// A service's typed error: the production manifest lacks the app.
#[derive(Debug, thiserror::Error)]
#[error("envs/production.json")]
struct ManifestError(#[source] std::io::Error);

impl Labelled for ManifestError {
    fn metric_label(&self) -> &'static str {
        "manifest"
    }

    fn is_retryable(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn a_typed_errors_label_reaches_the_failure_metric_and_its_causes_the_dead_letter()
-> Result<()> {
    let (_server, bus) = common::setup().await?;
    let handler = |_event: Event, _ctx: Ctx| async {
        let cause = std::io::Error::other("app ping is not in the production manifest");
        Err::<Vec<Outgoing>, HandlerError>(ManifestError(cause).into())
    };
    let worker = common::run(&bus, common::config("typed", &["build.started.>"]), handler).await?;
    common::publish_build(&bus, EventType::BuildStarted, "ping-v1").await?;

    let letter = common::dead_letter(&bus, "typed", SOON).await?;
    assert_eq!(
        header(&letter, h::DLQ_REASON),
        "envs/production.json: app ping is not in the production manifest"
    );
    let metrics = worker.health().encode_metrics();
    assert!(
        metrics.contains(r#"flotilla_events_failed_total{worker="typed",reason="manifest"} 1"#),
        "{metrics}"
    );
    worker.shutdown().await
}
