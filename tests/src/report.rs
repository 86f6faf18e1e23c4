//! A scenario's figures, as the full run reports them: how many changes reached each stage,
//! throughput, latency percentiles per stage (from the server's storage times), the faults, and
//! each worker's resident memory idle and under load.

use std::fmt::Write as _;
use std::time::Duration;

use time::OffsetDateTime;

use crate::scenario::Run;

/// Nearest-rank percentiles of some durations: every figure was observed.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub samples: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Percentiles {
    pub fn of(mut samples: Vec<Duration>) -> Option<Percentiles> {
        samples.sort_unstable();
        let max = *samples.last()?;
        let rank = |percent: usize| {
            let rank = (samples.len() * percent).div_ceil(100).max(1);
            samples[rank - 1]
        };
        Some(Percentiles {
            samples: samples.len(),
            p50: rank(50),
            p90: rank(90),
            p99: rank(99),
            max,
        })
    }
}

/// The steps whose durations are reported, from one stage to the next.
pub const STEPS: [(&str, &str, &str); 10] = [
    ("webhook stored → build.started", "source", "build.started"),
    (
        "build.started → build.succeeded",
        "build.started",
        "build.succeeded",
    ),
    (
        "build.succeeded → env.requested (env file pushed)",
        "build.succeeded",
        "env.requested",
    ),
    (
        "env.requested → env.ready (hook reports)",
        "env.requested",
        "env.ready",
    ),
    ("env.ready → tests.passed", "env.ready", "tests.passed"),
    (
        "tests.passed → release.requested (promoted)",
        "tests.passed",
        "release.requested",
    ),
    (
        "release.requested → canary verdict",
        "release.requested",
        "canary.verdict",
    ),
    (
        "PR closed (stored) → env.teardown.requested",
        "close.source",
        "env.teardown.requested",
    ),
    (
        "env.teardown.requested → env.deleted (verified)",
        "env.teardown.requested",
        "env.deleted",
    ),
    (
        "push: webhook stored → env.deleted",
        "source",
        "env.deleted",
    ),
];

/// Per step: the percentiles over the changes that went through it.
pub fn step_latencies(run: &Run) -> Vec<(&'static str, Option<Percentiles>)> {
    STEPS
        .iter()
        .map(|(name, from, to)| {
            let samples = run
                .plan
                .changes
                .iter()
                .filter(|c| !name.starts_with("push:") || c.is_push())
                .filter_map(|c| {
                    let progress = &run.outcome.tracker.progress[c.index];
                    let (a, b) = (progress.at(from)?, progress.at(to)?);
                    Some(positive(b - a))
                })
                .collect();
            (*name, Percentiles::of(samples))
        })
        .collect()
}

fn positive(d: time::Duration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

/// How many changes reached each stage.
pub fn stage_counts(run: &Run) -> Vec<(&'static str, usize)> {
    crate::tracker::STAGES
        .iter()
        .map(|stage| {
            let reached = run
                .outcome
                .tracker
                .progress
                .iter()
                .filter(|p| p.at(stage).is_some())
                .count();
            (*stage, reached)
        })
        .collect()
}

/// The first and last storage time of the run's events.
fn span(run: &Run) -> Option<(OffsetDateTime, OffsetDateTime)> {
    let times = run
        .outcome
        .tracker
        .progress
        .iter()
        .flat_map(|p| p.stages.values().copied());
    let (mut first, mut last) = (None::<OffsetDateTime>, None::<OffsetDateTime>);
    for t in times {
        first = Some(first.map_or(t, |f| f.min(t)));
        last = Some(last.map_or(t, |l| l.max(t)));
    }
    first.zip(last)
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub fn ms(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// The scenario's figures as Markdown.
pub fn markdown(title: &str, run: &Run, setup: &str) -> String {
    let mut out = String::new();
    let v = &run.verdict;
    let _ = writeln!(out, "### {title}\n");
    let _ = writeln!(out, "{setup}\n");
    let pushes = run.plan.pushes();
    let _ = writeln!(
        out,
        "- changes: {} ({} pushes, {} pull requests); accepted {}; terminal {} of {}",
        run.plan.changes.len(),
        pushes,
        run.plan.changes.len() - pushes,
        v.accepted,
        v.terminal,
        v.accepted
    );
    let _ = writeln!(
        out,
        "- pushes released to production: {}; skipped as superseded (production already ran a newer version of the app): {}",
        v.released, v.superseded
    );
    let _ = writeln!(
        out,
        "- invariants: {}",
        if v.ok() {
            "all held: nothing accepted lost, nothing duplicated (event ids, env file writes, teardowns, promotions), no dead letter".to_owned()
        } else {
            format!("{} broken (listed below)", v.problems.len())
        }
    );
    let answers: Vec<String> = run
        .outcome
        .statuses()
        .iter()
        .map(|(status, n)| format!("{n}× {status}"))
        .collect();
    let retried = run
        .outcome
        .sent
        .iter()
        .filter(|s| s.answer.unavailable > 0)
        .count();
    let _ = writeln!(
        out,
        "- webhook answers (after retries): {}; deliveries answered 503 at least once, then retried with the same delivery id: {retried}",
        answers.join(", ")
    );
    let events: usize = v.events.values().sum();
    let _ = writeln!(
        out,
        "- events stored: {events}; GitOps commits: {}; dead letters: {}",
        v.commits, v.letters
    );
    if let Some((first, last)) = span(run) {
        let seconds = positive(last - first).as_secs_f64().max(0.001);
        let _ = writeln!(
            out,
            "- sent over {:.1} s; first webhook stored to last change finished {:.1} s: {:.1} changes/s, {:.0} events/s",
            run.outcome.sending.as_secs_f64(),
            seconds,
            v.terminal as f64 / seconds,
            events as f64 / seconds
        );
    }
    if let Some(caught) = &run.caught_up {
        let _ = writeln!(
            out,
            "- the killed stream leader, started after the run: {}",
            match caught {
                Ok((messages, last)) => format!(
                    "caught up, its copy of FLOTILLA holds {messages} messages up to sequence {last}, as the leader's"
                ),
                Err(why) => format!("did not catch up: {why}"),
            }
        );
    }
    let _ = writeln!(out, "\nFaults injected (offsets from the first send):\n");
    if run.chaos.log.is_empty() {
        let _ = writeln!(out, "- none");
    }
    for happened in &run.chaos.log {
        let _ = writeln!(
            out,
            "- {:.1} s: {}",
            happened.at.as_secs_f64(),
            happened.what
        );
    }
    let _ = writeln!(out, "\nChanges per stage:\n");
    let _ = writeln!(out, "| stage | changes |\n|---|---:|");
    for (stage, n) in stage_counts(run) {
        let _ = writeln!(out, "| {stage} | {n} |");
    }
    let _ = writeln!(
        out,
        "\nLatency per step (server storage times; nearest-rank percentiles):\n"
    );
    let _ = writeln!(
        out,
        "| step | changes | p50 | p90 | p99 | max |\n|---|---:|---:|---:|---:|---:|"
    );
    for (name, p) in step_latencies(run) {
        match p {
            Some(p) => {
                let _ = writeln!(
                    out,
                    "| {name} | {} | {} | {} | {} | {} |",
                    p.samples,
                    ms(p.p50),
                    ms(p.p90),
                    ms(p.p99),
                    ms(p.max)
                );
            }
            None => {
                let _ = writeln!(out, "| {name} | 0 | | | | |");
            }
        }
    }
    let _ = writeln!(
        out,
        "\nResident memory (VmRSS) of each worker, idle before the load and its peak under it (targets < 25 / 64 MiB):\n"
    );
    let _ = writeln!(out, "| worker | idle | under load |\n|---|---:|---:|");
    for (worker, idle) in &run.memory.idle {
        let peak = run.memory.peak.get(worker).copied().unwrap_or(0);
        let _ = writeln!(out, "| {worker} | {} | {} |", mib(*idle), mib(peak));
    }
    if !v.ok() {
        let _ = writeln!(out, "\nBroken invariants:\n");
        for problem in v.problems.iter().take(50) {
            let _ = writeln!(out, "- {problem}");
        }
        if v.problems.len() > 50 {
            let _ = writeln!(out, "- … and {} more", v.problems.len() - 50);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_observed_values() {
        let samples = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(samples).expect("samples");
        assert_eq!(
            (p.p50, p.p90, p.p99, p.max),
            (
                Duration::from_millis(50),
                Duration::from_millis(90),
                Duration::from_millis(99),
                Duration::from_millis(100)
            )
        );
        assert!(Percentiles::of(Vec::new()).is_none());
    }
}
