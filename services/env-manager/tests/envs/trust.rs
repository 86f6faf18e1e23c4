//! Events are claims: env-manager acts only where the registry and the GitOps repository agree,
//! and a late or repeated event never moves an env or production backwards. Each refusal goes
//! to the dead-letter stream with its reason, and nothing changes.

use crate::support;

use anyhow::{Context, Result};
use flotilla_bus::EventType;
use flotilla_env::State;
use flotilla_proto::v1::{Build, Canary, PullRequest, TeardownRequest, TestResult};
use support::*;

/// A version built after [`VERSION`] (an hour later).
const LATER: &str = "v20240101130000-ddddddd";

fn passed(env: &str, change_id: &str, version: &str) -> TestResult {
    TestResult {
        env: env.into(),
        change_id: change_id.into(),
        app: "ping".into(),
        version: version.into(),
        ..Default::default()
    }
}

fn pr_build(version: &str) -> Build {
    let mut build = build(42);
    build.version = version.into();
    build.change_id = format!("ping-{version}");
    build
}

fn production_version(fx: &Fixture) -> Result<String> {
    Ok(
        fx.remote_json("apps/production.json")?["apps"]["ping"]["version"]
            .as_str()
            .context("a version")?
            .to_owned(),
    )
}

#[tokio::test]
async fn passed_tests_of_a_staging_env_that_was_never_built_promote_nothing() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    let env = staging_env();
    let commits = fx.remote_commits()?;

    // What one POST to a generic webhook could publish: any version, straight to production.
    fx.publish(
        EventType::TestsPassed,
        &env,
        &passed(&env, &format!("ping-{VERSION}"), VERSION),
    )
    .await?;

    let reasons = fx.dead_letters(1).await?;
    assert!(
        reasons[0].contains("no env") && reasons[0].contains(&env),
        "{reasons:?}"
    );
    assert_eq!(production_version(&fx)?, PRODUCTION_VERSION);
    assert_eq!(fx.remote_commits()?, commits);
    fx.stored_exactly("flotilla.release.requested.>", 0).await?;
    worker.shutdown().await
}

#[tokio::test]
async fn passed_tests_claiming_another_version_or_change_than_the_env_holds_are_refused()
-> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    let env = fx.stage().await?;

    // The env's id, another version: the registry, not the event, says what the env runs.
    fx.publish(
        EventType::TestsPassed,
        &env,
        &passed(&env, &format!("ping-{LATER}"), LATER),
    )
    .await?;
    // The right version, but a change the env does not hold.
    fx.publish(
        EventType::TestsPassed,
        &env,
        &passed(&env, "ping-something-else", VERSION),
    )
    .await?;

    let reasons = fx.dead_letters(2).await?;
    assert!(reasons.iter().all(|r| r.contains("refused")), "{reasons:?}");
    assert_eq!(production_version(&fx)?, PRODUCTION_VERSION);
    fx.stored_exactly("flotilla.release.requested.>", 0).await?;
    let record = fx.record(&env).await?.context("still registered")?;
    assert_eq!(record.state, State::Ready, "the env is left as it was");
    worker.shutdown().await
}

#[tokio::test]
async fn passed_tests_of_a_failed_env_promote_nothing() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    let env = fx.stage().await?;
    let mut failed = passed(&env, &format!("ping-{VERSION}"), VERSION);
    failed.reason = "GET /ping: 500".into();
    fx.publish(EventType::TestsFailed, &env, &failed).await?;
    fx.stored_exactly("flotilla.env.failed.>", 1).await?;

    fx.publish(
        EventType::TestsPassed,
        &env,
        &passed(&env, &format!("ping-{VERSION}"), VERSION),
    )
    .await?;

    let reasons = fx.dead_letters(1).await?;
    assert!(reasons[0].contains("failed"), "{reasons:?}");
    assert_eq!(production_version(&fx)?, PRODUCTION_VERSION);
    worker.shutdown().await
}

#[tokio::test]
async fn a_change_built_again_under_another_id_is_not_written_again() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    let env = fx.stage().await?;
    let file = fx
        .remote_file(&format!("envs/{env}.json"))?
        .context("written")?;
    // sync-watcher saw it ready; then someone else commits to the GitOps branch.
    fx.registry()
        .await?
        .update(&env, |c| {
            c.map(|c| flotilla_env::EnvRecord {
                state: State::Ready,
                ..c
            })
        })
        .await?;
    fx.commit_as_someone(&[("README.md", b"hello\n")], "docs")?;
    let commits = fx.remote_commits()?;

    // The same change's build.succeeded again, under a new event id and a later time (a
    // rebuild, a CI system's duplicate callback, a redelivery after the dedup window).
    let again = fx
        .publish(
            EventType::BuildSucceeded,
            &format!("ping-{VERSION}"),
            &build(0),
        )
        .await?;
    fx.handled(again.sequence).await?;

    assert_eq!(fx.remote_commits()?, commits, "no second commit");
    assert_eq!(
        fx.remote_file(&format!("envs/{env}.json"))?.as_deref(),
        Some(file.as_str()),
        "the file (its created_at too) is as first written"
    );
    fx.stored_exactly("flotilla.env.requested.>", 1).await?;
    let record = fx.record(&env).await?.context("registered")?;
    assert_eq!(record.state, State::Ready, "the record is not reset");
    worker.shutdown().await
}

#[tokio::test]
async fn an_older_change_is_not_written_over_a_newer_one_in_a_preview() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    fx.publish(
        EventType::BuildSucceeded,
        &format!("ping-{LATER}"),
        &pr_build(LATER),
    )
    .await?;
    fx.stored_exactly("flotilla.env.requested.>", 1).await?;

    // The earlier push's build finishes last.
    fx.publish(
        EventType::BuildSucceeded,
        &format!("ping-{VERSION}"),
        &pr_build(VERSION),
    )
    .await?;

    let reasons = fx.dead_letters(1).await?;
    assert!(reasons[0].contains("newer"), "{reasons:?}");
    let manifest = fx.remote_json(&format!("envs/{PREVIEW}.json"))?;
    assert_eq!(manifest["apps"]["ping"]["version"], LATER);
    fx.stored_exactly("flotilla.env.requested.>", 1).await?;
    worker.shutdown().await
}

#[tokio::test]
async fn a_pull_request_build_arriving_after_its_teardown_does_not_bring_the_preview_back()
-> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    fx.publish(
        EventType::BuildSucceeded,
        &format!("ping-{VERSION}"),
        &pr_build(VERSION),
    )
    .await?;
    fx.stored_exactly("flotilla.env.requested.>", 1).await?;
    let closed = PullRequest {
        repo: "acme/ping".into(),
        number: 42,
        action: "closed".into(),
        ..Default::default()
    };
    fx.publish(EventType::SourcePullRequest, "acme/ping", &closed)
        .await?;
    let path = format!("envs/{PREVIEW}.json");
    let removed = fx
        .remote_eventually(|fx| matches!(fx.remote_file(&path), Ok(None)))
        .await;
    assert!(removed, "the preview is removed");
    fx.record_state_eventually(PREVIEW, "deleting").await?;

    // A build of a push from before the close (its version's time is in 2024) lands late.
    fx.publish(
        EventType::BuildSucceeded,
        &format!("ping-{LATER}"),
        &pr_build(LATER),
    )
    .await?;

    let reasons = fx.dead_letters(1).await?;
    assert!(reasons[0].contains("torn down"), "{reasons:?}");
    assert_eq!(fx.remote_file(&path)?, None, "the preview stays gone");
    fx.stored_exactly("flotilla.env.requested.>", 1).await?;
    worker.shutdown().await
}

#[tokio::test]
async fn only_an_env_that_exists_is_torn_down_and_a_pr_without_preview_asks_for_nothing()
-> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    let teardown = TeardownRequest {
        env: "pr-acme-ping-404".into(),
        reason: "manual".into(),
        ..Default::default()
    };
    fx.publish(EventType::EnvTeardownRequested, &teardown.env, &teardown)
        .await?;
    let closed = PullRequest {
        repo: "acme/ping".into(),
        number: 7,
        action: "closed".into(),
        ..Default::default()
    };
    let last = fx
        .publish(EventType::SourcePullRequest, "acme/ping", &closed)
        .await?;
    fx.handled(last.sequence).await?;

    let reasons = fx.dead_letters(1).await?;
    assert!(reasons[0].contains("nothing to tear down"), "{reasons:?}");
    fx.stored_exactly("flotilla.env.teardown.requested.>", 1)
        .await?;
    worker.shutdown().await
}

#[tokio::test]
async fn an_aborted_canary_naming_another_previous_version_rolls_nothing_back() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    let env = fx.stage().await?;
    fx.publish(
        EventType::TestsPassed,
        &env,
        &passed(&env, &format!("ping-{VERSION}"), VERSION),
    )
    .await?;
    fx.stored_exactly("flotilla.release.requested.>", 1).await?;
    assert_eq!(production_version(&fx)?, VERSION);

    // A forged abort that would put an old, vulnerable version back in production.
    let forged = Canary {
        release: format!("ping-{VERSION}"),
        change_id: format!("ping-{VERSION}"),
        app: "ping".into(),
        version: VERSION.into(),
        previous_version: "v20200101000000-0000000".into(),
        phase: "Failed".into(),
        ..Default::default()
    };
    fx.publish(EventType::CanaryAborted, &forged.release, &forged)
        .await?;

    let reasons = fx.dead_letters(1).await?;
    assert!(reasons[0].contains(PRODUCTION_VERSION), "{reasons:?}");
    assert_eq!(
        production_version(&fx)?,
        VERSION,
        "production is left alone"
    );
    fx.stored_exactly("flotilla.release.rolled_back.>", 0)
        .await?;
    worker.shutdown().await
}

#[tokio::test]
async fn pull_requests_of_two_owners_with_one_repo_name_get_two_previews() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    for repo in ["acme/ping", "labs/ping"] {
        let mut build = pr_build(VERSION);
        build.repo = repo.into();
        fx.publish(EventType::BuildSucceeded, &build.change_id.clone(), &build)
            .await?;
    }
    fx.stored_exactly("flotilla.env.requested.>", 2).await?;
    assert_eq!(
        fx.remote_files("envs")?,
        ["pr-acme-ping-42.json", "pr-labs-ping-42.json"]
    );
    worker.shutdown().await
}

/// The first delivery of a result promoted the env and asked for its teardown; the teardown
/// removed the env's file but had not marked the record yet when the result came again (its
/// ack lost in a NATS restart). That redelivery finds a ready env without a file: it waits
/// instead of being dead-lettered, and once the record says the env is going it is answered
/// as the replay it is.
#[tokio::test]
async fn a_result_redelivered_while_its_teardown_is_half_done_waits_and_is_not_dead_lettered()
-> Result<()> {
    let fx = Fixture::start().await?;
    let mut config = flotilla_testing::quick(env_manager::worker_config());
    // Room to look at the retries before they run out.
    config.max_deliver = 100;
    let worker = flotilla_testing::run_worker(&fx.bus, config, fx.env_manager().await?).await?;
    let env = fx.stage().await?;
    // What the first delivery and half the teardown left: production runs the version, the
    // env's file is gone, the record still says ready.
    let mut production = fx.remote_json("apps/production.json")?;
    production["apps"]["ping"]["version"] = VERSION.into();
    fx.commit_as_someone(
        &[("apps/production.json", production.to_string().as_bytes())],
        "env-manager: promote ping",
    )?;
    fx.remove_as_someone(&format!("envs/{env}.json"), "env-manager: remove env")?;

    fx.publish(
        EventType::TestsPassed,
        &env,
        &passed(&env, &format!("ping-{VERSION}"), VERSION),
    )
    .await?;
    assert!(fx.redelivered().await?, "the result is retried");
    let letters = flotilla_testing::stored_messages(
        fx.bus.jetstream(),
        "FLOTILLA_DLQ",
        "flotilla-dlq.>",
        1,
        std::time::Duration::from_millis(500),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    assert!(letters.is_empty(), "not dead-lettered while it waits");

    // The teardown's second half.
    fx.registry()
        .await?
        .update(&env, |record| {
            record.map(|r| flotilla_env::EnvRecord {
                state: State::Deleting,
                reason: "promoted".into(),
                ..r
            })
        })
        .await?;
    let releases = fx.stored("flotilla.release.requested.>", 1, WITHIN).await?;
    let release: flotilla_proto::v1::Release =
        releases.first().context("the replay's release")?.decode()?;
    assert_eq!(
        (release.version.as_str(), release.previous_version.as_str()),
        (VERSION, PRODUCTION_VERSION)
    );
    assert!(fx.dead_letters(0).await?.is_empty(), "no dead letter");
    worker.shutdown().await
}

/// Passed tests can reach env-manager before the registry shows their env ready: on a cluster
/// that lost a node, sync-watcher's write of `ready` can be lost and made again by its next
/// sweep. The result waits for it (retried, not dead-lettered) and promotes once it is there.
#[tokio::test]
async fn passed_tests_of_an_env_the_registry_does_not_show_ready_yet_wait_for_it() -> Result<()> {
    let fx = Fixture::start().await?;
    let mut config = flotilla_testing::quick(env_manager::worker_config());
    config.max_deliver = 100;
    let worker = flotilla_testing::run_worker(&fx.bus, config, fx.env_manager().await?).await?;
    fx.publish(
        EventType::BuildSucceeded,
        &format!("ping-{VERSION}"),
        &build(0),
    )
    .await?;
    fx.stored("flotilla.env.requested.>", 1, WITHIN).await?;
    let env = staging_env();

    fx.publish(
        EventType::TestsPassed,
        &env,
        &passed(&env, &format!("ping-{VERSION}"), VERSION),
    )
    .await?;
    assert!(fx.redelivered().await?, "the result is retried");
    assert!(fx.dead_letters(0).await?.is_empty(), "not dead-lettered");
    assert_eq!(
        production_version(&fx)?,
        PRODUCTION_VERSION,
        "nothing promoted while the env is not ready"
    );

    fx.mark_ready(&env).await?;
    let releases = fx.stored("flotilla.release.requested.>", 1, WITHIN).await?;
    let release: flotilla_proto::v1::Release = releases.first().context("the release")?.decode()?;
    assert_eq!(release.version, VERSION);
    assert_eq!(production_version(&fx)?, VERSION);
    assert!(fx.dead_letters(0).await?.is_empty(), "no dead letter");
    worker.shutdown().await
}

/// The first attempt of a result promoted the env in git, then could not publish its release
/// (the stream was electing a leader) and its worker was killed; a newer build was promoted
/// before the retry. Production ran the version, so the retry requests its release and tears
/// the env down as promoted, as the first attempt would have, and leaves production on the
/// newer build.
#[tokio::test]
async fn a_retried_result_whose_promotion_reached_git_requests_its_release_though_a_newer_one_followed()
-> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    let env = fx.stage().await?;
    for version in [VERSION, LATER] {
        let mut production = fx.remote_json("apps/production.json")?;
        production["apps"]["ping"]["version"] = version.into();
        fx.commit_as_someone(
            &[("apps/production.json", production.to_string().as_bytes())],
            &format!("env-manager: promote ping to {version}"),
        )?;
    }

    fx.publish(
        EventType::TestsPassed,
        &env,
        &passed(&env, &format!("ping-{VERSION}"), VERSION),
    )
    .await?;

    let releases = fx.stored_exactly("flotilla.release.requested.>", 1).await?;
    let release: flotilla_proto::v1::Release = releases.first().context("the release")?.decode()?;
    assert_eq!(
        (release.version.as_str(), release.previous_version.as_str()),
        (VERSION, PRODUCTION_VERSION)
    );
    let teardowns = fx
        .stored_exactly("flotilla.env.teardown.requested.>", 1)
        .await?;
    let teardown: TeardownRequest = teardowns.first().context("the teardown")?.decode()?;
    assert_eq!(teardown.reason, "promoted");
    assert_eq!(
        production_version(&fx)?,
        LATER,
        "production stays on the newer build"
    );
    worker.shutdown().await
}
