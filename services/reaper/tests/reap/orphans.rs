//! Orphans against the fake API server: reported by default, removed by policy, and never
//! anything unlabelled, production's, or an env's that is alive.

use std::time::Duration;

use anyhow::Result;
use flotilla_env::State;
use flotilla_kube_fake::Resource;
use reaper::Orphans;
use serde_json::json;

use crate::support::*;

const HOUR: Duration = Duration::from_secs(3600);

/// A cluster with: an orphan env's Application and Namespace (old), a young orphan
/// Namespace, production's Application (labelled `production`), an unlabelled Namespace, and a
/// live env deployed.
async fn cluster(fx: &Fixture) -> Result<()> {
    fx.deploy("pr-acme-gone-3", HOUR);
    fx.kube.put(
        &Resource::namespace(),
        json!({"metadata": {"name": "pr-acme-new-4", "labels": {"flotilla.dev/env": "pr-acme-new-4"}}}),
    );
    fx.kube.put(
        &Resource::argo_application(),
        json!({"metadata": {"name": "production", "namespace": "argocd",
                            "creationTimestamp": "2020-01-01T00:00:00Z",
                            "labels": {"flotilla.dev/env": "production"}},
               "spec": {}}),
    );
    fx.kube.put(
        &Resource::namespace(),
        json!({"metadata": {"name": "pr-acme-unlabelled-5", "creationTimestamp": "2020-01-01T00:00:00Z"}}),
    );
    fx.build(7).await?;
    fx.stored("flotilla.env.requested.>", 1).await?;
    fx.deploy(PREVIEW, HOUR);
    Ok(())
}

fn names(kind: &Resource, fx: &Fixture) -> Vec<String> {
    let mut names: Vec<String> = fx
        .kube
        .list(kind)
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str().map(String::from))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn orphans_are_reported_and_nothing_is_touched_by_default() -> Result<()> {
    let fx = Fixture::start().await?;
    let _env_manager = fx.env_manager(HOUR).await?;
    cluster(&fx).await?;
    let reaper = fx.reaper(fx.config()).await?;
    let body = fx
        .report_eventually(&reaper, |r| r.envs == 1 && r.orphans.len() == 3)
        .await?;
    let orphans: Vec<(String, String, String)> = body["orphans"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            let text = |k: &str| o[k].as_str().unwrap_or_default().to_owned();
            (text("kind"), text("name"), text("action"))
        })
        .collect();
    assert_eq!(
        orphans,
        [
            (
                "Application".into(),
                "env-pr-acme-gone-3".into(),
                "reported".into()
            ),
            (
                "Namespace".into(),
                "pr-acme-gone-3".into(),
                "reported".into()
            ),
            (
                "Namespace".into(),
                "pr-acme-new-4".into(),
                "kept (younger than the grace)".into()
            ),
        ]
    );
    assert_eq!(
        names(&Resource::namespace(), &fx),
        [
            "pr-acme-gone-3",
            "pr-acme-new-4",
            PREVIEW,
            "pr-acme-unlabelled-5"
        ]
    );
    assert_eq!(fx.record(PREVIEW).await?.state, State::Requested);
    Ok(())
}

#[tokio::test]
async fn the_remove_policy_deletes_old_labelled_orphans_and_nothing_else() -> Result<()> {
    let fx = Fixture::start().await?;
    let _env_manager = fx.env_manager(HOUR).await?;
    cluster(&fx).await?;
    let mut config = fx.config();
    config.orphans = Orphans::Remove;
    let reaper = fx.reaper(config).await?;
    fx.report_eventually(&reaper, |r| {
        r.orphans.iter().filter(|o| o.action == "removed").count() == 2
    })
    .await?;
    assert_eq!(
        names(&Resource::namespace(), &fx),
        ["pr-acme-new-4", PREVIEW, "pr-acme-unlabelled-5"]
    );
    assert_eq!(
        names(&Resource::argo_application(), &fx),
        [format!("env-{PREVIEW}"), "production".to_owned()]
    );
    Ok(())
}

#[tokio::test]
async fn a_registry_entry_with_no_file_and_a_file_with_no_entry_are_reported() -> Result<()> {
    let fx = Fixture::start().await?;
    let _env_manager = fx.env_manager(HOUR).await?;
    fx.build(7).await?;
    fx.stored("flotilla.env.requested.>", 1).await?;
    // An entry whose file nobody wrote, and the real env's entry lost.
    fx.registry
        .update("pr-acme-ghost-9", |_| {
            Some(flotilla_env::EnvRecord {
                state: State::Ready,
                kind: "preview".into(),
                ..Default::default()
            })
        })
        .await?;
    fx.bus.envs().await?.delete(PREVIEW).await?;
    let reaper = fx.reaper_with(fx.config(), false).await?;
    let body = fx
        .report_eventually(&reaper, |r| r.orphans.len() == 2)
        .await?;
    let found: Vec<(&str, &str)> = body["orphans"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            (
                o["kind"].as_str().unwrap_or_default(),
                o["name"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("record", "pr-acme-ghost-9"),
            ("file", "envs/pr-acme-ping-7.json")
        ]
    );
    Ok(())
}
