//! Runs the real `flotilla` binary against a private nats-server, and reads back what it did.

use std::future::Future;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_nats::jetstream;
use flotilla_testing::NatsServer;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// No single command should take longer; a hang fails the test instead of stalling the suite.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The `flotilla` binary pointed at one NATS URL.
#[derive(Debug, Clone)]
pub struct Cli {
    url: String,
}

impl Cli {
    pub fn new(server: &NatsServer) -> Cli {
        Cli::at(server.url())
    }

    pub fn at(url: impl Into<String>) -> Cli {
        Cli { url: url.into() }
    }

    /// A command with only this test's settings: nothing from the developer's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flotilla"));
        for (name, _) in std::env::vars() {
            if ["NATS_", "FLOTILLA_", "OTEL_"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
            {
                command.env_remove(name);
            }
        }
        command
            .args(args)
            .env("NATS_URL", &self.url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    pub async fn run(&self, args: &[&str]) -> Result<Run> {
        Run::of(self.command(args), args, None).await
    }

    pub async fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Run> {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        Run::of(command, args, None).await
    }

    pub async fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Result<Run> {
        Run::of(self.command(args), args, Some(stdin)).await
    }

    /// `flotilla init`, which every other command needs first.
    pub async fn init(&self) -> Result<Run> {
        self.run(&["init"]).await?.success()
    }

    /// Publishes `data` as `event_type` about `key`; returns the printed receipt.
    pub async fn publish(&self, event_type: &str, key: &str, data: &Value) -> Result<Value> {
        let run = self
            .run_with_stdin(
                &["publish", event_type, key, "--data", "-"],
                &data.to_string(),
            )
            .await?
            .success()?;
        let mut lines = run.json_lines()?;
        anyhow::ensure!(lines.len() == 1, "publish printed {:?}", run.stdout);
        Ok(lines.remove(0))
    }
}

/// What a finished command did.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    async fn of(mut command: Command, args: &[&str], stdin: Option<&str>) -> Result<Run> {
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command.spawn().context("start flotilla")?;
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().context("stdin is piped")?;
            pipe.write_all(text.as_bytes()).await?;
            // Closing stdin is the end of the data.
            drop(pipe);
        }
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .with_context(|| {
                format!("flotilla {args:?} did not finish in {COMMAND_TIMEOUT:?}")
            })??;
        Ok(Run {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            status: output.status,
            stdout: String::from_utf8(output.stdout)?,
            stderr: String::from_utf8(output.stderr)?,
        })
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Fails with everything the command printed unless it exited 0.
    pub fn success(self) -> Result<Run> {
        if !self.status.success() {
            bail!(
                "flotilla {:?} exited with {}\nstdout:\n{}\nstderr:\n{}",
                self.args,
                self.status,
                self.stdout,
                self.stderr
            );
        }
        Ok(self)
    }

    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Every stdout line parsed as JSON.
    pub fn json_lines(&self) -> Result<Vec<Value>> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).with_context(|| format!("not JSON: {line}")))
            .collect()
    }
}

/// A JetStream context on the test server, to check what the CLI stored.
pub async fn jetstream(server: &NatsServer) -> jetstream::Context {
    jetstream::new(server.connect().await)
}

/// How many messages stream `name` holds.
pub async fn message_count(js: &jetstream::Context, name: &str) -> Result<u64> {
    let mut stream = js.get_stream(name).await?;
    Ok(stream.info().await?.state.messages)
}

/// Polls `check` until it yields a value, failing after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The data of a valid `build.*` event of change `change_id`.
pub fn build(change_id: &str) -> Value {
    serde_json::json!({
        "changeId": change_id,
        "app": "ping",
        "version": "v20240501120000-1a2b3c4",
        "sha": "1a2b3c4d",
    })
}
