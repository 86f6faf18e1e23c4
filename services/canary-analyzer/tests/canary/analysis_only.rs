//! Analysis-only (no cluster): the release's named templates run against real HTTP (ping on
//! loopback, the web provider); each step and measurement is reported; every template passing
//! promotes, a failing one aborts naming its metric and value; the minimum-sample policy.

use crate::support::*;

use anyhow::Result;
use flotilla_bus::EventType;
use flotilla_proto::v1::Canary;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted_with_every_step_and_measurement_reported() -> Result<()> {
    let fx = Fixture::start().await?;
    let ping = ping(0.0).await?;
    let mut config = fx.config();
    config.steps = vec![50, 100];
    let worker = fx.run_with(config).await?;

    fx.release(VERSION, &[("web-status", &[("url", status_url(ping))])])
        .await?;

    let (kind, verdict) = fx.verdict(RELEASE).await?;
    assert_eq!(kind, EventType::CanaryPromoted, "{verdict:?}");
    assert_eq!(verdict.release, RELEASE);
    assert_eq!(verdict.change_id, RELEASE);
    assert_eq!(
        (verdict.app.as_str(), verdict.version.as_str()),
        ("ping", VERSION)
    );
    assert_eq!(verdict.previous_version, PREVIOUS);
    assert_eq!(verdict.repo, "acme/ping");
    assert_eq!(verdict.sha.len(), 40);
    let steps: Vec<Canary> = fx
        .stored_exactly(&format!("flotilla.canary.step.{RELEASE}"), 2)
        .await?
        .iter()
        .map(|e| e.decode())
        .collect::<Result<_, _>>()?;
    assert_eq!(
        steps.iter().map(|s| (s.step, s.weight)).collect::<Vec<_>>(),
        [(0, 50), (1, 100)]
    );
    // Three measurements at each of the two steps.
    let measurements = fx
        .stored_exactly(&format!("flotilla.canary.measurement.{RELEASE}"), 6)
        .await?;
    for event in &measurements {
        let m: Canary = event.decode()?;
        assert_eq!(event.change_id.as_deref(), Some(RELEASE));
        assert_eq!(
            (m.metric.as_str(), m.phase.as_str()),
            ("status", "Successful")
        );
        assert!(m.reason.contains("ok"), "{m:?}");
        assert_eq!(m.analysis_run, "web-status");
    }
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_is_aborted_with_the_failing_metric_and_value() -> Result<()> {
    let fx = Fixture::start().await?;
    let ping = ping(1.0).await?;
    let worker = fx.run().await?;

    fx.release(VERSION, &[("web-status", &[("url", status_url(ping))])])
        .await?;

    let (kind, verdict) = fx.verdict(RELEASE).await?;
    assert_eq!(kind, EventType::CanaryAborted, "{verdict:?}");
    assert_eq!(verdict.metric, "status");
    assert!(
        verdict.reason.contains("web-status") && verdict.reason.contains("degraded"),
        "{}",
        verdict.reason
    );
    assert_eq!(verdict.phase, "Failed");
    assert_eq!(verdict.previous_version, PREVIOUS);
    // failureLimit 0: the first measurement fails the analysis, and nothing is measured after.
    let measurements = fx
        .stored_exactly(&format!("flotilla.canary.measurement.{RELEASE}"), 1)
        .await?;
    let m: Canary = measurements[0].decode()?;
    assert_eq!(m.phase, "Failed");
    fx.stored_exactly(&format!("flotilla.canary.promoted.{RELEASE}"), 0)
        .await?;
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_template_or_arg_aborts_naming_it() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;

    // web-status declares `url` without a value and none is given.
    fx.release(VERSION, &[("web-status", &[])]).await?;
    fx.release("v20240102120000-ccccccc", &[("no-such-template", &[])])
        .await?;

    let (kind, verdict) = fx.verdict(RELEASE).await?;
    assert_eq!(kind, EventType::CanaryAborted);
    assert!(verdict.reason.contains("url"), "{}", verdict.reason);
    let (kind, verdict) = fx.verdict("ping-v20240102120000-ccccccc").await?;
    assert_eq!(kind, EventType::CanaryAborted);
    assert!(
        verdict
            .reason
            .contains("no AnalysisTemplate named no-such-template"),
        "{}",
        verdict.reason
    );
    worker.shutdown().await
}

/// A metric whose condition passes on anything: an empty list passes it.
const EMPTY_PASSES: &str = "apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: requests
spec:
  args:
  - name: url
  metrics:
  - name: requests
    count: 2
    interval: 100ms
    successCondition: \"true\"
    provider:
      web:
        url: \"{{args.url}}\"
        jsonPath: \"{$.requests}\"
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_minimum_sample_count_a_canary_without_traffic_is_not_promoted() -> Result<()> {
    let fx = Fixture::start().await?;
    fx.template("requests.yaml", EMPTY_PASSES)?;
    // A canary nobody sent traffic to: its request log is empty.
    let idle = serve(axum::Router::new().route(
        "/requests",
        axum::routing::get(|| async { axum::Json(serde_json::json!({"requests": []})) }),
    ))
    .await?;
    let url = format!("http://{idle}/requests");

    // Argo's verdict as it stands: Successful on empty data.
    let lenient = fx.run().await?;
    fx.release(VERSION, &[("requests", &[("url", url.clone())])])
        .await?;
    let (kind, _) = fx.verdict(RELEASE).await?;
    assert_eq!(kind, EventType::CanaryPromoted);
    lenient.shutdown().await?;

    let mut config = fx.config();
    config.min_samples = 1;
    let strict = fx.run_with(config).await?;
    let second = "v20240102120000-ccccccc";
    fx.release(second, &[("requests", &[("url", url)])]).await?;
    let (kind, verdict) = fx.verdict(&format!("ping-{second}")).await?;
    assert_eq!(kind, EventType::CanaryAborted, "{verdict:?}");
    assert_eq!(verdict.metric, "requests");
    assert!(verdict.reason.contains("no traffic"), "{}", verdict.reason);
    strict.shutdown().await
}
