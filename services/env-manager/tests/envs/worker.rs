//! env-manager against a real nats-server and a real (bare, local) GitOps repository.

use crate::support;

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use env_manager::EnvManager;
use flotilla_bus::{Ctx, Event, EventType, Handler, HandlerError, Outgoing};
use flotilla_proto::v1::{Environment, PullRequest, Release, TeardownRequest, TestResult};
use support::*;

#[tokio::test]
async fn a_successful_build_writes_the_env_into_git_records_it_and_requests_it() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;

    fx.publish(
        EventType::BuildSucceeded,
        &format!("ping-{VERSION}"),
        &build(0),
    )
    .await?;

    let requested = fx.stored_exactly("flotilla.env.requested.>", 1).await?;
    let env = staging_env();
    let event = requested.first().context("one env.requested")?;
    assert_eq!(event.subject, format!("flotilla.env.requested.{env}"));
    let requested: Environment = event.decode()?;
    assert_eq!(
        requested.revision,
        fx.remote_head()?,
        "the revision is the pushed commit"
    );
    assert_eq!((requested.kind.as_str(), requested.pr), ("staging", 0));
    assert_eq!(requested.change_id, format!("ping-{VERSION}"));
    let ping = requested
        .apps
        .iter()
        .find(|a| a.name == "ping")
        .context("ping in the env")?;
    assert_eq!(ping.version, VERSION);
    assert!(
        requested.apps.iter().any(|a| a.name == "maindb"),
        "production's other apps run too"
    );

    let manifest = fx.remote_json(&format!("envs/{env}.json"))?;
    assert_eq!(manifest["env"], env.as_str());
    assert_eq!(manifest["kind"], "staging");
    assert_eq!(manifest["apps"]["ping"]["version"], VERSION);
    assert_eq!(
        manifest["apps"]["ping"]["image"],
        "registry.example.com/team/ping"
    );
    assert_eq!(manifest["created_at"], requested.created_at.as_str());
    assert_eq!(manifest["expires_at"], requested.expires_at.as_str());

    let record = fx
        .record(&env)
        .await?
        .context("the env is in the registry")?;
    assert_eq!(record.state, "requested");
    assert_eq!(record.revision, requested.revision);
    assert_eq!(record.change_id, requested.change_id);
    worker.shutdown().await
}

#[tokio::test]
async fn a_pull_request_build_gets_a_preview_env_named_after_the_pull_request() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;

    fx.publish(
        EventType::BuildSucceeded,
        &format!("ping-{VERSION}"),
        &build(42),
    )
    .await?;

    let requested = fx.stored_exactly("flotilla.env.requested.>", 1).await?;
    let env: Environment = requested.first().context("one env.requested")?.decode()?;
    assert_eq!(
        (env.env.as_str(), env.kind.as_str(), env.pr),
        (PREVIEW, "preview", 42)
    );
    assert_eq!(fx.remote_json(&format!("envs/{PREVIEW}.json"))?["pr"], 42);
    worker.shutdown().await
}

/// Does the work, publishes its outputs, then fails the first delivery as if the ack was lost:
/// the bus delivers the event again.
#[derive(Clone)]
struct LostAckOnce {
    inner: EnvManager,
    outputs: Arc<Mutex<Vec<Vec<Outgoing>>>>,
}

impl Handler for LostAckOnce {
    async fn handle(&self, event: Event, ctx: Ctx) -> Result<Vec<Outgoing>, HandlerError> {
        let outputs = self.inner.handle(event.clone(), ctx.clone()).await?;
        self.outputs
            .lock()
            .expect("outputs lock")
            .push(outputs.clone());
        if ctx.delivered == 1 {
            ctx.publisher
                .publish_all(outputs, Some(&event))
                .await
                .map_err(HandlerError::retryable)?;
            return Err(HandlerError::retryable("simulated lost ack"));
        }
        Ok(outputs)
    }
}

#[tokio::test]
async fn a_redelivered_build_makes_no_second_commit_and_no_second_event() -> Result<()> {
    let fx = Fixture::start().await?;
    let outputs = Arc::new(Mutex::new(Vec::new()));
    let handler = LostAckOnce {
        inner: fx.env_manager().await?,
        outputs: outputs.clone(),
    };
    let worker = fx.run_handler(handler).await?;
    let commits_before = fx.remote_commits()?;

    fx.publish(
        EventType::BuildSucceeded,
        &format!("ping-{VERSION}"),
        &build(0),
    )
    .await?;

    let ran_twice = flotilla_testing::eventually(WITHIN, || {
        outputs.lock().map(|o| o.len() >= 2).unwrap_or(false)
    })
    .await;
    assert!(ran_twice, "the build was delivered again");
    fx.stored_exactly("flotilla.env.requested.>", 1).await?;
    assert_eq!(
        fx.remote_commits()?,
        commits_before + 1,
        "one commit for both deliveries"
    );
    let runs = outputs.lock().expect("outputs lock").clone();
    let payloads: Vec<_> = runs
        .iter()
        .map(|o| o.first().map(|e| e.payload.clone()))
        .collect();
    assert_eq!(
        payloads[0], payloads[1],
        "the same env.requested, revision included"
    );
    worker.shutdown().await
}

fn tests_passed(env: &str) -> TestResult {
    TestResult {
        env: env.into(),
        change_id: format!("ping-{VERSION}"),
        app: "ping".into(),
        version: VERSION.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn passed_staging_tests_promote_the_version_and_tear_the_staging_env_down() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    let env = staging_env();
    fx.publish(
        EventType::BuildSucceeded,
        &format!("ping-{VERSION}"),
        &build(0),
    )
    .await?;
    fx.stored_exactly("flotilla.env.requested.>", 1).await?;
    fx.mark_ready(&env).await?;

    fx.publish(EventType::TestsPassed, &env, &tests_passed(&env))
        .await?;

    let releases = fx.stored_exactly("flotilla.release.requested.>", 1).await?;
    let release: Release = releases.first().context("one release")?.decode()?;
    assert_eq!(release.app, "ping");
    assert_eq!(release.version, VERSION);
    assert_eq!(release.previous_version, PRODUCTION_VERSION);
    assert_eq!(release.change_id, format!("ping-{VERSION}"));
    let production = fx.remote_json("apps/production.json")?;
    assert_eq!(production["apps"]["ping"]["version"], VERSION);

    let teardowns = fx
        .stored_exactly("flotilla.env.teardown.requested.>", 1)
        .await?;
    let teardown: TeardownRequest = teardowns.first().context("one teardown")?.decode()?;
    assert_eq!(
        (teardown.env.as_str(), teardown.reason.as_str()),
        (env.as_str(), "promoted")
    );

    // env-manager handles its own teardown request: the env leaves git and the registry.
    let path = format!("envs/{env}.json");
    let removed = fx
        .remote_eventually(|fx| matches!(fx.remote_file(&path), Ok(None)))
        .await;
    assert!(removed, "{path} is removed from main");
    let state = fx.record_state_eventually(&env, "deleting").await?;
    assert_eq!(
        state.as_deref(),
        Some("deleting"),
        "the registry record is marked deleting"
    );
    worker.shutdown().await
}

#[tokio::test]
async fn passed_preview_tests_change_nothing() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    let commits_before = fx.remote_commits()?;

    fx.publish(EventType::TestsPassed, PREVIEW, &tests_passed(PREVIEW))
        .await?;

    fx.stored_exactly("flotilla.tests.passed.>", 1).await?;
    fx.stored_exactly("flotilla.release.requested.>", 0).await?;
    fx.stored_exactly("flotilla.env.teardown.requested.>", 0)
        .await?;
    assert_eq!(fx.remote_commits()?, commits_before);
    worker.shutdown().await
}

#[tokio::test]
async fn removing_the_preview_label_tears_the_preview_down_and_other_labels_do_not() -> Result<()> {
    let fx = Fixture::start().await?;
    let mut config = fx.config();
    config.preview_label = Some("preview".into());
    let worker = fx.run_handler(fx.env_manager_with(config).await?).await?;
    fx.publish(
        EventType::BuildSucceeded,
        &format!("ping-{VERSION}"),
        &build(42),
    )
    .await?;
    fx.stored_exactly("flotilla.env.requested.>", 1).await?;

    let unlabeled = |label: &str| PullRequest {
        repo: "acme/ping".into(),
        number: 42,
        action: "unlabeled".into(),
        label: label.into(),
        ..Default::default()
    };
    fx.publish(
        EventType::SourcePullRequest,
        "acme/ping",
        &unlabeled("backend"),
    )
    .await?;
    fx.publish(
        EventType::SourcePullRequest,
        "acme/ping",
        &unlabeled("Preview"),
    )
    .await?;

    let teardowns = fx
        .stored_exactly("flotilla.env.teardown.requested.>", 1)
        .await?;
    let teardown: TeardownRequest = teardowns.first().context("one teardown")?.decode()?;
    assert_eq!(
        (teardown.env.as_str(), teardown.reason.as_str()),
        (PREVIEW, "pr_unlabeled")
    );
    let removed = fx
        .remote_eventually(|fx| matches!(fx.remote_file(&format!("envs/{PREVIEW}.json")), Ok(None)))
        .await;
    assert!(removed, "the preview's manifest is removed from main");
    worker.shutdown().await
}

#[tokio::test]
async fn a_closed_pull_request_tears_its_preview_env_down() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    fx.publish(
        EventType::BuildSucceeded,
        &format!("ping-{VERSION}"),
        &build(42),
    )
    .await?;
    fx.stored_exactly("flotilla.env.requested.>", 1).await?;
    assert!(fx.remote_file(&format!("envs/{PREVIEW}.json"))?.is_some());

    let closed = PullRequest {
        repo: "acme/ping".into(),
        number: 42,
        action: "closed".into(),
        ..Default::default()
    };
    fx.publish(EventType::SourcePullRequest, "acme/ping", &closed)
        .await?;

    let teardowns = fx
        .stored_exactly("flotilla.env.teardown.requested.>", 1)
        .await?;
    let teardown: TeardownRequest = teardowns.first().context("one teardown")?.decode()?;
    assert_eq!(
        (teardown.env.as_str(), teardown.reason.as_str()),
        (PREVIEW, "pr_closed")
    );
    let removed = fx
        .remote_eventually(|fx| matches!(fx.remote_file(&format!("envs/{PREVIEW}.json")), Ok(None)))
        .await;
    assert!(removed, "the preview's manifest is removed from main");
    worker.shutdown().await
}

#[tokio::test]
async fn a_build_of_an_app_missing_from_production_is_dead_lettered_with_the_reason() -> Result<()>
{
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    let mut unknown = build(0);
    unknown.app = "pong".into();

    fx.publish(EventType::BuildSucceeded, "pong-v1", &unknown)
        .await?;

    let dead = flotilla_testing::stored_messages(
        fx.bus.jetstream(),
        "FLOTILLA_DLQ",
        "flotilla-dlq.env-manager",
        1,
        WITHIN,
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    let letter = dead.first().context("a dead letter")?;
    let reason = letter
        .headers
        .as_ref()
        .and_then(|h| h.get("flotilla-dlq-reason"))
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default();
    assert!(
        reason.contains("\"pong\" is not in the production manifest"),
        "{reason}"
    );
    fx.stored_exactly("flotilla.env.requested.>", 0).await?;
    worker.shutdown().await
}

#[tokio::test]
async fn redelivered_passed_tests_release_the_same_previous_version_without_a_new_commit()
-> Result<()> {
    let fx = Fixture::start().await?;
    let outputs = Arc::new(Mutex::new(Vec::new()));
    let handler = LostAckOnce {
        inner: fx.env_manager().await?,
        outputs: outputs.clone(),
    };
    let worker = fx.run_handler(handler).await?;
    let env = fx.stage().await?;
    let commits_before = fx.remote_commits()?;

    fx.publish(EventType::TestsPassed, &env, &tests_passed(&env))
        .await?;

    // The handler also sees the teardown it asks for: keep the runs that released.
    let releases = || -> Result<Vec<Release>> {
        let runs = outputs.lock().expect("outputs lock").clone();
        runs.iter()
            .filter_map(|o| o.first())
            .filter(|e| e.spec.kind == EventType::ReleaseRequested)
            .map(|e| Ok(prost::Message::decode(e.payload.clone())?))
            .collect()
    };
    let ran_twice =
        flotilla_testing::eventually(WITHIN, || releases().map(|r| r.len() >= 2).unwrap_or(false))
            .await;
    assert!(ran_twice, "the test result was delivered again");
    let releases = releases()?;
    for release in &releases {
        assert_eq!(release.previous_version, PRODUCTION_VERSION);
    }
    fx.stored_exactly("flotilla.release.requested.>", 1).await?;
    let promotions = fx
        .remote_messages()?
        .iter()
        .filter(|m| m.starts_with("env-manager: promote"))
        .count();
    assert_eq!(promotions, 1, "one promotion commit");
    assert!(fx.remote_commits()? > commits_before);
    worker.shutdown().await
}

#[tokio::test]
async fn a_teardown_of_an_id_that_is_not_a_dns_label_is_dead_lettered() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    let commits_before = fx.remote_commits()?;
    let escape = TeardownRequest {
        env: "../apps/production".into(),
        reason: "manual".into(),
        ..Default::default()
    };

    fx.publish(EventType::EnvTeardownRequested, "x", &escape)
        .await?;

    let dead = flotilla_testing::stored_messages(
        fx.bus.jetstream(),
        "FLOTILLA_DLQ",
        "flotilla-dlq.env-manager",
        1,
        WITHIN,
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(dead.len(), 1, "the request is dead-lettered");
    assert!(fx.remote_file("apps/production.json")?.is_some());
    assert_eq!(fx.remote_commits()?, commits_before);
    worker.shutdown().await
}

#[tokio::test]
async fn a_later_push_to_a_pull_request_updates_its_preview_env_in_place() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    fx.publish(
        EventType::BuildSucceeded,
        &format!("ping-{VERSION}"),
        &build(42),
    )
    .await?;
    fx.stored_exactly("flotilla.env.requested.>", 1).await?;
    let first_revision = fx.remote_head()?;

    let mut later = build(42);
    later.version = "v20240101130000-ddddddd".into();
    later.change_id = format!("ping-{}", later.version);
    later.sha = "ddddddd000000000000000000000000000000000".into();
    fx.publish(EventType::BuildSucceeded, &later.change_id, &later)
        .await?;

    let requested = fx.stored_exactly("flotilla.env.requested.>", 2).await?;
    let second: Environment = requested
        .last()
        .context("a second env.requested")?
        .decode()?;
    assert_eq!(second.env, PREVIEW, "the same env");
    assert_ne!(second.revision, first_revision);
    assert_eq!(second.revision, fx.remote_head()?);
    let manifest = fx.remote_json(&format!("envs/{PREVIEW}.json"))?;
    assert_eq!(manifest["apps"]["ping"]["version"], later.version.as_str());
    assert_eq!(manifest["change_id"], later.change_id.as_str());
    assert_eq!(fx.remote_files("envs")?, [format!("{PREVIEW}.json")]);
    let record = fx.record(PREVIEW).await?.context("registered")?;
    assert_eq!((record.change_id, record.sha), (later.change_id, later.sha));
    worker.shutdown().await
}
