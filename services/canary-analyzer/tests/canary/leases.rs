//! One replica judges a release at a time (a lease per release, compare-and-set), and a release
//! without a verdict is taken up again when its replica stops.

use crate::support::*;

use std::time::Duration;

use anyhow::{Context, Result};
use canary_analyzer::lease::Record;
use flotilla_bus::EventType;

async fn record(fx: &Fixture, key: &str) -> Result<Record> {
    let kv = fx.bus.canaries().await?;
    let entry = kv.get(key).await?.context("a lease record")?;
    Ok(serde_json::from_slice(&entry)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_judge_a_release_once() -> Result<()> {
    let fx = Fixture::start().await?;
    let ping = ping(0.0).await?;
    let one = fx.run().await?;
    let two = fx.run().await?;

    // Delivered twice, as a redelivery after a lost ack would be; either replica may get it.
    for _ in 0..2 {
        fx.release(VERSION, &[("web-status", &[("url", status_url(ping))])])
            .await?;
    }

    let (kind, _) = fx.verdict(RELEASE).await?;
    assert_eq!(kind, EventType::CanaryPromoted);
    // One judgement: three measurements, one step, one verdict.
    fx.stored_exactly(&format!("flotilla.canary.measurement.{RELEASE}"), 3)
        .await?;
    fx.stored_exactly(&format!("flotilla.canary.step.{RELEASE}"), 1)
        .await?;
    fx.stored_exactly(&format!("flotilla.canary.*.{RELEASE}"), 5)
        .await?;
    // The verdict is published before the record says so: wait for the record to catch up.
    let marked = flotilla_testing::eventually_async(Duration::from_secs(10), || async {
        record(&fx, RELEASE).await.is_ok_and(|r| r.published)
    })
    .await;
    let stored = record(&fx, RELEASE).await?;
    assert!(marked && stored.attempt == 1, "{stored:?}");
    one.shutdown().await?;
    two.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_whose_replica_stopped_mid_canary_is_taken_up_again() -> Result<()> {
    let fx = Fixture::start().await?;
    // Long enough to stop the worker in the middle even on a loaded machine: 20 measurements,
    // 200 ms apart (4 s), stopped after the second.
    fx.template("web-status.yaml", &web_status(20, "200ms"))?;
    let ping = ping(0.0).await?;
    let first = fx.run().await?;
    fx.release(VERSION, &[("web-status", &[("url", status_url(ping))])])
        .await?;
    fx.stored(&format!("flotilla.canary.measurement.{RELEASE}"), 2)
        .await?;
    first.shutdown().await?;
    let stopped = record(&fx, RELEASE).await?;
    assert!(
        stopped.verdict.is_none() && !stopped.published,
        "{stopped:?}"
    );

    // No new release.requested: the sweep finds the release without a verdict.
    let second = fx.run().await?;
    let (kind, verdict) = fx.verdict(RELEASE).await?;
    assert_eq!(kind, EventType::CanaryPromoted, "{verdict:?}");
    // The verdict is published before the record says so: wait for the record to catch up.
    let marked = flotilla_testing::eventually_async(Duration::from_secs(10), || async {
        record(&fx, RELEASE).await.is_ok_and(|r| r.published)
    })
    .await;
    let resumed = record(&fx, RELEASE).await?;
    assert!(marked, "{resumed:?}");
    assert_eq!(resumed.attempt, 2, "{resumed:?}");
    assert_ne!(resumed.owner, stopped.owner);
    // The second attempt measured in full, its events not taken for repeats of the first's.
    let measurements = fx
        .stored(&format!("flotilla.canary.measurement.{RELEASE}"), 22)
        .await?;
    assert!(measurements.len() >= 22, "{}", measurements.len());
    second.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_decided_but_not_published_is_published_as_decided() -> Result<()> {
    let fx = Fixture::start().await?;
    // What a replica that died between storing its verdict and publishing it leaves behind.
    let record = serde_json::json!({
        "job": {"release": RELEASE, "change_id": RELEASE, "app": "ping", "version": VERSION,
                "previous_version": PREVIOUS, "repo": "acme/ping", "sha": "b".repeat(40),
                "analysis": [{"template": "web-status"}]},
        "owner": "gone-replica", "expires_ms": 1, "attempt": 1,
        "verdict": {"promoted": false, "reason": "analysis web-status Failed: metric status = degraded",
                    "metric": "status", "value": "degraded"},
        "published": false,
    });
    let kv = fx.bus.canaries().await?;
    kv.put(RELEASE, serde_json::to_vec(&record)?.into()).await?;

    let worker = fx.run().await?;
    let (kind, verdict) = fx.verdict(RELEASE).await?;
    assert_eq!(kind, EventType::CanaryAborted);
    assert_eq!(verdict.metric, "status");
    assert!(verdict.reason.contains("degraded"));
    // Nothing judged again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    fx.stored_exactly(&format!("flotilla.canary.measurement.{RELEASE}"), 0)
        .await?;
    worker.shutdown().await
}
