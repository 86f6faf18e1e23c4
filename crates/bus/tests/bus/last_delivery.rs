//! A dead letter that cannot be stored on the server's last delivery: the event is held (or
//! put back on its subject when the worker stops), the worker reports it on `/readyz`, and once
//! the dead-letter stream takes letters again the letter arrives. Nothing is lost.

use crate::common;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_nats::jetstream::{consumer, stream};
use common::{Calls, header};
use flotilla_bus::envelope::header as h;
use flotilla_bus::topology::StreamLimits;
use flotilla_bus::{Bus, Ctx, Event, EventType, HandlerError, Outgoing};

const SOON: Duration = Duration::from_secs(10);

/// How the dead-letter stream is made to refuse letters.
#[derive(Clone, Copy, Debug)]
enum Broken {
    /// The stream is deleted: a publish finds no stream.
    Missing,
    /// One message allowed, discard new, and one stored: a publish is refused.
    Full,
}

async fn break_dlq(bus: &Bus, how: Broken) -> Result<()> {
    match how {
        Broken::Missing => {
            bus.jetstream().delete_stream("FLOTILLA_DLQ").await?;
        }
        Broken::Full => {
            let mut dlq = bus.dlq_stream().await?;
            let mut config = dlq.info().await?.config.clone();
            config.max_messages = 1;
            config.discard = stream::DiscardPolicy::New;
            bus.jetstream().update_stream(&config).await?;
            bus.jetstream()
                .publish("flotilla-dlq.filler", "filler".into())
                .await?
                .await?;
        }
    }
    Ok(())
}

async fn restore_dlq(bus: &Bus, how: Broken) -> Result<()> {
    match how {
        Broken::Missing => {
            bus.ensure_streams(&StreamLimits::default()).await?;
        }
        Broken::Full => {
            bus.dlq_stream()
                .await?
                .purge()
                .filter("flotilla-dlq.filler")
                .await?;
        }
    }
    Ok(())
}

/// Waits until the worker's consumer has delivered `n` times in all (redeliveries counted).
async fn delivered(bus: &Bus, worker: &str, n: u64) -> Result<()> {
    let mut consumer = bus
        .stream()
        .await?
        .get_consumer::<consumer::pull::Config>(worker)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let deadline = tokio::time::Instant::now() + SOON;
    while consumer.info().await?.delivered.consumer_sequence < n {
        if tokio::time::Instant::now() > deadline {
            bail!("{worker} did not reach {n} deliveries");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
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

/// A handler that always fails for good, counting its calls.
fn refusing(
    calls: Calls,
) -> impl Fn(Event, Ctx) -> std::future::Ready<Result<Vec<Outgoing>, HandlerError>> + Send + Sync {
    move |_event, _ctx| {
        calls.record();
        std::future::ready(Err(HandlerError::permanent("app `ping` is not configured")))
    }
}

/// The event is dead-lettered at once, the copy fails, the redeliveries fail the same way up
/// to the server's last delivery (max_deliver + 1): there a nak is final, so the runtime must
/// hold the event until the dead-letter stream takes it.
async fn a_letter_refused_on_the_last_delivery_arrives_once_the_dlq_is_back(
    worker: &str,
    how: Broken,
) -> Result<()> {
    let (_server, bus) = common::setup().await?;
    break_dlq(&bus, how).await?;
    let calls = Calls::default();
    let config = common::config(worker, &["build.started.>"]);
    let last = config.max_deliver as u64 + 1;
    let running = common::run(&bus, config, refusing(calls.clone())).await?;
    common::publish_build(&bus, EventType::BuildStarted, "ping-v1").await?;

    delivered(&bus, worker, last).await?;
    let health = running.health().clone();
    let reported = flotilla_testing::eventually(SOON, || {
        health
            .not_ready()
            .is_some_and(|why| why.contains(&format!("{worker}: cannot store dead letters")))
    })
    .await;
    assert!(
        reported,
        "not ready while dead letters fail: {:?}",
        health.not_ready()
    );
    assert_eq!(ack_pending(&bus, worker).await?, 1, "the event is held");

    restore_dlq(&bus, how).await?;
    let letter = common::dead_letter(&bus, worker, SOON)
        .await
        .context("the held event's letter")?;
    assert_eq!(
        header(&letter, h::DLQ_SUBJECT),
        "flotilla.build.started.ping-v1"
    );
    assert_eq!(header(&letter, h::DLQ_DELIVERIES), last.to_string());
    assert!(
        flotilla_testing::eventually(SOON, || health.not_ready().is_none()).await,
        "ready again once a letter is stored: {:?}",
        health.not_ready()
    );
    assert_eq!(
        ack_pending(&bus, worker).await?,
        0,
        "acked after its letter"
    );
    assert_eq!(
        calls.count() as u64,
        last - 1,
        "the last delivery runs no handler"
    );
    running.shutdown().await
}

#[tokio::test]
async fn a_missing_dlq_stream_loses_nothing_on_the_last_delivery() -> Result<()> {
    a_letter_refused_on_the_last_delivery_arrives_once_the_dlq_is_back("keeper", Broken::Missing)
        .await
}

#[tokio::test]
async fn a_full_dlq_stream_loses_nothing_on_the_last_delivery() -> Result<()> {
    a_letter_refused_on_the_last_delivery_arrives_once_the_dlq_is_back("hoarder", Broken::Full)
        .await
}

#[tokio::test]
async fn a_worker_stopping_while_it_holds_an_event_puts_it_back_for_itself() -> Result<()> {
    let (server, bus) = common::setup().await?;
    break_dlq(&bus, Broken::Missing).await?;
    let calls = Calls::default();
    let mut config = common::config("stopper", &["build.started.>"]);
    // The put-back copy may reach the stopping worker's last pull, and come back after this.
    config.ack_wait = Duration::from_secs(1);
    let last = config.max_deliver as u64 + 1;
    // A connection of its own, closed when it stops as its process's would be: the server
    // forgets its pull requests then, instead of delivering to them until they expire.
    let own = Bus::new(server.connect().await, flotilla_bus::Names::default());
    let running = common::run(&own, config.clone(), refusing(calls.clone())).await?;
    common::publish_build(&bus, EventType::BuildStarted, "ping-v1").await?;
    delivered(&bus, "stopper", last).await?;
    let health = running.health().clone();
    flotilla_testing::eventually(SOON, || health.not_ready().is_some()).await;
    running.shutdown().await?;
    own.client().drain().await?;

    let stored = common::stored_raw(&bus, "FLOTILLA", "flotilla.build.started.>", 2, SOON).await?;
    assert_eq!(stored.len(), 2, "the event was put back on its subject");
    assert_eq!(header(&stored[1], h::RETRY_FOR), "stopper");
    assert_eq!(
        header(&stored[1], h::ID),
        header(&stored[0], h::ID),
        "the same event"
    );
    let mut consumer = bus
        .stream()
        .await?
        .get_consumer::<consumer::pull::Config>("stopper")
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(
        consumer.info().await?.ack_floor.stream_sequence,
        1,
        "the original acked once put back"
    );

    restore_dlq(&bus, Broken::Missing).await?;
    let running = common::run(&bus, config, refusing(calls.clone())).await?;
    let letter = common::dead_letter(&bus, "stopper", SOON).await?;
    assert_eq!(
        header(&letter, h::DLQ_SUBJECT),
        "flotilla.build.started.ping-v1"
    );
    assert_eq!(header(&letter, h::RETRY_FOR), "stopper");
    running.shutdown().await
}

#[tokio::test]
async fn events_fetched_but_not_started_when_a_worker_stops_are_handled_by_the_next() -> Result<()>
{
    let (server, bus) = common::setup().await?;
    let mut config = common::config("handover", &["build.started.>"]);
    config.concurrency = 4;
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let handled = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (held, seen) = (release.clone(), handled.clone());
    // Busy until told to finish, so that what it fetches meanwhile is handed back on stop.
    let busy = move |event: Event, _ctx: Ctx| {
        let (held, seen) = (held.clone(), seen.clone());
        async move {
            held.notified().await;
            seen.lock()
                .map_err(|_| HandlerError::permanent("poisoned"))?
                .push(event.key);
            Ok::<Vec<Outgoing>, HandlerError>(Vec::new())
        }
    };
    let own = Bus::new(server.connect().await, flotilla_bus::Names::default());
    let first = common::run(&own, config.clone(), busy).await?;
    // Four busy handlers and one event fetched for the next free one.
    for n in 0..5 {
        common::publish_build(&bus, EventType::BuildStarted, &format!("e{n}")).await?;
    }
    delivered(&bus, "handover", 4).await?;
    let health = first.health().clone();
    let stopping = tokio::spawn(first.shutdown());
    // Once the worker has stopped pulling (its latch is down) it hands back what it fetched;
    // the busy handlers may finish meanwhile.
    let stopped_pulling = flotilla_testing::eventually(SOON, || {
        health
            .not_ready()
            .is_some_and(|why| why.contains("handover not ready"))
    })
    .await;
    release.notify_waiters();
    assert!(stopped_pulling, "{:?}", health.not_ready());
    stopping.await??;
    own.client().drain().await?;

    let seen = handled.clone();
    let next = move |event: Event, _ctx: Ctx| {
        let seen = seen.clone();
        async move {
            seen.lock()
                .map_err(|_| HandlerError::permanent("poisoned"))?
                .push(event.key);
            Ok::<Vec<Outgoing>, HandlerError>(Vec::new())
        }
    };
    let second = common::run(&bus, config, next).await?;
    let all = flotilla_testing::eventually(SOON, || {
        handled.lock().map(|h| h.len() >= 5).unwrap_or(false)
    })
    .await;
    let mut keys = handled.lock().map(|h| h.clone()).unwrap_or_default();
    keys.sort();
    keys.dedup();
    assert!(all && keys.len() == 5, "every event handled: {keys:?}");
    let dlq = common::stored_raw(&bus, "FLOTILLA_DLQ", ">", 0, Duration::ZERO).await?;
    assert!(dlq.is_empty(), "nothing dead-lettered");
    second.shutdown().await
}
