//! env-manager's flows beyond the env itself, against a real nats-server, a real bare GitOps
//! repository and, for GitHub, an HTTP server on 127.0.0.1 that answers as the REST API does.

use crate::support;

use anyhow::{Context, Result};
use env_manager::EnvManager;
use env_manager::config::Promote;
use env_manager::github::{Github, GithubRepo};
use env_manager::gitops::{GitError, GitOps, Secret};
use flotilla_bus::EventType;
use flotilla_proto::v1::{Canary, Environment, Release, Rollback, TeardownRequest, TestResult};
use support::github::FakeGithub;
use support::*;

const SHA: &str = "bbbbbbbccccccccccccccccccccccccccccccccc";

fn tests_result(env: &str, reason: &str) -> TestResult {
    TestResult {
        env: env.into(),
        change_id: format!("ping-{VERSION}"),
        app: "ping".into(),
        version: VERSION.into(),
        reason: reason.into(),
        ..Default::default()
    }
}

fn aborted(previous_version: &str) -> Canary {
    Canary {
        release: format!("ping-{VERSION}"),
        change_id: format!("ping-{VERSION}"),
        app: "ping".into(),
        version: VERSION.into(),
        phase: "Failed".into(),
        reason: "success-rate 0.82 < 0.95".into(),
        previous_version: previous_version.into(),
        repo: "acme/ping".into(),
        sha: SHA.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn failed_tests_mark_the_env_failed_with_the_reason_and_leave_it_in_git() -> Result<()> {
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

    fx.publish(
        EventType::TestsFailed,
        &env,
        &tests_result(&env, "GET /ping: 500"),
    )
    .await?;

    let failed = fx.stored_exactly("flotilla.env.failed.>", 1).await?;
    let failed: Environment = failed.first().context("one env.failed")?.decode()?;
    assert_eq!(failed.env, env);
    assert_eq!(failed.reason, "tests failed: GET /ping: 500");
    assert_eq!(failed.change_id, format!("ping-{VERSION}"));
    assert!(
        failed
            .apps
            .iter()
            .any(|a| a.name == "ping" && a.version == VERSION)
    );
    let record = fx.record(&env).await?.context("still registered")?;
    assert_eq!(
        (record.state.as_str(), record.reason.as_str()),
        ("failed", failed.reason.as_str())
    );
    assert!(
        fx.remote_file(&format!("envs/{env}.json"))?.is_some(),
        "the env stays until it is reaped"
    );
    fx.stored_exactly("flotilla.release.requested.>", 0).await?;
    fx.stored_exactly("flotilla.env.teardown.requested.>", 0)
        .await?;
    worker.shutdown().await
}

#[tokio::test]
async fn an_aborted_canary_rolls_production_back_to_the_version_it_replaced() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    let env = fx.stage().await?;
    fx.publish(EventType::TestsPassed, &env, &tests_result(&env, ""))
        .await?;
    fx.stored_exactly("flotilla.release.requested.>", 1).await?;
    assert_eq!(
        fx.remote_json("apps/production.json")?["apps"]["ping"]["version"],
        VERSION
    );

    // Without previous_version in the event, the version is found in the manifest's history.
    fx.publish(
        EventType::CanaryAborted,
        &format!("ping-{VERSION}"),
        &aborted(""),
    )
    .await?;

    let rolled = fx
        .stored_exactly("flotilla.release.rolled_back.>", 1)
        .await?;
    let event = rolled.first().context("one release.rolled_back")?;
    assert_eq!(event.subject, "flotilla.release.rolled_back.ping");
    let rollback: Rollback = event.decode()?;
    assert_eq!(
        (
            rollback.version.as_str(),
            rollback.restored_version.as_str()
        ),
        (VERSION, PRODUCTION_VERSION)
    );
    assert_eq!(
        rollback.revision,
        fx.remote_head()?,
        "the rollback commit is pushed"
    );
    assert_eq!(rollback.reason, "success-rate 0.82 < 0.95");
    let production = fx.remote_json("apps/production.json")?;
    assert_eq!(production["apps"]["ping"]["version"], PRODUCTION_VERSION);
    assert_eq!(
        production["apps"]["maindb"]["version"], "v20230101000000-aaaaaaa",
        "other apps are untouched"
    );

    // The same verdict again (from another analysis run): git already says it; no new commit.
    let commits = fx.remote_commits()?;
    fx.publish(
        EventType::CanaryAborted,
        &format!("ping-{VERSION}"),
        &aborted(PRODUCTION_VERSION),
    )
    .await?;
    let rolled = fx
        .stored_exactly("flotilla.release.rolled_back.>", 2)
        .await?;
    let again: Rollback = rolled.last().context("a second answer")?.decode()?;
    assert_eq!(again.revision, rollback.revision);
    assert_eq!(fx.remote_commits()?, commits);
    worker.shutdown().await
}

#[tokio::test]
async fn an_aborted_canary_leaves_production_alone_when_it_runs_another_version_since() -> Result<()>
{
    let fx = Fixture::start().await?;
    let worker = fx.run().await?;
    let commits = fx.remote_commits()?;

    // Production still runs PRODUCTION_VERSION: VERSION never reached it.
    let published = fx
        .publish(
            EventType::CanaryAborted,
            "ping-x",
            &aborted("v20220101000000-0000000"),
        )
        .await?;
    fx.handled(published.sequence).await?;

    fx.stored_exactly("flotilla.release.rolled_back.>", 0)
        .await?;
    assert_eq!(fx.remote_commits()?, commits);
    assert_eq!(
        fx.remote_json("apps/production.json")?["apps"]["ping"]["version"],
        PRODUCTION_VERSION
    );
    worker.shutdown().await
}

#[tokio::test]
async fn commit_statuses_follow_the_change_from_its_env_to_the_canary_verdict() -> Result<()> {
    let fx = Fixture::start().await?;
    let github = FakeGithub::start().await?;
    let mut config = fx.config();
    config.github = Some(Github::new(&github.url, Secret::Value("gh-token".into()))?);
    let worker = fx.run_with(config).await?;
    let env = staging_env();
    let want = |n: usize| {
        let github = github.clone();
        async move { flotilla_testing::eventually(WITHIN, || github.statuses().len() >= n).await }
    };

    fx.publish(
        EventType::BuildSucceeded,
        &format!("ping-{VERSION}"),
        &build(0),
    )
    .await?;
    assert!(want(1).await, "env pending: {:?}", github.statuses());
    let ready = Environment {
        env: env.clone(),
        url: "https://stg.example.com".into(),
        ..Default::default()
    };
    fx.mark_ready(&env).await?;
    fx.publish(EventType::EnvReady, &env, &ready).await?;
    assert!(
        want(3).await,
        "env ready, tests pending: {:?}",
        github.statuses()
    );
    fx.publish(EventType::TestsPassed, &env, &tests_result(&env, ""))
        .await?;
    assert!(
        want(5).await,
        "tests passed, canary pending: {:?}",
        github.statuses()
    );
    fx.publish(
        EventType::CanaryAborted,
        &format!("ping-{VERSION}"),
        &aborted(""),
    )
    .await?;
    assert!(want(6).await, "canary verdict: {:?}", github.statuses());

    let statuses = github.statuses();
    let seen: Vec<(&str, &str)> = statuses
        .iter()
        .map(|(_, context, state, _)| (context.as_str(), state.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("flotilla/env", "pending"),
            ("flotilla/env", "success"),
            ("flotilla/tests", "pending"),
            ("flotilla/tests", "success"),
            ("flotilla/canary", "pending"),
            ("flotilla/canary", "failure"),
        ]
    );
    assert!(statuses.iter().all(|(sha, ..)| sha == SHA), "{statuses:?}");
    let verdict = &statuses[5].3;
    assert!(verdict.contains("rolled back to"), "{verdict}");
    let calls = github.calls();
    assert!(calls.iter().all(|c| c.authorization == "Bearer gh-token"));
    assert!(
        calls
            .iter()
            .all(|c| c.path.starts_with("/repos/acme/ping/statuses/"))
    );
    let release: Release = fx
        .stored_exactly("flotilla.release.requested.>", 1)
        .await?
        .first()
        .context("one release")?
        .decode()?;
    assert_eq!(
        (release.repo.as_str(), release.sha.as_str()),
        ("acme/ping", SHA)
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_promotion_can_be_proposed_as_a_pull_request_through_the_github_api() -> Result<()> {
    let fx = Fixture::start().await?;
    let github = FakeGithub::start().await?;
    github.seed("main", "apps/production.json", PRODUCTION.as_bytes());
    let mut config = fx.config();
    config.github = Some(Github::new(&github.url, Secret::Value("gh-token".into()))?);
    config.promote = Promote::PullRequest(GithubRepo::parse("acme/gitops").context("repo")?);
    let worker = fx.run_with(config).await?;
    let env = fx.stage().await?;

    fx.publish(EventType::TestsPassed, &env, &tests_result(&env, ""))
        .await?;

    let release: Release = fx
        .stored_exactly("flotilla.release.requested.>", 1)
        .await?
        .first()
        .context("one release")?
        .decode()?;
    assert_eq!(release.previous_version, PRODUCTION_VERSION);
    assert!(release.pull_request_url.ends_with("/pull/1"), "{release:?}");
    assert!(
        release.revision.is_empty(),
        "nothing reached the GitOps branch"
    );
    let branch = format!("flotilla/promote-{env}");
    let proposed = github
        .file(&branch, "apps/production.json")
        .context("the branch")?;
    let proposed: serde_json::Value = serde_json::from_slice(&proposed)?;
    assert_eq!(proposed["apps"]["ping"]["version"], VERSION);
    let main = github
        .file("main", "apps/production.json")
        .context("main")?;
    assert_eq!(main, PRODUCTION.as_bytes(), "main waits for the merge");
    assert_eq!(
        fx.remote_json("apps/production.json")?["apps"]["ping"]["version"],
        PRODUCTION_VERSION,
        "production in the GitOps branch waits for the merge"
    );
    assert!(
        !fx.remote_messages()?
            .iter()
            .any(|m| m.starts_with("env-manager: promote")),
        "no promotion commit on the GitOps branch"
    );

    // A redelivery finds the branch, the file and the pull request it made.
    fx.publish(EventType::TestsPassed, &env, &tests_result(&env, ""))
        .await?;
    fx.stored_exactly("flotilla.release.requested.>", 2).await?;
    let pulls = github.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(
        (pulls[0].0.as_str(), pulls[0].1.as_str()),
        (branch.as_str(), "main")
    );
    let teardowns = fx
        .stored("flotilla.env.teardown.requested.>", 1, WITHIN)
        .await?;
    let teardown: TeardownRequest = teardowns.first().context("a teardown")?.decode()?;
    assert_eq!(teardown.reason, "promoted");
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_env_managers_racing_on_one_repository_both_land_every_env() -> Result<()> {
    let fx = Fixture::start().await?;
    let first = fx.run().await?;
    let mut config = fx.config();
    config.gitops.dir = fx.dir.path().join("second-work");
    let second = fx.run_with(config).await?;

    for i in 0..12 {
        let mut b = build(0);
        b.version = format!("v2024010112{i:04}-bbbbbbb");
        b.change_id = format!("ping-{}", b.version);
        fx.publish(EventType::BuildSucceeded, &b.change_id, &b)
            .await?;
    }

    fx.stored_exactly("flotilla.env.requested.>", 12).await?;
    let mut envs = fx.remote_files("envs")?;
    envs.sort();
    assert_eq!(envs.len(), 12, "{envs:?}");
    assert_eq!(envs[0], "stg-ping-v20240101120000-bbbbbbb.json");
    assert!(fx.remote_file("apps/production.json")?.is_some());
    first.shutdown().await?;
    second.shutdown().await
}

#[tokio::test]
async fn a_malformed_production_manifest_dead_letters_the_build_and_writes_nothing() -> Result<()> {
    let fx = Fixture::start().await?;
    fx.commit_as_someone(&[("apps/production.json", b"{\"apps\": [\n")], "oops")?;
    let commits = fx.remote_commits()?;
    let worker = fx.run().await?;

    fx.publish(
        EventType::BuildSucceeded,
        &format!("ping-{VERSION}"),
        &build(0),
    )
    .await?;

    let reasons = fx.dead_letters(1).await?;
    let reason = reasons.first().context("a dead letter")?;
    assert!(
        reason.contains("apps/production.json") && reason.contains("not valid"),
        "{reason}"
    );
    fx.stored_exactly("flotilla.env.requested.>", 0).await?;
    assert_eq!(fx.remote_commits()?, commits, "nothing written");
    assert!(
        fx.record(&staging_env()).await?.is_none(),
        "nothing registered"
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_repository_holding_a_thousand_envs_takes_one_more_and_gives_one_up() -> Result<()> {
    let fx = Fixture::start().await?;
    let paths: Vec<String> = (0..1000).map(|i| format!("envs/pr-web-{i}.json")).collect();
    let files: Vec<(&str, &[u8])> = paths.iter().map(|p| (p.as_str(), &b"{}\n"[..])).collect();
    fx.commit_as_someone(&files, "a thousand envs")?;
    let worker = fx.run().await?;

    fx.publish(
        EventType::BuildSucceeded,
        &format!("ping-{VERSION}"),
        &build(0),
    )
    .await?;
    fx.stored_exactly("flotilla.env.requested.>", 1).await?;
    let teardown = TeardownRequest {
        env: "pr-web-500".into(),
        reason: "manual".into(),
        ..Default::default()
    };
    fx.publish(EventType::EnvTeardownRequested, "pr-web-500", &teardown)
        .await?;

    let removed = fx
        .remote_eventually(|fx| matches!(fx.remote_file("envs/pr-web-500.json"), Ok(None)))
        .await;
    assert!(removed, "envs/pr-web-500.json is removed");
    let envs = fx.remote_files("envs")?;
    assert_eq!(envs.len(), 1000, "999 of the thousand and the new one");
    assert!(envs.contains(&format!("{}.json", staging_env())));
    worker.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_handled_together_are_pushed_in_one_commit_and_each_answers_after_it() -> Result<()>
{
    let fx = Fixture::start().await?;
    let config = fx.config();
    let gitops = GitOps::open(config.gitops.clone()).await?;
    let handler = EnvManager::new(config, gitops.clone(), fx.registry().await?);
    let worker = fx.run_handler(handler).await?;
    let commits = fx.remote_commits()?;
    // A write that holds the writer (and changes nothing), so the builds' writes queue up.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = running.clone();
    let hold = {
        let gitops = gitops.clone();
        tokio::spawn(async move {
            gitops
                .commit::<_, GitError, _>("hold".into(), move |_| {
                    started.store(true, std::sync::atomic::Ordering::SeqCst);
                    let _ = held.recv_timeout(WITHIN);
                    Ok((Vec::new(), ()))
                })
                .await
        })
    };
    let holding =
        flotilla_testing::eventually(WITHIN, || running.load(std::sync::atomic::Ordering::SeqCst))
            .await;
    anyhow::ensure!(holding, "the writer was never held");

    for i in 0..10 {
        let mut b = build(0);
        b.version = format!("v2024010112{i:04}-bbbbbbb");
        b.change_id = format!("ping-{}", b.version);
        fx.publish(EventType::BuildSucceeded, &b.change_id, &b)
            .await?;
    }
    let queued = flotilla_testing::eventually(WITHIN, || gitops.queued() == 10).await;
    assert!(queued, "{} of 10 writes queued", gitops.queued());
    fx.stored_exactly("flotilla.env.requested.>", 0).await?;
    release.send(())?;
    hold.await??;

    let requested = fx.stored_exactly("flotilla.env.requested.>", 10).await?;
    let mut revisions = Vec::new();
    for event in &requested {
        let env: Environment = event.decode()?;
        revisions.push(env.revision);
    }
    revisions.dedup();
    assert_eq!(
        revisions,
        [fx.remote_head()?],
        "every env names the one pushed commit"
    );
    assert_eq!(
        fx.remote_commits()?,
        commits + 1,
        "one commit for the ten builds"
    );
    assert_eq!(fx.remote_files("envs")?.len(), 10);
    worker.shutdown().await
}
