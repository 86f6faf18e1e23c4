//! Environment hooks run by the worker against a real nats-server and registry: real `sh -c`
//! commands (the command backend) and Jobs on the fake Kubernetes API server (the job backend).

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use builder_trigger::job::{self, Settings};
use builder_trigger::{BackendConfig, BuilderTrigger, Config, Runner};
use flotilla_bus::{Ctx, Event, EventType, Handler, HandlerError};
use flotilla_env::hooks::RunStatus;
use flotilla_kube_fake::jobs::{Script, run_jobs};
use flotilla_kube_fake::{FakeKube, Resource};
use support::*;

/// Two provision hooks that leave what they were told in `marker`, and their deprovision.
fn two_hooks(marker: &std::path::Path) -> String {
    let m = marker.display();
    format!(
        r#"
hooks:
  - name: database
    timeout: 10s
    provision:
      command: echo "create $FLOTILLA_HOOK $FLOTILLA_HOOK_KEY $FLOTILLA_HOOK_ATTEMPT $FLOTILLA_HOOK_RERUN $FLOTILLA_APPS $FLOTILLA_HOOK_STATE_DIR" >> {m}; echo "database ready"
    deprovision:
      command: echo "destroy $FLOTILLA_HOOK" >> {m}
  - name: dataset
    timeout: 10s
    provision:
      command: echo "restore $FLOTILLA_HOOK $FLOTILLA_NAMESPACE" >> {m}
    deprovision:
      command: echo "drop $FLOTILLA_HOOK" >> {m}
"#
    )
}

#[tokio::test]
async fn provision_hooks_run_in_order_with_the_envs_facts_and_the_record_follows_them() -> Result<()>
{
    let fx = Fixture::start().await?;
    let marker = fx.file("marker");
    let config = fx.hook_config(&two_hooks(&marker))?;
    let worker = fx.run(config.clone()).await?;

    fx.request_env(&config, CHANGE).await?;

    let events = fx.stored_exactly("flotilla.env.hook.>", 4).await?;
    let provision = |kind: &str, hook: &str| {
        (
            kind.to_owned(),
            hook.to_owned(),
            "provision".to_owned(),
            1u32,
        )
    };
    assert_eq!(
        hook_timeline(&events)?,
        [
            provision("env.hook.started", "database"),
            provision("env.hook.succeeded", "database"),
            provision("env.hook.started", "dataset"),
            provision("env.hook.succeeded", "dataset"),
        ]
    );
    for event in &events {
        assert_eq!(
            event.change_id.as_deref(),
            Some(CHANGE),
            "{}",
            event.subject
        );
        assert!(
            event.subject.ends_with(&format!(".{ENV}")),
            "{}",
            event.subject
        );
    }
    let state_dir = fx.file("hook-state").join(ENV);
    assert_eq!(
        lines(&marker),
        [
            format!(
                "create database {ENV}/{CHANGE} 1 false ping=v20240101120000-1a2b3c4 {}",
                state_dir.display()
            ),
            format!("restore dataset {ENV}"),
        ]
    );
    assert!(state_dir.is_dir(), "the env's state directory was made");

    let database = fx.hook_state("database", CHANGE).await?;
    assert!(database.created);
    assert_eq!(database.provision.state, RunStatus::Succeeded);
    assert_eq!(database.provision.attempt, 1);
    assert!(database.provision.pid.is_some(), "{database:?}");
    assert!(!database.provision.finished_at.is_empty());
    let log = std::fs::read_to_string(&database.provision.log_url)?;
    assert!(log.contains("database ready"), "{log}");
    let (_, succeeded) = hook_run(&events[1])?;
    assert_eq!(succeeded.log_url, database.provision.log_url);
    assert_eq!(succeeded.run_id, database.provision.run_id);
    worker.shutdown().await
}

#[tokio::test]
async fn a_failing_provision_hook_reports_its_last_lines_and_the_rest_are_skipped() -> Result<()> {
    let fx = Fixture::start().await?;
    let marker = fx.file("marker");
    let yaml = format!(
        r#"
hooks:
  - name: database
    provision:
      command: "echo planning; echo 'Error: quota exceeded for instances' >&2; exit 3"
  - name: dataset
    provision:
      command: echo restored >> {}
"#,
        marker.display()
    );
    let config = fx.hook_config(&yaml)?;
    let worker = fx.run(config.clone()).await?;

    fx.request_env(&config, CHANGE).await?;

    let events = fx.stored_exactly("flotilla.env.hook.>", 2).await?;
    let (kind, failed) = hook_run(&events[1])?;
    assert_eq!(
        (kind.as_str(), failed.hook.as_str()),
        ("env.hook.failed", "database")
    );
    assert!(
        failed.reason.starts_with("exit status 3"),
        "{}",
        failed.reason
    );
    assert!(
        failed
            .reason
            .contains("planning\nError: quota exceeded for instances"),
        "{}",
        failed.reason
    );
    assert!(
        !marker.exists(),
        "the hook after the failed one did not run"
    );
    let database = fx.hook_state("database", CHANGE).await?;
    assert_eq!(database.provision.state, RunStatus::Failed);
    assert!(
        database.created,
        "a failed provision may have created something"
    );
    assert_eq!(database.provision.reason, failed.reason);
    let dataset = fx.hook_state("dataset", CHANGE).await?;
    assert_eq!(dataset.provision.state, RunStatus::Skipped);
    assert!(dataset.provision.reason.contains("`database` failed"));
    assert!(!dataset.created);
    worker.shutdown().await
}

#[tokio::test]
async fn a_redelivered_request_finds_its_hooks_done_and_runs_nothing_again() -> Result<()> {
    let fx = Fixture::start().await?;
    let marker = fx.file("marker");
    let config = fx.hook_config(&two_hooks(&marker))?;
    let trigger = fx.trigger(config.clone()).await?;
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = attempts.clone();
    // The first delivery runs the hooks and then "loses" its ack: the runtime redelivers it.
    let worker = fx
        .run_handler(move |event: Event, ctx: Ctx| {
            let trigger = trigger.clone();
            let attempts = counted.clone();
            async move {
                let outputs = trigger.handle(event, ctx).await?;
                if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(HandlerError::retryable("simulated: ack lost"));
                }
                Ok(outputs)
            }
        })
        .await?;

    fx.request_env(&config, CHANGE).await?;

    assert!(
        flotilla_testing::eventually(WITHIN, || attempts.load(Ordering::SeqCst) >= 2).await,
        "the request was redelivered"
    );
    fx.stored_exactly("flotilla.env.hook.>", 4).await?;
    assert_eq!(
        lines(&marker).len(),
        2,
        "each hook ran once: {:?}",
        lines(&marker)
    );
    worker.shutdown().await
}

#[tokio::test]
async fn deprovision_runs_for_every_created_hook_in_reverse_order_once() -> Result<()> {
    let fx = Fixture::start().await?;
    let marker = fx.file("marker");
    let config = fx.hook_config(&two_hooks(&marker))?;
    let trigger = fx.trigger(config.clone()).await?;
    let deletions = Arc::new(AtomicUsize::new(0));
    let counted = deletions.clone();
    // Every env.deleted is handled, then "loses" its ack once: redelivered.
    let worker = fx
        .run_handler(move |event: Event, ctx: Ctx| {
            let trigger = trigger.clone();
            let deletions = counted.clone();
            async move {
                let deleted = event.kind() == Some(EventType::EnvDeleted);
                let outputs = trigger.handle(event, ctx).await?;
                if deleted && deletions.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(HandlerError::retryable("simulated: ack lost"));
                }
                Ok(outputs)
            }
        })
        .await?;
    fx.request_env(&config, CHANGE).await?;
    fx.stored("flotilla.env.hook.succeeded.>", 2, WITHIN)
        .await?;
    let state_dir = fx.file("hook-state").join(ENV);
    assert!(state_dir.is_dir());

    fx.delete_env("reaper:env.deleted:1").await?;
    // The same teardown as a new event (a second reaper sweep, say): nothing runs again.
    fx.delete_env("reaper:env.deleted:2").await?;

    assert!(
        flotilla_testing::eventually(WITHIN, || deletions.load(Ordering::SeqCst) >= 3).await,
        "both deletions were handled, the first twice"
    );
    let events = fx.stored_exactly("flotilla.env.hook.>", 8).await?;
    let deprovision: Vec<_> = hook_timeline(&events)?
        .into_iter()
        .filter(|(_, _, phase, _)| phase == "deprovision")
        .map(|(kind, hook, _, _)| (kind, hook))
        .collect();
    let pair = |kind: &str, hook: &str| (kind.to_owned(), hook.to_owned());
    assert_eq!(
        deprovision,
        [
            pair("env.hook.started", "dataset"),
            pair("env.hook.succeeded", "dataset"),
            pair("env.hook.started", "database"),
            pair("env.hook.succeeded", "database"),
        ],
        "the data, then the infrastructure"
    );
    assert_eq!(
        lines(&marker)[2..],
        ["drop dataset", "destroy database"],
        "each deprovision ran once"
    );
    for name in ["database", "dataset"] {
        let hook = fx.hook_state(name, CHANGE).await?;
        assert_eq!(hook.deprovision.state, RunStatus::Succeeded, "{name}");
        assert!(!hook.created, "{name}: nothing left to remove");
    }
    assert!(
        !state_dir.exists(),
        "the state directory went with the last deprovision"
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_hook_whose_provision_never_started_is_not_deprovisioned() -> Result<()> {
    let fx = Fixture::start().await?;
    let marker = fx.file("marker");
    let yaml = format!(
        r#"
hooks:
  - name: database
    provision:
      command: echo create >> {m}; exit 1
    deprovision:
      command: echo destroy-database >> {m}
  - name: dataset
    provision:
      command: echo restore >> {m}
    deprovision:
      command: echo drop-dataset >> {m}
"#,
        m = marker.display()
    );
    let config = fx.hook_config(&yaml)?;
    let worker = fx.run(config.clone()).await?;
    fx.request_env(&config, CHANGE).await?;
    fx.stored("flotilla.env.hook.failed.>", 1, WITHIN).await?;

    fx.delete_env("reaper:env.deleted:1").await?;

    let events = fx.stored_exactly("flotilla.env.hook.>", 4).await?;
    let (kind, run) = hook_run(&events[3])?;
    assert_eq!(
        (kind.as_str(), run.hook.as_str(), run.phase.as_str()),
        ("env.hook.succeeded", "database", "deprovision"),
        "the failed provision's hook is torn down"
    );
    assert_eq!(lines(&marker), ["create", "destroy-database"]);
    worker.shutdown().await
}

#[tokio::test]
async fn a_hook_the_record_names_but_the_worker_does_not_know_fails_with_why() -> Result<()> {
    let fx = Fixture::start().await?;
    let env_manager_hooks = fx.hook_config(
        "hooks:\n  - name: database\n    provision: {command: 'true'}\n  - name: cache\n    provision: {command: 'true'}\n",
    )?;
    let worker_config =
        fx.hook_config("hooks:\n  - name: database\n    provision: {command: 'true'}\n")?;
    let worker = fx.run(worker_config).await?;

    fx.request_env(&env_manager_hooks, CHANGE).await?;

    let failed = fx.stored("flotilla.env.hook.failed.>", 1, WITHIN).await?;
    let (_, run) = hook_run(failed.first().context("env.hook.failed")?)?;
    assert_eq!(run.hook, "cache");
    assert_eq!(
        run.reason,
        "hook `cache` is not in builder-trigger's FLOTILLA_HOOKS"
    );
    assert_eq!(
        fx.hook_state("cache", CHANGE).await?.provision.state,
        RunStatus::Failed
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_request_for_a_change_the_env_no_longer_holds_runs_no_hook() -> Result<()> {
    let fx = Fixture::start().await?;
    let marker = fx.file("marker");
    let config = fx.hook_config(&two_hooks(&marker))?;
    let worker = fx.run(config.clone()).await?;
    // The env moved on to a newer change; the older change's request arrives late.
    fx.request_env(&config, "ping-v20240102120000-2b3c4d5")
        .await?;
    fx.publish_requested(CHANGE).await?;

    fx.stored("flotilla.env.hook.succeeded.>", 2, WITHIN)
        .await?;
    let events = fx.stored_exactly("flotilla.env.hook.>", 4).await?;
    for event in &events {
        assert_eq!(
            event.change_id.as_deref(),
            Some("ping-v20240102120000-2b3c4d5"),
            "only the newer change's hooks ran"
        );
    }
    worker.shutdown().await
}

#[tokio::test]
async fn a_job_backed_hook_runs_its_own_image_with_the_hook_variables() -> Result<()> {
    let fx = Fixture::start().await?;
    let fake = FakeKube::batch().await;
    run_jobs(&fake, |_| {
        Script::succeed_after(Duration::from_millis(200)).with_log("applied 3 resources\n")
    });
    let created = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = created.clone();
    fake.on_create(&Resource::job(), move |_, job| {
        seen.lock().expect("not poisoned").push(job)
    });
    let settings = Settings {
        namespace: Some("ci".into()),
        ..Settings::new("gcr.io/kaniko-project/executor:debug")
    };
    let mut config = Config::with_backend(BackendConfig::Job(settings.clone()));
    config.hooks.poll = Duration::from_millis(50);
    let config = config.with_hooks(fx.hooks(
        "hooks:\n  - name: database\n    timeout: 10s\n    provision:\n      image: hashicorp/terraform:1.9\n      command: terraform apply -auto-approve\n",
    )?)?;
    let runner = Runner::Job(job::Backend::from_config(settings, fake.config())?);
    let worker = fx
        .run_handler(BuilderTrigger::new(
            config.clone(),
            runner,
            fx.registry().await?,
        ))
        .await?;

    fx.request_env(&config, CHANGE).await?;

    let events = fx.stored_exactly("flotilla.env.hook.>", 2).await?;
    let (kind, run) = hook_run(&events[1])?;
    assert_eq!(kind, "env.hook.succeeded", "{}", run.reason);
    let job = created
        .lock()
        .expect("not poisoned")
        .first()
        .cloned()
        .context("a Job was created")?;
    assert_eq!(job["metadata"]["name"], run.run_id.as_str());
    assert_eq!(job["metadata"]["labels"]["flotilla.dev/kind"], "hook");
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "hashicorp/terraform:1.9");
    assert_eq!(container["command"][2], "terraform apply -auto-approve");
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 10);
    let env = |name: &str| {
        container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .map(str::to_owned)
    };
    assert_eq!(env("FLOTILLA_HOOK_KEY"), Some(format!("{ENV}/{CHANGE}")));
    assert_eq!(env("FLOTILLA_NAMESPACE").as_deref(), Some(ENV));
    assert_eq!(
        env("FLOTILLA_HOOK_STATE_DIR"),
        None,
        "no local state for a Job"
    );
    assert_eq!(
        fx.hook_state("database", CHANGE).await?.provision.state,
        RunStatus::Succeeded
    );
    worker.shutdown().await
}
