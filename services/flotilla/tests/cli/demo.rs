//! `flotilla demo` end to end: the real binary, its own nats-server, git repository, Prometheus
//! (when installed; `scripts/test` installs it) and the six workers; then `flotilla run` against
//! the bus the demo leaves up with `--stay`.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use flotilla_testing::{NatsServer, Prometheus};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{Cli, jetstream};

/// The demo takes well under a minute; this bounds a hang.
const DEMO_WITHIN: Duration = Duration::from_secs(240);

#[tokio::test]
async fn the_demo_runs_its_three_scenarios_and_run_shows_every_stage_of_the_good_change()
-> Result<()> {
    let prometheus = Prometheus::binary().is_some();
    if !prometheus {
        eprintln!(
            "prometheus is not installed: the demo measures its canaries with the web provider \
             (scripts/test installs it)"
        );
    }
    // The user's NATS: the demo must leave it alone.
    let users = NatsServer::start();
    let cli = Cli::new(&users);
    let mut child = cli
        .command(&["demo", "--json", "--stay", "--timeout", "3m"])
        .spawn()
        .context("start flotilla demo")?;
    let stdout = child.stdout.take().context("piped stdout")?;
    let mut reader = BufReader::new(stdout).lines();
    let mut lines: Vec<Value> = Vec::new();
    let read = tokio::time::timeout(DEMO_WITHIN, async {
        while let Some(line) = reader.next_line().await? {
            let value: Value =
                serde_json::from_str(&line).with_context(|| format!("not JSON: {line}"))?;
            let staying = value["kind"] == "staying";
            lines.push(value);
            if staying {
                return Ok(());
            }
        }
        bail!("the demo ended before it said it stays up")
    });
    let ended = read.await.context("the demo did not finish in time");
    let printed = || {
        lines
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    if let Err(e) = ended.and_then(|read| read) {
        let _ = child.start_kill();
        let output = child.wait_with_output().await?;
        bail!(
            "{e:#}\nstdout:\n{}\nstderr:\n{}",
            printed(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let setup = of_kind(&lines, "setup").next().context("a setup line")?;
    let expected = if prometheus { "prometheus" } else { "web" };
    assert_eq!(setup["canary"], expected, "{}", printed());
    let nats = setup["nats"].as_str().context("the demo's NATS URL")?;
    assert_ne!(nats, users.url(), "a private server, not NATS_URL's");

    let summary = of_kind(&lines, "summary").next().context("a summary")?;
    assert_eq!(summary["ok"], true, "{}", printed());
    let outcomes = summary["outcomes"].as_array().context("outcomes")?;
    assert_eq!(outcomes.len(), 3);
    assert!(
        outcomes[1]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("production's manifest in git back at")),
        "{}",
        outcomes[1]
    );

    // Each scenario's events are printed under it, the cluster's lines said to be the demo's.
    let has = |scenario: u64, stage: &str| {
        of_kind(&lines, "event").any(|l| l["scenario"] == scenario && l["stage"] == stage)
    };
    assert!(
        has(1, "canary.promoted") && !has(1, "canary.aborted"),
        "{}",
        printed()
    );
    assert!(
        has(2, "canary.aborted") && has(2, "release.rolled_back"),
        "{}",
        printed()
    );
    assert!(
        has(3, "env.requested") && has(3, "env.deleted"),
        "{}",
        printed()
    );
    assert!(
        of_kind(&lines, "demo").any(|l| l["worker"] == "demo: argo cd"),
        "the cluster's lines are the demo's: {}",
        printed()
    );

    // Every stage of the good change, in order, as `flotilla run` reads it from the stream.
    let good = outcomes[0]["change_id"]
        .as_str()
        .context("the good change")?;
    let run = Cli::at(nats).run(&["run", good]).await?.success()?;
    let stages: Vec<&str> = run
        .lines()
        .iter()
        .filter_map(|line| line.split_whitespace().nth(2))
        .collect();
    let order = [
        "build.started",
        "build.succeeded",
        "env.requested",
        "env.ready",
        "tests.passed",
        "release.requested",
        "canary.step",
        "canary.measurement",
        "canary.promoted",
    ];
    let positions: Vec<Option<usize>> = order
        .iter()
        .map(|stage| stages.iter().position(|s| s == stage))
        .collect();
    assert!(
        positions.iter().all(Option::is_some) && positions.is_sorted(),
        "{order:?} in order in:\n{}",
        run.stdout
    );
    let deleted = stages.iter().position(|s| *s == "env.deleted");
    let tested = stages.iter().position(|s| *s == "tests.passed");
    assert!(
        deleted.is_some() && deleted > tested,
        "its staging env deleted after its tests:\n{}",
        run.stdout
    );

    // Ctrl-C ends it cleanly, with the outcome's status.
    let pid = child.id().context("the demo runs")?;
    let kill = tokio::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .await?;
    anyhow::ensure!(kill.success(), "kill -INT {pid}");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .context("the demo did not stop on Ctrl-C")??;
    assert_eq!(status.code(), Some(0));
    assert!(
        async_nats::connect(nats).await.is_err(),
        "its nats-server stopped with it"
    );

    // Nothing was created on NATS_URL's server.
    let js = jetstream(&users).await;
    assert!(
        js.get_stream("FLOTILLA").await.is_err(),
        "NATS_URL was touched"
    );
    Ok(())
}

/// The printed lines of one kind.
fn of_kind<'a>(lines: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
    lines.iter().filter(move |l| l["kind"] == kind)
}
