//! The worker runtime as separate processes against a real nats-server: a replica that dies
//! mid-event hands it to the next one, and SIGTERM finishes in-flight work before exiting 0.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_nats::jetstream::consumer;
use flotilla_bus::topology::StreamLimits;
use flotilla_bus::{Bus, Event, EventType, Names, Outgoing, Published};
use flotilla_proto::v1::Build;
use flotilla_testing::NatsServer;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

struct WorkerProcess {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl WorkerProcess {
    fn spawn(server: &NatsServer, handler_sleep: &str, ack_wait: &str) -> Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flotilla-test-worker"))
            .args(["--handler-sleep", handler_sleep])
            .env("NATS_URL", server.url())
            .env("FLOTILLA_HTTP_ADDR", "127.0.0.1:0")
            .env("FLOTILLA_ACK_WAIT", ack_wait)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("start flotilla-test-worker")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        Ok(WorkerProcess {
            child,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// The next stdout line starting with `prefix`.
    async fn wait_for(&mut self, prefix: &str, within: Duration) -> Result<String> {
        let found = tokio::time::timeout(within, async {
            while let Some(line) = self.lines.next_line().await? {
                if line.starts_with(prefix) {
                    return Ok(line);
                }
            }
            bail!("worker exited before printing {prefix:?}")
        })
        .await;
        found.with_context(|| format!("no {prefix:?} within {within:?}"))?
    }
}

async fn bus_on(server: &NatsServer) -> Result<Bus> {
    let bus = Bus::new(server.connect().await, Names::default());
    bus.ensure_streams(&StreamLimits::default()).await?;
    Ok(bus)
}

async fn publish_build(bus: &Bus, change_id: &str) -> Result<Published> {
    let build = Build {
        change_id: change_id.into(),
        app: "ping".into(),
        version: "v20240101120000-1a2b3c4".into(),
        ..Default::default()
    };
    let event =
        Outgoing::new(EventType::BuildStarted, change_id, &build)?.with_change_id(change_id);
    Ok(bus.publisher("test").publish(event).await?)
}

/// Waits until a worker has bound its durable consumer (it starts at new events).
async fn wait_for_consumer(bus: &Bus, name: &str) -> Result<()> {
    let stream = bus.stream().await?;
    for _ in 0..100 {
        if stream
            .get_consumer::<consumer::pull::Config>(name)
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("consumer {name} never appeared")
}

/// Every event stored under `filter`, waiting up to `within` for at least `want` of them.
async fn stored(bus: &Bus, filter: &str, want: usize, within: Duration) -> Result<Vec<Event>> {
    flotilla_testing::stored_events(bus, filter, want, within)
        .await
        .map_err(|e| anyhow::anyhow!(e))
}

#[tokio::test]
async fn an_event_whose_worker_died_before_acking_is_handled_by_the_next_replica() -> Result<()> {
    let server = NatsServer::start();
    let bus = bus_on(&server).await?;

    let mut doomed = WorkerProcess::spawn(&server, "60s", "2s")?;
    wait_for_consumer(&bus, "test-worker").await?;
    publish_build(&bus, "ping-v1").await?;
    let first = doomed.wait_for("handling", Duration::from_secs(10)).await?;
    assert!(first.ends_with("delivered=1"), "{first}");
    doomed.child.start_kill()?;
    doomed.child.wait().await?;

    let mut next = WorkerProcess::spawn(&server, "0s", "2s")?;
    let again = next.wait_for("handling", Duration::from_secs(15)).await?;
    assert!(
        again.ends_with("delivered=2"),
        "redelivered, not new: {again}"
    );
    let outputs = stored(
        &bus,
        "flotilla.build.succeeded.>",
        1,
        Duration::from_secs(10),
    )
    .await?;
    assert_eq!(outputs.len(), 1, "exactly one output");
    assert_eq!(outputs[0].change_id.as_deref(), Some("ping-v1"));
    Ok(())
}

#[tokio::test]
async fn sigterm_finishes_in_flight_work_then_exits_zero() -> Result<()> {
    let server = NatsServer::start();
    let bus = bus_on(&server).await?;

    let mut worker = WorkerProcess::spawn(&server, "2s", "30s")?;
    wait_for_consumer(&bus, "test-worker").await?;
    publish_build(&bus, "ping-v2").await?;
    worker.wait_for("handling", Duration::from_secs(10)).await?;

    let pid = worker.child.id().context("worker pid")?;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    assert!(status.success(), "kill -TERM {pid}");
    worker.wait_for("stopped", Duration::from_secs(15)).await?;
    let exit = tokio::time::timeout(Duration::from_secs(10), worker.child.wait()).await??;
    assert!(exit.success(), "worker exited with {exit}");

    // The in-flight event was finished: its output is stored and the input is acked.
    let outputs = stored(
        &bus,
        "flotilla.build.succeeded.>",
        1,
        Duration::from_secs(5),
    )
    .await?;
    assert_eq!(outputs.len(), 1);
    let mut consumer = bus
        .stream()
        .await?
        .get_consumer::<consumer::pull::Config>("test-worker")
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let info = consumer.info().await?;
    assert_eq!(info.num_ack_pending, 0, "nothing left unacked");
    assert_eq!(info.num_pending, 0, "nothing left undelivered");
    Ok(())
}
