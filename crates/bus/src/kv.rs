//! Compare-and-set updates that hold on a replicated bucket, and listing a bucket's keys while
//! a node of the cluster is down.
//!
//! ## Updates
//!
//! nats-server before 2.9.21 checks a KV update's expected revision (the publish's
//! `Nats-Expected-Last-Subject-Sequence`) against what the stream's leader has applied, not
//! against the writes it is still agreeing on with its replicas (nats-server#4320). Two updates
//! of one revision sent within a few milliseconds of each other both succeed on a replicated
//! bucket, and the second silently undoes the first (Debian's 2.9.10: 21 of 90 updates lost with
//! three writers on a three-node cluster). [`update`] looks, after every write to a replicated
//! bucket, at the message that followed the expected revision: if it is not this write, this
//! write undid others; it writes the value they left back over its own (a compare-and-set on
//! its own revision) and answers [`Update::Conflict`], so the caller reads again and applies
//! its change on top, as after any lost compare-and-set. It also looks at the message after
//! its write: one made on an earlier revision undid it, and the change is made again (the
//! other writer puts it back too, so a change can be applied twice: changes must be
//! idempotent, as the registry's are). A single server applies updates in order and is left
//! alone.
//!
//! ## Keys
//!
//! `Store::keys` creates an ephemeral ordered consumer, which the server places on one of the
//! bucket stream's peers. With a peer down, nats-server 2.9.10 keeps placing about one of them
//! in three on that peer, whose answer to the creation request never comes: the client times
//! out after 5 s, for as long as the peer stays down (measured on a three-node cluster with an
//! R3 bucket and a follower killed: 13 of 40 listings over 100 s). The registry sweeps of the
//! reaper and sync-watcher list the bucket every few seconds, so every third sweep stalled.
//! Here creating the consumer gets a short deadline, and a consumer placed anew is tried.

use std::time::Duration;

use async_nats::jetstream::kv::{Store, UpdateErrorKind};
use async_nats::jetstream::stream::RawMessageErrorKind;
use bytes::Bytes;
use futures::TryStreamExt;

/// How long creating the listing consumer may take before another one is tried; a live peer
/// answers in 1-10 ms (measured after an election), so this leaves room for a loaded machine.
const ATTEMPT: Duration = Duration::from_secs(2);
/// Attempts before giving up: each lands on a dead peer with a chance of about one in three
/// (though a run of six was seen once while the cluster settled after an election).
const ATTEMPTS: u32 = 8;

/// Every key of `store` with a live value, as `Store::keys` lists them.
pub async fn keys(store: &Store) -> Result<Vec<String>, async_nats::Error> {
    let mut last: async_nats::Error = "no attempt made".into();
    for attempt in 1..=ATTEMPTS {
        match tokio::time::timeout(ATTEMPT, store.keys()).await {
            Ok(Ok(keys)) => return Ok(keys.try_collect().await?),
            Ok(Err(e)) => last = e.into(),
            Err(_) => {
                tracing::debug!(
                    attempt,
                    "listing the bucket's keys: no consumer within {ATTEMPT:?}; placing another"
                );
                last =
                    format!("no listing consumer was created within {ATTEMPT:?}, {ATTEMPTS} times")
                        .into();
            }
        }
    }
    Err(last)
}

/// What [`update`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Written at this revision, after the expected one with nothing between.
    Written(u64),
    /// The key is not at the expected revision (or was not when this write was agreed on):
    /// read it again and apply the change on top.
    Conflict,
}

/// Messages looked through between the expected revision and a write that undid others; a
/// bucket keeps a few revisions per key, and a race involves two or three writes.
const MAX_HOPS: usize = 16;

/// Sets `key` to `value` if it is at `revision` (0: if it has none), as `Store::update` does, but
/// also on a replicated bucket of a nats-server that lets two such updates through (see the
/// module's docs).
pub async fn update(
    store: &Store,
    key: &str,
    value: Bytes,
    revision: u64,
) -> Result<Update, async_nats::Error> {
    let written = match store.update(key, value, revision).await {
        Ok(written) => written,
        Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => return Ok(Update::Conflict),
        Err(e) => return Err(e.into()),
    };
    if store.stream.cached_info().config.num_replicas <= 1 {
        return Ok(Update::Written(written));
    }
    let Some(undone) = undone_by(store, key, revision, written).await? else {
        // Undone in turn by an update of the same revision agreed on after this one: made
        // again on top (the other writer puts this value back too; changes are idempotent).
        if undone_later(store, key, written).await? {
            return Ok(Update::Conflict);
        }
        return Ok(Update::Written(written));
    };
    // This write replaced what others wrote on the same revision: put their value back on top
    // of it, so that the change is made again over theirs.
    match store.update(key, undone.clone(), written).await {
        Ok(restored) => {
            tracing::debug!(
                key,
                revision,
                written,
                restored,
                "a concurrent update of the same revision was undone by this one; restored it"
            );
            if undone_by(store, key, written, restored).await?.is_some() {
                tracing::error!(
                    key,
                    "restoring an update undone by a concurrent one raced with another: the \
                     key may have lost a change"
                );
            }
        }
        Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
            // Usually a third update of the same revision, which puts the value back itself;
            // an update made on this one's value in between would have lost the undone change.
            tracing::warn!(
                key,
                revision,
                written,
                "an update undone by a concurrent one could not be put back: the key changed again"
            );
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Update::Conflict)
}

/// When the write at `written` (made on `revision`) undid others: the value it should have been
/// made on, which it undid.
///
/// The messages of `key` after `revision` are walked in order: one made on the revision before
/// it (its `Nats-Expected-Last-Subject-Sequence`, or none: a plain put) carries the key on;
/// one made on an earlier revision undid the ones between, and its writer puts them back. This
/// write undid others when it is not the first made on the value the walk reached.
async fn undone_by(
    store: &Store,
    key: &str,
    revision: u64,
    written: u64,
) -> Result<Option<Bytes>, async_nats::Error> {
    let mut head = revision;
    let mut value = None;
    let mut from = revision + 1;
    for _ in 0..MAX_HOPS {
        // None: ours is gone already (the bucket's history limit): nothing to tell.
        let Some(message) = next_message(store, key, from).await? else {
            return Ok(None);
        };
        if message.sequence >= written {
            return Ok(value);
        }
        if made_on(&message).is_none_or(|made_on| made_on == head) {
            // A delete or purge marker (`KV-Operation`) is not put back as a value.
            if message.headers.get("KV-Operation").is_some() {
                return Err(format!(
                    "{key}: an update undid a concurrent delete of the key, which cannot be \
                     restored"
                )
                .into());
            }
            head = message.sequence;
            value = Some(message.payload);
        }
        from = message.sequence + 1;
    }
    Ok(value)
}

/// Whether the message after `written` on `key` was made on another revision than `written`:
/// an update sent together with this one, which undid it.
async fn undone_later(store: &Store, key: &str, written: u64) -> Result<bool, async_nats::Error> {
    Ok(next_message(store, key, written + 1)
        .await?
        .is_some_and(|message| made_on(&message).is_some_and(|made_on| made_on != written)))
}

/// The first message of `key` at stream sequence `from` or later, read from the leader.
async fn next_message(
    store: &Store,
    key: &str,
    from: u64,
) -> Result<Option<async_nats::jetstream::message::StreamMessage>, async_nats::Error> {
    let next = store
        .stream
        .raw_message_builder()
        .sequence(from)
        .next_by_subject(format!("{}{key}", store.prefix))
        .send()
        .await;
    match next {
        Ok(message) => Ok(Some(message)),
        Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The revision a message was written on: its `Nats-Expected-Last-Subject-Sequence`; `None`
/// for a plain put.
fn made_on(message: &async_nats::jetstream::message::StreamMessage) -> Option<u64> {
    message
        .headers
        .get("Nats-Expected-Last-Subject-Sequence")
        .and_then(|v| v.as_str().parse::<u64>().ok())
}

/// A short, random pause before compare-and-set attempt `attempt` (from 1) reads again, so
/// writers that collided do not collide again in step.
pub async fn conflict_pause(attempt: u32) {
    let ceiling = 2u64 << attempt.min(6);
    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=ceiling))).await;
}
