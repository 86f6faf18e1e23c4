//! builder-trigger against a real nats-server, running real `sh -c` commands.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use builder_trigger::decide;
use flotilla_bus::{Ctx, Event, EventType, Handler, HandlerError};
use support::*;

/// The version builder-trigger must have decided for the stored push: its ce-time and sha.
async fn version_of_stored_push(fx: &Fixture) -> Result<String> {
    let pushes = fx.stored("flotilla.source.push.>", 1, WITHIN).await?;
    let push = pushes.first().context("the push is stored")?;
    let time = push.time.as_deref().context("the push has a ce-time")?;
    Ok(decide::version(time, SHA)?)
}

#[tokio::test]
async fn a_push_to_the_default_branch_publishes_build_started_then_build_succeeded() -> Result<()> {
    let fx = Fixture::start().await?;
    let seen = fx.file("seen");
    let mut config = config(&format!(
        "echo \"$FLOTILLA_VERSION $FLOTILLA_APP $FLOTILLA_CHANGE_ID $FLOTILLA_SHA $FLOTILLA_REPO $FLOTILLA_PR $FLOTILLA_IMAGE\" >> {}; echo built",
        seen.display()
    ));
    config.image_prefix = "registry.example.com/team".into();
    let worker = fx.run(config).await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let events = fx.stored_exactly("flotilla.build.>", 2).await?;
    let version = version_of_stored_push(&fx).await?;
    let change_id = format!("ping-{version}");
    assert!(version.ends_with("-1a2b3c4"), "{version}");
    let image = format!("registry.example.com/team/ping:{version}");

    let (started, succeeded) = (&events[0], &events[1]);
    assert_eq!(
        started.subject,
        format!("flotilla.build.started.{change_id}")
    );
    assert_eq!(
        succeeded.subject,
        format!("flotilla.build.succeeded.{change_id}")
    );
    for event in &events {
        assert_eq!(event.change_id.as_deref(), Some(change_id.as_str()));
        assert_eq!(event.source, "flotilla/builder-trigger");
        let build = build(event)?;
        assert_eq!(
            (build.change_id.as_str(), build.app.as_str()),
            (change_id.as_str(), "ping")
        );
        assert_eq!(
            (build.version.as_str(), build.sha.as_str()),
            (version.as_str(), SHA)
        );
        assert_eq!((build.repo.as_str(), build.pr), ("acme/ping", 0));
    }
    let images: Vec<_> = build(succeeded)?
        .images
        .into_iter()
        .map(|i| (i.name, i.r#ref))
        .collect();
    let pipeline = format!("registry.example.com/team/ping-pipeline:{version}");
    assert_eq!(
        images,
        vec![
            ("ping".to_owned(), image.clone()),
            ("ping-pipeline".to_owned(), pipeline)
        ],
        "the app image and the pipeline image its tests run from"
    );
    assert_eq!(
        lines(&seen),
        vec![format!(
            "{version} ping {change_id} {SHA} acme/ping 0 {image}"
        )],
        "the command saw the change in its environment"
    );
    worker.shutdown().await
}

#[tokio::test]
async fn build_started_is_published_while_the_build_is_still_running() -> Result<()> {
    let fx = Fixture::start().await?;
    let go = fx.file("go");
    // The build finishes only once the test has seen build.started.
    let worker = fx
        .run(config(&format!(
            "while [ ! -e {} ]; do sleep 0.05; done",
            go.display()
        )))
        .await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let started = fx.stored("flotilla.build.started.>", 1, WITHIN).await?;
    assert_eq!(started.len(), 1, "build.started before the build finished");
    assert!(
        fx.stored("flotilla.build.succeeded.>", 0, Duration::ZERO)
            .await?
            .is_empty()
    );
    std::fs::write(&go, b"")?;
    fx.stored_exactly("flotilla.build.succeeded.>", 1).await?;
    worker.shutdown().await
}

#[tokio::test]
async fn a_failing_build_command_publishes_build_failed_with_its_exit_status_and_output()
-> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx
        .run(config(
            "echo compiling; echo 'error[E0308]: mismatched types' >&2; exit 3",
        ))
        .await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let events = fx.stored_exactly("flotilla.build.>", 2).await?;
    assert!(events[0].subject.starts_with("flotilla.build.started."));
    assert!(
        events[1].subject.starts_with("flotilla.build.failed."),
        "{}",
        events[1].subject
    );
    let failed = build(&events[1])?;
    assert!(
        failed.reason.starts_with("exit status 3"),
        "{}",
        failed.reason
    );
    assert!(
        failed.reason.contains("error[E0308]: mismatched types"),
        "{}",
        failed.reason
    );
    assert!(failed.images.is_empty());
    worker.shutdown().await
}

#[tokio::test]
async fn a_build_running_past_its_timeout_is_killed_and_fails() -> Result<()> {
    let fx = Fixture::start().await?;
    let mut config = config("echo started; sleep 5; echo finished");
    config.build_timeout = Duration::from_secs(1);
    let worker = fx.run(config).await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let failed = fx
        .stored("flotilla.build.failed.>", 1, Duration::from_secs(4))
        .await?;
    let failed = build(
        failed
            .first()
            .context("build.failed within 4s of a 1s timeout")?,
    )?;
    assert!(
        failed.reason.starts_with("timed out after 1s"),
        "{}",
        failed.reason
    );
    assert!(failed.reason.contains("started") && !failed.reason.contains("finished"));
    worker.shutdown().await
}

#[tokio::test]
async fn a_build_command_that_cannot_start_fails_the_build_instead_of_the_worker() -> Result<()> {
    let fx = Fixture::start().await?;
    let mut config = config("true");
    config.command_mut().expect("command backend").shell = "/nonexistent/sh".into();
    let worker = fx.run(config).await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let failed = fx.build_failed().await?;
    assert!(
        failed.reason.contains("could not start"),
        "{}",
        failed.reason
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_redelivered_push_runs_the_command_again_but_publishes_nothing_new() -> Result<()> {
    let fx = Fixture::start().await?;
    let runs = fx.file("runs");
    let trigger = fx
        .trigger(config(&format!(
            "echo \"$FLOTILLA_VERSION\" >> {}",
            runs.display()
        )))
        .await?;
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = attempts.clone();
    // The first attempt stores its outputs and then "loses" its ack, as a worker killed at
    // the wrong moment would: the runtime redelivers the push.
    let worker = fx
        .run_handler(move |event: Event, ctx: Ctx| {
            let trigger = trigger.clone();
            let attempts = counted.clone();
            async move {
                let outputs = trigger.handle(event.clone(), ctx.clone()).await?;
                if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                    ctx.publisher
                        .publish_all(outputs, Some(&event))
                        .await
                        .map_err(HandlerError::from)?;
                    return Err(HandlerError::retryable(
                        "simulated: outputs stored, ack lost",
                    ));
                }
                Ok(outputs)
            }
        })
        .await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    assert!(
        flotilla_testing::eventually(WITHIN, || attempts.load(Ordering::SeqCst) >= 2).await,
        "the push was redelivered"
    );
    let events = fx.stored_exactly("flotilla.build.>", 2).await?;
    assert!(events[0].subject.starts_with("flotilla.build.started."));
    assert!(events[1].subject.starts_with("flotilla.build.succeeded."));
    let version = version_of_stored_push(&fx).await?;
    assert_eq!(
        lines(&runs),
        vec![version.clone(), version],
        "both runs built one version"
    );
    worker.shutdown().await
}

#[tokio::test]
async fn pushes_to_other_branches_and_tags_build_nothing() -> Result<()> {
    let fx = Fixture::start().await?;
    let runs = fx.file("runs");
    let worker = fx
        .run(config(&format!(
            "echo \"$FLOTILLA_REF\" >> {}",
            runs.display()
        )))
        .await?;

    let mut feature = push_to_main();
    feature.r#ref = "refs/heads/feature".into();
    feature.branch = "feature".into();
    let mut tag = push_to_main();
    tag.r#ref = "refs/tags/v1.0.0".into();
    tag.branch.clear();
    tag.tag = "v1.0.0".into();
    let mut deleted = push_to_main();
    deleted.deleted = true;
    for push in [feature, tag, deleted] {
        fx.publish(EventType::SourcePush, "acme/ping", &push)
            .await?;
    }
    // Handled after the others (one consumer, in order): once it is built, they were skipped.
    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    fx.stored_exactly("flotilla.build.>", 2).await?;
    assert_eq!(lines(&runs), vec!["refs/heads/main"]);
    worker.shutdown().await
}

#[tokio::test]
async fn pull_requests_build_their_head_when_opened_but_not_when_closed() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run(config("echo \"preview of #$FLOTILLA_PR\"")).await?;

    fx.publish(
        EventType::SourcePullRequest,
        "acme/ping",
        &pull_request("closed", 41),
    )
    .await?;
    fx.publish(
        EventType::SourcePullRequest,
        "acme/ping",
        &pull_request("opened", 42),
    )
    .await?;

    let events = fx.stored_exactly("flotilla.build.>", 2).await?;
    for event in &events {
        let build = build(event)?;
        assert_eq!(build.pr, 42);
        assert_eq!(build.sha, SHA);
        assert_eq!(build.r#ref, "refs/heads/feature");
        assert!(build.version.ends_with("-1a2b3c4"));
    }
    assert!(
        events[1]
            .subject
            .starts_with("flotilla.build.succeeded.ping-v")
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_ready_environment_runs_the_test_command_against_it_and_publishes_tests_passed()
-> Result<()> {
    let fx = Fixture::start().await?;
    let seen = fx.file("seen");
    let config = with_test_command(
        config("true"),
        &format!(
            "echo \"$FLOTILLA_ENV $FLOTILLA_APP $FLOTILLA_VERSION $FLOTILLA_CHANGE_ID\" >> {}",
            seen.display()
        ),
    );
    let worker = fx.run(config).await?;
    let version = "v20240305070809-1a2b3c4";
    let env = "stg-ping-v20240305070809-1a2b3c4";

    fx.publish_ready(&env_ready(env, version)).await?;

    let events = fx.stored_exactly("flotilla.tests.>", 1).await?;
    assert_eq!(events[0].subject, format!("flotilla.tests.passed.{env}"));
    let change_id = format!("ping-{version}");
    assert_eq!(events[0].change_id.as_deref(), Some(change_id.as_str()));
    let result = test_result(&events[0])?;
    assert_eq!(
        (result.env.as_str(), result.change_id.as_str()),
        (env, change_id.as_str())
    );
    assert_eq!(
        (result.app.as_str(), result.version.as_str()),
        ("ping", version)
    );
    assert_eq!(
        lines(&seen),
        vec![format!("{env} ping {version} {change_id}")]
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_failing_test_command_publishes_tests_failed_with_its_output() -> Result<()> {
    let fx = Fixture::start().await?;
    let config = with_test_command(
        config("true"),
        "echo 'GET /ping: expected {\"value\":\"pong\"}, got pong'; exit 1",
    );
    let worker = fx.run(config).await?;
    let env = "pr-ping-42";

    fx.publish_ready(&env_ready(env, "v20240305070809-1a2b3c4"))
        .await?;

    let events = fx.stored_exactly("flotilla.tests.>", 1).await?;
    assert_eq!(events[0].subject, format!("flotilla.tests.failed.{env}"));
    let reason = test_result(&events[0])?.reason;
    assert!(reason.starts_with("exit status 1"), "{reason}");
    assert!(reason.contains("got pong"), "{reason}");
    worker.shutdown().await
}

#[tokio::test]
async fn without_a_test_command_tests_pass_and_say_so() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run(config("true")).await?;
    let env = "pr-ping-7";

    fx.publish_ready(&env_ready(env, "v20240305070809-1a2b3c4"))
        .await?;

    let events = fx.stored_exactly("flotilla.tests.>", 1).await?;
    assert_eq!(events[0].subject, format!("flotilla.tests.passed.{env}"));
    assert_eq!(
        test_result(&events[0])?.reason,
        "no test command configured"
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_newer_push_to_a_pull_request_cancels_its_running_build() -> Result<()> {
    let fx = Fixture::start().await?;
    let started = fx.file("started");
    // The first head's build runs until killed; the second's finishes at once.
    let worker = fx
        .run(config(&format!(
            "echo \"$FLOTILLA_SHA\" >> {}; if [ \"$FLOTILLA_SHA\" = {SHA} ]; then echo waiting; sleep 30; fi",
            started.display()
        )))
        .await?;

    fx.publish(
        EventType::SourcePullRequest,
        "acme/ping",
        &pull_request("opened", 42),
    )
    .await?;
    assert!(
        flotilla_testing::eventually(WITHIN, || lines(&started).len() == 1).await,
        "the first build started"
    );
    let mut newer = pull_request("synchronize", 42);
    newer.head_sha = SHA2.into();
    fx.publish(EventType::SourcePullRequest, "acme/ping", &newer)
        .await?;

    let failed = fx.stored("flotilla.build.failed.>", 1, WITHIN).await?;
    let failed = build(failed.first().context("the first build failed")?)?;
    assert_eq!(failed.sha, SHA);
    assert!(
        failed
            .reason
            .starts_with(&format!("superseded by {}", &SHA2[..7])),
        "{}",
        failed.reason
    );
    assert!(
        failed.reason.contains("waiting"),
        "the excerpt is kept: {}",
        failed.reason
    );
    let succeeded = fx.stored("flotilla.build.succeeded.>", 1, WITHIN).await?;
    let succeeded = build(succeeded.first().context("the newer build succeeded")?)?;
    assert_eq!((succeeded.sha.as_str(), succeeded.pr), (SHA2, 42));
    worker.shutdown().await
}

#[tokio::test]
async fn the_whole_output_is_kept_in_a_log_file_and_the_event_says_where() -> Result<()> {
    let fx = Fixture::start().await?;
    let mut config = config("seq 1 100; echo 'it broke' >&2; exit 1");
    let logs = fx.file("logs");
    config.command_mut().expect("command backend").log_dir = Some(logs.clone());
    let worker = fx.run(config).await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let failed = fx.build_failed().await?;
    let path = std::path::PathBuf::from(&failed.log_url);
    assert!(path.starts_with(&logs), "{}", failed.log_url);
    let log = lines(&path);
    assert_eq!(log.len(), 101, "every line is in the file");
    assert_eq!(log.first().map(String::as_str), Some("1"));
    assert!(failed.reason.contains("it broke") && !failed.reason.contains("\n50\n"));
    assert!(
        failed
            .reason
            .ends_with(&format!("full log: {}", failed.log_url))
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_build_longer_than_the_ack_wait_runs_once() -> Result<()> {
    let fx = Fixture::start().await?;
    let runs = fx.file("runs");
    let trigger = fx
        .trigger(config(&format!("echo run >> {}; sleep 3", runs.display())))
        .await?;
    let worker = fx
        .run_handler_with(trigger, |c| c.ack_wait = Duration::from_secs(1))
        .await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    fx.stored("flotilla.build.succeeded.>", 1, WITHIN).await?;
    assert_eq!(
        lines(&runs).len(),
        1,
        "progress acks kept the event while it built"
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_test_run_past_its_timeout_is_killed_and_fails() -> Result<()> {
    let fx = Fixture::start().await?;
    let mut config = with_test_command(config("true"), "echo migrating; sleep 5");
    config.test_timeout = Duration::from_secs(1);
    let worker = fx.run(config).await?;
    let env = "pr-ping-9";

    fx.publish_ready(&env_ready(env, "v20240305070809-1a2b3c4"))
        .await?;

    let events = fx.stored_exactly("flotilla.tests.>", 1).await?;
    assert_eq!(events[0].subject, format!("flotilla.tests.failed.{env}"));
    let reason = test_result(&events[0])?.reason;
    assert!(reason.starts_with("timed out after 1s"), "{reason}");
    assert!(reason.contains("migrating"), "{reason}");
    worker.shutdown().await
}

#[tokio::test]
async fn a_newer_head_announced_by_another_replica_cancels_the_build_running_here() -> Result<()> {
    use builder_trigger::supersede::Supersede;
    let fx = Fixture::start().await?;
    let (here_client, there_client) = (fx.server.connect().await, fx.server.connect().await);
    let (here, there) = (Supersede::new(), Supersede::new());
    let key = ("acme/ping".to_owned(), 42);
    let first = time::OffsetDateTime::now_utc();
    let later = first + time::Duration::seconds(1);

    // This replica hears the others in a background task of its process.
    let process = flotilla_bus::Process::new(fx.bus.clone());
    here.listen(&here_client, process.tasks()).await;
    let running = here
        .begin(key.clone(), first, SHA)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    here.announce(&here_client, &key, first, SHA).await;
    let _newer = there
        .begin(key.clone(), later, SHA2)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Announcements are at-most-once and this replica's subscription reaches the server
    // asynchronously: the other replica says it until it is heard.
    let why = tokio::time::timeout(WITHIN, async {
        loop {
            there.announce(&there_client, &key, later, SHA2).await;
            tokio::select! {
                why = running.cancel.cancelled() => return why,
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    })
    .await?;
    assert_eq!(why, format!("superseded by {}", &SHA2[..7]));
    assert_eq!(
        here.begin(key, first, SHA).err().as_deref(),
        Some(SHA2),
        "a late redelivery of the old head is refused here too"
    );
    process.abandon().await;
    Ok(())
}

/// The versions of the builds that succeeded, by sha.
async fn versions_built(fx: &Fixture, want: usize) -> Result<Vec<(String, String)>> {
    let succeeded = fx
        .stored_exactly("flotilla.build.succeeded.>", want)
        .await?;
    succeeded
        .iter()
        .map(|event| build(event).map(|b| (b.sha, b.version)))
        .collect()
}

#[tokio::test]
async fn pushes_delivered_in_reverse_order_get_versions_in_commit_order() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run(config("echo built")).await?;

    // The newer commit's webhook arrives first; the older one's is redelivered a day later.
    fx.publish_at(
        EventType::SourcePush,
        "acme/ping",
        &push_of(SHA2, "2024-03-05T10:00:00+02:00"),
        "2024-03-05T08:00:05Z",
    )
    .await?;
    let late = fx
        .publish_at(
            EventType::SourcePush,
            "acme/ping",
            &push_of(SHA, "2024-03-05T07:30:00Z"),
            "2024-03-06T09:00:00Z",
        )
        .await?;

    let pushes = fx.stored("flotilla.source.push.>", 2, WITHIN).await?;
    assert_eq!(
        pushes
            .iter()
            .find(|p| p.id == late.id)
            .and_then(|p| p.time.as_deref()),
        Some("2024-03-06T09:00:00Z"),
        "the late delivery's ce-time is the later one"
    );
    let mut versions = versions_built(&fx, 2).await?;
    versions.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        versions,
        vec![
            (SHA.to_owned(), "v20240305073000-1a2b3c4".to_owned()),
            (SHA2.to_owned(), "v20240305080000-9f8e7d6".to_owned()),
        ],
        "the older commit sorts first, whenever it was delivered"
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_redelivered_push_decides_the_version_of_its_first_delivery() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run(config("echo built")).await?;

    let push = push_of(SHA, "2024-03-05T07:30:00Z");
    fx.publish_at(
        EventType::SourcePush,
        "acme/ping",
        &push,
        "2024-03-05T07:30:02Z",
    )
    .await?;
    // GitHub's "redeliver", after the duplicate window: the same payload, a new event.
    fx.publish_at(
        EventType::SourcePush,
        "acme/ping",
        &push,
        "2024-03-07T12:00:00Z",
    )
    .await?;

    let versions = versions_built(&fx, 2).await?;
    assert_eq!(versions[0], versions[1]);
    assert_eq!(versions[0].1, "v20240305073000-1a2b3c4");
    worker.shutdown().await
}

#[tokio::test]
async fn a_redelivered_pull_request_decides_its_version_from_updated_at() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run(config("echo built")).await?;

    let mut pr = pull_request("opened", 42);
    pr.updated_at = "2024-03-05T07:30:00Z".into();
    fx.publish_at(
        EventType::SourcePullRequest,
        "acme/ping",
        &pr,
        "2024-03-05T07:30:01Z",
    )
    .await?;
    fx.publish_at(
        EventType::SourcePullRequest,
        "acme/ping",
        &pr,
        "2024-03-07T12:00:00Z",
    )
    .await?;

    let versions = versions_built(&fx, 2).await?;
    assert_eq!(versions[0].1, "v20240305073000-1a2b3c4");
    assert_eq!(versions[0], versions[1]);
    worker.shutdown().await
}

#[tokio::test]
async fn an_older_pull_request_head_delivered_late_does_not_supersede_the_newer() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run(config("echo built")).await?;

    let mut newer = pull_request("synchronize", 42);
    newer.head_sha = SHA2.into();
    newer.updated_at = "2024-03-05T08:00:00Z".into();
    fx.publish_at(
        EventType::SourcePullRequest,
        "acme/ping",
        &newer,
        "2024-03-05T08:00:01Z",
    )
    .await?;
    fx.stored("flotilla.build.succeeded.>", 1, WITHIN).await?;
    let mut older = pull_request("opened", 42);
    older.updated_at = "2024-03-05T07:00:00Z".into();
    fx.publish_at(
        EventType::SourcePullRequest,
        "acme/ping",
        &older,
        "2024-03-06T09:00:00Z",
    )
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
    worker.shutdown().await
}

#[tokio::test]
async fn a_pull_request_from_a_fork_builds_only_when_forks_are_allowed() -> Result<()> {
    let fx = Fixture::start().await?;
    let runs = fx.file("runs");
    let command = format!("echo \"$FLOTILLA_PR\" >> {}", runs.display());
    let worker = fx.run(config(&command)).await?;

    let mut fork = pull_request("opened", 41);
    fork.fork = true;
    fork.head_repo = "stranger/ping".into();
    fx.publish(EventType::SourcePullRequest, "acme/ping", &fork)
        .await?;
    // Handled after the fork's (one consumer, in order): once it is built, the fork was skipped.
    fx.publish(
        EventType::SourcePullRequest,
        "acme/ping",
        &pull_request("opened", 42),
    )
    .await?;
    fx.stored_exactly("flotilla.build.>", 2).await?;
    assert_eq!(lines(&runs), vec!["42"]);
    worker.shutdown().await?;

    let fx = Fixture::start().await?;
    let runs = fx.file("runs");
    let mut config = config(&format!("echo \"$FLOTILLA_PR\" >> {}", runs.display()));
    config.rules.build_forks = true;
    let worker = fx.run(config).await?;
    fx.publish(EventType::SourcePullRequest, "acme/ping", &fork)
        .await?;
    fx.stored_exactly("flotilla.build.>", 2).await?;
    assert_eq!(lines(&runs), vec!["41"]);
    worker.shutdown().await
}

/// An `env.ready` is a claim, and passed tests promote: without a record of the env, nothing is
/// tested (the event is dead-lettered); while the record still says `requested` (sync-watcher
/// publishes before it moves the record) the event is retried until it says `ready`.
#[tokio::test]
async fn tests_run_only_for_an_env_the_registry_says_is_ready_at_that_change() -> Result<()> {
    let fx = Fixture::start().await?;
    let worker = fx.run(config("true")).await?;
    let version = "v20240305070809-1a2b3c4";

    let forged = env_ready("stg-ping-v20240305070809-1a2b3c4", version);
    fx.publish(EventType::EnvReady, &forged.env, &forged)
        .await?;
    let letters = flotilla_testing::stored_messages(
        fx.bus.jetstream(),
        "FLOTILLA_DLQ",
        "flotilla-dlq.builder-trigger",
        1,
        WITHIN,
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    let reason = letters[0]
        .headers
        .as_ref()
        .and_then(|h| h.get("flotilla-dlq-reason"))
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default();
    assert!(reason.contains("no env"), "{reason}");
    fx.stored_exactly("flotilla.tests.>", 0).await?;

    let early = env_ready("pr-ping-8", version);
    fx.register_ready(&early).await?;
    let registry = fx.registry().await?;
    registry
        .update(&early.env, |r| {
            r.map(|r| flotilla_env::EnvRecord {
                state: flotilla_env::State::Requested,
                ..r
            })
        })
        .await?;
    fx.publish(EventType::EnvReady, &early.env, &early).await?;
    // Within the retries (50 ms backoff, doubling): none of them ran tests.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let tests = fx
        .stored("flotilla.tests.>", 1, Duration::from_millis(10))
        .await?;
    assert!(tests.is_empty(), "tested before the registry said ready");
    registry
        .update(&early.env, |r| {
            r.map(|r| flotilla_env::EnvRecord {
                state: flotilla_env::State::Ready,
                ..r
            })
        })
        .await?;
    fx.stored_exactly("flotilla.tests.>", 1).await?;
    worker.shutdown().await
}
