//! Where events live: the streams, the worker consumers and the KV buckets, and the [`Bus`]
//! handle that owns the connection to them.
//!
//! Everything here is created idempotently: `ensure_*` creates what is missing, updates what
//! drifted, and says which it did. Only fields that nats-server 2.9 honours are used.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::IntoConsumerConfig;
use async_nats::jetstream::{self, consumer, stream};

use crate::error::BusError;
use crate::publish::Publisher;

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
}

impl Default for Names {
    fn default() -> Self {
        Names {
            stream: "FLOTILLA".into(),
            prefix: "flotilla".into(),
            dlq_stream: "FLOTILLA_DLQ".into(),
            dlq_prefix: "flotilla-dlq".into(),
            envs_bucket: "flotilla-envs".into(),
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
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_age: Duration::from_secs(7 * 24 * 3600),
            duplicate_window: Duration::from_secs(10 * 60),
            max_bytes: -1,
            dlq_max_age: Duration::from_secs(30 * 24 * 3600),
            envs_history: 5,
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
        &["source.push.>", "source.pull_request.>", "env.ready.>"],
    ),
    (
        "env-manager",
        &[
            "build.succeeded.>",
            "tests.passed.>",
            "tests.failed.>",
            "source.pull_request.>",
            "env.teardown.requested.>",
            "env.ready.>",
            "env.failed.>",
            "canary.promoted.>",
            "canary.aborted.>",
        ],
    ),
    ("sync-watcher", &["env.requested.>"]),
    ("canary-analyzer", &["release.requested.>"]),
    (
        "reaper",
        &[
            "env.requested.>",
            "env.teardown.requested.>",
            "env.deleted.>",
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

/// A connection to NATS with the names of Flotilla's streams: the handle every worker and tool
/// holds. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    names: Arc<Names>,
}

/// Bounds every JetStream API call and publish ack; a timed-out publish is retried with the same
/// `Nats-Msg-Id`, so it is never stored twice.
const API_TIMEOUT: Duration = Duration::from_secs(5);

impl Bus {
    pub fn new(client: async_nats::Client, names: Names) -> Bus {
        let js = jetstream::context::ContextBuilder::new()
            .timeout(API_TIMEOUT)
            .backpressure_on_inflight(true)
            .build(client.clone());
        Bus {
            client,
            js,
            names: Arc::new(names),
        }
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    /// A publisher whose events say `ce-source: flotilla/<component>`.
    pub fn publisher(&self, component: &str) -> Publisher {
        Publisher::new(self.clone(), component)
    }

    /// nats-server 2.10 added consumers with several filter subjects; 2.9 accepts the field and
    /// silently ignores it, so this must be asked before relying on it.
    pub fn supports_multi_filter(&self) -> bool {
        self.client.is_server_compatible(2, 10, 0)
    }

    /// The main stream.
    pub async fn stream(&self) -> Result<stream::Stream, BusError> {
        self.js
            .get_stream(&self.names.stream)
            .await
            .map_err(|e| BusError::jetstream(format!("stream {}", self.names.stream), e))
    }

    /// The dead-letter stream.
    pub async fn dlq_stream(&self) -> Result<stream::Stream, BusError> {
        self.js
            .get_stream(&self.names.dlq_stream)
            .await
            .map_err(|e| BusError::jetstream(format!("stream {}", self.names.dlq_stream), e))
    }

    /// Creates or updates the main stream, the dead-letter stream and the env registry bucket.
    pub async fn ensure_streams(&self, limits: &StreamLimits) -> Result<Vec<Reconciled>, BusError> {
        let names = &self.names;
        let main = stream::Config {
            name: names.stream.clone(),
            description: Some("Flotilla events".into()),
            subjects: vec![format!("{}.>", names.prefix)],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            max_age: limits.max_age,
            max_bytes: limits.max_bytes,
            duplicate_window: limits.duplicate_window,
            allow_direct: true,
            ..Default::default()
        };
        let dlq = stream::Config {
            name: names.dlq_stream.clone(),
            description: Some("Flotilla dead letters: events a worker gave up on".into()),
            subjects: vec![format!("{}.>", names.dlq_prefix)],
            storage: stream::StorageType::File,
            max_age: limits.dlq_max_age,
            duplicate_window: limits.duplicate_window,
            allow_direct: true,
            ..Default::default()
        };
        // nats-server 2.9 cannot create KV buckets through async-nats' KV API (it trips over the
        // 2.9 account info reply), so the bucket's stream is made by hand, exactly as the KV
        // layer would, and then opened as a KV store.
        let kv = stream::Config {
            name: format!("KV_{}", names.envs_bucket),
            description: Some("Flotilla environment registry".into()),
            subjects: vec![format!("$KV.{}.>", names.envs_bucket)],
            storage: stream::StorageType::File,
            max_messages_per_subject: limits.envs_history,
            discard: stream::DiscardPolicy::New,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            num_replicas: 1,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let mut done = Vec::new();
        for config in [main, dlq, kv] {
            done.push(self.ensure_stream(config).await?);
        }
        Ok(done)
    }

    async fn ensure_stream(&self, want: stream::Config) -> Result<Reconciled, BusError> {
        let name = want.name.clone();
        let existing = match self.js.get_stream(&name).await {
            Ok(mut existing) => Some(
                existing
                    .info()
                    .await
                    .map_err(|e| BusError::jetstream(format!("read stream {name}"), e))?
                    .config
                    .clone(),
            ),
            Err(e) if is_stream_not_found(&e) => None,
            Err(e) => return Err(BusError::jetstream(format!("look up stream {name}"), e)),
        };
        let Some(have) = existing else {
            self.js
                .create_stream(want)
                .await
                .map_err(|e| BusError::jetstream(format!("create stream {name}"), e))?;
            return Ok(Reconciled::Created(name));
        };
        let changes = stream_drift(&have, &want);
        if changes.is_empty() {
            return Ok(Reconciled::Unchanged(name));
        }
        if have.storage != want.storage {
            return Err(BusError::Options(format!(
                "stream {name} uses {:?} storage; it cannot be changed to {:?} in place",
                have.storage, want.storage
            )));
        }
        self.js
            .update_stream(&want)
            .await
            .map_err(|e| BusError::jetstream(format!("update stream {name}"), e))?;
        Ok(Reconciled::Updated(name, changes))
    }

    /// The env registry bucket (made by [`Bus::ensure_streams`]).
    pub async fn envs(&self) -> Result<jetstream::kv::Store, BusError> {
        self.js
            .get_key_value(&self.names.envs_bucket)
            .await
            .map_err(|e| BusError::jetstream(format!("KV bucket {}", self.names.envs_bucket), e))
    }

    /// Creates or updates the durable consumer of a worker.
    pub async fn ensure_consumer(
        &self,
        spec: &ConsumerSpec,
    ) -> Result<(consumer::PullConsumer, Reconciled), BusError> {
        let stream = self.stream().await?;
        let mut want = spec.config(&self.names, self.supports_multi_filter());
        let name = spec.name.clone();
        let reconciled = match stream.get_consumer::<consumer::pull::Config>(&name).await {
            Ok(mut existing) => {
                let have = existing
                    .info()
                    .await
                    .map_err(|e| BusError::jetstream(format!("read consumer {name}"), e))?
                    .config
                    .clone();
                // The start position of a durable is fixed at creation.
                want.deliver_policy = have.deliver_policy;
                let changes = consumer_drift(&have, &want.clone().into_consumer_config());
                if changes.is_empty() {
                    Reconciled::Unchanged(name.clone())
                } else {
                    Reconciled::Updated(name.clone(), changes)
                }
            }
            Err(_) => Reconciled::Created(name.clone()),
        };
        let consumer = match reconciled {
            Reconciled::Unchanged(_) => {
                stream
                    .get_consumer(&name)
                    .await
                    .map_err(|source| BusError::JetStream {
                        what: format!("bind consumer {name}"),
                        source,
                    })?
            }
            _ => stream
                .create_consumer(want)
                .await
                .map_err(|e| BusError::jetstream(format!("create consumer {name}"), e))?,
        };
        Ok((consumer, reconciled))
    }
}

/// The durable consumer of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSpec {
    pub name: String,
    /// Subject patterns below the prefix, e.g. `build.succeeded.>`.
    pub subjects: Vec<String>,
    pub ack_wait: Duration,
    /// Deliveries the runtime attempts before dead-lettering.
    pub max_deliver: i64,
    pub max_ack_pending: i64,
}

impl ConsumerSpec {
    /// Full subject patterns, e.g. `flotilla.build.succeeded.>`.
    pub fn patterns(&self, names: &Names) -> Vec<String> {
        self.subjects.iter().map(|s| names.subject(s)).collect()
    }

    /// The consumer config. With several subjects on a server without multi-filter consumers,
    /// the consumer takes the whole prefix and the runtime skips what does not match.
    pub fn config(&self, names: &Names, multi_filter: bool) -> consumer::pull::Config {
        let patterns = self.patterns(names);
        let (filter_subject, filter_subjects) = match patterns.as_slice() {
            [one] => (one.clone(), Vec::new()),
            _ if multi_filter => (String::new(), patterns),
            _ => (format!("{}.>", names.prefix), Vec::new()),
        };
        consumer::pull::Config {
            durable_name: Some(self.name.clone()),
            description: Some(format!("Flotilla worker {}", self.name)),
            // A new worker starts with the events that follow its creation (`flotilla init`
            // creates every worker's consumer before events flow), not a week of history.
            deliver_policy: consumer::DeliverPolicy::New,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            // One more than the runtime's limit: a delivery beyond it is one whose handler never
            // finished (the process died or hung), and the runtime dead-letters it unhandled.
            max_deliver: self.max_deliver + 1,
            max_ack_pending: self.max_ack_pending,
            filter_subject,
            filter_subjects,
            ..Default::default()
        }
    }
}

/// Whether looking a stream up failed because it does not exist (not because NATS did not
/// answer).
pub fn is_stream_not_found(err: &jetstream::context::GetStreamError) -> bool {
    matches!(
        err.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(js)
            if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

fn stream_drift(have: &stream::Config, want: &stream::Config) -> Vec<String> {
    let mut changes = Vec::new();
    let mut check = |what: &str, differs: bool, from: String, to: String| {
        if differs {
            changes.push(format!("{what} {from} -> {to}"));
        }
    };
    check(
        "subjects",
        have.subjects != want.subjects,
        have.subjects.join(","),
        want.subjects.join(","),
    );
    check(
        "max_age",
        have.max_age != want.max_age,
        human(have.max_age),
        human(want.max_age),
    );
    check(
        "duplicate_window",
        have.duplicate_window != want.duplicate_window,
        human(have.duplicate_window),
        human(want.duplicate_window),
    );
    // The server stores "no limit" as -1 whatever was sent.
    let limit = |v: i64| if v <= 0 { -1 } else { v };
    check(
        "max_bytes",
        limit(have.max_bytes) != limit(want.max_bytes),
        have.max_bytes.to_string(),
        want.max_bytes.to_string(),
    );
    check(
        "max_messages_per_subject",
        limit(have.max_messages_per_subject) != limit(want.max_messages_per_subject),
        have.max_messages_per_subject.to_string(),
        want.max_messages_per_subject.to_string(),
    );
    check(
        "allow_direct",
        have.allow_direct != want.allow_direct,
        have.allow_direct.to_string(),
        want.allow_direct.to_string(),
    );
    check(
        "storage",
        have.storage != want.storage,
        format!("{:?}", have.storage),
        format!("{:?}", want.storage),
    );
    changes
}

fn consumer_drift(have: &consumer::Config, want: &consumer::Config) -> Vec<String> {
    let mut changes = Vec::new();
    if have.filter_subject != want.filter_subject {
        changes.push(format!(
            "filter {} -> {}",
            have.filter_subject, want.filter_subject
        ));
    }
    if have.filter_subjects != want.filter_subjects {
        changes.push(format!(
            "filters {} -> {}",
            have.filter_subjects.join(","),
            want.filter_subjects.join(",")
        ));
    }
    if have.ack_wait != want.ack_wait {
        changes.push(format!(
            "ack_wait {} -> {}",
            human(have.ack_wait),
            human(want.ack_wait)
        ));
    }
    if have.max_deliver != want.max_deliver {
        changes.push(format!(
            "max_deliver {} -> {}",
            have.max_deliver, want.max_deliver
        ));
    }
    if want.max_ack_pending > 0 && have.max_ack_pending != want.max_ack_pending {
        changes.push(format!(
            "max_ack_pending {} -> {}",
            have.max_ack_pending, want.max_ack_pending
        ));
    }
    changes
}

fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
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
