//! Readiness from Argo CD: the watch, the revision rule, the stable window, failures, the
//! timeout, a broken watch, a restart, a newer push and two replicas.

use crate::support::*;

use std::time::Duration;

use anyhow::Result;
use flotilla_bus::EventType;
use flotilla_env::State;

const ENV: &str = "pr-acme-ping-7";
const CHANGE: &str = "ping-v20240101120000-bbbbbbb";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_app_synced_and_healthy_at_the_pushed_revision_makes_the_env_ready() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    fx.request(ENV, CHANGE, PUSHED, &["ping", "maindb"]).await?;
    for app in ["ping", "maindb"] {
        fx.create_application(ENV, app);
        fx.set_status(ENV, app, "OutOfSync", "Missing", OLDER);
    }
    fx.set_status(ENV, "ping", "Synced", "Progressing", PUSHED);
    fx.set_status(ENV, "ping", "Synced", "Healthy", PUSHED);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        fx.state(ENV).await?,
        State::Requested,
        "maindb is not ready yet"
    );
    fx.set_status(ENV, "maindb", "Synced", "Healthy", PUSHED);

    let (kind, ready) = fx.verdict(ENV).await?;
    assert_eq!(kind, EventType::EnvReady);
    assert_eq!(ready.change_id, CHANGE);
    assert_eq!(ready.revision, PUSHED);
    assert_eq!(
        (ready.kind.as_str(), ready.repo.as_str(), ready.pr),
        ("preview", "acme/ping", 7)
    );
    assert_eq!(ready.apps.len(), 2);
    assert_eq!(ready.url, format!("https://{ENV}.preview.example.com"));
    assert!(
        ready.duration_ms >= 1000,
        "readiness took at least the wait for maindb: {ready:?}"
    );
    fx.state_eventually(ENV, State::Ready).await?;
    fx.stored_exactly("flotilla.env.ready.>", 1).await?;
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_degraded_app_fails_the_env_with_argo_cds_message() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    fx.request(ENV, CHANGE, PUSHED, &["ping"]).await?;
    fx.create_application(ENV, "ping");
    fx.set_raw_status(
        ENV,
        "ping",
        serde_json::json!({
            "sync": {"status": "Synced", "revision": PUSHED},
            "health": {"status": "Degraded", "message": "Deployment \"ping\" exceeded its progress deadline"},
        }),
    );

    let (kind, failed) = fx.verdict(ENV).await?;
    assert_eq!(kind, EventType::EnvFailed);
    assert!(
        failed.reason.contains(&format!("{ENV}-ping"))
            && failed.reason.contains("exceeded its progress deadline"),
        "{}",
        failed.reason
    );
    fx.state_eventually(ENV, State::Failed).await?;
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_at_an_older_revision_does_not_count() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    fx.request(ENV, CHANGE, PUSHED, &["ping"]).await?;
    fx.create_application(ENV, "ping");
    // Right after env-manager's push, Argo CD still shows the previous sync: Healthy.
    fx.set_status(ENV, "ping", "Synced", "Healthy", OLDER);
    tokio::time::sleep(Duration::from_secs(2)).await;
    fx.stored_exactly("flotilla.env.ready.>", 0).await?;

    fx.set_status(ENV, "ping", "Synced", "Healthy", PUSHED);
    let (kind, _) = fx.verdict(ENV).await?;
    assert_eq!(kind, EventType::EnvReady);
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_still_running_is_not_ready_until_it_finishes() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    fx.request(ENV, CHANGE, PUSHED, &["ping"]).await?;
    fx.create_application(ENV, "ping");
    fx.set_raw_status(
        ENV,
        "ping",
        serde_json::json!({
            "sync": {"status": "Synced", "revision": PUSHED},
            "health": {"status": "Healthy"},
            "operationState": {"phase": "Running", "operation": {"sync": {"revision": PUSHED}}},
        }),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    fx.stored_exactly("flotilla.env.ready.>", 0).await?;
    fx.set_raw_status(
        ENV,
        "ping",
        serde_json::json!({"operationState": {"phase": "Succeeded", "syncResult": {"revision": PUSHED}}}),
    );
    let (kind, _) = fx.verdict(ENV).await?;
    assert_eq!(kind, EventType::EnvReady);
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_fails_the_env_naming_what_each_app_showed() -> Result<()> {
    let fx = Fixture::start().await?;
    let mut config = fx.config();
    config.tracker.timeout = Duration::from_secs(2);
    let worker = fx
        .run_with(
            config,
            std::sync::Arc::new(sync_watcher::history::SameRevisionOnly),
        )
        .await?;
    fx.request(ENV, CHANGE, PUSHED, &["ping", "maindb"]).await?;
    fx.create_application(ENV, "ping");
    fx.set_status(ENV, "ping", "OutOfSync", "Progressing", OLDER);

    let (kind, failed) = fx.verdict(ENV).await?;
    assert_eq!(kind, EventType::EnvFailed);
    assert!(
        failed.reason.starts_with("not ready after 2s"),
        "{}",
        failed.reason
    );
    assert!(
        failed.reason.contains("ping (OutOfSync/Progressing"),
        "{}",
        failed.reason
    );
    assert!(
        failed.reason.contains("maindb (no Application seen"),
        "{}",
        failed.reason
    );
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_breaks_resumes_without_missing_the_transition() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    fx.request(ENV, CHANGE, PUSHED, &["ping", "maindb"]).await?;
    fx.create_application(ENV, "ping");
    fx.create_application(ENV, "maindb");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The server ends every watch; the app turns healthy before the watcher is back.
    fx.kube.close_watches();
    fx.set_status(ENV, "ping", "Synced", "Healthy", PUSHED);
    // The server forgets history: resuming at an old resourceVersion answers 410, and the
    // watcher lists again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    fx.kube.compact();
    fx.kube.expire_watches();
    fx.set_status(ENV, "maindb", "Synced", "Healthy", PUSHED);

    let (kind, _) = fx.verdict(ENV).await?;
    assert_eq!(kind, EventType::EnvReady);
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_mid_wait_still_reports() -> Result<()> {
    let fx = Fixture::start().await?;
    let first = fx.run().await?;
    fx.request(ENV, CHANGE, PUSHED, &["ping"]).await?;
    fx.create_application(ENV, "ping");
    // The request was taken (acknowledged) by the first worker, which then stops.
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.shutdown().await?;

    fx.set_status(ENV, "ping", "Synced", "Healthy", PUSHED);
    let second = fx.run().await?;
    let (kind, ready) = fx.verdict(ENV).await?;
    assert_eq!(kind, EventType::EnvReady);
    assert_eq!(ready.change_id, CHANGE);
    second.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_push_to_the_same_preview_supersedes_the_older_wait() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    fx.request(ENV, CHANGE, OLDER, &["ping"]).await?;
    fx.create_application(ENV, "ping");
    fx.set_status(ENV, "ping", "OutOfSync", "Progressing", OLDER);
    let newer = "ping-v20240101130000-ddddddd";
    fx.request(ENV, newer, PUSHED, &["ping"]).await?;
    // The older change's revision turns healthy first: it must not be reported.
    fx.set_status(ENV, "ping", "Synced", "Healthy", OLDER);
    tokio::time::sleep(Duration::from_secs(1)).await;
    fx.stored_exactly("flotilla.env.ready.>", 0).await?;

    fx.set_status(ENV, "ping", "Synced", "Healthy", PUSHED);
    let ready = fx.stored_exactly("flotilla.env.ready.>", 1).await?;
    let ready: flotilla_proto::v1::Environment = ready[0].decode()?;
    assert_eq!(
        (ready.change_id.as_str(), ready.revision.as_str()),
        (newer, PUSHED)
    );
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_publish_one_event() -> Result<()> {
    let fx = Fixture::start().await?;
    let one = fx.run().await?;
    let two = fx.run().await?;
    fx.request(ENV, CHANGE, PUSHED, &["ping"]).await?;
    fx.create_application(ENV, "ping");
    fx.set_status(ENV, "ping", "Synced", "Healthy", PUSHED);

    fx.stored_exactly("flotilla.env.ready.>", 1).await?;
    fx.state_eventually(ENV, State::Ready).await?;
    one.shutdown().await?;
    two.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_registry_does_not_hold_is_dead_lettered() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    let forged = flotilla_proto::v1::Environment {
        env: "pr-acme-ping-404".into(),
        change_id: CHANGE.into(),
        revision: PUSHED.into(),
        ..Default::default()
    };
    let event = flotilla_bus::Outgoing::new(EventType::EnvRequested, &forged.env, &forged)?;
    fx.bus.publisher("test").publish(event).await?;
    let letters = flotilla_testing::stored_messages(
        fx.bus.jetstream(),
        "FLOTILLA_DLQ",
        "flotilla-dlq.sync-watcher",
        1,
        WITHIN,
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(letters.len(), 1);
    fx.stored_exactly("flotilla.env.ready.>", 0).await?;
    worker.shutdown().await
}
