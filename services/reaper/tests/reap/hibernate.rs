//! Hibernation end to end, with env-manager on a real GitOps repository: inside the window a
//! preview is suspended (file kept and marked, registry `suspended`), outside it the reaper
//! resumes what it suspended, exactly as it was; never a teardown.

use crate::support::*;

use std::time::Duration;

use anyhow::{Context, Result};
use flotilla_env::State;
use reaper::hibernation::Window;

/// A window that is on now: every day, all day.
fn always() -> Window {
    Window::parse("Mon-Sun", "Europe/Paris").expect("a window")
}

/// A window that is off now: only a day that is not today.
fn never_today() -> Window {
    let today = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::get("Europe/Paris").expect("a zone"))
        .weekday();
    let other = today.next().next();
    let name =
        ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][other.to_monday_zero_offset() as usize];
    Window::parse(name, "Europe/Paris").expect("a window")
}

#[tokio::test]
async fn a_preview_hibernates_inside_the_window_and_wakes_as_it_was_after() -> Result<()> {
    let fx = Fixture::start().await?;
    let _env_manager = fx.env_manager(Duration::from_secs(3600)).await?;
    fx.build(7).await?;
    fx.stored("flotilla.env.requested.>", 1).await?;
    let record = fx.record(PREVIEW).await?;
    fx.registry
        .update(PREVIEW, |_| {
            Some(flotilla_env::EnvRecord {
                state: State::Ready,
                ..record.clone()
            })
        })
        .await?;
    assert!(fx.in_git(PREVIEW)?);

    let mut config = fx.config();
    config.hibernation = Some(always());
    let night = fx.reaper(config).await?;
    fx.stored(&format!("flotilla.env.suspended.{PREVIEW}"), 1)
        .await?;
    let suspended = fx.state_eventually(PREVIEW, State::Suspended).await?;
    assert_eq!(
        suspended.other.get("suspended_by").and_then(|v| v.as_str()),
        Some("hibernate")
    );
    assert!(
        fx.in_git(PREVIEW)?,
        "the env file stays while it hibernates"
    );
    night.shutdown().await?;

    let mut config = fx.config();
    config.hibernation = Some(never_today());
    let _day = fx.reaper(config).await?;
    fx.stored(&format!("flotilla.env.resumed.{PREVIEW}"), 1)
        .await?;
    let resumed = fx.state_eventually(PREVIEW, State::Ready).await?;
    assert!(resumed.other.get("suspended_by").is_none(), "{resumed:?}");
    assert!(fx.in_git(PREVIEW)?);
    fx.stored_exactly("flotilla.env.teardown.requested.>", 0)
        .await
        .context("hibernation is never a teardown")?;
    Ok(())
}
