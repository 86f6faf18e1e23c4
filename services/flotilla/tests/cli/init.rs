use std::time::Duration;

use anyhow::Result;
use flotilla_bus::topology::WORKERS;
use flotilla_testing::NatsServer;

use crate::support::{Cli, jetstream};

const DAY: u64 = 24 * 3600;

#[tokio::test]
async fn init_creates_the_streams_the_env_bucket_and_a_consumer_per_worker() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);

    let run = cli.init().await?;

    let lines = run.lines();
    for expected in [
        "created   stream FLOTILLA",
        "created   stream FLOTILLA_DLQ",
        "created   kv bucket flotilla-envs",
        "created   kv bucket flotilla-canaries",
    ] {
        assert!(lines.contains(&expected), "{expected:?} not in {lines:?}");
    }
    let js = jetstream(&server).await;
    let mut events = js.get_stream("FLOTILLA").await?;
    let config = &events.info().await?.config;
    assert_eq!(config.subjects, vec!["flotilla.>"]);
    assert_eq!(config.max_age, Duration::from_secs(7 * DAY));
    assert_eq!(config.duplicate_window, Duration::from_secs(600));
    let mut dead_letters = js.get_stream("FLOTILLA_DLQ").await?;
    assert_eq!(
        dead_letters.info().await?.config.subjects,
        vec!["flotilla-dlq.>"]
    );
    js.get_key_value("flotilla-envs").await?;
    js.get_key_value("flotilla-canaries").await?;
    for (worker, _) in WORKERS {
        assert!(
            lines.contains(&format!("created   consumer {worker}").as_str()),
            "no consumer line for {worker} in {lines:?}"
        );
        let consumer = events.consumer_info(*worker).await?;
        assert_eq!(consumer.config.durable_name.as_deref(), Some(*worker));
    }
    Ok(())
}

#[tokio::test]
async fn init_again_changes_nothing_and_a_changed_max_age_is_updated() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;

    let again = cli.init().await?;
    let lines = again.lines();
    assert_eq!(lines.len(), 4 + WORKERS.len(), "{lines:?}");
    assert!(
        lines.iter().all(|l| l.starts_with("unchanged ")),
        "{lines:?}"
    );

    let longer = cli.run(&["init", "--max-age", "14d"]).await?.success()?;
    let lines = longer.lines();
    assert!(
        lines.contains(&"updated   stream FLOTILLA (max_age 7days -> 14days)"),
        "{lines:?}"
    );
    assert!(
        lines[1..].iter().all(|l| l.starts_with("unchanged ")),
        "only FLOTILLA changes: {lines:?}"
    );
    let js = jetstream(&server).await;
    let mut events = js.get_stream("FLOTILLA").await?;
    assert_eq!(
        events.info().await?.config.max_age,
        Duration::from_secs(14 * DAY)
    );

    // The same setting from the environment.
    cli.run_with_env(&["init"], &[("FLOTILLA_MAX_AGE", "21d")])
        .await?
        .success()?;
    assert_eq!(
        events.info().await?.config.max_age,
        Duration::from_secs(21 * DAY)
    );
    Ok(())
}

#[tokio::test]
async fn init_refuses_a_duplicate_window_longer_than_the_max_age_with_exit_64() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);

    let run = cli
        .run(&["init", "--max-age", "5m", "--duplicate-window", "10m"])
        .await?;

    assert_eq!(run.code(), Some(64), "{}", run.stderr);
    assert!(run.stderr.contains("--duplicate-window"), "{}", run.stderr);
    Ok(())
}

/// `--replicas` (FLOTILLA_STREAM_REPLICAS) asks JetStream for that many copies of every stream
/// and bucket; a single server cannot hold three, and says so, and nothing is half made.
#[tokio::test]
async fn init_asks_for_the_replicas_it_is_given_and_a_single_server_refuses_three() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.run(&["init", "--replicas", "1"]).await?.success()?;
    let js = jetstream(&server).await;
    let mut events = js.get_stream("FLOTILLA").await?;
    assert_eq!(events.info().await?.config.num_replicas, 1);

    let fresh = NatsServer::start();
    let run = Cli::new(&fresh)
        .run_with_env(&["init"], &[("FLOTILLA_STREAM_REPLICAS", "3")])
        .await?;
    assert_ne!(run.code(), Some(0), "{}", run.stdout);
    assert!(
        run.stderr.contains("FLOTILLA") && run.stderr.to_lowercase().contains("replica")
            || run.stderr.contains("insufficient resources"),
        "{}",
        run.stderr
    );
    let refused = Cli::new(&fresh).run(&["init", "--replicas", "9"]).await?;
    assert_eq!(refused.code(), Some(64), "{}", refused.stderr);
    Ok(())
}
