//! What a run records: measurements, per-metric counters (Argo's `MetricResult`), summaries.

use std::time::Duration;

use crate::phase::Phase;

/// One measurement. Times are offsets from the start of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub phase: Phase,
    /// The value as Argo records it (`[0.99]`, `0.5`, `true`, `"ok"`); `None` when the provider
    /// produced nothing.
    pub value: Option<String>,
    /// Why the measurement is an Error; empty otherwise.
    pub message: String,
    pub started_at: Duration,
    pub finished_at: Duration,
}

/// Argo's `MetricResult`: counters survive measurement retention, measurements do not.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricResult {
    pub name: String,
    pub phase: Phase,
    pub message: String,
    pub dry_run: bool,
    /// Measurements that count toward `count`: Successful, Failed and Inconclusive, not Error.
    pub count: i64,
    pub successful: i64,
    pub failed: i64,
    pub inconclusive: i64,
    pub error: i64,
    pub consecutive_error: i64,
    pub consecutive_success: i64,
    /// The most recent measurements, at most the retention limit (10 by default).
    pub measurements: Vec<Measurement>,
}

impl MetricResult {
    pub fn new(name: &str, dry_run: bool) -> Self {
        MetricResult {
            name: name.to_string(),
            phase: Phase::Running,
            message: String::new(),
            dry_run,
            count: 0,
            successful: 0,
            failed: 0,
            inconclusive: 0,
            error: 0,
            consecutive_error: 0,
            consecutive_success: 0,
            measurements: Vec::new(),
        }
    }

    /// Counts a completed measurement as Argo's `runMeasurements` does.
    pub fn record(&mut self, m: Measurement) {
        match m.phase {
            Phase::Successful => {
                self.successful += 1;
                self.count += 1;
                self.consecutive_error = 0;
                self.consecutive_success += 1;
            }
            Phase::Failed => {
                self.failed += 1;
                self.count += 1;
                self.consecutive_error = 0;
                self.consecutive_success = 0;
            }
            Phase::Inconclusive => {
                self.inconclusive += 1;
                self.count += 1;
                self.consecutive_error = 0;
                self.consecutive_success = 0;
            }
            Phase::Error => {
                self.error += 1;
                self.consecutive_error += 1;
                self.consecutive_success = 0;
            }
            Phase::Pending | Phase::Running => {}
        }
        self.measurements.push(m);
    }

    pub fn last(&self) -> Option<&Measurement> {
        self.measurements.last()
    }
}

/// Argo's `RunSummary`: how many metrics ended in each phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub count: u32,
    pub successful: u32,
    pub failed: u32,
    pub inconclusive: u32,
    pub error: u32,
}

/// The end of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub phase: Phase,
    pub message: String,
    pub metrics: Vec<MetricResult>,
    pub summary: Summary,
    pub dry_run_summary: Summary,
    pub elapsed: Duration,
}
