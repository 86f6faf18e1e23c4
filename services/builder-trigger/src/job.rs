//! The `job` backend: each run is a Kubernetes Job, watched (kube-runtime watcher, no
//! polling) until it completes or fails.
//!
//! A build runs `FLOTILLA_BUILD_COMMAND` with `sh -c` in `FLOTILLA_JOB_BUILD_IMAGE` (or that
//! image's entrypoint when no command is set); a test run runs the change's pipeline image
//! (`FLOTILLA_PIPELINE_IMAGE`), with `FLOTILLA_TEST_COMMAND` when set; a hook run runs its own
//! `image` (default: the build image) with its own `command`. Both get the run's
//! `FLOTILLA_*` variables. The Job is named after the run, so a redelivered event finds the
//! Job its first delivery created and waits for it instead of building twice. It never
//! retries (`backoffLimit: 0`) and is bounded by `activeDeadlineSeconds` as well as by the
//! worker's own timeout. Once it is over, the last lines of its pod's log are read for the
//! event, and the Job is deleted with its pods, or left to `ttlSecondsAfterFinished`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, LogParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::args::JobCleanup;
use crate::error::Error;
use crate::run::{Cancel, EXCERPT_LINES, Kind, Outcome, Run, Status};

/// Labels put on every Job and its pods.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "flotilla");
pub const RUN_LABEL: &str = "flotilla.dev/run";
pub const KIND_LABEL: &str = "flotilla.dev/kind";
/// Most of a pod's log copied to the log directory.
const MAX_LOG_BYTES: i64 = 16 * 1024 * 1024;

/// The `job` backend's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `None`: the client's default namespace.
    pub namespace: Option<String>,
    pub build_image: String,
    /// Run with `sh -c` in the build image; `None`: the image's entrypoint.
    pub build_command: Option<String>,
    /// Run with `sh -c` in the pipeline image; `None`: the image's entrypoint.
    pub test_command: Option<String>,
    pub service_account: Option<String>,
    pub cleanup: JobCleanup,
    /// With [`JobCleanup::Keep`]: `ttlSecondsAfterFinished`.
    pub ttl: Duration,
    /// The pod's whole log is copied to `<dir>/<run id>.log` before the Job can go.
    pub log_dir: Option<PathBuf>,
}

impl Settings {
    pub fn new(build_image: impl Into<String>) -> Settings {
        Settings {
            namespace: None,
            build_image: build_image.into(),
            build_command: None,
            test_command: None,
            service_account: None,
            cleanup: JobCleanup::Delete,
            ttl: Duration::from_secs(3600),
            log_dir: None,
        }
    }
}

/// Runs builds and tests as Kubernetes Jobs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Backend {
    settings: Arc<Settings>,
    jobs: Api<Job>,
    pods: Api<Pod>,
    namespace: String,
}

impl Backend {
    /// A backend on the cluster `kube` points at.
    pub fn from_config(settings: Settings, kube: kube::Config) -> Result<Backend, Error> {
        let client = Client::try_from(kube).map_err(|e| Error::Kube(e.to_string()))?;
        Ok(Backend::new(settings, client))
    }

    pub fn new(settings: Settings, client: Client) -> Backend {
        let namespace = settings
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        Backend {
            jobs: Api::namespaced(client.clone(), &namespace),
            pods: Api::namespaced(client, &namespace),
            settings: Arc::new(settings),
            namespace,
        }
    }

    /// The namespace the Jobs are created in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub async fn run(&self, run: &Run, cancel: &Cancel) -> Outcome {
        let name = run.id.clone();
        if let Err(outcome) = self.create(run).await {
            return outcome;
        }
        tracing::info!(job = %name, namespace = %self.namespace, change_id = %run.change_id, "Job created");
        let status = tokio::select! {
            ended = tokio::time::timeout(run.timeout, self.watch(&name)) => match ended {
                Ok(status) => status,
                Err(_) => Status::TimedOut(run.timeout),
            },
            why = cancel.cancelled() => Status::Cancelled(why),
        };
        let mut outcome = Outcome::new(status);
        let (excerpt, kept) = self.read_log(&name).await;
        outcome.excerpt = excerpt;
        let stopped = matches!(outcome.status, Status::TimedOut(_) | Status::Cancelled(_));
        if stopped || self.settings.cleanup == JobCleanup::Delete {
            self.delete(&name).await;
        } else {
            outcome.log_url = format!("kubectl -n {} logs job/{name}", self.namespace);
        }
        if let Some(path) = kept {
            outcome.log_url = path.display().to_string();
        }
        outcome
    }

    /// Creates the run's Job; one already there (an earlier delivery's) is waited on instead.
    async fn create(&self, run: &Run) -> Result<(), Outcome> {
        let job = self.job(run);
        match self.jobs.create(&PostParams::default(), &job).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.is_already_exists() => {
                tracing::info!(job = %run.id, "the Job exists already (an earlier delivery's): waiting for it");
                Ok(())
            }
            Err(e) => Err(Outcome::failed(format!(
                "could not create Job {}/{}: {e}",
                self.namespace, run.id
            ))),
        }
    }

    /// Follows the Job until it completes or fails.
    async fn watch(&self, name: &str) -> Status {
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut events = watcher(self.jobs.clone(), config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job)) => {
                    if let Some(status) = finished(&job) {
                        return status;
                    }
                }
                Ok(watcher::Event::Delete(_)) => {
                    return Status::Failed(format!("Job {name} was deleted before it finished"));
                }
                Ok(_) => {}
                // Backed off and retried by the watcher; the timeout bounds the whole wait.
                Err(e) => tracing::warn!(job = %name, error = %e, "watching the Job failed"),
            }
        }
        Status::Failed(format!("lost the watch on Job {name}"))
    }

    /// The last lines of the newest pod's log (empty when there is none to read), and where
    /// its whole log was copied, with `log_dir`.
    async fn read_log(&self, name: &str) -> (Vec<String>, Option<PathBuf>) {
        let selector = format!("job-name={name}");
        let pods = match self
            .pods
            .list(&ListParams::default().labels(&selector))
            .await
        {
            Ok(pods) => pods.items,
            Err(e) => {
                tracing::warn!(job = %name, error = %e, "cannot list the Job's pods");
                return (Vec::new(), None);
            }
        };
        let Some(pod) = pods
            .iter()
            .max_by_key(|p| p.metadata.creation_timestamp.clone())
            .and_then(|p| p.metadata.name.clone())
        else {
            return (Vec::new(), None);
        };
        let params = match &self.settings.log_dir {
            Some(_) => LogParams {
                limit_bytes: Some(MAX_LOG_BYTES),
                ..LogParams::default()
            },
            None => LogParams {
                tail_lines: Some(EXCERPT_LINES as i64),
                ..LogParams::default()
            },
        };
        let text = match self.pods.logs(&pod, &params).await {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(job = %name, pod = %pod, error = %e, "cannot read the pod's log");
                return (Vec::new(), None);
            }
        };
        let kept = self.settings.log_dir.as_ref().and_then(|dir| {
            let path = dir.join(format!("{name}.log"));
            let written = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, &text));
            match written {
                Ok(()) => Some(path),
                Err(e) => {
                    tracing::warn!(job = %name, path = %path.display(), error = %e, "cannot keep the pod's log");
                    None
                }
            }
        });
        (crate::run::last_lines(&text), kept)
    }

    /// Whether the Job `name` exists: a hook run an earlier worker started is waited on when
    /// its Job is still there, and run again when it is gone without a recorded result.
    pub async fn exists(&self, name: &str) -> Result<bool, String> {
        self.jobs
            .get_opt(name)
            .await
            .map(|job| job.is_some())
            .map_err(|e| format!("read Job {}/{name}: {e}", self.namespace))
    }

    async fn delete(&self, name: &str) {
        match self.jobs.delete(name, &DeleteParams::background()).await {
            Ok(_) => tracing::debug!(job = %name, "Job deleted"),
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(e) => tracing::warn!(job = %name, error = %e, "could not delete the Job"),
        }
    }

    /// The Job of `run`.
    pub fn job(&self, run: &Run) -> Job {
        let (image, command) = match run.kind {
            Kind::Build => (
                self.settings.build_image.clone(),
                self.settings.build_command.clone(),
            ),
            Kind::Test => (
                run.var("FLOTILLA_PIPELINE_IMAGE").to_owned(),
                self.settings.test_command.clone(),
            ),
            // A hook's own image (its CLI tools), else the build image; its own command.
            Kind::Hook => {
                let exec = run.exec.clone().unwrap_or_default();
                (
                    exec.image
                        .unwrap_or_else(|| self.settings.build_image.clone()),
                    exec.command,
                )
            }
        };
        let labels = BTreeMap::from([
            (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
            (RUN_LABEL.to_owned(), run.id.clone()),
            (KIND_LABEL.to_owned(), run.kind.as_str().to_owned()),
        ]);
        let container = Container {
            name: run.kind.as_str().to_owned(),
            image: Some(image),
            command: command.map(|c| vec!["sh".to_owned(), "-c".to_owned(), c]),
            env: Some(
                run.vars
                    .iter()
                    .map(|(name, value)| EnvVar {
                        name: (*name).to_owned(),
                        value: Some(value.clone()),
                        ..EnvVar::default()
                    })
                    .collect(),
            ),
            ..Container::default()
        };
        let ttl = match self.settings.cleanup {
            JobCleanup::Keep => {
                Some(i32::try_from(self.settings.ttl.as_secs()).unwrap_or(i32::MAX))
            }
            JobCleanup::Delete => None,
        };
        Job {
            metadata: ObjectMeta {
                name: Some(run.id.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(JobSpec {
                backoff_limit: Some(0),
                active_deadline_seconds: Some(
                    i64::try_from(run.timeout.as_secs().max(1)).unwrap_or(i64::MAX),
                ),
                ttl_seconds_after_finished: ttl,
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        restart_policy: Some("Never".to_owned()),
                        service_account_name: self.settings.service_account.clone(),
                        containers: vec![container],
                        ..PodSpec::default()
                    }),
                },
                ..JobSpec::default()
            }),
            status: None,
        }
    }
}

/// The end of a Job, from its conditions (`Complete` / `Failed` true) or its counters.
fn finished(job: &Job) -> Option<Status> {
    let status = job.status.as_ref()?;
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let holds = |kind: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    if holds("Complete").is_some() || status.succeeded.unwrap_or(0) > 0 {
        return Some(Status::Succeeded);
    }
    if let Some(failed) = holds("Failed") {
        let why = [failed.reason.as_deref(), failed.message.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ");
        return Some(Status::Failed(if why.is_empty() {
            "the Job failed".to_owned()
        } else {
            format!("the Job failed: {why}")
        }));
    }
    if status.failed.unwrap_or(0) > 0 {
        return Some(Status::Failed("the Job's pod failed".to_owned()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_with(status: serde_json::Value) -> Job {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "j"}, "status": status}))
            .expect("a Job")
    }

    #[test]
    fn a_job_is_over_when_a_condition_says_so() {
        assert_eq!(finished(&job_with(serde_json::json!({"active": 1}))), None);
        assert_eq!(
            finished(&job_with(
                serde_json::json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
            )),
            Some(Status::Succeeded)
        );
        assert_eq!(
            finished(&job_with(serde_json::json!({"failed": 1, "conditions": [
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}
            ]}))),
            Some(Status::Failed(
                "the Job failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
                    .into()
            ))
        );
    }
}
