//! Cluster mode: following a release's Argo Rollout through the Kubernetes API.
//!
//! The Rollout labelled `flotilla.dev/app=<app>` in the namespace is watched (no polling) until
//! its pod template runs the release's version (within the sync timeout), then followed to its
//! end: each step reported; the AnalysisRuns it starts itself reported measurement by
//! measurement (the engine is never run beside them); otherwise, at each indefinite pause
//! (`pause: {}`), the release's templates run with the engine and the Rollout is promoted or
//! aborted as `kubectl argo rollouts promote` / `abort` do. Fully promoted and Healthy at the new
//! version promotes the release; aborted or Degraded aborts it.
//!
//! Right after Argo CD syncs the new image, the Rollout's status still describes the previous
//! template (stable, Healthy, every step done): a status whose `observedGeneration` (a number,
//! or a numeric string) is behind `metadata.generation` is read as still progressing, never as
//! a verdict.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use flotilla_analysis::Phase;
use futures::StreamExt;
use futures::stream::BoxStream;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::judge::{Failure, Judge, Measured, Report};
use crate::release::Job;

/// The label naming the app a Rollout deploys.
pub const APP_LABEL: &str = "flotilla.dev/app";

/// What cluster mode needs besides the judge.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// Where Rollouts and AnalysisRuns are looked for.
    pub namespace: String,
    /// How long Argo CD may take to put the version into the Rollout.
    pub sync_timeout: Duration,
}

fn api(client: Client, namespace: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::namespaced_with(client, namespace, &resource)
}

/// Argo Rollouts' Rollout, as a dynamic resource: no CRD types to keep in step with Argo.
pub fn rollouts(client: Client, namespace: &str) -> Api<DynamicObject> {
    api(client, namespace, "Rollout", "rollouts")
}

/// Argo Rollouts' AnalysisRun.
pub fn analysis_runs(client: Client, namespace: &str) -> Api<DynamicObject> {
    api(client, namespace, "AnalysisRun", "analysisruns")
}

type Events = BoxStream<'static, Result<watcher::Event<DynamicObject>, watcher::Error>>;

/// Where a Rollout stands, read from its spec and status.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Its pod template does not run the release's version (yet).
    OtherVersion,
    /// At the version, progressing: the step it is at (if it has steps).
    Progressing,
    /// Fully promoted and Healthy at the version.
    Promoted,
    /// Aborted or Degraded, with why.
    Failed(String),
}

/// A Rollout's fields canary-analyzer reads.
#[derive(Debug, Clone)]
pub struct Rollout {
    pub name: String,
    pub object: Value,
}

impl Rollout {
    fn from_dynamic(object: &DynamicObject) -> Option<Rollout> {
        let value = serde_json::to_value(object).ok()?;
        Some(Rollout {
            name: value.pointer("/metadata/name")?.as_str()?.to_owned(),
            object: value,
        })
    }

    fn at(&self, pointer: &str) -> Option<&Value> {
        self.object.pointer(pointer)
    }

    fn steps(&self) -> &[Value] {
        self.at("/spec/strategy/canary/steps")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Whether the pod template runs `version`: some container's image tag is it.
    pub fn runs(&self, version: &str) -> bool {
        self.at("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("image").and_then(Value::as_str))
            .any(|image| tag(image) == Some(version))
    }

    /// Whether Argo runs analysis for this Rollout itself (background or as a step).
    pub fn runs_own_analysis(&self) -> bool {
        self.at("/spec/strategy/canary/analysis").is_some()
            || self.steps().iter().any(|s| s.get("analysis").is_some())
    }

    pub fn step_index(&self) -> Option<u32> {
        self.at("/status/currentStepIndex")
            .and_then(Value::as_u64)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// The canary weight at step `index`: the controller's own, else the last `setWeight` at
    /// or before it.
    pub fn weight(&self, index: u32) -> u32 {
        if let Some(w) = self
            .at("/status/canary/weights/canary/weight")
            .and_then(Value::as_u64)
        {
            return u32::try_from(w).unwrap_or(100);
        }
        self.steps()
            .iter()
            .take(index as usize + 1)
            .filter_map(|s| s.get("setWeight").and_then(Value::as_u64))
            .next_back()
            .map_or(0, |w| u32::try_from(w).unwrap_or(100))
    }

    /// Paused at an indefinite `pause: {}` step (the controller's CanaryPauseStep, no duration):
    /// the step's index.
    pub fn indefinite_pause(&self) -> Option<u32> {
        let index = self.step_index()?;
        let step = self.steps().get(index as usize)?;
        let pause = step.get("pause")?;
        if pause.get("duration").is_some() {
            return None;
        }
        let paused = self
            .at("/status/pauseConditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| c.get("reason").and_then(Value::as_str) == Some("CanaryPauseStep"));
        paused.then_some(index)
    }

    fn current_pod_hash(&self) -> Option<&str> {
        self.at("/status/currentPodHash").and_then(Value::as_str)
    }

    /// Where the Rollout stands with respect to `version`.
    pub fn state(&self, version: &str) -> State {
        if !self.runs(version) {
            return State::OtherVersion;
        }
        let status = |p: &str| self.at(&format!("/status/{p}"));
        let message = || {
            let conditions = status("conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            status("message")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .or_else(|| {
                    status("canary/currentBackgroundAnalysisRunStatus/message")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .or_else(|| {
                    conditions
                        .filter(|c| c.get("type").and_then(Value::as_str) == Some("Progressing"))
                        .find_map(|c| c.get("message").and_then(Value::as_str))
                        .map(str::to_owned)
                })
                .unwrap_or_default()
        };
        if status("abort").and_then(Value::as_bool) == Some(true) {
            return State::Failed(format!("rollout {} aborted: {}", self.name, message()));
        }
        let phase = status("phase").and_then(Value::as_str);
        if phase == Some("Degraded") {
            return State::Failed(format!("rollout {} Degraded: {}", self.name, message()));
        }
        // A status the controller has not caught up with describes the previous template.
        if let (Some(generation), Some(observed)) = (
            self.at("/metadata/generation").and_then(Value::as_i64),
            status("observedGeneration"),
        ) {
            let observed = observed
                .as_i64()
                .or_else(|| observed.as_str().and_then(|s| s.parse().ok()));
            if observed.is_some_and(|o| o != generation) {
                return State::Progressing;
            }
        }
        let stable = status("stableRS").and_then(Value::as_str);
        let done_steps = self.steps().is_empty()
            || self.step_index().unwrap_or(0) as usize >= self.steps().len();
        let healthy = phase.is_none_or(|p| p == "Healthy");
        if healthy && done_steps && stable.is_some() && stable == self.current_pod_hash() {
            State::Promoted
        } else {
            State::Progressing
        }
    }
}

/// The tag of an image reference (`repo:tag`, `repo:tag@sha256:…`); `None` without one.
fn tag(image: &str) -> Option<&str> {
    let image = image.split('@').next().unwrap_or(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':').map(|(_, tag)| tag)
}

/// The next event of an optional stream; pending forever without one.
async fn next(
    events: &mut Option<Events>,
) -> Option<Result<watcher::Event<DynamicObject>, watcher::Error>> {
    match events {
        Some(events) => events.next().await,
        None => std::future::pending().await,
    }
}

/// Follows `job`'s Rollout to its end; `Ok` when it was fully promoted at the version.
pub async fn follow(
    cluster: &Cluster,
    judge: &Judge,
    job: &Job,
    reports: &mpsc::UnboundedSender<Report>,
) -> Result<(), Failure> {
    let rollouts_api = rollouts(cluster.client.clone(), &cluster.namespace);
    let config = watcher::Config::default().labels(&format!("{APP_LABEL}={}", job.app));
    let mut rollout_events: Events = watcher(rollouts_api.clone(), config)
        .default_backoff()
        .boxed();
    let mut run_events: Option<Events> = None;
    let deadline = tokio::time::Instant::now() + cluster.sync_timeout;
    let mut at_version = false;
    let mut reported_steps: HashSet<u32> = HashSet::new();
    let mut judged_pauses: HashSet<u32> = HashSet::new();
    let mut seen: HashSet<(String, String, usize)> = HashSet::new();
    // The Rollout being followed: the first (by name) labelled for the app.
    let mut current: BTreeMap<String, Rollout> = BTreeMap::new();
    let mut last_failed: Option<(String, String)> = None;
    loop {
        let timeout = async {
            if at_version {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep_until(deadline).await;
        };
        tokio::select! {
            () = timeout => {
                let seen = current
                    .values()
                    .next()
                    .map(|r| format!("rollout {} does not run it", r.name))
                    .unwrap_or_else(|| format!("no Rollout labelled {APP_LABEL}={} in {}", job.app, cluster.namespace));
                return Err(Failure::new(format!(
                    "{} was not synced within {} (FLOTILLA_SYNC_TIMEOUT): {seen}",
                    job.version,
                    humantime::format_duration(cluster.sync_timeout)
                )));
            }
            event = rollout_events.next() => match event {
                None => return Err(Failure::new("the Rollout watch ended")),
                Some(Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o))) => {
                    if let Some(r) = Rollout::from_dynamic(&o) {
                        current.insert(r.name.clone(), r);
                    }
                }
                Some(Ok(watcher::Event::Delete(o))) => {
                    if let Some(r) = Rollout::from_dynamic(&o) {
                        current.remove(&r.name);
                    }
                    continue;
                }
                Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => continue,
                Some(Err(e)) => {
                    // Backed off and retried by the watcher.
                    tracing::warn!(release = %job.release, error = %e, "Rollout watch interrupted; resuming");
                    continue;
                }
            },
            event = next(&mut run_events) => {
                let run = match event {
                    Some(Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o))) => o,
                    Some(Err(e)) => {
                        tracing::warn!(release = %job.release, error = %e, "AnalysisRun watch interrupted; resuming");
                        continue;
                    }
                    _ => continue,
                };
                if let Some(rollout) = current.values().next() {
                    let step = rollout.step_index().unwrap_or(0);
                    for measured in measurements(rollout, &run, step, &mut seen) {
                        if matches!(measured.phase, Phase::Failed | Phase::Error | Phase::Inconclusive) {
                            last_failed = Some((measured.metric.clone(), measured.value.clone().unwrap_or_default()));
                        }
                        let _ = reports.send(Report::Measurement(measured));
                    }
                }
                continue;
            }
        }
        let Some(rollout) = current.values().next().cloned() else {
            continue;
        };
        let state = rollout.state(&job.version);
        if state == State::OtherVersion {
            if at_version {
                return Err(Failure::new(format!(
                    "rollout {} no longer runs {}: another version was synced",
                    rollout.name, job.version
                )));
            }
            continue;
        }
        if !at_version {
            at_version = true;
            tracing::info!(release = %job.release, rollout = %rollout.name, own_analysis = rollout.runs_own_analysis(), "following the Rollout");
            if rollout.runs_own_analysis() {
                let runs = analysis_runs(cluster.client.clone(), &cluster.namespace);
                run_events = Some(
                    watcher(runs, watcher::Config::default())
                        .default_backoff()
                        .boxed(),
                );
            }
        }
        if let Some(index) = rollout.step_index()
            && (index as usize) < rollout.steps().len()
            && reported_steps.insert(index)
        {
            let _ = reports.send(Report::Step {
                index,
                weight: rollout.weight(index),
            });
        }
        match state {
            State::Promoted => return Ok(()),
            State::Failed(reason) => {
                let (metric, value) = last_failed.clone().unwrap_or_default();
                return Err(Failure {
                    reason,
                    metric,
                    value,
                });
            }
            State::OtherVersion | State::Progressing => {}
        }
        if rollout.runs_own_analysis() {
            continue;
        }
        let Some(index) = rollout.indefinite_pause() else {
            continue;
        };
        if !judged_pauses.insert(index) {
            continue;
        }
        match judge.at_pause(job, index, reports).await {
            Ok(()) => promote(&rollouts_api, &rollout).await?,
            Err(mut failure) => {
                // The verdict stands either way; a Rollout left running is said in it.
                if let Err(e) = abort(&rollouts_api, &rollout.name).await {
                    failure.reason.push_str(&format!("; {}", e.reason));
                }
                return Err(failure);
            }
        }
    }
}

/// The measurements of `run` (one of `rollout`'s AnalysisRuns for its current pod template) not
/// reported yet.
fn measurements(
    rollout: &Rollout,
    run: &DynamicObject,
    step: u32,
    seen: &mut HashSet<(String, String, usize)>,
) -> Vec<Measured> {
    let Ok(run) = serde_json::to_value(run) else {
        return Vec::new();
    };
    let owned = run
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|o| {
            o.get("kind").and_then(Value::as_str) == Some("Rollout")
                && o.get("name").and_then(Value::as_str) == Some(&rollout.name)
        });
    let hash = run
        .pointer("/metadata/labels/rollouts-pod-template-hash")
        .and_then(Value::as_str);
    // A run of an earlier template is about the previous release.
    if !owned || hash.is_some_and(|h| Some(h) != rollout.current_pod_hash()) {
        return Vec::new();
    }
    let name = run
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut out = Vec::new();
    for result in run
        .pointer("/status/metricResults")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let metric = result
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        for (i, m) in result
            .get("measurements")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let phase = m
                .get("phase")
                .and_then(Value::as_str)
                .and_then(phase)
                .unwrap_or(Phase::Running);
            // A measurement still running is reported once it has its verdict.
            if !phase.completed() || !seen.insert((name.clone(), metric.clone(), i)) {
                continue;
            }
            out.push(Measured {
                step,
                template: name.clone(),
                metric: metric.clone(),
                ordinal: i as u64 + 1,
                phase,
                value: m.get("value").and_then(Value::as_str).map(str::to_owned),
                message: m
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
    }
    out
}

fn phase(text: &str) -> Option<Phase> {
    Some(match text {
        "Pending" => Phase::Pending,
        "Running" => Phase::Running,
        "Successful" => Phase::Successful,
        "Failed" => Phase::Failed,
        "Inconclusive" => Phase::Inconclusive,
        "Error" => Phase::Error,
        _ => return None,
    })
}

/// `kubectl argo rollouts promote`: unpause the spec if paused, clear the pause conditions
/// through the status subresource (the whole object where there is none, Argo before v0.10).
async fn promote(api: &Api<DynamicObject>, rollout: &Rollout) -> Result<(), Failure> {
    let params = PatchParams::default();
    let fail =
        |e: kube::Error| Failure::new(format!("could not promote rollout {}: {e}", rollout.name));
    let paused = rollout.at("/spec/paused").and_then(Value::as_bool) == Some(true);
    let mut spec = paused.then(|| json!({"spec": {"paused": false}}));
    let clear = json!({"status": {"pauseConditions": null}});
    match api
        .patch_status(&rollout.name, &params, &Patch::Merge(&clear))
        .await
    {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {
            spec = Some(json!({"spec": {"paused": false}, "status": {"pauseConditions": null}}));
        }
        Err(e) => return Err(fail(e)),
    }
    if let Some(spec) = spec {
        api.patch(&rollout.name, &params, &Patch::Merge(&spec))
            .await
            .map_err(fail)?;
    }
    tracing::info!(rollout = %rollout.name, "rollout promoted past its pause");
    Ok(())
}

/// `kubectl argo rollouts abort`: `status.abort=true`, through the status subresource where
/// there is one.
async fn abort(api: &Api<DynamicObject>, name: &str) -> Result<(), Failure> {
    let params = PatchParams::default();
    let patch = json!({"status": {"abort": true}});
    let result = match api.patch_status(name, &params, &Patch::Merge(&patch)).await {
        Err(e) if is_not_found(&e) => api.patch(name, &params, &Patch::Merge(&patch)).await,
        other => other,
    };
    result.map_err(|e| Failure::new(format!("could not abort rollout {name}: {e}")))?;
    tracing::warn!(rollout = %name, "rollout aborted");
    Ok(())
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.is_not_found())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags_are_read_past_registries_and_digests() {
        assert_eq!(tag("ghcr.io/acme/ping:v2"), Some("v2"));
        assert_eq!(tag("localhost:5000/ping:v2@sha256:abc"), Some("v2"));
        assert_eq!(tag("localhost:5000/ping"), None);
    }
}
