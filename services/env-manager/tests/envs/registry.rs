//! The environment registry against a real nats-server's KV bucket.

use crate::support;

use anyhow::{Context, Result};
use flotilla_env::EnvRecord;
use support::*;

fn record(state: &str) -> EnvRecord {
    EnvRecord {
        state: state.into(),
        kind: "preview".into(),
        change_id: format!("ping-{VERSION}"),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_reads_again_and_retries_when_another_writer_was_first() -> Result<()> {
    let fx = Fixture::start().await?;
    let registry = fx.registry().await?;
    let store = fx.bus.envs().await?;
    registry
        .update("pr-ping-1", |_| Some(record("requested")))
        .await?;

    let mut seen = Vec::new();
    let mut interfered = false;
    registry
        .update("pr-ping-1", |current| {
            seen.push(current.clone().map(|c| c.state));
            if !interfered {
                // Between our read and our write, sync-watcher marks the env ready.
                interfered = true;
                let ready = serde_json::to_vec(&record("ready")).expect("records encode");
                // The closure is synchronous: this thread waits for the other write while the
                // runtime's other thread drives the connection.
                tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(store.put("pr-ping-1", ready.into()))
                })
                .expect("the other write is stored");
            }
            current.map(|c| EnvRecord {
                owner: "octocat".into(),
                ..c
            })
        })
        .await?;

    assert_eq!(seen, [Some("requested".into()), Some("ready".into())]);
    let stored = registry
        .get("pr-ping-1")
        .await?
        .context("the record exists")?;
    assert_eq!(
        (stored.state.as_str(), stored.owner.as_str()),
        ("ready", "octocat")
    );
    Ok(())
}

#[tokio::test]
async fn fields_other_workers_added_survive_an_update() -> Result<()> {
    let fx = Fixture::start().await?;
    let registry = fx.registry().await?;
    let mut theirs = serde_json::to_value(record("ready"))?;
    theirs["ready_at"] = "2024-01-01T12:05:00Z".into();
    fx.bus
        .envs()
        .await?
        .put("pr-ping-2", serde_json::to_vec(&theirs)?.into())
        .await?;

    registry
        .update("pr-ping-2", |c| {
            c.map(|c| EnvRecord {
                state: "deleting".into(),
                ..c
            })
        })
        .await?;

    let raw = fx
        .bus
        .envs()
        .await?
        .get("pr-ping-2")
        .await?
        .context("the record exists")?;
    let stored: serde_json::Value = serde_json::from_slice(&raw)?;
    assert_eq!(stored["state"], "deleting");
    assert_eq!(stored["ready_at"], "2024-01-01T12:05:00Z");
    Ok(())
}

#[tokio::test]
async fn an_update_that_changes_nothing_writes_nothing() -> Result<()> {
    let fx = Fixture::start().await?;
    let registry = fx.registry().await?;
    let store = fx.bus.envs().await?;
    registry
        .update("pr-ping-3", |_| Some(record("requested")))
        .await?;
    let before = store.entry("pr-ping-3").await?.context("written")?.revision;

    registry.update("pr-ping-3", |_| None).await?;

    let after = store
        .entry("pr-ping-3")
        .await?
        .context("still there")?
        .revision;
    assert_eq!(before, after);
    Ok(())
}
