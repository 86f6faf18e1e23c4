//! Every benchmark of the workspace, run for `BENCHMARKS.md`: the bus, webhook and env
//! benchmarks through their library entry points (each against a private nats-server, with its
//! bare JetStream baseline measured in the same run), and the cargo benches of sync-watcher,
//! canary-analyzer, the reaper and the analysis engine as `cargo bench` runs whose output is
//! kept as printed, with the headline figures read from it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use flotilla_bench::{EnvArgs, HopArgs, WebhookArgs};

use crate::nats::Nats;

/// How to run each benchmark alone.
pub const COMMANDS: [&str; 7] = [
    "cargo run --release -p flotilla -- bench hop",
    "cargo run --release -p flotilla -- bench webhook",
    "cargo run --release -p flotilla -- bench env",
    "cargo bench -p sync-watcher --bench ready",
    "cargo bench -p canary-analyzer --bench abort",
    "cargo bench -p reaper --bench sweep",
    "cargo bench -p flotilla-analysis --bench engine",
];

/// One row of the summary: a figure, what it compares with in the same run, and its target.
#[derive(Debug, Clone)]
pub struct Row {
    pub benchmark: String,
    pub figure: String,
    pub measured: String,
    /// Bare JetStream doing the same work in the same run, where a baseline exists.
    pub baseline: String,
    pub ratio: String,
    pub target: String,
}

impl Row {
    fn new(benchmark: &str, figure: &str, measured: String, target: &str) -> Row {
        Row {
            benchmark: benchmark.into(),
            figure: figure.into(),
            measured,
            baseline: "—".into(),
            ratio: "—".into(),
            target: target.into(),
        }
    }

    fn against(mut self, baseline: String, ratio: String) -> Row {
        self.baseline = baseline;
        self.ratio = ratio;
        self
    }
}

/// A benchmark's outcome: its rows and its own output.
#[derive(Debug, Clone)]
pub struct Bench {
    pub name: String,
    /// How to run it alone.
    pub command: String,
    pub rows: Vec<Row>,
    pub output: String,
    pub took: Duration,
}

fn micros(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

fn failed(name: &str, command: &str, error: &anyhow::Error, took: Duration) -> Bench {
    Bench {
        name: name.into(),
        command: command.into(),
        rows: vec![Row::new(name, "(did not run)", format!("{error:#}"), "")],
        output: format!("{error:#}"),
        took,
    }
}

/// `flotilla bench hop`: two hops through the bus against bare async-nats.
pub async fn hop() -> Bench {
    let command = "cargo run --release -p flotilla -- bench hop";
    let started = Instant::now();
    let measured = async {
        let nats = Nats::single()?;
        let client = nats.connect().await?;
        let report = flotilla_bench::run_hop(client, &HopArgs::default())
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        Ok::<_, anyhow::Error>(report)
    }
    .await;
    let report = match measured {
        Ok(report) => report,
        Err(e) => return failed("bus hop", command, &e, started.elapsed()),
    };
    let (bus, bare) = (&report.bus, &report.bare);
    let mut rows = vec![
        Row::new(
            "bus hop",
            "two-hop latency p50 (publish → worker → publish → consumer)",
            micros(bus.latency.p50),
            "≤ 1.15×",
        )
        .against(
            micros(bare.latency.p50),
            format!("{:.2}×", report.latency_ratio()),
        ),
        Row::new(
            "bus hop",
            "pipelined throughput through a worker",
            format!("{:.0} msgs/s", bus.throughput.per_second()),
            "≥ 70%",
        )
        .against(
            format!("{:.0} msgs/s", bare.throughput.per_second()),
            format!("{:.0}%", report.throughput_ratio() * 100.0),
        ),
    ];
    if let (Some(cpu), Some(b), Some(r)) = (
        bus.throughput.cpu_per_message(),
        bare.throughput.cpu_per_message(),
        report.cpu_ratio(),
    ) {
        rows.push(
            Row::new("bus hop", "CPU per message", micros(cpu), "≤ 2×")
                .against(micros(b), format!("{r:.2}×")),
        );
    }
    Bench {
        name: "bus hop".into(),
        command: command.into(),
        rows,
        output: report.to_string(),
        took: started.elapsed(),
    }
}

/// `flotilla bench webhook`: signed pushes through source-listener against bare publishes.
pub async fn webhook() -> Bench {
    let command = "cargo run --release -p flotilla -- bench webhook";
    let started = Instant::now();
    let measured = async {
        let nats = Nats::single()?;
        let client = nats.connect().await?;
        flotilla_bench::run_webhook(client, &WebhookArgs::default())
            .await
            .map_err(|e| anyhow::anyhow!(e))
    }
    .await;
    let report = match measured {
        Ok(report) => report,
        Err(e) => return failed("webhook intake", command, &e, started.elapsed()),
    };
    let rows = vec![
        Row::new(
            "webhook intake",
            &format!(
                "signed GitHub push intake ({} B, {} clients)",
                report.body, report.args.clients
            ),
            format!("{:.0} deliveries/s", report.intake.per_second()),
            "≥ 50%",
        )
        .against(
            format!("{:.0} publishes/s", report.bare.per_second()),
            format!("{:.0}%", report.throughput_ratio() * 100.0),
        ),
        Row::new(
            "webhook intake",
            &format!("latency p99 at {}/s", report.args.rate),
            micros(report.paced.p99),
            "< 5 ms",
        ),
    ];
    Bench {
        name: "webhook intake".into(),
        command: command.into(),
        rows,
        output: report.to_string(),
        took: started.elapsed(),
    }
}

/// `flotilla bench env`: build.succeeded → env file pushed, and grouped env writes.
pub async fn env() -> Bench {
    let command = "cargo run --release -p flotilla -- bench env";
    let started = Instant::now();
    let measured = async {
        let nats = Nats::single()?;
        let client = nats.connect().await?;
        flotilla_bench::run_env(client, &EnvArgs::default())
            .await
            .map_err(|e| anyhow::anyhow!(e))
    }
    .await;
    let report = match measured {
        Ok(report) => report,
        Err(e) => return failed("push → env file", command, &e, started.elapsed()),
    };
    let rows = vec![
        Row::new(
            "push → env file",
            "build.succeeded → env file pushed and env.requested, p50 (p99)",
            format!(
                "{} ({})",
                micros(report.latency.p50),
                micros(report.latency.p99)
            ),
            "p50 < 10 ms",
        ),
        Row::new(
            "push → env file",
            "env writes/s, grouped commits (one commit per write)",
            format!(
                "{:.0}/s ({:.0}/s)",
                report.grouped.throughput.per_second(),
                report.single.throughput.per_second()
            ),
            "≥ 500/s grouped",
        )
        .against(
            "—".into(),
            format!("{:.1}× ungrouped", report.grouping_gain()),
        ),
    ];
    Bench {
        name: "push → env file".into(),
        command: command.into(),
        rows,
        output: report.to_string(),
        took: started.elapsed(),
    }
}

/// A `cargo bench` run in the workspace; its stdout, or why it failed.
fn cargo_bench(root: &Path, package: &str, bench: &str) -> Result<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args(["bench", "-p", package, "--bench", bench])
        .output()
        .with_context(|| format!("run cargo bench -p {package} --bench {bench}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        anyhow::bail!(
            "cargo bench -p {package} --bench {bench} failed ({}): {}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(stdout)
}

/// The token after `key` on the first line containing `line`.
fn token_after(text: &str, line: &str, key: &str) -> Option<String> {
    let line = text.lines().find(|l| l.contains(line))?;
    let mut tokens = line.split_whitespace();
    tokens.find(|t| *t == key)?;
    tokens.next().map(|t| t.trim_end_matches(',').to_owned())
}

fn or_missing(value: Option<String>) -> String {
    value.unwrap_or_else(|| "(not in the output)".into())
}

/// The cargo benches, each run once.
pub fn cargo_benches(root: &Path) -> Vec<Bench> {
    let mut benches = Vec::new();
    let runs: [(&str, &str, &str); 4] = [
        ("readiness detection", "sync-watcher", "ready"),
        ("canary abort latency", "canary-analyzer", "abort"),
        ("reaper sweep", "reaper", "sweep"),
        ("analysis engine", "flotilla-analysis", "engine"),
    ];
    for (name, package, bench) in runs {
        let command = format!("cargo bench -p {package} --bench {bench}");
        let started = Instant::now();
        let output = match cargo_bench(root, package, bench) {
            Ok(output) => output,
            Err(e) => {
                benches.push(failed(name, &command, &e, started.elapsed()));
                continue;
            }
        };
        let rows = match bench {
            "ready" => vec![
                Row::new(
                    name,
                    "Synced+Healthy → env.ready beyond the stable window, p50 (p99)",
                    format!(
                        "{} ({})",
                        or_missing(token_after(&output, "sync-watcher", "p50")),
                        or_missing(token_after(&output, "sync-watcher", "p99"))
                    ),
                    "< 100 ms",
                )
                .against(
                    or_missing(token_after(&output, "bare hop", "p50")),
                    or_missing(token_after(&output, "ratio", "p50")),
                ),
            ],
            "abort" => vec![
                Row::new(
                    name,
                    "deciding failed measurement → canary.aborted, p50 (p99)",
                    format!(
                        "{} ({})",
                        or_missing(token_after(&output, "canary-analyzer", "p50")),
                        or_missing(token_after(&output, "canary-analyzer", "p99"))
                    ),
                    "within 1 s",
                )
                .against(
                    or_missing(token_after(&output, "bare hop", "p50")),
                    or_missing(token_after(&output, "ratio", "p50")),
                ),
            ],
            "sweep" => vec![Row::new(
                name,
                "one sweep over 10,000 registered envs, median (max)",
                format!(
                    "{} ({})",
                    or_missing(token_after(&output, "reaper sweep", "median")),
                    or_missing(token_after(&output, "reaper sweep", "max"))
                ),
                "< 1 s",
            )],
            _ => vec![
                Row::new(
                    name,
                    "measurements judged per second",
                    format!(
                        "{} /s",
                        or_missing(token_after(&output, "engine  ", "engine"))
                    ),
                    "—",
                )
                .against(
                    format!(
                        "{} /s conditions alone",
                        or_missing(token_after(&output, "conditions alone", "alone"))
                    ),
                    format!(
                        "{} the time",
                        or_missing(token_after(&output, "engine / bare", "bare"))
                    ),
                ),
            ],
        };
        benches.push(Bench {
            name: name.into(),
            command,
            rows,
            output,
            took: started.elapsed(),
        });
    }
    benches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_read_from_a_bench_output() {
        let ready = "flip ... (50 samples)\n  sync-watcher  p50   12.34ms  p99   20.00ms\n  bare hop      p50  300.00µs  p99    1.00ms\n  ratio         p50 41.1x  p99 20.0x  (target: p50 < 100ms: met)\n";
        assert_eq!(
            token_after(ready, "sync-watcher", "p50").as_deref(),
            Some("12.34ms")
        );
        assert_eq!(
            token_after(ready, "bare hop", "p99").as_deref(),
            Some("1.00ms")
        );
        assert_eq!(token_after(ready, "ratio", "p50").as_deref(), Some("41.1x"));
        let sweep =
            "reaper sweep over 10000 envs: min 250ms, median 321ms, max 383ms (target < 1 s)";
        assert_eq!(
            token_after(sweep, "reaper sweep", "median").as_deref(),
            Some("321ms")
        );
        let engine = "  engine                12345 measurements/s  (1.2s)\n  conditions alone     99999 evaluations/s   (0.1s)\n  engine / bare     8.1x the time per measurement\n";
        assert_eq!(
            token_after(engine, "engine  ", "engine").as_deref(),
            Some("12345")
        );
        assert_eq!(
            token_after(engine, "conditions alone", "alone").as_deref(),
            Some("99999")
        );
        assert_eq!(
            token_after(engine, "engine / bare", "bare").as_deref(),
            Some("8.1x")
        );
        assert!(token_after(engine, "nothing", "x").is_none());
    }
}
