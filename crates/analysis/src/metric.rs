//! A metric ready to run (arguments substituted, validated) and the analysis it belongs to.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::expr::Program;
use crate::spec::{MannWhitneySpec, PrometheusSpec, WebSpec};

/// Argo's `DefaultConsecutiveErrorLimit` (utils/defaults/defaults.go).
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i64 = 4;
/// Argo's `DefaultMeasurementHistoryLimit` (analysis/analysis.go).
pub const DEFAULT_MEASUREMENT_HISTORY_LIMIT: usize = 10;

/// Which provider a metric uses.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderSpec {
    Prometheus(PrometheusSpec),
    Web(WebSpec),
    MannWhitney(MannWhitneySpec),
}

/// A `successCondition` / `failureCondition`: its text and its parsed form.
#[derive(Debug, Clone)]
pub struct Condition {
    pub source: String,
    pub program: Program,
}

/// One metric, arguments substituted and validated. Limits keep Argo's raw integers (`-1`
/// disables `failureLimit`); `None` means the field was absent.
#[derive(Debug, Clone)]
pub struct Metric {
    pub name: String,
    pub interval: Option<Duration>,
    pub initial_delay: Option<Duration>,
    pub count: Option<i64>,
    pub failure_limit: Option<i64>,
    pub inconclusive_limit: Option<i64>,
    pub consecutive_error_limit: Option<i64>,
    pub consecutive_success_limit: Option<i64>,
    pub success_condition: Option<Condition>,
    pub failure_condition: Option<Condition>,
    pub provider: ProviderSpec,
}

impl Metric {
    /// Argo's `Metric.EffectiveCount`: an absent or zero count is 1 without an interval and
    /// unbounded with one.
    pub fn effective_count(&self) -> Option<i64> {
        match self.count {
            Some(c) if c != 0 => Some(c),
            _ if self.interval.is_none() => Some(1),
            _ => None,
        }
    }

    /// `failureLimit`, 0 when absent; negative disables it.
    pub fn failure_limit(&self) -> i64 {
        self.failure_limit.unwrap_or(0)
    }

    pub fn inconclusive_limit(&self) -> i64 {
        self.inconclusive_limit.unwrap_or(0)
    }

    /// Argo's `GetConsecutiveErrorLimitOrDefault`.
    pub fn consecutive_error_limit(&self) -> i64 {
        self.consecutive_error_limit
            .unwrap_or(DEFAULT_CONSECUTIVE_ERROR_LIMIT)
    }

    pub fn consecutive_success_limit(&self) -> i64 {
        self.consecutive_success_limit.unwrap_or(0)
    }
}

/// A template bound to its arguments: what the engine runs.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub name: String,
    pub metrics: Vec<Metric>,
    /// Names of the metrics in dry-run: measured and reported, never deciding the run.
    pub dry_run: HashSet<String>,
    /// Measurements kept per metric where `measurementRetention` sets a limit.
    pub retention: HashMap<String, usize>,
}

impl Analysis {
    pub fn retention_limit(&self, metric: &str) -> usize {
        self.retention
            .get(metric)
            .copied()
            .unwrap_or(DEFAULT_MEASUREMENT_HISTORY_LIMIT)
    }
}
