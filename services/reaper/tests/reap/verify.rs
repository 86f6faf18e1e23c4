//! Verification: a teardown is confirmed only once its file is gone from git and its
//! Application and Namespace from the cluster; what lingers is recorded and reported.

use std::time::Duration;

use anyhow::Result;
use flotilla_bus::EventType;
use flotilla_env::State;
use flotilla_proto::v1::TeardownRequest;

use crate::support::*;

#[tokio::test]
async fn what_lingers_in_the_cluster_holds_env_deleted_back_until_it_is_gone() -> Result<()> {
    let fx = Fixture::start().await?;
    let _env_manager = fx.env_manager(Duration::from_secs(3600)).await?;
    let reaper = fx.reaper(fx.config()).await?;
    fx.build(7).await?;
    fx.stored("flotilla.env.requested.>", 1).await?;
    fx.deploy(PREVIEW, Duration::from_secs(3600));

    let manual = TeardownRequest {
        env: PREVIEW.into(),
        reason: "manual".into(),
        ..Default::default()
    };
    fx.publish(EventType::EnvTeardownRequested, PREVIEW, &manual)
        .await?;
    let body = fx
        .report_eventually(&reaper, |r| r.lingering.contains_key(PREVIEW))
        .await?;
    let lingering = &body["lingering"][PREVIEW];
    assert_eq!(
        lingering,
        &serde_json::json!([
            format!("Application argocd/env-{PREVIEW}"),
            format!("Namespace {PREVIEW}")
        ]),
        "the file is gone, the cluster's objects are not"
    );
    assert!(!fx.in_git(PREVIEW)?);
    let record = fx.record(PREVIEW).await?;
    assert_eq!(record.state, State::Deleting);
    assert_eq!(record.other["lingering"], *lingering);
    assert_eq!(
        fx.stored_now(&format!("flotilla.env.deleted.{PREVIEW}"))
            .await?,
        0
    );

    fx.prune(PREVIEW);
    let record = fx.state_eventually(PREVIEW, State::Deleted).await?;
    assert!(!record.other.contains_key("lingering"));
    fx.stored_exactly(&format!("flotilla.env.deleted.{PREVIEW}"), 1)
        .await?;
    Ok(())
}
