//! Where events live: the streams, the worker consumers and the KV buckets, and the [`Bus`]
//! handle that owns the connection to them.
//!
//! Everything here is created idempotently: `ensure_*` creates what is missing, updates what
//! drifted, and says which it did. Only fields that nats-server 2.9 honours are used.

use std::time::Duration;

mod consumers;
mod handle;
mod streams;

pub use consumers::ConsumerSpec;
pub use handle::Bus;
pub use streams::is_stream_not_found;

/// Names of the streams, subject prefixes and buckets. The defaults are the contract; other
/// names isolate a benchmark or a test on a shared server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// `FLOTILLA`.
    pub stream: String,
    /// `flotilla`: events are `<prefix>.<domain>.<event>.<key>`.
    pub prefix: String,
    /// `FLOTILLA_DLQ`.
    pub dlq_stream: String,
    /// `flotilla-dlq`: dead letters are `<dlq_prefix>.<worker>`.
    pub dlq_prefix: String,
    /// `flotilla-envs`: the environment registry.
    pub envs_bucket: String,
    /// `flotilla-canaries`: canary-analyzer's release leases and verdicts.
    pub canaries_bucket: String,
}

impl Default for Names {
    fn default() -> Self {
        Names {
            stream: "FLOTILLA".into(),
            prefix: "flotilla".into(),
            dlq_stream: "FLOTILLA_DLQ".into(),
            dlq_prefix: "flotilla-dlq".into(),
            envs_bucket: "flotilla-envs".into(),
            canaries_bucket: "flotilla-canaries".into(),
        }
    }
}

impl Names {
    /// Names that share nothing with the defaults, e.g. `Names::isolated("bench")` gives stream
    /// `FLOTILLA_BENCH` on `flotilla-bench.>`.
    pub fn isolated(tag: &str) -> Names {
        let tag = crate::subject::sanitize_key(tag).to_lowercase();
        Names {
            stream: format!("FLOTILLA_{}", tag.to_uppercase()),
            prefix: format!("flotilla-{tag}"),
            dlq_stream: format!("FLOTILLA_{}_DLQ", tag.to_uppercase()),
            dlq_prefix: format!("flotilla-{tag}-dlq"),
            envs_bucket: format!("flotilla-{tag}-envs"),
            canaries_bucket: format!("flotilla-{tag}-canaries"),
        }
    }

    /// `<prefix>.<pattern>`, unless `pattern` already starts with the prefix.
    pub fn subject(&self, pattern: &str) -> String {
        if pattern == self.prefix || pattern.starts_with(&format!("{}.", self.prefix)) {
            pattern.to_owned()
        } else {
            format!("{}.{pattern}", self.prefix)
        }
    }
}

/// Retention settings of the streams (`flotilla init` flags and env vars).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLimits {
    pub max_age: Duration,
    pub duplicate_window: Duration,
    /// `-1` for no limit.
    pub max_bytes: i64,
    pub dlq_max_age: Duration,
    /// Revisions kept per environment in the registry.
    pub envs_history: i64,
    /// Copies of every stream and bucket in a JetStream cluster (1 on a single server; 3 on a
    /// production cluster, so losing a node loses nothing).
    pub replicas: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_age: Duration::from_secs(7 * 24 * 3600),
            duplicate_window: Duration::from_secs(10 * 60),
            max_bytes: -1,
            dlq_max_age: Duration::from_secs(30 * 24 * 3600),
            envs_history: 5,
            replicas: 1,
        }
    }
}

/// What `ensure_*` did to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    Created(String),
    Updated(String, Vec<String>),
    Unchanged(String),
}

impl std::fmt::Display for Reconciled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reconciled::Created(name) => write!(f, "created   {name}"),
            Reconciled::Updated(name, changes) => {
                write!(f, "updated   {name} ({})", changes.join(", "))
            }
            Reconciled::Unchanged(name) => write!(f, "unchanged {name}"),
        }
    }
}

/// The subscriptions of the six workers: which events each one consumes, below the prefix.
/// `flotilla init` creates their durable consumers; each worker binary uses the same entry.
pub const WORKERS: &[(&str, &[&str])] = &[
    (
        "builder-trigger",
        &[
            "source.push.>",
            "source.pull_request.>",
            "env.ready.>",
            // Environment hooks: provision on a request, deprovision after a teardown.
            "env.requested.>",
            "env.deleted.>",
        ],
    ),
    (
        "env-manager",
        &[
            "build.succeeded.>",
            "tests.passed.>",
            "tests.failed.>",
            "source.pull_request.>",
            "env.teardown.requested.>",
            "env.suspend.requested.>",
            "env.resume.requested.>",
            "env.ready.>",
            "env.failed.>",
            "canary.promoted.>",
            "canary.aborted.>",
        ],
    ),
    // Hook outcomes are prompt claims that a provision run ended (checked against the record).
    (
        "sync-watcher",
        &[
            "env.requested.>",
            "env.hook.succeeded.>",
            "env.hook.failed.>",
        ],
    ),
    ("canary-analyzer", &["release.requested.>"]),
    // Every event about an env is activity to the reaper's idle timer; teardowns wake its sweep.
    (
        "reaper",
        &[
            "env.requested.>",
            "env.ready.>",
            "env.failed.>",
            "env.teardown.requested.>",
            "env.deleted.>",
            "build.started.>",
            "build.succeeded.>",
            "build.failed.>",
            "tests.passed.>",
            "tests.failed.>",
            "source.pull_request.>",
        ],
    ),
];

/// The subscriptions of a worker named in [`WORKERS`].
pub fn worker_subjects(worker: &str) -> Option<&'static [&'static str]> {
    WORKERS
        .iter()
        .find(|(name, _)| *name == worker)
        .map(|(_, subjects)| *subjects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subscription_names_an_event_type_of_the_catalog() {
        for (worker, subjects) in WORKERS {
            for subject in *subjects {
                let event_type = subject.strip_suffix(".>").unwrap_or(subject);
                assert!(
                    flotilla_proto::catalog::lookup(event_type).is_some(),
                    "{worker} subscribes to {subject}, which is no event type"
                );
            }
        }
    }

    #[test]
    fn env_manager_hears_every_verdict_it_reports_on_commits() {
        let subjects = worker_subjects("env-manager").expect("env-manager is a worker");
        for verdict in [
            "env.ready.>",
            "env.failed.>",
            "tests.passed.>",
            "tests.failed.>",
            "canary.promoted.>",
            "canary.aborted.>",
        ] {
            assert!(subjects.contains(&verdict), "{verdict}");
        }
    }
}
