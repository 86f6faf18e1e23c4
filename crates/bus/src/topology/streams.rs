//! Creating and updating the main stream, the dead-letter stream and the streams of the env
//! registry and the canary leases, and telling what drifted from the wanted settings.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use super::{Bus, Reconciled, StreamLimits};
use crate::error::BusError;

impl Bus {
    /// Creates or updates the main stream, the dead-letter stream, the env registry bucket and
    /// the canary lease bucket.
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
            num_replicas: limits.replicas,
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
            num_replicas: limits.replicas,
            ..Default::default()
        };
        // nats-server 2.9 cannot create KV buckets through async-nats' KV API (it trips over the
        // 2.9 account info reply), so the bucket's stream is made by hand, exactly as the KV
        // layer would, and then opened as a KV store.
        //
        // Except for direct gets on a cluster: with `allow_direct` every replica answers a read,
        // and one that has not applied the latest write yet answers with the previous value or
        // none. Workers read a record right after another worker wrote it and then published an
        // event about it (env-manager records the env, then publishes `env.requested`), so a
        // stale read refuses a true event as a claim with nothing behind it (seen with the
        // stream leader killed: sync-watcher dead-lettered an env.requested 45 ms after the
        // record was written). Replicated buckets are read from their leader instead.
        let direct_reads = limits.replicas <= 1;
        let kv = stream::Config {
            name: format!("KV_{}", names.envs_bucket),
            description: Some("Flotilla environment registry".into()),
            subjects: vec![format!("$KV.{}.>", names.envs_bucket)],
            storage: stream::StorageType::File,
            max_messages_per_subject: limits.envs_history,
            discard: stream::DiscardPolicy::New,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: direct_reads,
            num_replicas: limits.replicas,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        // canary-analyzer's leases: one key per release, compare-and-set on its revision; only
        // the latest value matters, but a few revisions are kept: on a replicated bucket,
        // `kv::update` walks them to find an update that raced with another. Records go after a
        // month, whatever the streams keep: a release is judged in minutes, and `--max-age` is
        // about events.
        let canaries = stream::Config {
            name: format!("KV_{}", names.canaries_bucket),
            description: Some("Flotilla canary leases and verdicts".into()),
            subjects: vec![format!("$KV.{}.>", names.canaries_bucket)],
            storage: stream::StorageType::File,
            max_messages_per_subject: 5,
            max_age: Duration::from_secs(30 * 24 * 3600),
            discard: stream::DiscardPolicy::New,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: direct_reads,
            num_replicas: limits.replicas,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let mut done = Vec::new();
        for config in [main, dlq, kv, canaries] {
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
    check(
        "replicas",
        have.num_replicas.max(1) != want.num_replicas.max(1),
        have.num_replicas.to_string(),
        want.num_replicas.to_string(),
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

/// A duration as `flotilla init` prints it.
pub(super) fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
