//! Cluster mode: the release's Argo Rollout followed through the fake API server, the test
//! playing Argo CD (the sync) and the Argo Rollouts controller (steps, pauses, AnalysisRuns,
//! health); ping on loopback measured by the engine at indefinite pauses.

use crate::support::cluster::*;
use crate::support::*;

use anyhow::Result;
use flotilla_bus::EventType;
use flotilla_kube_fake::Resource;
use flotilla_proto::v1::Canary;
use serde_json::{Value, json};

fn steps() -> Value {
    json!([{"setWeight": 20}, {"pause": {}}, {"setWeight": 100}])
}

/// The controller takes up the synced template: the canary at its first step.
fn progressing(kube: &flotilla_kube_fake::FakeKube) {
    status(
        kube,
        json!({
            "phase": "Progressing",
            "observedGeneration": "2",
            "currentPodHash": NEW_HASH,
            "currentStepIndex": 0,
        }),
    );
}

fn decoded(events: &[flotilla_bus::Event]) -> Result<Vec<Canary>> {
    Ok(events
        .iter()
        .map(|e| e.decode())
        .collect::<Result<_, _>>()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_judged_at_its_pause_promoted_and_reported_promoted() -> Result<()> {
    let fx = Fixture::start().await?;
    let kube = kube().await;
    seed(&kube, steps());
    let ping = ping(0.0).await?;
    let worker = run(&fx, &kube).await?;

    fx.release(VERSION, &[("web-status", &[("url", status_url(ping))])])
        .await?;
    // Synced, but the controller has not observed it: the old Healthy status is no verdict.
    watching(&kube).await?;
    sync(&kube, VERSION);
    progressing(&kube);
    status(
        &kube,
        json!({
            "phase": "Paused",
            "currentStepIndex": 1,
            "controllerPause": true,
            "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2024-01-01T12:00:00Z"}],
        }),
    );
    // Judged with the engine, then promoted as `kubectl argo rollouts promote` does.
    until(&kube, |s| s.get("pauseConditions").is_none()).await?;
    let measurements = fx
        .stored_exactly(&format!("flotilla.canary.measurement.{RELEASE}"), 3)
        .await?;
    for m in decoded(&measurements)? {
        assert_eq!((m.step, m.phase.as_str()), (1, "Successful"), "{m:?}");
        assert_eq!(m.analysis_run, "web-status");
    }
    status(
        &kube,
        json!({"phase": "Progressing", "controllerPause": null, "currentStepIndex": 2}),
    );
    status(
        &kube,
        json!({"phase": "Healthy", "currentStepIndex": 3, "stableRS": NEW_HASH}),
    );

    let (kind, verdict) = fx.verdict(RELEASE).await?;
    assert_eq!(kind, EventType::CanaryPromoted, "{verdict:?}");
    assert_eq!(verdict.previous_version, PREVIOUS);
    let steps = decoded(
        &fx.stored_exactly(&format!("flotilla.canary.step.{RELEASE}"), 3)
            .await?,
    )?;
    assert_eq!(
        steps.iter().map(|s| (s.step, s.weight)).collect::<Vec<_>>(),
        [(0, 20), (1, 20), (2, 100)]
    );
    assert_ne!(rollout_status(&kube).get("abort"), Some(&json!(true)));
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_metric_at_the_pause_aborts_the_rollout_and_the_release() -> Result<()> {
    let fx = Fixture::start().await?;
    let kube = kube().await;
    seed(&kube, steps());
    let ping = ping(1.0).await?;
    let worker = run(&fx, &kube).await?;

    fx.release(VERSION, &[("web-status", &[("url", status_url(ping))])])
        .await?;
    watching(&kube).await?;
    sync(&kube, VERSION);
    progressing(&kube);
    status(
        &kube,
        json!({
            "phase": "Paused",
            "currentStepIndex": 1,
            "pauseConditions": [{"reason": "CanaryPauseStep"}],
        }),
    );

    let (kind, verdict) = fx.verdict(RELEASE).await?;
    assert_eq!(kind, EventType::CanaryAborted, "{verdict:?}");
    assert_eq!(verdict.metric, "status");
    assert!(verdict.reason.contains("degraded"), "{}", verdict.reason);
    // Aborted as `kubectl argo rollouts abort` does; still paused, never promoted.
    let status = rollout_status(&kube);
    assert_eq!(status.get("abort"), Some(&json!(true)), "{status}");
    assert!(status.get("pauseConditions").is_some(), "{status}");
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_with_its_own_analysis_is_followed_and_the_engine_not_run() -> Result<()> {
    let fx = Fixture::start().await?;
    let kube = kube().await;
    seed(
        &kube,
        json!([
            {"setWeight": 20},
            {"analysis": {"templates": [{"templateName": "success-rate"}]}},
            {"setWeight": 100},
        ]),
    );
    let worker = run(&fx, &kube).await?;

    // The engine run on this would abort at once: the template does not exist here.
    fx.release(VERSION, &[("no-such-template", &[])]).await?;
    watching(&kube).await?;
    sync(&kube, VERSION);
    progressing(&kube);
    status(&kube, json!({"currentStepIndex": 1}));
    fx.stored_exactly(&format!("flotilla.canary.step.{RELEASE}"), 2)
        .await?;
    let run_name = format!("{ROLLOUT}-{NEW_HASH}-2-1");
    kube.put(
        &Resource::argo_analysis_run(),
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {
                "name": run_name,
                "namespace": NS,
                "labels": {"rollouts-pod-template-hash": NEW_HASH, "rollout-type": "Step"},
                "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": ROLLOUT, "controller": true, "uid": "u1"}],
            },
            "spec": {"metrics": [{"name": "success-rate"}]},
            "status": {
                "phase": "Running",
                "metricResults": [{
                    "name": "success-rate",
                    "phase": "Running",
                    "count": 2,
                    "measurements": [
                        {"phase": "Successful", "value": "[0.99]"},
                        {"phase": "Successful", "value": "[0.97]"},
                        {"phase": "Running"},
                    ],
                }],
            },
        }),
    );
    let measurements = decoded(
        &fx.stored_exactly(&format!("flotilla.canary.measurement.{RELEASE}"), 2)
            .await?,
    )?;
    assert_eq!(
        measurements
            .iter()
            .map(|m| (m.metric.as_str(), m.value, m.analysis_run.as_str(), m.step))
            .collect::<Vec<_>>(),
        [
            ("success-rate", 0.99, run_name.as_str(), 1),
            ("success-rate", 0.97, run_name.as_str(), 1),
        ]
    );
    status(
        &kube,
        json!({"phase": "Healthy", "currentStepIndex": 3, "stableRS": NEW_HASH}),
    );

    let (kind, verdict) = fx.verdict(RELEASE).await?;
    assert_eq!(kind, EventType::CanaryPromoted, "{verdict:?}");
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_degraded_rollout_aborts_the_release_with_its_message() -> Result<()> {
    let fx = Fixture::start().await?;
    let kube = kube().await;
    seed(
        &kube,
        json!([{"setWeight": 20}, {"pause": {"duration": "1h"}}]),
    );
    let worker = run(&fx, &kube).await?;

    fx.release(VERSION, &[]).await?;
    watching(&kube).await?;
    sync(&kube, VERSION);
    progressing(&kube);
    status(
        &kube,
        json!({
            "phase": "Degraded",
            "message": "ProgressDeadlineExceeded: ReplicaSet \"ping-7d8e9f0bbb\" has timed out progressing.",
        }),
    );

    let (kind, verdict) = fx.verdict(RELEASE).await?;
    assert_eq!(kind, EventType::CanaryAborted, "{verdict:?}");
    assert!(
        verdict.reason.contains("Degraded") && verdict.reason.contains("timed out progressing"),
        "{}",
        verdict.reason
    );
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_never_synced_aborts_after_the_sync_timeout() -> Result<()> {
    let fx = Fixture::start().await?;
    let kube = kube().await;
    seed(&kube, steps());
    let mut config = fx.config();
    config.sync_timeout = std::time::Duration::from_millis(500);
    let worker = run_with(&fx, &kube, config).await?;

    fx.release(VERSION, &[]).await?;

    let (kind, verdict) = fx.verdict(RELEASE).await?;
    assert_eq!(kind, EventType::CanaryAborted, "{verdict:?}");
    assert!(
        verdict.reason.contains("not synced") && verdict.reason.contains("does not run it"),
        "{}",
        verdict.reason
    );
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_aborted_by_its_own_analysis_aborts_the_release_with_the_failing_metric()
-> Result<()> {
    let fx = Fixture::start().await?;
    let kube = kube().await;
    seed(
        &kube,
        json!([{"setWeight": 20}, {"pause": {}}, {"setWeight": 100}]),
    );
    // Background analysis: Argo judges the whole canary itself.
    merge(
        &kube,
        json!({"spec": {"strategy": {"canary": {"analysis": {"templates": [{"templateName": "web"}]}}}}}),
    );
    let worker = run(&fx, &kube).await?;

    fx.release(VERSION, &[]).await?;
    watching(&kube).await?;
    sync(&kube, VERSION);
    progressing(&kube);
    fx.stored_exactly(&format!("flotilla.canary.step.{RELEASE}"), 1)
        .await?;
    kube.put(
        &Resource::argo_analysis_run(),
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {
                "name": format!("{ROLLOUT}-{NEW_HASH}-2"),
                "namespace": NS,
                "labels": {"rollouts-pod-template-hash": NEW_HASH, "rollout-type": "Background"},
                "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": ROLLOUT, "controller": true, "uid": "u1"}],
            },
            "spec": {"metrics": [{"name": "web"}]},
            "status": {
                "phase": "Failed",
                "message": "metric \"web\" assessed Failed due to failed (1) > failureLimit (0)",
                "metricResults": [{
                    "name": "web",
                    "phase": "Failed",
                    "count": 1,
                    "failed": 1,
                    "measurements": [{"phase": "Failed", "value": "false"}],
                }],
            },
        }),
    );
    fx.stored_exactly(&format!("flotilla.canary.measurement.{RELEASE}"), 1)
        .await?;
    // A pause with Argo's own analysis is not the engine's to judge: never promoted here.
    status(
        &kube,
        json!({"phase": "Paused", "currentStepIndex": 1, "pauseConditions": [{"reason": "CanaryPauseStep"}]}),
    );
    status(
        &kube,
        json!({
            "abort": true,
            "phase": "Degraded",
            "canary": {"currentBackgroundAnalysisRunStatus": {
                "status": "Failed",
                "message": "metric \"web\" assessed Failed due to failed (1) > failureLimit (0)",
            }},
        }),
    );

    let (kind, verdict) = fx.verdict(RELEASE).await?;
    assert_eq!(kind, EventType::CanaryAborted, "{verdict:?}");
    assert_eq!(verdict.metric, "web");
    assert!(
        verdict.reason.contains("aborted") && verdict.reason.contains("failureLimit"),
        "{}",
        verdict.reason
    );
    assert!(rollout_status(&kube).get("pauseConditions").is_some());
    worker.shutdown().await
}
