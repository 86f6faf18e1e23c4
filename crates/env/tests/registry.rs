//! The registry against a real nats-server's KV bucket: listing, and states as stored.

use anyhow::{Context, Result};
use async_nats::jetstream::kv;
use flotilla_bus::topology::StreamLimits;
use flotilla_bus::{Bus, Names};
use flotilla_env::{EnvRecord, Registry, State};

/// The `flotilla-envs` bucket as `flotilla init` creates it.
async fn bucket(server: &flotilla_testing::NatsServer) -> Result<kv::Store> {
    let bus = Bus::new(server.connect().await, Names::default());
    bus.ensure_streams(&StreamLimits::default()).await?;
    Ok(bus.envs().await?)
}

fn record(state: State) -> EnvRecord {
    EnvRecord {
        state,
        kind: "preview".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn list_returns_every_live_record_sorted_and_leaves_deleted_keys_out() -> Result<()> {
    let server = flotilla_testing::NatsServer::start();
    let store = bucket(&server).await?;
    let registry = Registry::new(store.clone());
    assert!(
        registry.list().await?.is_empty(),
        "an empty bucket lists nothing"
    );

    for (env, state) in [
        ("pr-ping-2", State::Ready),
        ("pr-ping-1", State::Requested),
        ("stg-ping-v1", State::Failed),
    ] {
        registry
            .update(env, |_| Some(record(state.clone())))
            .await?;
    }
    store.delete("stg-ping-v1").await?;

    let listed = registry.list().await?;
    let summary: Vec<(&str, &str)> = listed
        .iter()
        .map(|(env, record)| (env.as_str(), record.state.as_str()))
        .collect();
    assert_eq!(
        summary,
        [("pr-ping-1", "requested"), ("pr-ping-2", "ready")]
    );
    Ok(())
}

#[tokio::test]
async fn records_written_with_plain_state_names_read_back_typed() -> Result<()> {
    let server = flotilla_testing::NatsServer::start();
    let store = bucket(&server).await?;
    let registry = Registry::new(store.clone());
    store
        .put(
            "pr-ping-3",
            r#"{"state":"deleting","kind":"preview"}"#.into(),
        )
        .await?;
    store
        .put(
            "pr-ping-4",
            r#"{"state":"hibernating","kind":"preview"}"#.into(),
        )
        .await?;

    let deleting = registry.get("pr-ping-3").await?.context("stored")?;
    assert_eq!(deleting.state, State::Deleting);
    let newer = registry.get("pr-ping-4").await?.context("stored")?;
    assert_eq!(newer.state, State::Unknown("hibernating".into()));

    // Written back, an unknown state is kept as it was.
    registry
        .update("pr-ping-4", |c| {
            c.map(|c| EnvRecord {
                owner: "octocat".into(),
                ..c
            })
        })
        .await?;
    let raw = store.get("pr-ping-4").await?.context("stored")?;
    let value: serde_json::Value = serde_json::from_slice(&raw)?;
    assert_eq!(value["state"], "hibernating");
    Ok(())
}

#[tokio::test]
async fn a_recording_registry_reads_real_records_and_records_updates_without_writing() -> Result<()>
{
    let server = flotilla_testing::NatsServer::start();
    let store = bucket(&server).await?;
    Registry::new(store.clone())
        .update("pr-ping-1", |_| Some(record(State::Requested)))
        .await?;
    let stream = format!("KV_{}", Names::default().envs_bucket);
    let js = async_nats::jetstream::new(server.connect().await);
    let before = js.get_stream(&stream).await?.info().await?.state.clone();

    let recorder = flotilla_bus::dry_run::Recorder::new();
    let registry = Registry::new(store.clone()).recording(recorder.clone());
    let seen = registry.get("pr-ping-1").await?.context("a real read")?;
    assert_eq!(seen.state, State::Requested);
    registry
        .update("pr-ping-1", |current| {
            let current = current?;
            Some(EnvRecord {
                state: State::Ready,
                ..current
            })
        })
        .await?;
    registry
        .update("pr-ping-2", |_| Some(record(State::Requested)))
        .await?;

    let effects = recorder.take();
    let summaries: Vec<&str> = effects.iter().map(|e| e.summary.as_str()).collect();
    assert_eq!(
        summaries,
        [
            "env pr-ping-1: requested -> ready",
            "env pr-ping-2: (none) -> requested"
        ]
    );
    let written: EnvRecord = serde_json::from_str(effects[0].detail.as_deref().context("detail")?)?;
    assert_eq!(written.state, State::Ready);

    let after = js.get_stream(&stream).await?.info().await?.state.clone();
    assert_eq!(
        (after.last_sequence, after.messages),
        (before.last_sequence, before.messages),
        "a dry run writes nothing to the bucket"
    );
    assert_eq!(
        Registry::new(store)
            .get("pr-ping-1")
            .await?
            .map(|r| r.state),
        Some(State::Requested)
    );
    Ok(())
}
