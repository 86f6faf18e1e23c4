//! kube-rs 5 against the fake, through an ordinary `kube::Config`: what later workers rely on.

use std::time::Duration;

use anyhow::{Context, Result};
use flotilla_kube_fake::jobs::{Script, run_jobs};
use flotilla_kube_fake::{FakeKube, Resource};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, Patch,
    PatchParams, PostParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;

const WITHIN: Duration = Duration::from_secs(10);

fn job(name: &str) -> Result<Job> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"team": "a"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}},
        "status": {"succeeded": 5},
    }))?)
}

#[tokio::test]
async fn objects_are_created_read_listed_and_deleted_with_the_errors_kube_expects() -> Result<()> {
    let fake = FakeKube::batch().await;
    let jobs: Api<Job> = Api::namespaced(fake.client(), "ci");

    let created = jobs.create(&PostParams::default(), &job("b1")?).await?;
    assert!(created.resource_version().is_some() && created.uid().is_some());
    assert!(
        created.status.is_none(),
        "a create ignores status where it is a subresource"
    );
    let again = jobs.create(&PostParams::default(), &job("b1")?).await;
    assert!(
        matches!(again, Err(kube::Error::Api(ref s)) if s.is_already_exists()),
        "{again:?}"
    );
    assert!(jobs.get_opt("missing").await?.is_none());

    let listed = jobs.list(&ListParams::default().labels("team=a")).await?;
    assert_eq!(listed.items.len(), 1);
    assert!(listed.metadata.resource_version.is_some());
    assert!(
        jobs.list(&ListParams::default().labels("team=b"))
            .await?
            .items
            .is_empty()
    );

    let mut stale = created.clone();
    jobs.patch(
        "b1",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
    )
    .await?;
    stale.metadata.labels = None;
    let conflict = jobs.replace("b1", &PostParams::default(), &stale).await;
    assert!(
        matches!(conflict, Err(kube::Error::Api(ref s)) if s.is_conflict()),
        "{conflict:?}"
    );

    jobs.delete("b1", &DeleteParams::background()).await?;
    assert!(jobs.get_opt("b1").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn status_is_a_subresource_of_jobs_but_not_of_argo_cd_applications() -> Result<()> {
    let fake = FakeKube::start([
        Resource::job(),
        Resource::pod(),
        Resource::argo_application(),
    ])
    .await;
    let jobs: Api<Job> = Api::namespaced(fake.client(), "ci");
    jobs.create(&PostParams::default(), &job("b1")?).await?;

    let main = jobs
        .patch(
            "b1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"failed": 1}, "metadata": {"labels": {"l": "1"}}})),
        )
        .await?;
    assert!(
        main.status.is_none(),
        "a main write leaves the status alone"
    );
    assert_eq!(main.labels().get("l").map(String::as_str), Some("1"));
    let status = jobs
        .patch_status(
            "b1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"failed": 1}, "metadata": {"labels": {"l": "2"}}})),
        )
        .await?;
    assert_eq!(status.status.as_ref().and_then(|s| s.failed), Some(1));
    assert_eq!(
        status.labels().get("l").map(String::as_str),
        Some("1"),
        "a status write changes only the status"
    );

    let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "applications");
    let apps: Api<DynamicObject> = Api::namespaced_with(fake.client(), "argocd", &ar);
    let app: DynamicObject = serde_json::from_value(
        json!({"metadata": {"name": "a1"}, "spec": {"project": "default"}}),
    )?;
    apps.create(&PostParams::default(), &app).await?;
    let no_status = apps
        .patch_status(
            "a1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {}})),
        )
        .await;
    assert!(
        matches!(no_status, Err(kube::Error::Api(ref s)) if s.is_not_found()),
        "{no_status:?}"
    );
    let patched = apps
        .patch(
            "a1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"sync": {"status": "Synced"}}})),
        )
        .await?;
    assert_eq!(patched.data["status"]["sync"]["status"], "Synced");
    Ok(())
}

#[tokio::test]
async fn a_watcher_sees_changes_and_recovers_from_closed_and_expired_watches() -> Result<()> {
    let fake = FakeKube::batch().await;
    let jobs: Api<Job> = Api::namespaced(fake.client(), "ci");
    jobs.create(&PostParams::default(), &job("b1")?).await?;
    let config = watcher::Config::default().fields("metadata.name=b1");
    let mut events = watcher(jobs.clone(), config)
        .default_backoff()
        .applied_objects()
        .boxed();
    let first = tokio::time::timeout(WITHIN, events.next())
        .await?
        .context("initial object")??;
    assert_eq!(first.name_any(), "b1");

    for (step, disturb) in ["closed", "expired", "compacted"].into_iter().enumerate() {
        match disturb {
            "closed" => fake.close_watches(),
            "expired" => fake.expire_watches(),
            _ => {
                fake.compact();
                fake.close_watches();
            }
        }
        let failed = i32::try_from(step + 1)?;
        fake.merge_status(&Resource::job(), "ci", "b1", json!({"failed": failed}));
        let seen = tokio::time::timeout(WITHIN, async {
            // An expired watch surfaces as one error, after which the watcher relists.
            while let Some(job) = events.next().await {
                if let Ok(job) = job
                    && job.status.and_then(|s| s.failed) == Some(failed)
                {
                    return Ok::<_, anyhow::Error>(());
                }
            }
            anyhow::bail!("the watch ended")
        })
        .await;
        assert!(
            matches!(seen, Ok(Ok(()))),
            "after the watch was {disturb}: {seen:?}"
        );
    }
    let lists = fake
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET ") && !r.contains("watch=true"))
        .count();
    assert!(
        lists >= 2,
        "an expired watch makes the watcher list again: {:?}",
        fake.requests()
    );
    Ok(())
}

#[tokio::test]
async fn a_scripted_job_runs_its_pod_logs_and_finishes_and_its_pod_goes_with_it() -> Result<()> {
    let fake = FakeKube::batch().await;
    run_jobs(&fake, |_| {
        Script::succeed_after(Duration::from_millis(300)).with_log("one\ntwo\nthree\n")
    });
    let client = fake.client();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "ci");
    let pods: Api<Pod> = Api::namespaced(client, "ci");
    jobs.create(&PostParams::default(), &job("b1")?).await?;

    let done = kube::runtime::wait::await_condition(
        jobs.clone(),
        "b1",
        kube::runtime::conditions::is_job_completed(),
    );
    let done = tokio::time::timeout(WITHIN, done)
        .await??
        .context("the Job exists")?;
    assert_eq!(done.status.and_then(|s| s.succeeded), Some(1));
    let listed = pods
        .list(&ListParams::default().labels("job-name=b1"))
        .await?;
    let pod = listed.items.first().context("the Job's pod")?;
    let tail = pods
        .logs(
            &pod.name_any(),
            &LogParams {
                tail_lines: Some(2),
                ..LogParams::default()
            },
        )
        .await?;
    assert_eq!(tail, "two\nthree\n");

    jobs.delete("b1", &DeleteParams::background()).await?;
    assert!(
        pods.list(&ListParams::default().labels("job-name=b1"))
            .await?
            .items
            .is_empty(),
        "owned pods are collected"
    );
    Ok(())
}

#[tokio::test]
async fn discovery_and_version_answer_for_what_is_served() -> Result<()> {
    let fake = FakeKube::start([Resource::argo_rollout(), Resource::argo_analysis_run()]).await;
    let client = fake.client();
    let version = client.apiserver_version().await?;
    assert_eq!(version.major, "1");
    let (ar, caps) = kube::discovery::pinned_kind(
        &client,
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "AnalysisRun"),
    )
    .await?;
    assert_eq!(ar.plural, "analysisruns");
    assert!(
        caps.subresources
            .iter()
            .any(|(r, _)| r.plural.ends_with("status")),
        "{:?}",
        caps.subresources
    );
    Ok(())
}
