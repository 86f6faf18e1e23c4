//! The trace an env's verdict is published in, with no tracer installed (contexts then pass
//! through as they are): the handling of `env.requested` it answers, or, when a sweep found the
//! wait (a restart, another replica's request), the context kept in the env's record.

use crate::support::*;

use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::json;
use sync_watcher::Kube;
use sync_watcher::history::SameRevisionOnly;

const CHANGE: &str = "ping-v20240101120000-bbbbbbb";
/// What env-manager keeps in the record: its handling of the build.
const KEPT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01";
/// What `env.requested` carries.
const REQUESTED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-2222222222222222-01";

/// The `traceparent` of the one `env.ready` of `env`, once sync-watcher published it.
async fn ready_traceparent(fx: &Fixture, env: &str) -> Result<Option<String>> {
    let ready = fx.stored(&format!("flotilla.env.ready.{env}"), 1).await?;
    let ready = ready.first().context("env.ready")?;
    Ok(ready
        .headers
        .get("traceparent")
        .map(|v| v.as_str().to_owned()))
}

/// Waits until sync-watcher acknowledged every event stored so far (it handed its waits over).
async fn handled(fx: &Fixture) -> Result<()> {
    let js = fx.bus.jetstream();
    let stored = js
        .get_stream("FLOTILLA")
        .await?
        .info()
        .await?
        .state
        .last_sequence;
    let ok = flotilla_testing::eventually_async(WITHIN, || async {
        let Ok(mut consumer) = js
            .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
                "sync-watcher",
                "FLOTILLA",
            )
            .await
        else {
            return false;
        };
        consumer
            .info()
            .await
            .is_ok_and(|info| info.ack_floor.stream_sequence >= stored)
    })
    .await;
    anyhow::ensure!(ok, "sync-watcher never handled env.requested");
    Ok(())
}

async fn report(addr: std::net::SocketAddr, env: &str) -> Result<()> {
    let answer = reqwest::Client::new()
        .post(format!("http://{addr}/report/{env}/ping"))
        .json(&json!({"status": "succeeded"}))
        .send()
        .await?;
    anyhow::ensure!(answer.status().as_u16() == 202, "{}", answer.status());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_ready_continues_the_trace_of_the_request_it_answers() -> Result<()> {
    let env = "stg-ping-v20240101120000-bbbbbbb";
    let fx = Fixture::start().await?;
    let mut config = fx.config();
    config.kube = Kube::Off;
    let worker = fx.run_with(config, Arc::new(SameRevisionOnly)).await?;
    let record = fx.record(env, CHANGE, PUSHED, &["ping"], KEPT).await?;
    fx.publish_requested(env, &record, Some(REQUESTED)).await?;
    handled(&fx).await?;
    report(worker.addr(), env).await?;

    assert_eq!(
        ready_traceparent(&fx, env).await?.as_deref(),
        Some(REQUESTED)
    );
    // The record moves after the event is out: wait for it.
    let registry = fx.registry.clone();
    let moved = flotilla_testing::eventually_async(WITHIN, || {
        let registry = registry.clone();
        async move {
            registry
                .get(env)
                .await
                .ok()
                .flatten()
                .is_some_and(|r| r.state == flotilla_env::State::Ready)
        }
    })
    .await;
    assert!(moved, "the record moves to ready");
    let record = fx.registry.get(env).await?.context("recorded")?;
    assert_eq!(
        record.traceparent, REQUESTED,
        "the record keeps the context of what moved it to ready"
    );
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_found_by_a_sweep_is_answered_in_the_trace_the_record_kept() -> Result<()> {
    let env = "stg-ping-v20240101120000-ccccccc";
    let fx = Fixture::start().await?;
    let mut config = fx.config();
    config.kube = Kube::Off;
    let worker = fx.run_with(config, Arc::new(SameRevisionOnly)).await?;
    // Requested before this replica ran: no env.requested reaches it, the sweep finds the env.
    fx.record(env, CHANGE, PUSHED, &["ping"], KEPT).await?;
    report(worker.addr(), env).await?;

    assert_eq!(ready_traceparent(&fx, env).await?.as_deref(), Some(KEPT));
    worker.shutdown().await
}
