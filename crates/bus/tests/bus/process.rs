//! The process runtime over real HTTP and a real server: one server for every route, tasks that
//! are stopped and awaited, a failed task visible in `/readyz`.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use axum::routing::get;
use flotilla_bus::{Ctx, Event, HandlerError, Outgoing, Process};

async fn get_text(addr: std::net::SocketAddr, path: &str) -> Result<(u16, String)> {
    let response = reqwest::get(format!("http://{addr}{path}")).await?;
    Ok((response.status().as_u16(), response.text().await?))
}

async fn nothing(_event: Event, _ctx: Ctx) -> Result<Vec<Outgoing>, HandlerError> {
    Ok(Vec::new())
}

#[tokio::test]
async fn one_server_serves_the_probes_and_every_route_and_stopping_awaits_the_tasks() -> Result<()>
{
    let (_server, bus) = common::setup().await?;
    let mut process = Process::new(bus.clone());
    process
        .worker(common::config("first", &["build.started.>"]), nothing)
        .worker(common::config("second", &["build.failed.>"]), nothing)
        .route(axum::Router::new().route("/first", get(|| async { "one" })))
        .route(axum::Router::new().route("/second", get(|| async { "two" })));
    let stopped_cleanly = Arc::new(AtomicBool::new(false));
    let flag = stopped_cleanly.clone();
    process.tasks().spawn("sweep", |stop| async move {
        stop.cancelled().await;
        // Work after the cancellation still runs: the process waits for it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        flag.store(true, Ordering::SeqCst);
        Ok::<(), String>(())
    });
    let served = flotilla_testing::serve(process).await?;
    let addr = served.addr();

    assert_eq!(get_text(addr, "/first").await?, (200, "one".to_owned()));
    assert_eq!(get_text(addr, "/second").await?, (200, "two".to_owned()));
    assert_eq!(
        get_text(addr, "/readyz").await?.0,
        200,
        "both workers bound"
    );
    let (status, metrics) = get_text(addr, "/metrics").await?;
    assert_eq!(status, 200);
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");

    served.shutdown().await?;
    assert!(
        stopped_cleanly.load(Ordering::SeqCst),
        "shutdown returned only after the task finished"
    );
    Ok(())
}

#[tokio::test]
async fn a_background_task_that_fails_makes_the_process_unready_and_says_why() -> Result<()> {
    let (_server, bus) = common::setup().await?;
    let mut process = Process::new(bus.clone());
    process.worker(common::config("watcher", &["env.requested.>"]), nothing);
    let (fail, failed) = tokio::sync::oneshot::channel::<()>();
    process.tasks().spawn("kube-watch", |stop| async move {
        tokio::select! {
            _ = failed => Err("the API server refused the watch".to_owned()),
            () = stop.cancelled() => Ok(()),
        }
    });
    let served = flotilla_testing::serve(process).await?;
    assert_eq!(get_text(served.addr(), "/readyz").await?.0, 200);

    let _ = fail.send(());
    let mut answer = (0, String::new());
    for _ in 0..100 {
        answer = get_text(served.addr(), "/readyz").await?;
        if answer.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(answer.0, 503, "{}", answer.1);
    assert!(
        answer
            .1
            .contains("kube-watch failed: the API server refused the watch"),
        "{}",
        answer.1
    );
    served.shutdown().await
}

#[tokio::test]
async fn runtime_settings_apply_to_every_hosted_worker() -> Result<()> {
    let (_server, bus) = common::setup().await?;
    let mut process = Process::new(bus.clone());
    let settings = flotilla_bus::WorkerArgs {
        concurrency: 3,
        max_deliver: 7,
        ack_wait: Duration::from_secs(11),
        backoff: Duration::from_millis(10),
        handler_timeout: None,
    };
    process
        .worker_args(&settings)
        .worker(common::config("tuned", &["build.started.>"]), nothing);
    let served = flotilla_testing::serve(process).await?;
    let consumer = bus
        .jetstream()
        .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
            "tuned", "FLOTILLA",
        )
        .await?;
    let config = &consumer.cached_info().config;
    assert_eq!(
        config.max_deliver, 8,
        "max_deliver + 1, as the runtime binds it"
    );
    assert_eq!(config.ack_wait, Duration::from_secs(11));
    served.shutdown().await
}
