//! The probes and metrics every worker serves, over real HTTP.

use crate::common;

use std::time::Duration;

use anyhow::Result;
use flotilla_bus::health;
use flotilla_bus::{Ctx, Event, EventType, HandlerError, Health, Outgoing, Worker};
use tokio_util::sync::CancellationToken;

async fn get(addr: std::net::SocketAddr, path: &str) -> Result<(u16, String)> {
    let response = reqwest::get(format!("http://{addr}{path}")).await?;
    Ok((response.status().as_u16(), response.text().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_consumer_and_the_connection_and_metrics_count_events() -> Result<()> {
    let (mut server, bus) = common::setup().await?;
    let health = Health::new();
    let stop = CancellationToken::new();
    let handler = |_e: Event, _c: Ctx| async { Ok::<Vec<Outgoing>, HandlerError>(Vec::new()) };
    let worker = Worker::new(
        bus.clone(),
        common::config("probe", &["build.started.>"]),
        handler,
        health.clone(),
    );
    let (addr, http) = health::serve(
        "127.0.0.1:0".parse()?,
        health.router(),
        stop.clone().cancelled_owned(),
    )
    .await?;

    assert_eq!(get(addr, "/healthz").await?.0, 200);
    let (status, body) = get(addr, "/readyz").await?;
    assert_eq!(
        (status, body.trim()),
        (503, "probe not ready"),
        "not ready before the consumer is bound"
    );

    let task = tokio::spawn(worker.run(stop.clone().cancelled_owned()));
    let mut status = 0;
    for _ in 0..100 {
        status = get(addr, "/readyz").await?.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200, "ready once bound");

    common::publish_build(&bus, EventType::BuildStarted, "ping-v1").await?;
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = get(addr, "/metrics").await?.1;
        if metrics.contains(r#"flotilla_events_handled_total{worker="probe"} 1"#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        metrics.contains(r#"flotilla_events_handled_total{worker="probe"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"flotilla_handler_duration_seconds_count{worker="probe"} 1"#),
        "{metrics}"
    );

    tokio::task::block_in_place(|| server.kill());
    let mut body = String::new();
    for _ in 0..100 {
        let (status, text) = get(addr, "/readyz").await?;
        if status == 503 {
            body = text;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        body.contains("NATS"),
        "not ready while NATS is down: {body:?}"
    );

    stop.cancel();
    task.await??;
    http.await?;
    Ok(())
}
