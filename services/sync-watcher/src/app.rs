//! An Argo CD `Application` as sync-watcher reads it: which env and app it deploys (its
//! `flotilla.dev/env` and `flotilla.dev/app` labels, as the env chart renders them) and what
//! Argo CD says of it (`status.sync`, `status.health`, `status.operationState`). Pure: JSON in.

use serde_json::Value;

/// The label naming the env an Application belongs to.
pub const ENV_LABEL: &str = "flotilla.dev/env";
/// The label naming the app an Application deploys.
pub const APP_LABEL: &str = "flotilla.dev/app";

/// What Argo CD reports of one Application.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppStatus {
    pub env: String,
    pub app: String,
    /// The Application's own name, for messages.
    pub name: String,
    /// `status.sync.status`: `Synced`, `OutOfSync`, `Unknown` (empty when absent).
    pub sync: String,
    /// `status.sync.revision`: the GitOps commit it is synced to.
    pub revision: String,
    /// `status.health.status`: `Healthy`, `Progressing`, `Degraded`, `Suspended`, `Missing`,
    /// `Unknown`.
    pub health: String,
    /// `status.health.message`, when Argo CD gives one.
    pub health_message: String,
    /// The sync operation: `status.operationState.phase` (`Running`, `Terminating`,
    /// `Succeeded`, `Failed`, `Error`), its message and the revision it synced.
    pub operation: String,
    pub operation_message: String,
    pub operation_revision: String,
}

impl AppStatus {
    /// The status of an Application object; `None` when it lacks the labels (not an env's app).
    pub fn from_object(object: &Value) -> Option<AppStatus> {
        let labels = object.pointer("/metadata/labels")?;
        let label = |name: &str| labels.get(name).and_then(Value::as_str).map(str::to_owned);
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let operation_revision = [
            "/status/operationState/syncResult/revision",
            "/status/operationState/operation/sync/revision",
        ]
        .iter()
        .map(|p| text(p))
        .find(|r| !r.is_empty())
        .unwrap_or_default();
        Some(AppStatus {
            env: label(ENV_LABEL)?,
            app: label(APP_LABEL)?,
            name: text("/metadata/name"),
            sync: text("/status/sync/status"),
            revision: text("/status/sync/revision"),
            health: text("/status/health/status"),
            health_message: text("/status/health/message"),
            operation: text("/status/operationState/phase"),
            operation_message: text("/status/operationState/message"),
            operation_revision,
        })
    }

    /// Synced and Healthy with no sync operation running: ready, if at the right revision.
    pub fn looks_ready(&self) -> bool {
        self.sync == "Synced"
            && self.health == "Healthy"
            && !matches!(self.operation.as_str(), "Running" | "Terminating")
    }

    /// Why the Application failed, if Argo CD says it did: Degraded health, or a sync operation
    /// that failed or errored. Whether that is about the env's change is the caller's to judge
    /// (by [`failure_revision`](Self::failure_revision)).
    pub fn failure(&self) -> Option<String> {
        if matches!(self.operation.as_str(), "Failed" | "Error") {
            return Some(format!(
                "{}: sync {}{}",
                self.name,
                self.operation.to_lowercase(),
                suffix(&self.operation_message)
            ));
        }
        if self.health == "Degraded" {
            return Some(format!(
                "{}: Degraded{}",
                self.name,
                suffix(&self.health_message)
            ));
        }
        None
    }

    /// The revision a failure is about: the failed operation's, else the synced one.
    pub fn failure_revision(&self) -> &str {
        if matches!(self.operation.as_str(), "Failed" | "Error")
            && !self.operation_revision.is_empty()
        {
            &self.operation_revision
        } else {
            &self.revision
        }
    }

    /// A short description for a timeout message.
    pub fn describe(&self) -> String {
        let short = self.revision.get(..7).unwrap_or(&self.revision);
        let sync = if self.sync.is_empty() {
            "no sync status"
        } else {
            &self.sync
        };
        let health = if self.health.is_empty() {
            "no health"
        } else {
            &self.health
        };
        let mut out = format!(
            "{sync}/{health} at {}",
            if short.is_empty() {
                "no revision"
            } else {
                short
            }
        );
        if !self.operation.is_empty() {
            out.push_str(&format!(", operation {}", self.operation));
        }
        out
    }
}

fn suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn application(status: Value) -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "pr-acme-ping-7-ping", "namespace": "argocd",
                         "labels": {"flotilla.dev/env": "pr-acme-ping-7", "flotilla.dev/app": "ping"}},
            "spec": {},
            "status": status,
        })
    }

    #[test]
    fn a_synced_healthy_application_with_a_finished_operation_looks_ready() {
        let status = AppStatus::from_object(&application(json!({
            "sync": {"status": "Synced", "revision": "abc"},
            "health": {"status": "Healthy"},
            "operationState": {"phase": "Succeeded", "syncResult": {"revision": "abc"}},
        })))
        .expect("labelled");
        assert_eq!(
            (status.env.as_str(), status.app.as_str()),
            ("pr-acme-ping-7", "ping")
        );
        assert_eq!(status.revision, "abc");
        assert!(status.looks_ready());
        assert_eq!(status.failure(), None);
    }

    #[test]
    fn a_running_operation_or_progressing_health_is_not_ready() {
        let running = AppStatus::from_object(&application(json!({
            "sync": {"status": "Synced", "revision": "abc"},
            "health": {"status": "Healthy"},
            "operationState": {"phase": "Running"},
        })))
        .expect("labelled");
        assert!(!running.looks_ready());
        let progressing = AppStatus::from_object(&application(json!({
            "sync": {"status": "Synced", "revision": "abc"},
            "health": {"status": "Progressing"},
        })))
        .expect("labelled");
        assert!(!progressing.looks_ready());
    }

    #[test]
    fn degraded_health_and_failed_syncs_name_the_app_and_argo_cds_message() {
        let degraded = AppStatus::from_object(&application(json!({
            "sync": {"status": "Synced", "revision": "abc"},
            "health": {"status": "Degraded", "message": "Deployment ping exceeded its progress deadline"},
        })))
        .expect("labelled");
        assert_eq!(
            degraded.failure().as_deref(),
            Some("pr-acme-ping-7-ping: Degraded: Deployment ping exceeded its progress deadline")
        );
        let failed = AppStatus::from_object(&application(json!({
            "sync": {"status": "OutOfSync", "revision": "old"},
            "health": {"status": "Missing"},
            "operationState": {"phase": "Failed", "message": "one or more objects failed to apply",
                               "operation": {"sync": {"revision": "new"}}},
        })))
        .expect("labelled");
        assert!(
            failed
                .failure()
                .is_some_and(|f| f.contains("failed to apply"))
        );
        assert_eq!(failed.failure_revision(), "new");
    }

    #[test]
    fn an_application_without_the_labels_is_not_an_envs() {
        let mut object = application(json!({}));
        object["metadata"]["labels"] = json!({"app": "x"});
        assert_eq!(AppStatus::from_object(&object), None);
    }
}
