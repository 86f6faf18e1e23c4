//! Handler deadlines: a handler that never returns is cancelled, retried, dead-lettered and
//! reported on `/readyz`; one that blocks its thread past the deadline shows there too.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use common::{Calls, header};
use flotilla_bus::envelope::header as h;
use flotilla_bus::{Ctx, Event, EventType, HandlerError, Outgoing};

const SOON: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_handler_that_never_returns_is_cancelled_at_its_deadline_and_retried() -> Result<()> {
    let (_server, bus) = common::setup().await?;
    let calls = Calls::default();
    let seen = calls.clone();
    // A remote that accepts the connection and never answers.
    let handler = move |_event: Event, _ctx: Ctx| {
        seen.record();
        std::future::pending::<Result<Vec<Outgoing>, HandlerError>>()
    };
    let mut config = common::config("hung", &["build.started.>"]);
    config.handler_timeout = Duration::from_millis(200);
    let worker = common::run(&bus, config, handler).await?;
    common::publish_build(&bus, EventType::BuildStarted, "ping-v1").await?;

    let letter = common::dead_letter(&bus, "hung", SOON).await?;
    let reason = header(&letter, h::DLQ_REASON);
    assert!(
        reason.contains("handler ran past its deadline of 200ms"),
        "{reason}"
    );
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    assert_eq!(calls.settle_at(3, SOON).await, 3, "one call per delivery");
    let metrics = worker.health().encode_metrics();
    assert!(
        metrics.contains(r#"flotilla_events_failed_total{worker="hung",reason="deadline"} 3"#),
        "{metrics}"
    );
    let why = worker.health().not_ready().unwrap_or_default();
    assert!(
        why.contains("hung: 3 handler attempts in a row ran past the deadline of 200ms"),
        "{why}"
    );
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_blocking_its_thread_past_the_deadline_makes_the_worker_not_ready() -> Result<()>
{
    let (_server, bus) = common::setup().await?;
    let release = Arc::new(AtomicBool::new(false));
    let held = release.clone();
    // A synchronous call that hangs (libgit2 on a silent remote) blocks its thread, so
    // cancelling the handler cannot take effect. `block_in_place` hands the thread's other
    // tasks to another worker thread, as such a handler should.
    let handler = move |_event: Event, _ctx: Ctx| {
        let held = held.clone();
        async move {
            tokio::task::block_in_place(|| {
                while !held.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            });
            Ok::<Vec<Outgoing>, HandlerError>(Vec::new())
        }
    };
    let mut config = common::config("blocked", &["build.started.>"]);
    config.handler_timeout = Duration::from_millis(200);
    let worker = common::run(&bus, config, handler).await?;
    let health = worker.health().clone();
    common::publish_build(&bus, EventType::BuildStarted, "ping-v1").await?;

    let stuck = flotilla_testing::eventually(SOON, || {
        health.not_ready().is_some_and(|why| {
            why.contains("blocked: a handler of flotilla.build.started.ping-v1 has run for")
        })
    })
    .await;
    release.store(true, Ordering::SeqCst);
    assert!(stuck, "{:?}", health.not_ready());
    assert!(
        flotilla_testing::eventually(SOON, || health.not_ready().is_none()).await,
        "ready once it returned: {:?}",
        health.not_ready()
    );
    worker.shutdown().await
}
