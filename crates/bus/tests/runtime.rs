//! The worker runtime in-process against a real nats-server: idempotent outputs, retries,
//! dead letters, progress, filtering and probes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use async_nats::jetstream::consumer;
use flotilla_bus::envelope::header;
use flotilla_bus::{Ctx, Event, HandlerError, Outgoing};
use flotilla_proto::v1::Build;

/// Counts calls and echoes `build.*` inputs as `build.succeeded`.
fn counting(calls: &Arc<AtomicUsize>) -> Arc<AtomicUsize> {
    calls.clone()
}

fn echo(event: &Event) -> Result<Vec<Outgoing>, HandlerError> {
    let build: Build = event.decode()?;
    let out = Outgoing::new("build.succeeded", &build.change_id, &build)
        .map_err(HandlerError::permanent)?;
    Ok(vec![out])
}

fn dlq_header<'a>(message: &'a async_nats::jetstream::Message, name: &str) -> &'a str {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_redelivered_input_produces_no_second_output() -> Result<()> {
    let (_server, bus) = common::setup().await?;
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = counting(&calls);
    let handler = move |event: Event, ctx: Ctx| {
        let seen = seen.clone();
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
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
    common::publish_build(&bus, "build.started", "ping-v1").await?;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while calls.load(Ordering::SeqCst) < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2, "handled twice");
    worker.shutdown().await?;
    let outputs = common::stored(
        &bus,
        "flotilla.build.succeeded.>",
        1,
        Duration::from_secs(1),
    )
    .await?;
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
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = counting(&calls);
    let handler = move |_event: Event, _ctx: Ctx| {
        let seen = seen.clone();
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            Err::<Vec<Outgoing>, _>(HandlerError::retryable("registry unreachable"))
        }
    };
    let worker = common::run(&bus, common::config("flaky", &["build.started.>"]), handler).await?;
    let input = common::publish_build(&bus, "build.started", "ping-v1").await?;

    let letters = common::stored_raw(
        &bus,
        "FLOTILLA_DLQ",
        "flotilla-dlq.flaky",
        1,
        Duration::from_secs(10),
    )
    .await?;
    let letter = letters.first().context("dead letter")?;
    assert_eq!(
        dlq_header(letter, header::DLQ_SUBJECT),
        "flotilla.build.started.ping-v1"
    );
    assert_eq!(dlq_header(letter, header::DLQ_WORKER), "flaky");
    assert_eq!(dlq_header(letter, header::DLQ_DELIVERIES), "3");
    let reason = dlq_header(letter, header::DLQ_REASON);
    assert!(reason.contains("registry unreachable"), "{reason}");
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    assert_eq!(
        dlq_header(letter, header::ID),
        input.id,
        "original headers kept"
    );
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

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
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
    let metrics = worker.health.encode_metrics();
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
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = counting(&calls);
    let handler = move |_event: Event, _ctx: Ctx| {
        let seen = seen.clone();
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            Err::<Vec<Outgoing>, _>(HandlerError::permanent("app `ping` is not configured"))
        }
    };
    let worker = common::run(
        &bus,
        common::config("strict", &["build.started.>"]),
        handler,
    )
    .await?;
    common::publish_build(&bus, "build.started", "ping-v1").await?;
    let letters = common::stored_raw(
        &bus,
        "FLOTILLA_DLQ",
        "flotilla-dlq.strict",
        1,
        Duration::from_secs(5),
    )
    .await?;
    let letter = letters.first().context("dead letter")?;
    assert_eq!(dlq_header(letter, header::DLQ_DELIVERIES), "1");
    assert_eq!(
        dlq_header(letter, header::DLQ_REASON),
        "app `ping` is not configured"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
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
    common::publish_build(&bus, "build.started", "ping-v1").await?;

    let letters = common::stored_raw(
        &bus,
        "FLOTILLA_DLQ",
        "flotilla-dlq.picky",
        1,
        Duration::from_secs(5),
    )
    .await?;
    let reason = dlq_header(letters.first().context("dead letter")?, header::DLQ_REASON);
    assert!(
        reason.contains("missing header `ce-specversion`"),
        "{reason}"
    );
    let outputs = common::stored(
        &bus,
        "flotilla.build.succeeded.>",
        1,
        Duration::from_secs(5),
    )
    .await?;
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
    common::publish_build(&bus, "build.started", "boom").await?;
    let letters = common::stored_raw(
        &bus,
        "FLOTILLA_DLQ",
        "flotilla-dlq.fragile",
        1,
        Duration::from_secs(10),
    )
    .await?;
    let reason = dlq_header(letters.first().context("dead letter")?, header::DLQ_REASON);
    assert!(
        reason.contains("handler panicked: index out of range on delivery 3"),
        "{reason}"
    );

    common::publish_build(&bus, "build.started", "fine").await?;
    let outputs = common::stored(
        &bus,
        "flotilla.build.succeeded.>",
        1,
        Duration::from_secs(5),
    )
    .await?;
    assert_eq!(outputs.len(), 1, "still working after the panics");
    worker.shutdown().await
}

#[tokio::test]
async fn progress_acks_keep_a_long_handler_from_being_redelivered() -> Result<()> {
    let (_server, bus) = common::setup().await?;
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = counting(&calls);
    let handler = move |event: Event, _ctx: Ctx| {
        let seen = seen.clone();
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2500)).await;
            echo(&event)
        }
    };
    let mut config = common::config("slow", &["build.started.>"]);
    config.ack_wait = Duration::from_millis(600);
    let worker = common::run(&bus, config, handler).await?;
    common::publish_build(&bus, "build.started", "ping-v1").await?;
    let outputs = common::stored(
        &bus,
        "flotilla.build.succeeded.>",
        1,
        Duration::from_secs(10),
    )
    .await?;
    assert_eq!(outputs.len(), 1);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "never redelivered while in progress"
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_worker_with_several_subjects_handles_only_those() -> Result<()> {
    let (_server, bus) = common::setup().await?;
    let handled = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = handled.clone();
    let handler = move |event: Event, _ctx: Ctx| {
        let log = log.clone();
        async move {
            log.lock()
                .map_err(|_| HandlerError::permanent("poisoned"))?
                .push(event.subject.clone());
            Ok(Vec::new())
        }
    };
    let subjects = &["build.started.>", "build.failed.>"];
    let worker = common::run(&bus, common::config("two", subjects), handler).await?;
    common::publish_build(&bus, "build.succeeded", "a").await?;
    common::publish_build(&bus, "build.failed", "b").await?;
    common::publish_build(&bus, "build.started", "c").await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while handled.lock().map(|h| h.len()).unwrap_or(0) < 2 && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut got = handled
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    got.sort();
    assert_eq!(
        got,
        vec!["flotilla.build.failed.b", "flotilla.build.started.c"]
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_retry_addressed_to_another_worker_is_skipped() -> Result<()> {
    let (_server, bus) = common::setup().await?;
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = counting(&calls);
    let handler = move |_event: Event, _ctx: Ctx| {
        let seen = seen.clone();
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            Ok(Vec::new())
        }
    };
    let worker = common::run(&bus, common::config("me", &["build.started.>"]), handler).await?;
    let publisher = bus.publisher("test");
    let for_other = Outgoing::new("build.started", "x", &common::build("x"))?
        .with_header(header::RETRY_FOR, "someone-else");
    let for_me = Outgoing::new("build.started", "y", &common::build("y"))?
        .with_header(header::RETRY_FOR, "me");
    publisher.publish(for_other).await?;
    publisher.publish(for_me).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while calls.load(Ordering::SeqCst) < 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let metrics = worker.health.encode_metrics();
    assert!(
        metrics.contains(r#"flotilla_events_skipped_total{worker="me"} 1"#),
        "{metrics}"
    );
    worker.shutdown().await
}
