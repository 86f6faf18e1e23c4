use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_nats::HeaderMap;
use flotilla_testing::NatsServer;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use crate::support::{Cli, build, jetstream};

/// A running `flotilla tail`.
struct Tail {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Tail {
    /// Starts `flotilla tail ARGS` and waits until it says it is following.
    async fn start(cli: &Cli, args: &[&str]) -> Result<Tail> {
        let mut child = cli
            .command(&[&["tail"], args].concat())
            .spawn()
            .context("start flotilla tail")?;
        let stdout = BufReader::new(child.stdout.take().context("piped stdout")?).lines();
        let mut stderr = BufReader::new(child.stderr.take().context("piped stderr")?).lines();
        let ready = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(line) = stderr.next_line().await? {
                if line.starts_with("following ") {
                    return Ok(());
                }
            }
            bail!("tail ended before it was following")
        });
        ready.await.context("tail never said it was following")??;
        Ok(Tail { child, stdout })
    }

    async fn next_json(&mut self) -> Result<Value> {
        let line = tokio::time::timeout(Duration::from_secs(15), self.stdout.next_line())
            .await
            .context("tail printed nothing")??
            .context("tail closed stdout")?;
        serde_json::from_str(&line).with_context(|| format!("not JSON: {line}"))
    }

    /// Sends SIGTERM, as a service manager would, and returns the exit code.
    async fn terminate(mut self) -> Result<Option<i32>> {
        let pid = self.child.id().context("tail is running")?;
        let kill = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await?;
        anyhow::ensure!(kill.success(), "kill -TERM {pid} failed");
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .context("tail did not stop on SIGTERM")??;
        Ok(status.code())
    }
}

#[tokio::test]
async fn tail_json_prints_an_event_published_while_it_runs_and_exits_0_on_sigterm() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;
    let mut tail = Tail::start(&cli, &["build.>", "--json"]).await?;

    // Outside the filter: must not show up.
    cli.publish("env.requested", "pr-ping-1", &json!({"env": "pr-ping-1"}))
        .await?;
    let receipt = cli
        .publish("build.started", "ping-v1", &build("ping-v1"))
        .await?;
    let line = tail.next_json().await?;

    let time = line["time"]
        .as_str()
        .context("time is a string")?
        .to_owned();
    assert!(time.ends_with('Z') && time.contains('T'), "{time}");
    assert_eq!(
        line,
        json!({
            "seq": 2,
            "subject": "flotilla.build.started.ping-v1",
            "type": "dev.flotilla.build.started.v1",
            "id": receipt["id"],
            "time": time,
            "change_id": "ping-v1",
            "data": build("ping-v1"),
        })
    );
    assert_eq!(tail.terminate().await?, Some(0));
    Ok(())
}

#[tokio::test]
async fn tail_shows_a_message_without_an_envelope_with_what_is_known() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;
    let js = jetstream(&server).await;
    let mut headers = HeaderMap::new();
    headers.insert("ce-id", "hand-made-1");
    js.publish_with_headers("flotilla.junk.x", headers, "not json".into())
        .await?
        .await?;
    let mut tail = Tail::start(&cli, &["--all", "--json"]).await?;

    let line = tail.next_json().await?;

    assert_eq!(line["seq"], 1);
    assert_eq!(line["subject"], "flotilla.junk.x");
    assert_eq!(line["id"], "hand-made-1");
    assert_eq!(line["type"], Value::Null);
    assert_eq!(line["data"], "not json");
    let error = line["error"].as_str().context("an error field")?;
    assert!(error.contains("ce-specversion"), "{error}");
    assert_eq!(tail.terminate().await?, Some(0));
    Ok(())
}

#[tokio::test]
async fn tail_after_a_server_restart_shows_new_events_and_does_not_repeat_old_ones() -> Result<()> {
    let mut server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;
    cli.publish("build.started", "ping-v1", &build("ping-v1"))
        .await?;
    let mut tail = Tail::start(&cli, &["--json"]).await?;

    server.restart();
    let after = cli
        .publish("build.succeeded", "ping-v1", &build("ping-v1"))
        .await?;
    let line = tail.next_json().await?;

    // async-nats recreates an ordered consumer that has delivered nothing yet from the start
    // of the stream; the event stored before the tail began must not show up again.
    assert_eq!(line["seq"], 2, "{line}");
    assert_eq!(line["id"], after["id"]);
    assert_eq!(tail.terminate().await?, Some(0));
    Ok(())
}

#[tokio::test]
async fn tail_help_describes_type_as_it_is_printed() -> Result<()> {
    let cli = Cli::at("nats://127.0.0.1:4222");

    let help = cli.run(&["tail", "--help"]).await?.success()?;

    // What `tail_json_prints_an_event_published_while_it_runs_and_exits_0_on_sigterm` sees in `type`.
    assert!(
        help.stdout.contains("dev.flotilla.build.started.v1"),
        "{}",
        help.stdout
    );
    assert!(!help.stdout.contains("<domain>.<event>"), "{}", help.stdout);
    Ok(())
}
