//! `flotilla-reliability`: the reliability suite's full run, and `BENCHMARKS.md`.
//!
//! Runs, each on a fleet of its own (the six workers as separate processes, a private NATS, a
//! real GitOps repository): the load run (1,000 changes through signed webhooks at a steady
//! rate, every worker killed with SIGKILL in turn at random moments, the NATS server killed and
//! restarted mid-run), the cluster run (a three-node JetStream cluster whose stream leader is
//! killed mid-run and kept down, then restarted and checked to catch up), and the hostile run
//! (poison on every consumed subject, hostile webhooks, a flood of oversized bodies); then every
//! benchmark of the workspace. Writes the report and `BENCHMARKS.md`; exits 1 when an
//! invariant broke. `scripts/reliability` builds what it needs and runs it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use flotilla_e2e::benches::{self, Bench};
use flotilla_e2e::binaries::{WORKERS, workspace_root};
use flotilla_e2e::chaos::Fault;
use flotilla_e2e::corpus::{self, Target};
use flotilla_e2e::fleet::{Fleet, FleetConfig, SECRET};
use flotilla_e2e::machine::{self, Machine};
use flotilla_e2e::report::{self, mib};
use flotilla_e2e::scenario::{Run, Scenario};
use flotilla_e2e::{document, hostile};

/// The reliability suite's full run: faults, load, bad input, a clustered bus; then every
/// benchmark, written to BENCHMARKS.md.
#[derive(Debug, Parser)]
#[command(name = "flotilla-reliability")]
struct Args {
    /// Changes of the load run (pushes and pull requests over several repositories).
    #[arg(long, default_value_t = 1000)]
    changes: usize,
    /// Changes sent per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// The share of changes that are pull requests.
    #[arg(long, default_value_t = 0.3)]
    pull_requests: f64,
    /// Changes of the cluster run.
    #[arg(long, default_value_t = 200)]
    cluster_changes: usize,
    /// How long a run waits for its last changes after the last send.
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    drain: Duration,
    /// The seed of the changes and of the faults' moments [default: new each run].
    #[arg(long)]
    seed: Option<u64>,
    /// Skip the benchmarks (the runs only).
    #[arg(long)]
    no_benches: bool,
    /// Skip the cargo benches (sync-watcher, canary-analyzer, reaper, analysis engine).
    #[arg(long)]
    no_cargo_benches: bool,
    /// Where to write the benchmarks document.
    #[arg(long, default_value = "BENCHMARKS.md")]
    benchmarks: PathBuf,
    /// Where to write the runs' report too.
    #[arg(long, default_value = "target/reliability/report.md")]
    report: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<bool> {
    let root = workspace_root();
    let machine = Machine::describe();
    let seed = args.seed.unwrap_or_else(flotilla_e2e::scenario::seed);
    let started = Instant::now();
    eprintln!(
        "reliability run, seed {seed}; load average {}",
        machine.load
    );

    let load = load_run(&args, seed).await?;
    let cluster = cluster_run(&args, seed).await?;
    let hostile = hostile_run().await?;
    let benches = if args.no_benches {
        Vec::new()
    } else {
        run_benches(&args, &root).await
    };
    let load_after = machine::load();

    let ok = load.0.verdict.ok() && cluster.0.verdict.ok() && hostile.ok;
    let doc = document::Document {
        machine: &machine,
        load_after: &load_after,
        seed,
        args: &format!(
            "--changes {} --rate {} --pull-requests {} --cluster-changes {} --seed {seed}",
            args.changes, args.rate, args.pull_requests, args.cluster_changes
        ),
        took: started.elapsed(),
        load: (&load.0, &load.1),
        cluster: (&cluster.0, &cluster.1),
        hostile: &hostile.text,
        hostile_ok: hostile.ok,
        benches: &benches,
    };
    let text = doc.render();
    let benchmarks = root.join(&args.benchmarks);
    std::fs::write(&benchmarks, &text)
        .with_context(|| format!("write {}", benchmarks.display()))?;
    let report = root.join(&args.report);
    if let Some(dir) = report.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let runs = format!("{}\n{}\n{}", load.1, cluster.1, hostile.text);
    std::fs::write(&report, runs).with_context(|| format!("write {}", report.display()))?;
    eprintln!(
        "wrote {} and {} in {:.0?}: {}",
        benchmarks.display(),
        report.display(),
        started.elapsed(),
        if ok {
            "every invariant held"
        } else {
            "INVARIANTS BROKEN"
        }
    );
    Ok(ok)
}

fn progress(phase: &'static str) -> impl FnMut(flotilla_e2e::load::Status) {
    move |s| {
        eprintln!(
            "  {phase} {:>5.0?}: answered {}/{}, accepted {}, finished {}",
            s.elapsed, s.answered, s.total, s.accepted, s.terminal
        )
    }
}

/// Runs `scenario` on a fleet of `config`, keeping the fleet's logs when it broke something.
async fn scenario_on(
    config: FleetConfig,
    scenario: Scenario,
    phase: &'static str,
    title: &str,
    setup: String,
) -> Result<(Run, String)> {
    let mut fleet = Fleet::start(config).await?;
    let run = scenario.run(&mut fleet, progress(phase)).await?;
    let mut text = report::markdown(title, &run, &setup);
    if !run.verdict.ok() {
        let logs = fleet.keep_dir();
        text.push_str(&format!(
            "\nThe fleet's logs are kept in {}.\n",
            logs.display()
        ));
        eprintln!("{}", run.explain(scenario.seed, &logs));
    }
    if let Err(e) = fleet.stop().await {
        text.push_str(&format!("\nStopping the fleet: {e:#}\n"));
    }
    eprintln!(
        "{phase}: {} of {} changes finished; {} problem(s)",
        run.verdict.terminal,
        run.verdict.accepted,
        run.verdict.problems.len()
    );
    Ok((run, text))
}

async fn load_run(args: &Args, seed: u64) -> Result<(Run, String)> {
    eprintln!(
        "load run: {} changes at {}/s on one nats-server",
        args.changes, args.rate
    );
    let scenario = Scenario {
        changes: args.changes,
        rate: args.rate,
        pull_requests: args.pull_requests,
        crash: WORKERS.iter().map(|w| (*w).to_owned()).collect(),
        faults: vec![(
            0.5,
            Fault::RestartNats {
                down_for: Duration::from_secs(5),
            },
        )],
        seed,
        drain: args.drain,
    };
    let setup = format!(
        "One nats-server; {} changes ({:.0}% pull requests, each closed once its preview's tests passed) over 3 repositories, sent as signed GitHub webhooks at {}/s. Every worker killed with SIGKILL once, in turn at a random moment, and started again; the nats-server killed with SIGKILL halfway through and started again 5 s later.",
        args.changes,
        args.pull_requests * 100.0,
        args.rate
    );
    scenario_on(FleetConfig::default(), scenario, "load", "Load run", setup).await
}

async fn cluster_run(args: &Args, seed: u64) -> Result<(Run, String)> {
    eprintln!(
        "cluster run: {} changes at {}/s on a three-node cluster",
        args.cluster_changes, args.rate
    );
    let scenario = Scenario {
        changes: args.cluster_changes,
        rate: args.rate,
        pull_requests: args.pull_requests,
        crash: WORKERS.iter().map(|w| (*w).to_owned()).collect(),
        faults: vec![(0.35, Fault::KillStreamLeader)],
        seed: seed.wrapping_add(1),
        drain: args.drain,
    };
    let setup = format!(
        "Three nats-servers on loopback forming one JetStream cluster; every stream and bucket with 3 replicas (`flotilla init --replicas 3`); every worker given the three as `NATS_URL`. {} changes at {}/s. The FLOTILLA stream's leader killed with SIGKILL a third of the way through and kept down to the end; every worker killed once in turn. Then the node is started again and its copy of the stream compared with the leader's.",
        args.cluster_changes, args.rate
    );
    let config = FleetConfig {
        nodes: 3,
        ..FleetConfig::default()
    };
    scenario_on(config, scenario, "cluster", "Cluster run", setup).await
}

/// The hostile run's Markdown and whether everything was as it must be.
struct Hostile {
    text: String,
    ok: bool,
}

async fn hostile_run() -> Result<Hostile> {
    eprintln!("hostile run: poison, hostile webhooks, a flood of oversized bodies");
    let request_timeout = Duration::from_secs(2);
    let mut config = FleetConfig::default();
    config.extra_env.push((
        "source-listener".into(),
        "FLOTILLA_REQUEST_TIMEOUT".into(),
        "2s".into(),
    ));
    let mut fleet = Fleet::start(config).await?;
    let mut text = String::from("### Hostile input\n\n");
    let mut ok = true;

    let poison = hostile::poison_round(&fleet.js, Duration::from_secs(60)).await?;
    let reasons: std::collections::BTreeSet<String> = poison
        .letters
        .iter()
        .map(|l| l.reason.split(':').take(2).collect::<Vec<_>>().join(":"))
        .collect();
    let stray = poison
        .letters
        .iter()
        .filter(|l| !l.subject.contains(".poison-"))
        .count();
    ok &= poison.missing.is_empty() && stray == 0;
    text.push_str(&format!(
        "Poison: {} malformed messages (no envelope, or data that does not decode) on the {} event types the workers consume; {} dead letters expected (one per consuming worker; the reaper never reads the data of `env.teardown.requested` and `env.deleted`), {} stored within {:.1} s, {} missing, {} not poison. Reasons seen: {}.\n\n",
        poison.sent.len(),
        poison.sent.len() / 2,
        poison.expected.len(),
        poison.letters.len(),
        poison.took.as_secs_f64(),
        poison.missing.len(),
        stray,
        reasons.into_iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
    ));

    let listener = fleet.worker("source-listener")?;
    let pid = listener.pid().context("the listener runs")?;
    let target = Target {
        port: listener.http_port,
        secret: SECRET.into(),
        max_body: 5 * 1024 * 1024,
        request_timeout,
    };
    let before = flotilla_e2e::events::read_facts(&fleet.js).await?.len();
    let (cases, _) = corpus::run(&target).await?;
    let after = flotilla_e2e::events::read_facts(&fleet.js).await?.len();
    text.push_str("Hostile webhooks (`FLOTILLA_REQUEST_TIMEOUT=2s`; 0 is a connection closed without an answer):\n\n| delivery | expected | answered | took |\n|---|---|---|---:|\n");
    for case in &cases {
        ok &= case.ok();
        let expected: Vec<String> = case.expected.iter().map(u16::to_string).collect();
        text.push_str(&format!(
            "| {} | {} | {}{} | {} |\n",
            case.name,
            expected.join(" or "),
            case.got,
            if case.ok() { "" } else { " (WRONG)" },
            report::ms(case.took)
        ));
    }
    let stored = after - before;
    ok &= stored == 1;
    text.push_str(&format!(
        "\nEvents stored by the whole corpus: {stored} (the one valid delivery, sent twice, stored once).\n\n"
    ));
    let flood = hostile::flood(&target, pid, 32).await?;
    let growth = flood.rss_peak.saturating_sub(flood.rss_before);
    ok &= growth < 32 * 1024 * 1024;
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for s in &flood.statuses {
        *statuses.entry(*s).or_default() += 1;
    }
    text.push_str(&format!(
        "Flood: {} senders at once, each a 5 MiB + 1 KiB body: answers {statuses:?} (413 once the limit is read; 408 or closed when the request timeout passed first); source-listener's resident memory {} before, {} at its peak.\n",
        flood.senders,
        mib(flood.rss_before),
        mib(flood.rss_peak)
    ));
    let exited = fleet.exited();
    ok &= exited.is_empty();
    if !exited.is_empty() {
        text.push_str(&format!("\nWorkers that exited: {exited:?}\n"));
    }
    if let Err(e) = fleet.stop().await {
        ok = false;
        text.push_str(&format!("\nStopping the fleet: {e:#}\n"));
    }
    eprintln!(
        "hostile: {}",
        if ok { "as expected" } else { "NOT as expected" }
    );
    Ok(Hostile { text, ok })
}

async fn run_benches(args: &Args, root: &std::path::Path) -> Vec<Bench> {
    let mut benches = Vec::new();
    eprintln!("benchmark: bus hop");
    benches.push(benches::hop().await);
    eprintln!("benchmark: webhook intake");
    benches.push(benches::webhook().await);
    eprintln!("benchmark: push → env file");
    benches.push(benches::env().await);
    if !args.no_cargo_benches {
        eprintln!(
            "benchmarks: cargo bench (sync-watcher, canary-analyzer, reaper, analysis engine)"
        );
        let root = root.to_path_buf();
        match tokio::task::spawn_blocking(move || benches::cargo_benches(&root)).await {
            Ok(more) => benches.extend(more),
            Err(e) => eprintln!("cargo benches: {e}"),
        }
    }
    benches
}
