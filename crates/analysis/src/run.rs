//! Running an analysis: Argo's reconcile loop (analysis/analysis.go `reconcileAnalysisRun`)
//! on an injected clock (tokio's, so tests pause it).
//!
//! Each pass takes the measurements that are due (`generateMetricTasks`), all at once; records
//! them; assesses metrics and the run; trims history; then sleeps until the earliest next due
//! time (`calculateNextReconcileTime`). When a metric completes badly, Argo's next reconcile
//! (prompted by the status update) runs with the run *terminating*: no new measurements, and
//! metrics still running are Successful. That pass follows at once here.

use std::time::Duration;

use futures::future::{BoxFuture, join_all};
use tokio::time::Instant;

use crate::assess::{self, RunAssessment};
use crate::error::ProviderError;
use crate::evaluate::evaluate_result;
use crate::metric::{Analysis, Metric};
use crate::phase::Phase;
use crate::result::{Measurement, MetricResult, Verdict};
use crate::value::Value;

/// Argo's `DefaultErrorRetryInterval`: after an Error, the next try comes this much later,
/// whatever the metric's interval.
pub const ERROR_RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// Takes one measurement of a metric. Called for every metric of the run; implementations
/// dispatch on `metric.provider`.
pub trait Provider: Send + Sync {
    fn measure<'a>(&'a self, metric: &'a Metric) -> BoxFuture<'a, Result<Value, ProviderError>>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Terminates the run this long after it starts, as Argo terminates a background analysis
    /// when its rollout completes: no further measurements; metrics still running (an
    /// `interval` without `count`, or a count not reached) end Successful unless a limit was
    /// already breached. Without it, a metric with an interval and no count runs forever.
    pub deadline: Option<Duration>,
}

/// What the run reports as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// A measurement was taken; `result` holds the metric's running counts.
    Measurement {
        metric: &'a str,
        measurement: &'a Measurement,
        result: &'a MetricResult,
    },
    /// A metric reached a final phase.
    MetricCompleted {
        metric: &'a str,
        phase: Phase,
        message: &'a str,
    },
}

struct Task {
    index: usize,
}

/// Runs `analysis` to its verdict, calling `on_event` for each measurement and each metric
/// that completes.
pub async fn run(
    analysis: &Analysis,
    provider: &dyn Provider,
    options: RunOptions,
    on_event: &mut (dyn FnMut(Event<'_>) + Send),
) -> Verdict {
    let start = Instant::now();
    let metrics = &analysis.metrics;
    let dry_run: Vec<bool> = metrics
        .iter()
        .map(|m| analysis.dry_run.contains(&m.name))
        .collect();
    let mut results: Vec<Option<MetricResult>> = vec![None; metrics.len()];
    // Argo sets StartedAt at the end of the first reconcile; initial delays count from there
    // and no metric with an initialDelay is measured in that first pass.
    let mut started = false;
    loop {
        let now = Instant::now();
        let terminate_requested = options
            .deadline
            .is_some_and(|d| now.duration_since(start) >= d);
        let terminating = terminate_requested || assess::is_terminating(&results);
        let tasks = due_tasks(metrics, &results, started, start, now, terminating);
        let taken = join_all(
            tasks
                .iter()
                .map(|t| measure(&metrics[t.index], provider, start)),
        )
        .await;
        for (task, measurement) in tasks.iter().zip(taken) {
            let result = results[task.index].get_or_insert_with(|| {
                MetricResult::new(&metrics[task.index].name, dry_run[task.index])
            });
            result.record(measurement);
            if let Some(m) = result.last() {
                on_event(Event::Measurement {
                    metric: &result.name,
                    measurement: m,
                    result,
                });
            }
        }
        let RunAssessment {
            phase,
            message,
            summary,
            dry_run_summary,
            transitions,
        } = assess::run_status(
            metrics,
            &dry_run,
            &mut results,
            terminating,
            terminate_requested,
        );
        for t in &transitions {
            on_event(Event::MetricCompleted {
                metric: &metrics[t.index].name,
                phase: t.phase,
                message: &t.message,
            });
        }
        started = true;
        trim_history(analysis, &mut results);
        if phase.completed() {
            return Verdict {
                phase,
                message,
                metrics: results.into_iter().flatten().collect(),
                summary,
                dry_run_summary,
                elapsed: Instant::now().duration_since(start),
            };
        }
        if !terminating && assess::is_terminating(&results) {
            continue;
        }
        let next = next_reconcile(metrics, &results, start);
        let deadline = options.deadline.map(|d| start + d);
        match [next, deadline].into_iter().flatten().min() {
            Some(at) => tokio::time::sleep_until(at).await,
            // Nothing scheduled and no deadline: only possible if bookkeeping is wrong; end
            // rather than spin.
            None => {
                return Verdict {
                    phase: Phase::Error,
                    message: "no further measurement is scheduled and no metric has completed"
                        .into(),
                    metrics: results.into_iter().flatten().collect(),
                    summary,
                    dry_run_summary,
                    elapsed: Instant::now().duration_since(start),
                };
            }
        }
    }
}

async fn measure(metric: &Metric, provider: &dyn Provider, start: Instant) -> Measurement {
    let started_at = Instant::now().duration_since(start);
    let outcome = provider.measure(metric).await;
    let finished_at = Instant::now().duration_since(start);
    let (phase, value, message) = match outcome {
        Err(e) => (Phase::Error, None, e.to_string()),
        Ok(v) => match evaluate_result(metric, &v) {
            Ok(phase) => (phase, Some(v.to_string()), String::new()),
            Err(msg) => (Phase::Error, Some(v.to_string()), msg),
        },
    };
    Measurement {
        phase,
        value,
        message,
        started_at,
        finished_at,
    }
}

/// Argo's `generateMetricTasks`. Due means at or after the time (Argo's `Now().After(t)` runs
/// a reconcile queued for `t`, by which time the clock has moved past it).
fn due_tasks(
    metrics: &[Metric],
    results: &[Option<MetricResult>],
    started: bool,
    start: Instant,
    now: Instant,
    terminating: bool,
) -> Vec<Task> {
    let mut tasks = Vec::new();
    for (index, metric) in metrics.iter().enumerate() {
        let result = results[index].as_ref();
        if result.is_some_and(|r| r.phase.completed()) || terminating {
            continue;
        }
        let Some(last) = result.and_then(|r| r.last()) else {
            if metric
                .initial_delay
                .is_some_and(|delay| !started || start + delay > now)
            {
                continue;
            }
            tasks.push(Task { index });
            continue;
        };
        let count = result.map_or(0, |r| r.count);
        if metric.effective_count().is_some_and(|c| count >= c) {
            continue;
        }
        let interval = retry_interval(metric, last.phase);
        if now >= start + last.finished_at + interval {
            tasks.push(Task { index });
        }
    }
    tasks
}

fn retry_interval(metric: &Metric, last: Phase) -> Duration {
    if last == Phase::Error {
        ERROR_RETRY_INTERVAL
    } else {
        metric.interval.unwrap_or(ERROR_RETRY_INTERVAL)
    }
}

/// Argo's `calculateNextReconcileTime`: the earliest time a metric is due.
fn next_reconcile(
    metrics: &[Metric],
    results: &[Option<MetricResult>],
    start: Instant,
) -> Option<Instant> {
    let mut next: Option<Instant> = None;
    for (index, metric) in metrics.iter().enumerate() {
        let result = results[index].as_ref();
        if result.is_some_and(|r| r.phase.completed()) {
            continue;
        }
        let at = match result.and_then(|r| r.last()) {
            None => match metric.initial_delay {
                Some(delay) => start + delay,
                None => continue,
            },
            Some(last) => {
                let count = result.map_or(0, |r| r.count);
                if metric.effective_count().is_some_and(|c| count >= c) {
                    continue;
                }
                if last.phase != Phase::Error && metric.interval.is_none() {
                    continue;
                }
                start + last.finished_at + retry_interval(metric, last.phase)
            }
        };
        next = Some(next.map_or(at, |n| n.min(at)));
    }
    next
}

/// Argo's `garbageCollectMeasurements`: keep the latest measurements only (counters stay).
fn trim_history(analysis: &Analysis, results: &mut [Option<MetricResult>]) {
    for r in results.iter_mut().flatten() {
        let limit = analysis.retention_limit(&r.name);
        if r.measurements.len() > limit {
            let drop = r.measurements.len() - limit;
            r.measurements.drain(..drop);
        }
    }
}
