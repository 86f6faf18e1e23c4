//! TTL and idle teardowns end in `deleted` on a real GitOps repository with env-manager
//! running; a restarted reaper fires on time; two reapers fire once; env-manager's own
//! teardowns (a closed pull request) are not duplicated.

use std::time::Duration;

use anyhow::{Context, Result};
use flotilla_bus::EventType;
use flotilla_env::State;
use flotilla_proto::v1::{Environment, PullRequest, TeardownRequest, TestResult};
use reaper::timer;

use crate::support::*;

/// The one teardown of `env`, decoded.
async fn teardown(fx: &Fixture, env: &str) -> Result<(flotilla_bus::Event, TeardownRequest)> {
    let events = fx
        .stored_exactly(&format!("flotilla.env.teardown.requested.{env}"), 1)
        .await?;
    let event = events.into_iter().next().context("one teardown")?;
    let request = event.decode()?;
    Ok((event, request))
}

#[tokio::test]
async fn an_env_past_its_expiry_is_torn_down_once_and_confirmed_deleted() -> Result<()> {
    let fx = Fixture::start().await?;
    let _env_manager = fx.env_manager(Duration::from_secs(2)).await?;
    let _reaper = fx.reaper(fx.config()).await?;
    fx.build(7).await?;
    fx.stored("flotilla.env.requested.>", 1).await?;
    let expires = timer::parse(&fx.record(PREVIEW).await?.expires_at).context("expires_at")?;

    let (event, request) = teardown(&fx, PREVIEW).await?;
    assert_eq!(request.reason, "ttl");
    assert_eq!(request.change_id, format!("ping-{VERSION}"));
    let fired = timer::parse(event.time.as_deref().unwrap_or_default()).context("ce-time")?;
    assert!(fired >= expires, "fired at {fired}, before {expires}");
    assert_eq!(event.source, "flotilla/reaper");

    let record = fx.state_eventually(PREVIEW, State::Deleted).await?;
    assert_eq!(record.reason, "ttl");
    assert!(!fx.in_git(PREVIEW)?, "the env file is gone from git");
    let deleted = fx
        .stored_exactly(&format!("flotilla.env.deleted.{PREVIEW}"), 1)
        .await?;
    let deleted: Environment = deleted[0].decode()?;
    assert_eq!(
        (deleted.env.as_str(), deleted.reason.as_str()),
        (PREVIEW, "ttl")
    );
    Ok(())
}

#[tokio::test]
async fn a_reaper_restarted_mid_countdown_still_fires_on_time() -> Result<()> {
    let fx = Fixture::start().await?;
    let _env_manager = fx.env_manager(Duration::from_secs(3)).await?;
    let first = fx.reaper(fx.config()).await?;
    fx.build(7).await?;
    fx.stored("flotilla.env.requested.>", 1).await?;
    let expires = timer::parse(&fx.record(PREVIEW).await?.expires_at).context("expires_at")?;
    first.shutdown().await?;
    assert!(now() < expires, "stopped mid-countdown");
    assert_eq!(
        fx.stored_now("flotilla.env.teardown.requested.>").await?,
        0,
        "nothing fired before its time"
    );

    let _second = fx.reaper(fx.config()).await?;
    let (event, request) = teardown(&fx, PREVIEW).await?;
    assert_eq!(request.reason, "ttl");
    let fired = timer::parse(event.time.as_deref().unwrap_or_default()).context("ce-time")?;
    assert!(fired >= expires);
    fx.state_eventually(PREVIEW, State::Deleted).await?;
    Ok(())
}

#[tokio::test]
async fn two_reapers_fire_one_teardown_and_one_env_deleted() -> Result<()> {
    let fx = Fixture::start().await?;
    let _env_manager = fx.env_manager(Duration::from_secs(2)).await?;
    let _a = fx.reaper(fx.config()).await?;
    let _b = fx.reaper(fx.config()).await?;
    fx.build(7).await?;
    fx.build(8).await?;
    fx.stored("flotilla.env.requested.>", 2).await?;
    for env in [PREVIEW, "pr-acme-ping-8"] {
        fx.state_eventually(env, State::Deleted).await?;
        teardown(&fx, env).await?;
        fx.stored_exactly(&format!("flotilla.env.deleted.{env}"), 1)
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn an_idle_env_is_torn_down_after_its_last_event() -> Result<()> {
    let fx = Fixture::start().await?;
    let _env_manager = fx.env_manager(Duration::from_secs(3600)).await?;
    let mut config = fx.config();
    config.timers.idle = Some(Duration::from_secs(3));
    let _reaper = fx.reaper(config).await?;
    fx.build(7).await?;
    fx.stored("flotilla.env.requested.>", 1).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Tests ran against it: activity, later than its build.
    let tests = TestResult {
        env: PREVIEW.into(),
        change_id: format!("ping-{VERSION}"),
        app: "ping".into(),
        version: VERSION.into(),
        ..Default::default()
    };
    let published = fx.publish(EventType::TestsPassed, PREVIEW, &tests).await?;
    let active = {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            let record = fx.record(PREVIEW).await?;
            if let Some(at) = record
                .other
                .get(timer::LAST_ACTIVITY)
                .and_then(|v| v.as_str())
                && timer::parse(at) > timer::parse(&record.created_at)
            {
                break timer::parse(at).context("last_activity")?;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "no activity recorded"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let _ = published;

    let (event, request) = teardown(&fx, PREVIEW).await?;
    assert_eq!(request.reason, "idle");
    let fired = timer::parse(event.time.as_deref().unwrap_or_default()).context("ce-time")?;
    assert!(
        fired >= active + Duration::from_secs(3),
        "fired at {fired}, within the idle time of the tests at {active}"
    );
    let record = fx.state_eventually(PREVIEW, State::Deleted).await?;
    assert_eq!(record.reason, "idle");
    assert!(!fx.in_git(PREVIEW)?);
    Ok(())
}

#[tokio::test]
async fn a_closed_pull_request_is_torn_down_by_env_manager_alone_and_confirmed_by_the_reaper()
-> Result<()> {
    let fx = Fixture::start().await?;
    let _env_manager = fx.env_manager(Duration::from_secs(3600)).await?;
    let _reaper = fx.reaper(fx.config()).await?;
    fx.build(7).await?;
    fx.stored("flotilla.env.requested.>", 1).await?;
    let closed = PullRequest {
        repo: "acme/ping".into(),
        number: 7,
        action: "closed".into(),
        merged: true,
        ..Default::default()
    };
    fx.publish(EventType::SourcePullRequest, "acme/ping", &closed)
        .await?;
    let (event, request) = teardown(&fx, PREVIEW).await?;
    assert_eq!(request.reason, "pr_closed");
    assert_eq!(event.source, "flotilla/env-manager");
    let record = fx.state_eventually(PREVIEW, State::Deleted).await?;
    assert_eq!(record.reason, "pr_closed");
    fx.stored_exactly(&format!("flotilla.env.deleted.{PREVIEW}"), 1)
        .await?;
    Ok(())
}

/// `flotilla envs keep` writes a later `expires_at` (and `kept_until`): the TTL fires at the new
/// time, not the old one.
#[tokio::test]
async fn a_kept_env_is_torn_down_at_its_new_expiry_not_the_old_one() -> Result<()> {
    let fx = Fixture::start().await?;
    let _env_manager = fx.env_manager(Duration::from_secs(2)).await?;
    fx.build(7).await?;
    fx.stored("flotilla.env.requested.>", 1).await?;
    let record = fx.record(PREVIEW).await?;
    let old = timer::parse(&record.expires_at).context("expires_at")?;
    let kept = now() + time::Duration::seconds(5);
    fx.registry
        .update(PREVIEW, |current| {
            let mut record = current?;
            record.expires_at = timer::rfc3339(kept);
            record.other.insert(
                "kept_until".into(),
                serde_json::Value::String(timer::rfc3339(kept)),
            );
            Some(record)
        })
        .await?;
    let _reaper = fx.reaper(fx.config()).await?;

    let (event, request) = teardown(&fx, PREVIEW).await?;
    assert_eq!(request.reason, "ttl");
    let fired = timer::parse(event.time.as_deref().unwrap_or_default()).context("ce-time")?;
    assert!(
        fired >= kept,
        "fired at {fired}, before the kept expiry {kept} (old {old})"
    );
    fx.state_eventually(PREVIEW, State::Deleted).await?;
    Ok(())
}

/// `flotilla envs delete ENV` publishes a manual teardown: env-manager removes the file, the
/// reaper confirms it gone and publishes `env.deleted` with the reason.
#[tokio::test]
async fn a_manual_delete_ends_deleted_with_its_reason() -> Result<()> {
    let fx = Fixture::start().await?;
    let _env_manager = fx.env_manager(Duration::from_secs(3600)).await?;
    let _reaper = fx.reaper(fx.config()).await?;
    fx.build(7).await?;
    fx.stored("flotilla.env.requested.>", 1).await?;
    let manual = TeardownRequest {
        env: PREVIEW.into(),
        reason: "manual".into(),
        change_id: format!("ping-{VERSION}"),
        message: "deleted by hand".into(),
    };
    fx.publish(EventType::EnvTeardownRequested, PREVIEW, &manual)
        .await?;

    let record = fx.state_eventually(PREVIEW, State::Deleted).await?;
    assert_eq!(record.reason, "manual");
    assert!(!fx.in_git(PREVIEW)?);
    let deleted = fx
        .stored_exactly(&format!("flotilla.env.deleted.{PREVIEW}"), 1)
        .await?;
    let deleted: Environment = deleted[0].decode()?;
    assert_eq!(deleted.reason, "manual");
    Ok(())
}
