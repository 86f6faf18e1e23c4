//! Running a release's named templates with the analysis engine: at one step (a pause of its
//! Rollout, or a configured weight without a cluster), every template at once, as Argo runs
//! the templates of one analysis together. Measurements are reported as they are taken; the
//! first template that does not end Successful decides the abort, with its failing metric and
//! value. The minimum-sample policy (opt-in) refuses a pass on empty data.

use std::collections::HashMap;
use std::sync::Arc;

use flotilla_analysis::{Event, Phase, Provider, RunOptions, Verdict};
use futures::future::join_all;
use tokio::sync::mpsc;

use crate::release::{Job, Named};
use crate::templates::Library;

/// What a judgement reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// The canary reached step `index` (from 0) at `weight` percent.
    Step { index: u32, weight: u32 },
    /// A measurement was taken.
    Measurement(Measured),
}

/// One measurement, with what makes its event id unique.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub step: u32,
    pub template: String,
    pub metric: String,
    /// 1 for the metric's first measurement at this step.
    pub ordinal: u64,
    pub phase: Phase,
    pub value: Option<String>,
    pub message: String,
}

/// Why a release is not promoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    /// The failing metric and its value, when a measurement decided it.
    pub metric: String,
    pub value: String,
}

impl Failure {
    pub fn new(reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            metric: String::new(),
            value: String::new(),
        }
    }
}

/// What judging needs besides the release.
#[derive(Clone)]
pub struct Judge {
    pub library: Library,
    pub provider: Arc<dyn Provider>,
    /// The `namespace` arg.
    pub namespace: String,
    /// 0: off.
    pub min_samples: u32,
}

impl std::fmt::Debug for Judge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Judge")
            .field("library", &self.library)
            .field("namespace", &self.namespace)
            .field("min_samples", &self.min_samples)
            .finish_non_exhaustive()
    }
}

impl Judge {
    /// Analysis-only: the templates at each of `steps` (weights), in order; `Ok` when every
    /// step passed.
    pub async fn analysis_only(
        &self,
        job: &Job,
        steps: &[u32],
        reports: &mpsc::UnboundedSender<Report>,
    ) -> Result<(), Failure> {
        if job.analysis.is_empty() {
            if self.min_samples > 0 {
                return Err(Failure::new(format!(
                    "no analysis named for {} and FLOTILLA_MIN_SAMPLES={} asks for measured data",
                    job.app, self.min_samples
                )));
            }
            tracing::info!(release = %job.release, "no analysis named: promoted without one");
            return Ok(());
        }
        for (index, weight) in (0u32..).zip(steps) {
            let _ = reports.send(Report::Step {
                index,
                weight: *weight,
            });
            self.step(job, index, reports).await?;
        }
        Ok(())
    }

    /// Cluster mode, at an indefinite pause of the Rollout (step `index`): the templates once;
    /// nothing named promotes (unless the minimum-sample policy is on).
    pub async fn at_pause(
        &self,
        job: &Job,
        index: u32,
        reports: &mpsc::UnboundedSender<Report>,
    ) -> Result<(), Failure> {
        if job.analysis.is_empty() {
            return self.analysis_only(job, &[], reports).await;
        }
        self.step(job, index, reports).await
    }

    /// Runs every named template once, at step `step`.
    pub async fn step(
        &self,
        job: &Job,
        step: u32,
        reports: &mpsc::UnboundedSender<Report>,
    ) -> Result<(), Failure> {
        let runs = job
            .analysis
            .iter()
            .map(|named| self.run_one(job, named, step, reports.clone()));
        for outcome in join_all(runs).await {
            outcome?;
        }
        Ok(())
    }

    async fn run_one(
        &self,
        job: &Job,
        named: &Named,
        step: u32,
        reports: mpsc::UnboundedSender<Report>,
    ) -> Result<(), Failure> {
        let template = self
            .library
            .find(&named.template, named.cluster_scope)
            .map_err(|why| Failure::new(format!("analysis {}: {why}", named.template)))?;
        let analysis = template
            .bind(&job.args(named, &self.namespace))
            .map_err(|e| Failure::new(format!("analysis {}: {e}", named.template)))?;
        let mut taken: HashMap<String, u64> = HashMap::new();
        let mut with_data: HashMap<String, u32> = HashMap::new();
        let name = named.template.clone();
        let mut on_event = |event: Event<'_>| {
            if let Event::Measurement {
                metric,
                measurement,
                ..
            } = event
            {
                let ordinal = taken.entry(metric.to_owned()).or_default();
                *ordinal += 1;
                if carries_data(measurement.value.as_deref()) {
                    *with_data.entry(metric.to_owned()).or_default() += 1;
                }
                let _ = reports.send(Report::Measurement(Measured {
                    step,
                    template: name.clone(),
                    metric: metric.to_owned(),
                    ordinal: *ordinal,
                    phase: measurement.phase,
                    value: measurement.value.clone(),
                    message: measurement.message.clone(),
                }));
            }
        };
        let verdict = flotilla_analysis::run(
            &analysis,
            self.provider.as_ref(),
            RunOptions::default(),
            &mut on_event,
        )
        .await;
        if verdict.phase != Phase::Successful {
            return Err(failure(&named.template, &verdict));
        }
        if self.min_samples > 0 {
            for metric in verdict.metrics.iter().filter(|m| !m.dry_run) {
                let got = with_data.get(&metric.name).copied().unwrap_or(0);
                if got < self.min_samples {
                    return Err(Failure {
                        reason: format!(
                            "analysis {}: metric {} had {got} measurements with data, {} needed \
                             (FLOTILLA_MIN_SAMPLES): no traffic is no pass",
                            named.template, metric.name, self.min_samples
                        ),
                        metric: metric.name.clone(),
                        value: metric
                            .last()
                            .and_then(|m| m.value.clone())
                            .unwrap_or_default(),
                    });
                }
            }
        }
        tracing::info!(release = %job.release, template = %named.template, step, "analysis passed");
        Ok(())
    }
}

/// Whether a measured value holds something: no value, an empty vector or list, an empty
/// string or null is no data.
pub fn carries_data(value: Option<&str>) -> bool {
    let Some(value) = value.map(str::trim) else {
        return false;
    };
    !matches!(value, "" | "[]" | "{}" | "null" | "<nil>" | "\"\"")
}

/// The abort of a template whose verdict is not Successful: the worst metric, its last
/// measurement that was not Successful (the one that decided), and the engine's message.
fn failure(template: &str, verdict: &Verdict) -> Failure {
    let worst = verdict
        .metrics
        .iter()
        .filter(|m| !m.dry_run && m.phase != Phase::Successful)
        .max_by_key(|m| match m.phase {
            Phase::Failed => 3,
            Phase::Error => 2,
            Phase::Inconclusive => 1,
            _ => 0,
        });
    let Some(metric) = worst else {
        let mut reason = format!("analysis {template} {}", verdict.phase);
        if !verdict.message.is_empty() {
            reason.push_str(&format!(": {}", verdict.message));
        }
        return Failure::new(reason);
    };
    let deciding = metric
        .measurements
        .iter()
        .rev()
        .find(|m| m.phase != Phase::Successful)
        .or(metric.last());
    let value = deciding.and_then(|m| m.value.clone()).unwrap_or_default();
    let mut reason = format!(
        "analysis {template} {}: metric {} {} ({} measured: {} failed, {} inconclusive, {} error)",
        verdict.phase,
        metric.name,
        if value.is_empty() {
            "had no value".to_owned()
        } else {
            format!("= {value}")
        },
        metric.count,
        metric.failed,
        metric.inconclusive,
        metric.error,
    );
    let message = if metric.message.is_empty() {
        deciding.map(|m| m.message.as_str()).unwrap_or_default()
    } else {
        &metric.message
    };
    if !message.is_empty() {
        reason.push_str(&format!(": {message}"));
    }
    Failure {
        reason,
        metric: metric.name.clone(),
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_results_carry_no_data() {
        for empty in [None, Some(""), Some("[]"), Some(" null "), Some("<nil>")] {
            assert!(!carries_data(empty), "{empty:?}");
        }
        for data in [Some("[0.99]"), Some("ok"), Some("0")] {
            assert!(carries_data(data), "{data:?}");
        }
    }
}
