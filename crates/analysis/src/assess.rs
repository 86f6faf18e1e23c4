//! Argo's judgement of metrics and of the run (analysis/analysis.go `assessMetricStatus`,
//! `assessMetricFailureInconclusiveOrError`, `assessRunStatus`), as plain functions.

use crate::metric::Metric;
use crate::phase::Phase;
use crate::result::{MetricResult, Summary};

/// Limits breached, with Argo's message. Every comparison is strict: `failureLimit: 2` fails on
/// the third failure. Later checks win: Error over Inconclusive over Failed.
pub fn failure_inconclusive_or_error(metric: &Metric, r: &MetricResult) -> Option<(Phase, String)> {
    let mut out = None;
    let failure_limit = metric.failure_limit();
    // A negative failureLimit (-1) disables it.
    if failure_limit >= 0 && r.failed > failure_limit {
        out = Some((
            Phase::Failed,
            format!("failed ({}) > failureLimit ({failure_limit})", r.failed),
        ));
    }
    let inconclusive_limit = metric.inconclusive_limit();
    if r.inconclusive > inconclusive_limit {
        out = Some((
            Phase::Inconclusive,
            format!(
                "inconclusive ({}) > inconclusiveLimit ({inconclusive_limit})",
                r.inconclusive
            ),
        ));
    }
    let error_limit = metric.consecutive_error_limit();
    if r.consecutive_error > error_limit {
        out = Some((
            Phase::Error,
            format!(
                "consecutiveErrors ({}) > consecutiveErrorLimit ({error_limit})",
                r.consecutive_error
            ),
        ));
    }
    out
}

/// Argo's `assessMetricStatus`.
pub fn metric_status(metric: &Metric, r: &MetricResult, terminating: bool) -> Phase {
    if r.phase.completed() {
        return r.phase;
    }
    if r.measurements.is_empty() && r.count == 0 && r.error == 0 {
        return if terminating {
            Phase::Successful
        } else {
            Phase::Pending
        };
    }
    if let Some((phase, _)) = failure_inconclusive_or_error(metric, r) {
        return phase;
    }
    let success_limit = metric.consecutive_success_limit();
    if success_limit > 0 && r.consecutive_success >= success_limit {
        return Phase::Successful;
    }
    if let Some(count) = metric.effective_count()
        && r.count >= count
    {
        let failure_applicable = metric.failure_limit() >= 0;
        let success_applicable = success_limit > 0;
        // With consecutiveSuccessLimit set, reaching the count without the streak is not a
        // success: Inconclusive if failureLimit also applies, Failed otherwise.
        if failure_applicable && success_applicable {
            return Phase::Inconclusive;
        } else if success_applicable {
            return Phase::Failed;
        }
        return Phase::Successful;
    }
    // No count reached: the metric runs on, unless the run is terminating.
    if terminating {
        Phase::Successful
    } else {
        Phase::Running
    }
}

/// Argo's `IsTerminating` without an explicit terminate: a metric that is not dry-run has
/// completed as Failed, Error or Inconclusive.
pub fn is_terminating(results: &[Option<MetricResult>]) -> bool {
    results.iter().flatten().any(|r| {
        !r.dry_run && matches!(r.phase, Phase::Failed | Phase::Error | Phase::Inconclusive)
    })
}

/// A metric's phase changed to completed: what to report.
pub struct Transition {
    pub index: usize,
    pub phase: Phase,
    pub message: String,
}

pub struct RunAssessment {
    pub phase: Phase,
    pub message: String,
    pub summary: Summary,
    pub dry_run_summary: Summary,
    pub transitions: Vec<Transition>,
}

fn tally(s: &mut Summary, phase: Option<Phase>) {
    match phase {
        Some(Phase::Error) => s.error += 1,
        Some(Phase::Failed) => s.failed += 1,
        Some(Phase::Inconclusive) => s.inconclusive += 1,
        _ => s.successful += 1,
    }
}

/// Argo's `assessRunStatus`: updates each metric's phase, and gives the run's phase — Running
/// until every metric has completed, then the worst phase of the metrics that are not dry-run
/// (Failed worst, then Error, then Inconclusive). Terminating ends the run at once.
pub fn run_status(
    metrics: &[Metric],
    dry_run: &[bool],
    results: &mut [Option<MetricResult>],
    terminating: bool,
    terminate_requested: bool,
) -> RunAssessment {
    let mut worst: Option<Phase> = None;
    let mut message = if terminate_requested {
        "Run Terminated".to_string()
    } else {
        String::new()
    };
    let mut everything_completed = true;
    let mut summary = Summary::default();
    let mut dry_run_summary = Summary::default();
    let mut transitions = Vec::new();
    for (index, metric) in metrics.iter().enumerate() {
        let Some(result) = results[index].as_mut() else {
            // Not measured yet (initialDelay): the run is not complete.
            if dry_run[index] {
                dry_run_summary.count += 1;
            } else {
                summary.count += 1;
            }
            everything_completed = false;
            continue;
        };
        if result.dry_run {
            dry_run_summary.count += 1;
        } else {
            summary.count += 1;
        }
        let status = metric_status(metric, result, terminating);
        if result.phase != status {
            if let Some(last) = result.last() {
                result.message = last.message.clone();
            }
            result.phase = status;
            if status.completed() {
                transitions.push(Transition {
                    index,
                    phase: status,
                    message: result.message.clone(),
                });
            }
        }
        if !status.completed() {
            everything_completed = false;
            continue;
        }
        let breach = failure_inconclusive_or_error(metric, result);
        if !result.dry_run {
            if worst.is_none_or(|w| Phase::is_worse(w, status)) {
                worst = Some(status);
                if let Some((_, why)) = &breach {
                    message = format!("Metric \"{}\" assessed {status} due to {why}", metric.name);
                    if !result.message.is_empty() {
                        message.push_str(&format!(": \"Error Message: {}\"", result.message));
                    }
                }
            }
            tally(&mut summary, breach.map(|(p, _)| p));
        } else {
            // A dry-run metric never decides the run; its message says what it would have.
            worst.get_or_insert(Phase::Successful);
            if let Some((_, why)) = &breach {
                result.message = format!("Metric assessed {status} due to {why}");
            }
            tally(&mut dry_run_summary, breach.map(|(p, _)| p));
        }
    }
    let message = message.trim().to_string();
    let phase = if terminating {
        worst.unwrap_or(Phase::Successful)
    } else if !everything_completed || worst.is_none() {
        Phase::Running
    } else {
        worst.unwrap_or(Phase::Successful)
    };
    let message = if phase.completed() {
        message
    } else {
        String::new()
    };
    RunAssessment {
        phase,
        message,
        summary,
        dry_run_summary,
        transitions,
    }
}
