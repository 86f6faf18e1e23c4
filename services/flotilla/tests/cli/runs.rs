//! `flotilla runs` and `flotilla run CHANGE`: a change's timeline from the events the stream
//! holds, in order, with durations; other changes left out.

use crate::support::*;

use anyhow::Result;
use flotilla_testing::NatsServer;
use serde_json::json;

#[tokio::test]
async fn a_changes_timeline_lists_its_events_in_order_and_leaves_others_out() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;
    cli.publish("build.started", "ping-v1", &build("ping-v1"))
        .await?;
    cli.publish("build.succeeded", "ping-v1", &build("ping-v1"))
        .await?;
    cli.publish("build.started", "ping-v2", &build("ping-v2"))
        .await?;
    let ready = json!({"env": "stg-ping-v1", "changeId": "ping-v1"});
    cli.run_with_stdin(
        &[
            "publish",
            "env.ready",
            "stg-ping-v1",
            "--data",
            "-",
            "--change-id",
            "ping-v1",
        ],
        &ready.to_string(),
    )
    .await?;

    let run = cli.run(&["run", "ping-v1", "--json"]).await?.success()?;
    let steps = run.json_lines()?;
    let types: Vec<&str> = steps.iter().filter_map(|s| s["type"].as_str()).collect();
    assert_eq!(
        &types[..2],
        ["build.started", "build.succeeded"],
        "{}",
        run.stdout
    );
    assert!(steps.iter().all(|s| {
        s["subject"]
            .as_str()
            .is_some_and(|s| !s.ends_with("ping-v2"))
    }));
    assert_eq!(steps[0]["since_start_ms"], 0);

    let human = cli.run(&["run", "ping-v1"]).await?.success()?;
    assert!(human.stdout.contains("build.succeeded"), "{}", human.stdout);
    assert!(
        human
            .stdout
            .lines()
            .last()
            .is_some_and(|l| l.contains("events over")),
        "{}",
        human.stdout
    );

    let runs = cli.run(&["runs", "--json"]).await?.success()?;
    let changes = runs.json_lines()?;
    let ids: Vec<&str> = changes
        .iter()
        .filter_map(|c| c["change_id"].as_str())
        .collect();
    assert!(
        ids.contains(&"ping-v1") && ids.contains(&"ping-v2"),
        "{}",
        runs.stdout
    );

    let unknown = cli.run(&["run", "ping-v9"]).await?;
    assert_eq!(unknown.code(), Some(64), "{}", unknown.stderr);
    Ok(())
}

#[tokio::test]
async fn a_changes_timeline_shows_its_environment_hooks() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;
    let run = |phase: &str, reason: &str| {
        json!({"env": "stg-ping-v1", "kind": "staging", "changeId": "ping-v1", "hook": "database",
               "phase": phase, "attempt": 1, "runId": "hook-stg-ping-v1-database", "reason": reason})
    };
    cli.publish("build.succeeded", "ping-v1", &build("ping-v1"))
        .await?;
    cli.publish("env.hook.started", "stg-ping-v1", &run("provision", ""))
        .await?;
    cli.publish(
        "env.hook.failed",
        "stg-ping-v1",
        &run("provision", "exit status 1; last output:\nquota exceeded"),
    )
    .await?;

    let steps = cli
        .run(&["run", "ping-v1", "--json"])
        .await?
        .success()?
        .json_lines()?;
    let types: Vec<&str> = steps.iter().filter_map(|s| s["type"].as_str()).collect();
    assert_eq!(
        types,
        ["build.succeeded", "env.hook.started", "env.hook.failed"]
    );
    assert_eq!(steps[2]["data"]["hook"], "database");
    assert_eq!(steps[2]["data"]["phase"], "provision");
    let human = cli.run(&["run", "ping-v1"]).await?.success()?;
    assert!(
        human.stdout.contains("env.hook.failed") && human.stdout.contains("quota exceeded"),
        "{}",
        human.stdout
    );
    Ok(())
}
