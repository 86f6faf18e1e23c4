//! A scripted Job controller and kubelet: what a cluster does with a created Job, on the
//! test's terms ("this Job succeeds after 300 ms and logs this").
//!
//! For each Job created through the API it creates the Job's pod (labelled `job-name` and
//! owned by the Job, so deleting the Job collects it) with the scripted log, marks the Job
//! active, and after the scripted delay ends both the way the script says, with the status a
//! real Job controller writes (`Complete` / `Failed` conditions and counters).

use std::time::Duration;

use serde_json::{Value, json};

use crate::resource::Resource;
use crate::store::Fake;

/// How a Job ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Succeed,
    Fail,
    /// Stays active until deleted.
    Hang,
}

/// What one Job does.
#[derive(Debug, Clone)]
pub struct Script {
    pub after: Duration,
    pub ending: Ending,
    /// The pod's log.
    pub log: String,
}

impl Script {
    pub fn succeed_after(after: Duration) -> Script {
        Script {
            after,
            ending: Ending::Succeed,
            log: String::new(),
        }
    }

    pub fn fail_after(after: Duration) -> Script {
        Script {
            after,
            ending: Ending::Fail,
            log: String::new(),
        }
    }

    pub fn hang() -> Script {
        Script {
            after: Duration::ZERO,
            ending: Ending::Hang,
            log: String::new(),
        }
    }

    pub fn with_log(mut self, log: &str) -> Script {
        self.log = log.to_owned();
        self
    }
}

/// Runs every Job created through the API with the script `decide` picks for it. The fake
/// must serve Jobs and Pods.
pub fn run_jobs(fake: &Fake, decide: impl Fn(&Value) -> Script + Send + Sync + 'static) {
    fake.on_create(&Resource::job(), move |fake, job| {
        let script = decide(&job);
        tokio::spawn(run(fake, job, script));
    });
}

async fn run(fake: Fake, job: Value, script: Script) {
    let (jobs, pods) = (Resource::job(), Resource::pod());
    let name = job["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let namespace = job["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    let uid = job["metadata"]["uid"].clone();
    // The uid's serial makes the pod name unique, like the controller's random suffix.
    let suffix: String = uid.as_str().unwrap_or("0").chars().rev().take(5).collect();
    let pod_name = format!("{name}-{suffix}");
    let labels = json!({
        "job-name": name, "batch.kubernetes.io/job-name": name,
        "controller-uid": uid, "batch.kubernetes.io/controller-uid": uid,
    });
    let template = &job["spec"]["template"];
    fake.put(&pods, json!({
        "metadata": {
            "name": pod_name, "namespace": namespace, "labels": labels,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid, "controller": true}],
        },
        "spec": template["spec"],
        "status": {"phase": "Running"},
    }));
    fake.set_log(&namespace, &pod_name, &script.log);
    fake.merge_status(
        &jobs,
        &namespace,
        &name,
        json!({"active": 1, "startTime": now()}),
    );
    if script.ending == Ending::Hang {
        return;
    }
    tokio::time::sleep(script.after).await;
    // Deleted (or replaced) meanwhile: nothing left to finish.
    if fake
        .get(&jobs, &namespace, &name)
        .map(|j| j["metadata"]["uid"].clone())
        != Some(uid)
    {
        return;
    }
    let (phase, status) = match script.ending {
        Ending::Succeed => (
            "Succeeded",
            json!({
                "active": null, "succeeded": 1, "completionTime": now(),
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"},
                    {"type": "Complete", "status": "True", "reason": "CompletionsReached"},
                ],
            }),
        ),
        _ => (
            "Failed",
            json!({
                "active": null, "failed": 1,
                "conditions": [
                    {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                     "message": "Job has reached the specified backoff limit"},
                ],
            }),
        ),
    };
    fake.merge_status(&pods, &namespace, &pod_name, json!({"phase": phase}));
    fake.merge_status(&jobs, &namespace, &name, status);
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
