//! Hibernation: a preview env is suspended (its file kept and marked, the registry `suspended`)
//! and resumed exactly as it was; it is never a teardown, and only a live preview hibernates.

use crate::support;

use anyhow::{Context, Result};
use flotilla_bus::EventType;
use flotilla_env::State;
use flotilla_proto::v1::{Environment, TeardownRequest};
use support::*;

fn request(env: &str, reason: &str) -> TeardownRequest {
    TeardownRequest {
        env: env.into(),
        reason: reason.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_suspended_preview_keeps_its_file_and_resumes_exactly_as_it_was() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    fx.publish(
        EventType::BuildSucceeded,
        &format!("ping-{VERSION}"),
        &build(42),
    )
    .await?;
    fx.stored_exactly("flotilla.env.requested.>", 1).await?;
    fx.mark_ready(PREVIEW).await?;
    let path = format!("envs/{PREVIEW}.json");
    let before = fx.remote_file(&path)?.context("written")?;

    fx.publish(
        EventType::EnvSuspendRequested,
        PREVIEW,
        &request(PREVIEW, "hibernate"),
    )
    .await?;
    let suspended = fx.stored_exactly("flotilla.env.suspended.>", 1).await?;
    let suspended: Environment = suspended[0].decode()?;
    assert_eq!(
        (suspended.env.as_str(), suspended.reason.as_str()),
        (PREVIEW, "hibernate")
    );
    assert_eq!(
        fx.remote_json(&path)?["suspended"],
        true,
        "the file stays, marked"
    );
    assert_eq!(
        fx.record(PREVIEW).await?.context("registered")?.state,
        State::Suspended
    );

    // A repeated request changes nothing.
    let commits = fx.remote_commits()?;
    let again = fx
        .publish(
            EventType::EnvSuspendRequested,
            PREVIEW,
            &request(PREVIEW, "hibernate"),
        )
        .await?;
    fx.handled(again.sequence).await?;
    assert_eq!(fx.remote_commits()?, commits);

    fx.publish(
        EventType::EnvResumeRequested,
        PREVIEW,
        &request(PREVIEW, "wake"),
    )
    .await?;
    fx.stored_exactly("flotilla.env.resumed.>", 1).await?;
    assert_eq!(
        fx.remote_file(&path)?.as_deref(),
        Some(before.as_str()),
        "exactly what was there"
    );
    assert_eq!(
        fx.record(PREVIEW).await?.context("registered")?.state,
        State::Ready
    );
    fx.stored_exactly("flotilla.env.teardown.requested.>", 0)
        .await?;
    worker.shutdown().await
}

#[tokio::test]
async fn only_a_live_preview_hibernates() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    let staging = fx.stage().await?;
    fx.publish(
        EventType::EnvSuspendRequested,
        &staging,
        &request(&staging, "hibernate"),
    )
    .await?;
    fx.publish(
        EventType::EnvSuspendRequested,
        "pr-acme-ping-404",
        &request("pr-acme-ping-404", "hibernate"),
    )
    .await?;

    let reasons = fx.dead_letters(2).await?;
    assert!(
        reasons.iter().any(|r| r.contains("not a preview")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("no env")), "{reasons:?}");
    fx.stored_exactly("flotilla.env.suspended.>", 0).await?;
    assert_eq!(
        fx.record(&staging).await?.context("registered")?.state,
        State::Ready
    );
    worker.shutdown().await
}
