//! ping over real HTTP on loopback: its answers, its metrics, its injected faults.

use std::time::Duration;

use anyhow::Result;
use ping::{Answer, Settings};

async fn serve(settings: Settings) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, ping::router(settings)).await });
    Ok(format!("http://{addr}"))
}

fn settings(answer: Answer, error_rate: f64) -> Settings {
    Settings {
        answer,
        error_rate,
        extra_latency: Duration::ZERO,
        app_version: None,
    }
}

#[tokio::test]
async fn the_old_version_answers_pong_and_the_new_one_json() -> Result<()> {
    let old = serve(settings(Answer::Text, 0.0)).await?;
    assert_eq!(
        reqwest::get(format!("{old}/ping")).await?.text().await?,
        "pong"
    );
    let new = serve(settings(Answer::Json, 0.0)).await?;
    let body: serde_json::Value = reqwest::get(format!("{new}/ping")).await?.json().await?;
    assert_eq!(body, serde_json::json!({"value": "pong"}));
    Ok(())
}

#[tokio::test]
async fn an_error_rate_fails_that_share_of_requests_and_the_metrics_count_them() -> Result<()> {
    let url = serve(settings(Answer::Text, 0.3)).await?;
    let mut failed = 0;
    for _ in 0..100 {
        if reqwest::get(format!("{url}/ping"))
            .await?
            .status()
            .is_server_error()
        {
            failed += 1;
        }
    }
    assert_eq!(failed, 30);
    let metrics = reqwest::get(format!("{url}/metrics")).await?.text().await?;
    assert!(
        metrics.contains(r#"ping_http_requests_total{code="200"} 70"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"ping_http_requests_total{code="500"} 30"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("ping_http_request_duration_seconds_count 100"),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test]
async fn extra_latency_shows_in_the_histogram() -> Result<()> {
    let mut slow = settings(Answer::Text, 0.0);
    slow.extra_latency = Duration::from_millis(60);
    let url = serve(slow).await?;
    reqwest::get(format!("{url}/ping")).await?;
    let metrics = reqwest::get(format!("{url}/metrics")).await?.text().await?;
    assert!(
        metrics.contains(r#"ping_http_request_duration_seconds_bucket{le="0.05"} 0"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"ping_http_request_duration_seconds_bucket{le="0.1"} 1"#),
        "{metrics}"
    );
    Ok(())
}

#[test]
fn an_error_rate_outside_zero_to_one_is_refused() {
    assert!(settings(Answer::Text, 1.5).check().is_err());
    assert!(settings(Answer::Text, 1.0).check().is_ok());
}

#[tokio::test]
async fn status_counts_the_answers_and_has_no_success_rate_before_a_request() -> Result<()> {
    let url = serve(settings(Answer::Json, 0.25)).await?;
    let before: serde_json::Value = reqwest::get(format!("{url}/status")).await?.json().await?;
    assert_eq!(
        before,
        serde_json::json!({"status": "degraded", "requests": 0, "errors": 0})
    );
    for _ in 0..8 {
        reqwest::get(format!("{url}/ping")).await?;
    }
    let after: serde_json::Value = reqwest::get(format!("{url}/status")).await?.json().await?;
    assert_eq!(after["requests"], 8);
    assert_eq!(after["errors"], 2);
    assert_eq!(after["success_rate"], 0.75);
    Ok(())
}

#[tokio::test]
async fn a_version_labels_every_metric() -> Result<()> {
    let mut canary = settings(Answer::Json, 0.0);
    canary.app_version = Some("v2".into());
    let url = serve(canary).await?;
    reqwest::get(format!("{url}/ping")).await?;
    let metrics = reqwest::get(format!("{url}/metrics")).await?.text().await?;
    assert!(
        metrics.contains(r#"ping_http_requests_total{version="v2",code="200"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"ping_http_request_duration_seconds_count{version="v2"} 1"#),
        "{metrics}"
    );
    Ok(())
}
