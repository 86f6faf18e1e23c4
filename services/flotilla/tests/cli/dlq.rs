use std::time::Duration;

use anyhow::{Context, Result};
use flotilla_bus::envelope::header;
use flotilla_bus::runtime::{Ctx, WorkerConfig};
use flotilla_bus::{Bus, Event, HandlerError, Names, Outgoing};
use flotilla_testing::NatsServer;
use serde_json::{Value, json};

use crate::support::{Cli, eventually, jetstream, message_count};

const WORKER: &str = "sync-watcher";

async fn refuse(_event: Event, _ctx: Ctx) -> Result<Vec<Outgoing>, HandlerError> {
    Err(HandlerError::permanent("the cluster refused the env"))
}

/// Runs the sync-watcher with a handler that always fails permanently, publishes an
/// `env.requested` event for it, and returns the dead letter as `dlq list --json` shows it once
/// the runtime has written it. The worker is stopped again, so a retry stays put.
async fn dead_letter(server: &NatsServer, cli: &Cli) -> Result<(Value, Value)> {
    cli.init().await?;
    let bus = Bus::new(server.connect().await, Names::default());
    let config = WorkerConfig::for_worker(WORKER).context("a known worker")?;
    let worker = flotilla_testing::run_worker(&bus, config, refuse).await?;

    let receipt = cli
        .publish("env.requested", "pr-ping-7", &json!({"env": "pr-ping-7"}))
        .await?;
    let letter = eventually("a dead letter", Duration::from_secs(20), || async {
        let listed = cli.run(&["dlq", "list", "--json"]).await?.success()?;
        Ok(listed.json_lines()?.into_iter().next())
    })
    .await?;

    worker.shutdown().await?;
    Ok((receipt, letter))
}

#[tokio::test]
async fn dlq_list_shows_the_dead_letter_of_a_failing_worker() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);

    let (receipt, letter) = dead_letter(&server, &cli).await?;

    assert_eq!(letter["seq"], 1);
    assert_eq!(letter["worker"], WORKER);
    assert_eq!(letter["subject"], "flotilla.env.requested.pr-ping-7");
    assert_eq!(letter["deliveries"], 1);
    assert_eq!(letter["reason"], "the cluster refused the env");
    assert_eq!(letter["id"], receipt["id"]);
    assert_eq!(letter["stream_seq"], receipt["seq"]);
    let table = cli.run(&["dlq", "list"]).await?.success()?;
    let lines = table.lines();
    assert_eq!(lines.len(), 2, "a heading and one letter: {lines:?}");
    for part in [
        WORKER,
        "flotilla.env.requested.pr-ping-7",
        "the cluster refused the env",
    ] {
        assert!(lines[1].contains(part), "{part} missing from {}", lines[1]);
    }
    let other = cli
        .run(&["dlq", "list", "--worker", "reaper", "--json"])
        .await?
        .success()?;
    assert_eq!(other.stdout, "", "the reaper has no dead letters");
    Ok(())
}

#[tokio::test]
async fn dlq_retry_puts_the_letter_back_for_its_worker_and_removes_it() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    let (receipt, letter) = dead_letter(&server, &cli).await?;
    let dlq_seq = letter["seq"].to_string();

    let run = cli.run(&["dlq", "retry", &dlq_seq]).await?.success()?;

    assert!(
        run.stdout.contains(&format!("retried dlq {dlq_seq}")),
        "{}",
        run.stdout
    );
    let js = jetstream(&server).await;
    let events = js.get_stream("FLOTILLA").await?;
    let retried = events
        .get_last_raw_message_by_subject("flotilla.env.requested.pr-ping-7")
        .await?;
    assert_ne!(
        Some(retried.sequence),
        receipt["seq"].as_u64(),
        "a new copy"
    );
    let get = |name: &str| retried.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(get(header::RETRY_FOR).as_deref(), Some(WORKER));
    assert_eq!(get(header::ID).as_deref(), receipt["id"].as_str());
    assert_eq!(get(header::MSG_ID), Some(format!("retry:{dlq_seq}")));
    for dlq_header in [header::DLQ_SUBJECT, header::DLQ_REASON, header::DLQ_WORKER] {
        assert_eq!(
            get(dlq_header),
            None,
            "{dlq_header} was copied onto the retry"
        );
    }
    assert_eq!(message_count(&js, "FLOTILLA_DLQ").await?, 0);
    assert_eq!(
        cli.run(&["dlq", "list", "--json"]).await?.success()?.stdout,
        ""
    );

    // It is gone, so a second retry of the same letter has nothing to put back.
    let again = cli.run(&["dlq", "retry", &dlq_seq]).await?;
    assert_eq!(again.code(), Some(1), "{}", again.stderr);
    assert!(
        again.stderr.contains(&format!("no dead letter {dlq_seq}")),
        "{}",
        again.stderr
    );
    assert_eq!(message_count(&js, "FLOTILLA").await?, 2);
    Ok(())
}

/// Stores a dead letter of `worker` the way the runtime writes one, without running it.
async fn letter_of(server: &NatsServer, worker: &str, key: &str) -> Result<()> {
    let js = jetstream(server).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(header::DLQ_WORKER, worker);
    headers.insert(
        header::DLQ_SUBJECT,
        format!("flotilla.env.requested.{key}").as_str(),
    );
    headers.insert(header::DLQ_REASON, "the cluster refused the env");
    js.publish_with_headers(format!("flotilla-dlq.{worker}"), headers, "{}".into())
        .await?
        .await?;
    Ok(())
}

#[tokio::test]
async fn dlq_retry_all_dry_run_counts_per_worker_and_changes_nothing() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;
    letter_of(&server, "reaper", "a").await?;
    letter_of(&server, "sync-watcher", "b").await?;
    letter_of(&server, "sync-watcher", "c").await?;

    let run = cli
        .run(&["dlq", "retry", "--all", "--dry-run"])
        .await?
        .success()?;

    let lines = run.lines();
    assert!(
        lines.contains(
            &"would retry dlq 1 for reaper: flotilla.env.requested.a (the cluster refused the env)"
        ),
        "{lines:?}"
    );
    assert!(lines.contains(&"reaper: 1 would be retried"), "{lines:?}");
    assert!(
        lines.contains(&"sync-watcher: 2 would be retried"),
        "{lines:?}"
    );
    let js = jetstream(&server).await;
    assert_eq!(message_count(&js, "FLOTILLA_DLQ").await?, 3, "letters kept");
    assert_eq!(message_count(&js, "FLOTILLA").await?, 0, "nothing put back");
    Ok(())
}

#[tokio::test]
async fn dlq_retry_all_refuses_without_yes_when_stdin_is_not_a_terminal() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;
    letter_of(&server, "reaper", "a").await?;
    letter_of(&server, "sync-watcher", "b").await?;
    let js = jetstream(&server).await;

    let refused = cli
        .run_with_stdin(&["dlq", "retry", "--all"], "y\n")
        .await?;

    assert_eq!(refused.code(), Some(64), "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("would put back 2 dead letters (reaper: 1, sync-watcher: 1)"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert_eq!(message_count(&js, "FLOTILLA_DLQ").await?, 2, "letters kept");
    assert_eq!(message_count(&js, "FLOTILLA").await?, 0, "nothing put back");

    cli.run(&["dlq", "retry", "--all", "--yes"])
        .await?
        .success()?;
    assert_eq!(message_count(&js, "FLOTILLA_DLQ").await?, 0);
    assert_eq!(message_count(&js, "FLOTILLA").await?, 2);
    Ok(())
}

/// Runs `flotilla <args>` on a terminal (`script` gives it one) and types `typed` into it.
async fn on_a_terminal(server: &NatsServer, args: &str, typed: &str) -> Result<(i32, String)> {
    use tokio::io::AsyncWriteExt;
    let line = format!("{} {args}", env!("CARGO_BIN_EXE_flotilla"));
    let mut command = tokio::process::Command::new("script");
    // Only this test's settings, as `Cli::command` does.
    for (name, _) in std::env::vars() {
        if ["NATS_", "FLOTILLA_", "OTEL_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(["-qec", &line, "/dev/null"])
        .env("NATS_URL", server.url())
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("run script(1) for a terminal")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(typed.as_bytes()).await?;
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .context("flotilla on a terminal did not finish")??;
    drop(stdin);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    Ok((output.status.code().unwrap_or(-1), text))
}

#[tokio::test]
async fn dlq_retry_all_asks_on_a_terminal_and_retries_only_when_confirmed() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;
    letter_of(&server, "reaper", "a").await?;
    let js = jetstream(&server).await;

    let (code, text) = on_a_terminal(&server, "dlq retry --all", "n\n").await?;
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("retry 1 dead letters (reaper: 1)? [y/N]"),
        "{text}"
    );
    assert!(
        text.contains("not confirmed; nothing was retried"),
        "{text}"
    );
    assert_eq!(message_count(&js, "FLOTILLA_DLQ").await?, 1, "letter kept");

    let (code, text) = on_a_terminal(&server, "dlq retry --all", "y\n").await?;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("retried dlq 1 for reaper"), "{text}");
    assert_eq!(message_count(&js, "FLOTILLA_DLQ").await?, 0);
    Ok(())
}
