//! The job backend against the fake Kubernetes API server (tests/kube-fake): kube-rs is pointed
//! at it through an ordinary `kube::Config`, and the fake's scripted Job controller plays the
//! cluster ("this Job succeeds after 300 ms and logs this").

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use builder_trigger::config::JobCleanup;
use builder_trigger::job::{self, Settings};
use builder_trigger::{BackendConfig, BuilderTrigger, Config, Runner};
use flotilla_bus::EventType;
use flotilla_kube_fake::jobs::{Script, run_jobs};
use flotilla_kube_fake::{FakeKube, Resource};
use serde_json::Value;
use support::*;

const NS: &str = "ci";

fn settings() -> Settings {
    Settings {
        namespace: Some(NS.into()),
        build_command: Some("/kaniko/executor --destination \"$FLOTILLA_IMAGE\"".into()),
        test_command: Some("migrate && functional-tests \"$FLOTILLA_ENV_URL\"".into()),
        ..Settings::new("gcr.io/kaniko-project/executor:debug")
    }
}

/// Runs builder-trigger on the job backend against `fake`, remembering the Jobs it creates.
async fn run_job(
    fx: &Fixture,
    fake: &FakeKube,
    settings: Settings,
    timeout: Duration,
) -> Result<(Running, Arc<Mutex<Vec<Value>>>)> {
    let created = Arc::new(Mutex::new(Vec::new()));
    let seen = created.clone();
    fake.on_create(&Resource::job(), move |_, job| {
        seen.lock().expect("not poisoned").push(job)
    });
    let mut config = Config::with_backend(BackendConfig::Job(settings.clone()));
    config.build_timeout = timeout;
    config.test_timeout = timeout;
    let runner = Runner::Job(job::Backend::from_config(settings, fake.config())?);
    let worker = fx
        .run_handler(BuilderTrigger::new(config, runner, fx.registry().await?))
        .await?;
    Ok((worker, created))
}

fn env_of(job: &Value, name: &str) -> Option<String> {
    job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .map(str::to_owned)
}

async fn gone(fake: &FakeKube, name: &str) -> bool {
    flotilla_kube_fake::eventually(fake, WITHIN, |f| {
        (f.get(&Resource::job(), NS, name).is_none() && f.list(&Resource::pod()).is_empty())
            .then_some(())
    })
    .await
    .is_some()
}

#[tokio::test]
async fn a_build_job_that_succeeds_publishes_build_succeeded_and_is_deleted_with_its_pod()
-> Result<()> {
    let fx = Fixture::start().await?;
    let fake = FakeKube::batch().await;
    run_jobs(&fake, |_| {
        Script::succeed_after(Duration::from_millis(300)).with_log("pushed\n")
    });
    let (worker, created) = run_job(&fx, &fake, settings(), WITHIN).await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let events = fx.stored_exactly("flotilla.build.>", 2).await?;
    assert!(
        events[1].subject.starts_with("flotilla.build.succeeded."),
        "{}",
        events[1].subject
    );
    let built = build(&events[1])?;
    let job = created
        .lock()
        .expect("not poisoned")
        .first()
        .cloned()
        .context("a Job was created")?;
    let name = job["metadata"]["name"]
        .as_str()
        .context("named")?
        .to_owned();
    assert_eq!(name, format!("build-{}", built.change_id));
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "gcr.io/kaniko-project/executor:debug");
    assert_eq!(container["command"][0], "sh");
    assert_eq!(
        container["command"][2],
        settings().build_command.as_deref().unwrap_or_default()
    );
    assert_eq!(
        env_of(&job, "FLOTILLA_VERSION").as_deref(),
        Some(built.version.as_str())
    );
    assert_eq!(env_of(&job, "FLOTILLA_SHA").as_deref(), Some(SHA));
    assert_eq!(job["spec"]["backoffLimit"], 0);
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 15);
    assert!(gone(&fake, &name).await, "the Job and its pod were deleted");

    let requests = fake.requests();
    assert!(
        requests.iter().any(|r| r.contains("watch=true")
            && r.contains(&format!("fieldSelector=metadata.name%3D{name}"))),
        "the Job is watched: {requests:?}"
    );
    assert!(
        !requests
            .iter()
            .any(|r| r.starts_with(&format!("GET /apis/batch/v1/namespaces/{NS}/jobs/{name}"))),
        "never polled: {requests:?}"
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_failing_build_job_fails_the_build_with_its_reason_and_its_pod_log() -> Result<()> {
    let fx = Fixture::start().await?;
    let fake = FakeKube::batch().await;
    let log: String = (1..=30).map(|n| format!("step {n}\n")).collect::<String>()
        + "error: cannot push registry/apps/ping: denied\n";
    run_jobs(&fake, move |_| {
        Script::fail_after(Duration::from_millis(300)).with_log(&log)
    });
    let mut settings = settings();
    let logs = fx.file("logs");
    settings.log_dir = Some(logs.clone());
    let (worker, _) = run_job(&fx, &fake, settings, WITHIN).await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let failed = fx.build_failed().await?;
    assert!(
        failed
            .reason
            .starts_with("the Job failed: BackoffLimitExceeded"),
        "{}",
        failed.reason
    );
    assert!(
        failed
            .reason
            .contains("error: cannot push registry/apps/ping: denied"),
        "{}",
        failed.reason
    );
    assert!(
        !failed.reason.contains("step 5\n"),
        "only the last lines are quoted"
    );
    let kept = std::path::PathBuf::from(&failed.log_url);
    assert!(kept.starts_with(&logs), "{}", failed.log_url);
    assert_eq!(
        lines(&kept).len(),
        31,
        "the whole pod log outlives the deleted Job"
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_build_job_past_its_timeout_is_deleted_and_fails() -> Result<()> {
    let fx = Fixture::start().await?;
    let fake = FakeKube::batch().await;
    run_jobs(&fake, |_| Script::hang().with_log("still building\n"));
    let (worker, created) = run_job(&fx, &fake, settings(), Duration::from_secs(1)).await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let failed = fx.build_failed().await?;
    assert!(
        failed.reason.starts_with("timed out after 1s"),
        "{}",
        failed.reason
    );
    assert!(
        failed.reason.contains("still building"),
        "{}",
        failed.reason
    );
    let name = created.lock().expect("not poisoned")[0]["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(gone(&fake, &name).await, "the timed-out Job was deleted");
    worker.shutdown().await
}

#[tokio::test]
async fn a_newer_push_to_a_pull_request_deletes_the_superseded_build_job() -> Result<()> {
    let fx = Fixture::start().await?;
    let fake = FakeKube::batch().await;
    // The first head's Job never ends on its own; the newer one's succeeds.
    run_jobs(&fake, |job| {
        if env_of(job, "FLOTILLA_SHA").as_deref() == Some(SHA) {
            Script::hang()
        } else {
            Script::succeed_after(Duration::from_millis(100))
        }
    });
    let (worker, created) = run_job(&fx, &fake, settings(), WITHIN).await?;

    fx.publish(
        EventType::SourcePullRequest,
        "acme/ping",
        &pull_request("opened", 42),
    )
    .await?;
    let first = flotilla_kube_fake::eventually(&fake, WITHIN, |f| {
        f.list(&Resource::job()).first().cloned()
    })
    .await
    .context("the first Job was created")?;
    let mut newer = pull_request("synchronize", 42);
    newer.head_sha = SHA2.into();
    fx.publish(EventType::SourcePullRequest, "acme/ping", &newer)
        .await?;

    let failed = fx.build_failed().await?;
    assert_eq!(failed.sha, SHA);
    assert!(
        failed
            .reason
            .starts_with(&format!("superseded by {}", &SHA2[..7])),
        "{}",
        failed.reason
    );
    let succeeded = fx.stored("flotilla.build.succeeded.>", 1, WITHIN).await?;
    assert_eq!(build(&succeeded[0])?.sha, SHA2);
    let first = first["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        flotilla_kube_fake::eventually(&fake, WITHIN, |f| f
            .get(&Resource::job(), NS, &first)
            .is_none()
            .then_some(()))
        .await
        .is_some(),
        "the superseded Job was deleted"
    );
    assert_eq!(created.lock().expect("not poisoned").len(), 2);
    worker.shutdown().await
}

#[tokio::test]
async fn a_ready_environment_runs_the_test_job_from_the_change_pipeline_image() -> Result<()> {
    let fx = Fixture::start().await?;
    let fake = FakeKube::batch().await;
    run_jobs(&fake, |_| {
        Script::succeed_after(Duration::from_millis(200)).with_log("12 passed\n")
    });
    let mut settings = settings();
    settings.cleanup = JobCleanup::Keep;
    settings.ttl = Duration::from_secs(600);
    let (worker, created) = run_job(&fx, &fake, settings, WITHIN).await?;
    let version = "v20240305070809-1a2b3c4";
    let env = "stg-ping-v20240305070809-1a2b3c4";

    fx.publish_ready(&env_ready(env, version)).await?;

    let events = fx.stored_exactly("flotilla.tests.>", 1).await?;
    assert_eq!(events[0].subject, format!("flotilla.tests.passed.{env}"));
    let result = test_result(&events[0])?;
    let job = created
        .lock()
        .expect("not poisoned")
        .first()
        .cloned()
        .context("a test Job")?;
    let name = job["metadata"]["name"]
        .as_str()
        .context("named")?
        .to_owned();
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"],
        format!("registry/apps/ping-pipeline:{version}").as_str()
    );
    assert_eq!(
        container["command"][2],
        "migrate && functional-tests \"$FLOTILLA_ENV_URL\""
    );
    assert_eq!(env_of(&job, "FLOTILLA_ENV").as_deref(), Some(env));
    assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 600);
    assert!(
        fake.get(&Resource::job(), NS, &name).is_some(),
        "kept for its TTL"
    );
    assert_eq!(result.log_url, format!("kubectl -n {NS} logs job/{name}"));
    worker.shutdown().await
}
