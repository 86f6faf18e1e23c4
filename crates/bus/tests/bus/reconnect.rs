//! A server restart in the middle of the flow: the runtime reconnects by itself and nothing
//! that was acknowledged is lost.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;
use flotilla_bus::{Ctx, Event, EventType, HandlerError, Outgoing};
use flotilla_proto::v1::Build;

async fn echo(event: Event, _ctx: Ctx) -> Result<Vec<Outgoing>, HandlerError> {
    let build: Build = event.decode()?;
    let out = Outgoing::new(EventType::BuildSucceeded, &build.change_id, &build)
        .map_err(HandlerError::permanent)?;
    Ok(vec![out])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_reconnects_after_a_server_restart_and_loses_nothing_acknowledged() -> Result<()>
{
    let (mut server, bus) = common::setup().await?;
    let worker = common::run(&bus, common::config("echo", &["build.started.>"]), echo).await?;

    let mut acknowledged = BTreeSet::new();
    for i in 0..20 {
        let change = format!("before-{i}");
        common::publish_build(&bus, EventType::BuildStarted, &change).await?;
        acknowledged.insert(change);
    }

    // A crash: SIGKILL, then the same port and store a moment later, while publishes are in
    // flight (they are held by the client and acknowledged after the reconnect).
    tokio::task::block_in_place(|| server.kill());
    let during = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let mut done = Vec::new();
            for i in 0..10 {
                let change = format!("during-{i}");
                common::publish_build(&bus, EventType::BuildStarted, &change).await?;
                done.push(change);
            }
            anyhow::Ok(done)
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::block_in_place(|| server.restart());
    acknowledged.extend(during.await??);

    for i in 0..20 {
        let change = format!("after-{i}");
        common::publish_build(&bus, EventType::BuildStarted, &change).await?;
        acknowledged.insert(change);
    }

    let outputs = common::stored(
        &bus,
        "flotilla.build.succeeded.>",
        acknowledged.len(),
        Duration::from_secs(30),
    )
    .await?;
    let handled: BTreeSet<String> = outputs
        .iter()
        .filter_map(|event| event.decode::<Build>().ok())
        .map(|build| build.change_id)
        .collect();
    let missing: Vec<_> = acknowledged.difference(&handled).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never handled: {missing:?}"
    );
    assert_eq!(outputs.len(), acknowledged.len(), "no output stored twice");
    worker.shutdown().await
}

/// NATS_URL may name a cluster's servers, comma separated: a process connects through the one
/// that answers (here the first is a port nothing listens on).
#[tokio::test]
async fn a_comma_separated_server_list_connects_through_one_that_answers() -> Result<()> {
    let server = flotilla_testing::NatsServer::start();
    let silent = flotilla_testing::free_port();
    let args =
        flotilla_bus::NatsArgs::for_url(format!("nats://127.0.0.1:{silent}, {}", server.url()));
    assert_eq!(args.servers()?.len(), 2);
    let client = args.connect("cluster-list").await?;
    client.flush().await?;

    let bad = flotilla_bus::NatsArgs::for_url("nats://127.0.0.1:4222,not a url:x");
    let error = bad.servers().expect_err("a bad entry").to_string();
    assert!(error.contains("not a url:x"), "{error}");
    Ok(())
}

/// A worker that starts while NATS does not answer (a cluster electing the leader of a
/// bucket's stream, here a server down for longer than one API timeout) waits for its buckets
/// instead of exiting; a bucket that does not exist is an error (run `flotilla init`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_bucket_waits_for_a_server_that_does_not_answer_yet() -> Result<()> {
    let (mut server, bus) = common::setup().await?;
    tokio::task::block_in_place(|| server.kill());
    let opening = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.envs().await })
    };
    // Longer than the 5 s a JetStream request waits for its answer.
    tokio::time::sleep(Duration::from_secs(7)).await;
    tokio::task::block_in_place(|| server.restart());
    let store = opening.await?;
    assert!(
        store.is_ok(),
        "the bucket once the server answers: {store:?}"
    );

    let isolated = flotilla_bus::Bus::new(
        bus.client().clone(),
        flotilla_bus::Names::isolated("nothing-here"),
    );
    let missing = isolated
        .envs()
        .await
        .expect_err("a missing bucket is an error");
    assert!(
        missing.to_string().contains("flotilla-nothing-here-envs"),
        "{missing}"
    );
    Ok(())
}
