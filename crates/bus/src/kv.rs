//! Listing a KV bucket's keys, also while a node of the cluster is down.
//!
//! `Store::keys` creates an ephemeral ordered consumer, which the server places on one of the
//! bucket stream's peers. With a peer down, nats-server 2.9.10 keeps placing about one of them
//! in three on that peer, whose answer to the creation request never comes: the client times
//! out after 5 s, for as long as the peer stays down (measured on a three-node cluster with an
//! R3 bucket and a follower killed: 13 of 40 listings over 100 s). The registry sweeps of the
//! reaper and sync-watcher list the bucket every few seconds, so every third sweep stalled.
//! Here creating the consumer gets a short deadline, and a consumer placed anew is tried.

use std::time::Duration;

use async_nats::jetstream::kv::Store;
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
