//! A scenario: a load sent through a running fleet while faults are injected, then everything
//! stored checked against the invariants. The CI tests run small ones; the full run a large one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use crate::chaos::{self, Fault};
use crate::check::{self, Expected, Stored, Verdict};
use crate::fleet::Fleet;
use crate::load::{self, LoadConfig, Outcome, Status};
use crate::plan::Plan;
use crate::process::rss_of;

/// What to send and what to break.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub changes: usize,
    /// Changes sent per second.
    pub rate: f64,
    /// The share of changes that are pull requests.
    pub pull_requests: f64,
    /// Workers killed with SIGKILL (and restarted), each once, in turn at random moments.
    pub crash: Vec<String>,
    /// Other faults, at fractions of the sending window.
    pub faults: Vec<(f64, Fault)>,
    pub seed: u64,
    /// How long to wait for the last changes after the last send.
    pub drain: Duration,
}

/// Resident memory of each worker: idle before the load, and the peak during it.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    pub idle: BTreeMap<String, u64>,
    pub peak: BTreeMap<String, u64>,
}

/// A finished scenario.
#[derive(Debug)]
pub struct Run {
    pub plan: Plan,
    pub outcome: Outcome,
    pub chaos: chaos::Record,
    pub verdict: Verdict,
    /// The stream leader that was killed, restarted after the load: its copy of `FLOTILLA`
    /// (messages, last sequence) once it matched the leader's, or why it did not.
    pub caught_up: Option<Result<(u64, u64), String>>,
    pub memory: Memory,
    /// Workers that exited on their own during the run.
    pub exited: Vec<String>,
}

impl Scenario {
    /// Runs the scenario on `fleet` and checks what it stored.
    pub async fn run(&self, fleet: &mut Fleet, progress: impl FnMut(Status)) -> Result<Run> {
        let plan = Plan::new(
            self.changes,
            &fleet.config.repos,
            self.pull_requests,
            self.seed,
        );
        let window = Duration::from_secs_f64(self.changes as f64 / self.rate.max(0.001));
        let crash: Vec<&str> = self.crash.iter().map(String::as_str).collect();
        let faults = chaos::schedule(&crash, window, &self.faults, self.seed);
        let config = LoadConfig {
            rate: self.rate,
            drain: self.drain,
            ..LoadConfig::default()
        };
        let memory = Memory {
            idle: fleet
                .workers
                .iter()
                .filter_map(|(name, w)| Some((name.clone(), w.rss()?)))
                .collect(),
            peak: BTreeMap::new(),
        };
        let pids: Vec<(String, Arc<AtomicU32>)> = fleet
            .workers
            .iter()
            .map(|(name, w)| (name.clone(), w.pid_cell()))
            .collect();
        let stop_sampling = CancellationToken::new();
        let sampling = tokio::spawn(sample_peaks(pids, stop_sampling.clone()));
        let js = fleet.js.clone();
        let sender = fleet.sender()?;
        let started = Instant::now();
        let (outcome, record) = tokio::join!(
            load::run(js, sender, &plan, &config, progress),
            chaos::run(fleet, faults, started)
        );
        stop_sampling.cancel();
        let peak = sampling.await.unwrap_or_default();
        let outcome = outcome?;
        let caught_up = match record.downed_leader {
            Some(index) => Some(
                fleet
                    .restart_downed_node(index, Duration::from_secs(60))
                    .await
                    .map_err(|e| format!("{e:#}")),
            ),
            None => None,
        };
        let stored = Stored::read(&fleet.js, &fleet.gitops.remote).await?;
        let mut accepted: Vec<(String, Option<usize>)> = outcome
            .accepted()
            .filter(|s| s.stage == "source")
            .map(|s| (s.delivery.clone(), Some(s.change)))
            .collect();
        accepted.extend(
            outcome
                .accepted()
                .filter(|s| s.stage != "source")
                .map(|s| (s.delivery.clone(), None)),
        );
        accepted.extend(record.probes.iter().map(|p| (p.clone(), None)));
        let mut verdict = check::check(
            &stored,
            &Expected {
                accepted,
                plan: Some(&plan),
                ..Expected::default()
            },
        );
        for sent in outcome.sent.iter().filter(|s| !s.accepted()) {
            verdict.problems.push(format!(
                "delivery {} of {} was never accepted: {} {}",
                sent.delivery,
                plan.changes[sent.change].change_id,
                sent.answer.status,
                sent.answer.body
            ));
        }
        for failure in &record.failures {
            verdict.problems.push(format!("fault injection: {failure}"));
        }
        if let Some(Err(why)) = &caught_up {
            verdict.problems.push(why.clone());
        }
        let exited = fleet.exited();
        for worker in &exited {
            verdict.problems.push(format!("{worker} exited on its own"));
        }
        Ok(Run {
            plan,
            outcome,
            chaos: record,
            verdict,
            caught_up,
            memory: Memory { peak, ..memory },
            exited,
        })
    }
}

/// Samples the resident memory of each process every 200 ms until `stop`, keeping each one's
/// highest value (across restarts: the cell follows the process id).
async fn sample_peaks(
    pids: Vec<(String, Arc<AtomicU32>)>,
    stop: CancellationToken,
) -> BTreeMap<String, u64> {
    let mut peaks = BTreeMap::<String, u64>::new();
    while !stop.is_cancelled() {
        for (name, pid) in &pids {
            let pid = pid.load(Ordering::SeqCst);
            if let Some(rss) = (pid != 0).then(|| rss_of(pid)).flatten() {
                let peak = peaks.entry(name.clone()).or_default();
                *peak = (*peak).max(rss);
            }
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    peaks
}

/// The seed of a run: `FLOTILLA_SUITE_SEED` when set (to repeat a run), else new each time.
pub fn seed() -> u64 {
    std::env::var("FLOTILLA_SUITE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

impl Run {
    /// What went wrong, for a failing test: the broken invariants, the faults, the changes that
    /// did not finish, and where the logs are.
    pub fn explain(&self, seed: u64, logs: &std::path::Path) -> String {
        let mut text = format!(
            "{} problem(s) (FLOTILLA_SUITE_SEED={seed}; logs kept in {}):\n",
            self.verdict.problems.len(),
            logs.display()
        );
        // Dead letters first: they carry the reason a worker gave up.
        let (letters, others): (Vec<&String>, Vec<&String>) = self
            .verdict
            .problems
            .iter()
            .partition(|problem| problem.starts_with("dead letter"));
        for problem in letters.iter().take(10).chain(others.iter().take(20)) {
            text.push_str(&format!("  {problem}\n"));
        }
        text.push_str("faults:\n");
        for happened in &self.chaos.log {
            text.push_str(&format!("  {:>7.1?} {}\n", happened.at, happened.what));
        }
        let stuck = self.outcome.tracker.stuck();
        if !stuck.is_empty() {
            text.push_str(&format!(
                "{} changes not finished when the run ended, e.g.:\n",
                stuck.len()
            ));
            for (change, last) in stuck.iter().take(10) {
                text.push_str(&format!("  {change}: last stage {last}\n"));
            }
        }
        text.push_str(&format!("answers: {:?}\n", self.outcome.statuses()));
        text.push_str(&warnings(&logs.join("logs")));
        text
    }
}

/// Each worker's warnings and errors: how many, and the last few, cut short. What a CI log,
/// which outlives the kept directory, needs to tell a stuck worker's reason.
fn warnings(dir: &std::path::Path) -> String {
    const LAST: usize = 4;
    const WIDTH: usize = 400;
    let mut text = String::from("workers' warnings and errors:\n");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return text;
    };
    let mut logs: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    logs.sort();
    for log in logs {
        let contents = std::fs::read_to_string(&log).unwrap_or_default();
        let noted: Vec<&str> = contents
            .lines()
            .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
            .collect();
        let name = log.file_stem().map(|n| n.to_string_lossy().into_owned());
        text.push_str(&format!(
            "  {}: {}\n",
            name.unwrap_or_default(),
            noted.len()
        ));
        for line in &noted[noted.len().saturating_sub(LAST)..] {
            let cut: String = line.chars().take(WIDTH).collect();
            text.push_str(&format!("    {cut}\n"));
        }
    }
    text
}
