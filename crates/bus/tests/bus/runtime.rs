//! The worker runtime in-process against a real nats-server: idempotent outputs, retries,
//! dead letters, progress, filtering and probes.

use crate::common;

use std::time::Duration;

use anyhow::Result;
use async_nats::jetstream::consumer;
use common::{Calls, header};
use flotilla_bus::envelope::header as h;
use flotilla_bus::{Ctx, Event, EventType, HandlerError, Outgoing};
use flotilla_proto::v1::Build;

const SOON: Duration = Duration::from_secs(10);

/// Echoes a `build.*` input as `build.succeeded`.
fn echo(event: &Event) -> Result<Vec<Outgoing>, HandlerError> {
    let build: Build = event.decode()?;
    let out = Outgoing::new(EventType::BuildSucceeded, &build.change_id, &build)
        .map_err(HandlerError::permanent)?;
    Ok(vec![out])
}

/// A handler that counts its calls and always fails with `error`.
fn failing(
    calls: Calls,
    error: fn() -> HandlerError,
) -> impl Fn(Event, Ctx) -> std::future::Ready<Result<Vec<Outgoing>, HandlerError>> + Send + Sync {
    move |_event, _ctx| {
        calls.record();
        std::future::ready(Err(error()))
    }
}

#[tokio::test]
async fn a_redelivered_input_produces_no_second_output() -> Result<()> {
    let (_server, bus) = common::setup().await?;
    let calls = Calls::default();
    let seen = calls.clone();
    let handler = move |event: Event, ctx: Ctx| {
        let seen = seen.clone();
        async move {
            seen.record();
            let outputs = echo(&event)?;
            if ctx.delivered == 1 {
                // Outputs stored, then the attempt fails before the ack: the input comes back.
                ctx.publisher.publish_all(outputs, Some(&event)).await?;
                return Err(HandlerError::retryable("lost before ack"));
            }
            Ok(outputs)
        }
    };
    let worker = common::run(&bus, common::config("echo", &["build.started.>"]), handler).await?;
    common::publish_build(&bus, EventType::BuildStarted, "ping-v1").await?;

    assert_eq!(calls.settle_at(2, SOON).await, 2, "handled twice");
    worker.shutdown().await?;
    let outputs = common::stored(&bus, "flotilla.build.succeeded.>", 1, SOON).await?;
    assert_eq!(
        outputs.len(),
        1,
        "the second attempt's output was a duplicate"
    );
    Ok(())
}

#[tokio::test]
async fn retryable_failures_are_dead_lettered_after_max_deliver_with_the_reason() -> Result<()> {
    let (_server, bus) = common::setup().await?;
    let calls = Calls::default();
    let handler = failing(calls.clone(), || {
        HandlerError::retryable("registry unreachable")
    });
    let worker = common::run(&bus, common::config("flaky", &["build.started.>"]), handler).await?;
    let input = common::publish_build(&bus, EventType::BuildStarted, "ping-v1").await?;

    let letter = common::dead_letter(&bus, "flaky", SOON).await?;
    assert_eq!(
        header(&letter, h::DLQ_SUBJECT),
        "flotilla.build.started.ping-v1"
    );
    assert_eq!(header(&letter, h::DLQ_WORKER), "flaky");
    assert_eq!(header(&letter, h::DLQ_DELIVERIES), "3");
    let reason = header(&letter, h::DLQ_REASON);
    assert!(reason.contains("registry unreachable"), "{reason}");
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    assert_eq!(header(&letter, h::ID), input.id, "original headers kept");
    let copy = Event::from_parts(
        &letter.subject,
        letter.headers.as_ref(),
        letter.payload.clone(),
    )?;
    assert_eq!(
        copy.decode::<Build>()?,
        common::build("ping-v1"),
        "payload kept"
    );

    assert_eq!(
        calls.settle_at(3, SOON).await,
        3,
        "no attempt after the dead letter"
    );
    let mut consumer = bus
        .stream()
        .await?
        .get_consumer::<consumer::pull::Config>("flaky")
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(consumer.info().await?.num_ack_pending, 0, "input acked");
    let metrics = worker.health().encode_metrics();
    assert!(
        metrics.contains(r#"flotilla_events_dead_lettered_total{worker="flaky"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"flotilla_events_redelivered_total{worker="flaky"} 2"#),
        "{metrics}"
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_permanent_failure_is_dead_lettered_at_once() -> Result<()> {
    let (_server, bus) = common::setup().await?;
    let calls = Calls::default();
    let handler = failing(calls.clone(), || {
        HandlerError::permanent("app `ping` is not configured")
    });
    let worker = common::run(
        &bus,
        common::config("strict", &["build.started.>"]),
        handler,
    )
    .await?;
    common::publish_build(&bus, EventType::BuildStarted, "ping-v1").await?;

    let letter = common::dead_letter(&bus, "strict", SOON).await?;
    assert_eq!(header(&letter, h::DLQ_DELIVERIES), "1");
    assert_eq!(
        header(&letter, h::DLQ_REASON),
        "app `ping` is not configured"
    );
    assert_eq!(calls.settle_at(1, SOON).await, 1);
    worker.shutdown().await
}

#[tokio::test]
async fn a_message_without_an_envelope_is_dead_lettered_and_the_worker_keeps_going() -> Result<()> {
    let (_server, bus) = common::setup().await?;
    let handler = |event: Event, _ctx: Ctx| async move { echo(&event) };
    let worker = common::run(&bus, common::config("picky", &["build.started.>"]), handler).await?;
    bus.jetstream()
        .publish("flotilla.build.started.junk", "not an event".into())
        .await?
        .await?;
    common::publish_build(&bus, EventType::BuildStarted, "ping-v1").await?;

    let letter = common::dead_letter(&bus, "picky", SOON).await?;
    let reason = header(&letter, h::DLQ_REASON);
    assert!(
        reason.contains("missing header `ce-specversion`"),
        "{reason}"
    );
    let outputs = common::stored(&bus, "flotilla.build.succeeded.>", 1, SOON).await?;
    assert_eq!(
        outputs.len(),
        1,
        "the good event after the bad one was handled"
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_panicking_handler_is_retried_then_dead_lettered_without_crashing() -> Result<()> {
    let (_server, bus) = common::setup().await?;
    let handler = |event: Event, ctx: Ctx| async move {
        if event.key == "boom" {
            panic!("index out of range on delivery {}", ctx.delivered);
        }
        echo(&event)
    };
    let worker = common::run(
        &bus,
        common::config("fragile", &["build.started.>"]),
        handler,
    )
    .await?;
    common::publish_build(&bus, EventType::BuildStarted, "boom").await?;

    let letter = common::dead_letter(&bus, "fragile", SOON).await?;
    let reason = header(&letter, h::DLQ_REASON);
    assert!(
        reason.contains("handler panicked: index out of range on delivery 3"),
        "{reason}"
    );
    common::publish_build(&bus, EventType::BuildStarted, "fine").await?;
    let outputs = common::stored(&bus, "flotilla.build.succeeded.>", 1, SOON).await?;
    assert_eq!(outputs.len(), 1, "still working after the panics");
    worker.shutdown().await
}

#[tokio::test]
async fn progress_acks_keep_a_long_handler_from_being_redelivered() -> Result<()> {
    let (_server, bus) = common::setup().await?;
    let calls = Calls::default();
    let seen = calls.clone();
    let handler = move |event: Event, _ctx: Ctx| {
        let seen = seen.clone();
        async move {
            seen.record();
            tokio::time::sleep(Duration::from_millis(2500)).await;
            echo(&event)
        }
    };
    let mut config = common::config("slow", &["build.started.>"]);
    config.ack_wait = Duration::from_millis(600);
    let worker = common::run(&bus, config, handler).await?;
    common::publish_build(&bus, EventType::BuildStarted, "ping-v1").await?;

    let outputs = common::stored(&bus, "flotilla.build.succeeded.>", 1, SOON).await?;
    assert_eq!(outputs.len(), 1);
    assert_eq!(
        calls.settle_at(1, SOON).await,
        1,
        "never redelivered while in progress"
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_worker_with_several_subjects_handles_only_those() -> Result<()> {
    let (_server, bus) = common::setup().await?;
    let subjects = &["build.started.>", "build.failed.>"];
    let handler = |event: Event, _ctx: Ctx| async move { echo(&event) };
    let worker = common::run(&bus, common::config("two", subjects), handler).await?;
    common::publish_build(&bus, EventType::BuildSucceeded, "a").await?;
    common::publish_build(&bus, EventType::BuildFailed, "b").await?;
    common::publish_build(&bus, EventType::BuildStarted, "c").await?;

    // "a" plus one output for each input the worker handled.
    common::stored(&bus, "flotilla.build.succeeded.>", 3, SOON).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = common::stored(&bus, "flotilla.build.succeeded.>", 0, Duration::ZERO).await?;
    let mut keys: Vec<_> = stored.iter().map(|e| e.key.as_str()).collect();
    keys.sort();
    assert_eq!(keys, vec!["a", "b", "c"], "b and c handled, a skipped");
    worker.shutdown().await
}

#[tokio::test]
async fn a_retry_addressed_to_another_worker_is_skipped() -> Result<()> {
    let (_server, bus) = common::setup().await?;
    let calls = Calls::default();
    let seen = calls.clone();
    let handler = move |_event: Event, _ctx: Ctx| {
        seen.record();
        std::future::ready(Ok::<_, HandlerError>(Vec::new()))
    };
    let worker = common::run(&bus, common::config("me", &["build.started.>"]), handler).await?;
    let publisher = bus.publisher("test");
    let for_other = Outgoing::new(EventType::BuildStarted, "x", &common::build("x"))?
        .with_header(h::RETRY_FOR, "someone-else");
    let for_me = Outgoing::new(EventType::BuildStarted, "y", &common::build("y"))?
        .with_header(h::RETRY_FOR, "me");
    publisher.publish(for_other).await?;
    publisher.publish(for_me).await?;

    assert_eq!(calls.settle_at(1, SOON).await, 1);
    let metrics = worker.health().encode_metrics();
    assert!(
        metrics.contains(r#"flotilla_events_skipped_total{worker="me"} 1"#),
        "{metrics}"
    );
    worker.shutdown().await
}
