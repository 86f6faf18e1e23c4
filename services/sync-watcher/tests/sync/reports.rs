//! `POST /report/{env}/{app}`: what a PostSync hook calls. Reports alone make an env ready (no
//! cluster), they mix with the watch, and bad requests get precise answers.

use crate::support::*;

use std::sync::Arc;

use anyhow::Result;
use flotilla_bus::EventType;
use serde_json::json;
use sync_watcher::Kube;
use sync_watcher::history::SameRevisionOnly;

const ENV: &str = "stg-ping-v20240101120000-bbbbbbb";
const CHANGE: &str = "ping-v20240101120000-bbbbbbb";

async fn post(
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<(u16, String)> {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    Ok((response.status().as_u16(), response.text().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_alone_make_an_env_ready_without_a_cluster() -> Result<()> {
    let fx = Fixture::start().await?;
    let mut config = fx.config();
    config.kube = Kube::Off;
    let worker = fx.run_with(config, Arc::new(SameRevisionOnly)).await?;
    fx.request(ENV, CHANGE, PUSHED, &["ping", "maindb"]).await?;
    let succeeded = json!({"status": "succeeded", "message": "smoke tests passed"}).to_string();

    let (status, body) = post(
        worker.addr(),
        &format!("/report/{ENV}/ping"),
        None,
        &succeeded,
    )
    .await?;
    assert_eq!(status, 202, "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    fx.stored_exactly("flotilla.env.ready.>", 0).await?;
    let (status, _) = post(
        worker.addr(),
        &format!("/report/{ENV}/maindb"),
        None,
        &succeeded,
    )
    .await?;
    assert_eq!(status, 202);

    let (kind, ready) = fx.verdict(ENV).await?;
    assert_eq!(kind, EventType::EnvReady);
    assert_eq!(ready.change_id, CHANGE);
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_and_the_watch_together_make_the_env_ready() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    fx.request(ENV, CHANGE, PUSHED, &["ping", "maindb"]).await?;
    fx.create_application(ENV, "maindb");
    fx.set_status(ENV, "maindb", "Synced", "Healthy", PUSHED);
    let body = json!({"status": "succeeded"}).to_string();
    let (status, _) = post(worker.addr(), &format!("/report/{ENV}/ping"), None, &body).await?;
    assert_eq!(status, 202);

    let (kind, _) = fx.verdict(ENV).await?;
    assert_eq!(kind, EventType::EnvReady);
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_report_fails_the_env_with_its_message() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    fx.request(ENV, CHANGE, PUSHED, &["ping"]).await?;
    let body = json!({"status": "failed", "message": "seed: pg_restore exited 1"}).to_string();
    let (status, _) = post(worker.addr(), &format!("/report/{ENV}/ping"), None, &body).await?;
    assert_eq!(status, 202);

    let (kind, failed) = fx.verdict(ENV).await?;
    assert_eq!(kind, EventType::EnvFailed);
    assert_eq!(failed.reason, "ping: seed: pg_restore exited 1");
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reports_get_precise_answers_and_change_nothing() -> Result<()> {
    let fx = Fixture::start().await?;
    let mut config = fx.config();
    config.report_token = Some("hook-token".into());
    let worker = fx.run_with(config, Arc::new(SameRevisionOnly)).await?;
    fx.request(ENV, CHANGE, PUSHED, &["ping"]).await?;
    let good = json!({"status": "succeeded"}).to_string();
    let addr = worker.addr();
    let path = format!("/report/{ENV}/ping");

    assert_eq!(post(addr, &path, None, &good).await?.0, 401, "no token");
    assert_eq!(
        post(addr, &path, Some("wrong"), &good).await?.0,
        401,
        "a wrong token"
    );
    let token = Some("hook-token");
    assert_eq!(
        post(addr, "/report/pr-nobody-1/ping", token, &good)
            .await?
            .0,
        404,
        "unknown env"
    );
    assert_eq!(
        post(addr, &format!("/report/{ENV}/nope"), token, &good)
            .await?
            .0,
        404,
        "unknown app"
    );
    assert_eq!(
        post(addr, &path, token, "not json").await?.0,
        400,
        "not JSON"
    );
    let (status, body) = post(addr, &path, token, &json!({"status": "maybe"}).to_string()).await?;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("succeeded"), "{body}");
    fx.stored_exactly("flotilla.env.ready.>", 0).await?;

    assert_eq!(post(addr, &path, token, &good).await?.0, 202);
    fx.stored_exactly("flotilla.env.ready.>", 1).await?;
    worker.shutdown().await
}
