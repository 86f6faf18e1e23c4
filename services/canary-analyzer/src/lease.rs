//! Leases on releases, in the `flotilla-canaries` KV bucket: one record per release holding the
//! release itself, which replica judges it and until when, and the verdict once decided.
//!
//! Every write is a compare-and-set on the record's revision, so of two replicas that race for
//! a release one wins; a replica that lost its lease (it stalled past its expiry and another took
//! over) learns so at its next write and stops. The verdict is written before it is published
//! and marked published after: a replica that dies in between leaves a decided verdict that the
//! next owner publishes as it was decided, never a second, different one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::kv;
use flotilla_bus::kv::Update;
use serde::{Deserialize, Serialize};

use crate::release::Job;

/// A decided verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    pub promoted: bool,
    pub reason: String,
    #[serde(default)]
    pub metric: String,
    #[serde(default)]
    pub value: String,
}

/// The stored record of one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub job: Job,
    /// The replica holding the lease.
    pub owner: String,
    /// Until when (Unix milliseconds); 0 when released.
    pub expires_ms: u64,
    /// How many times the release was taken (1 for the first): a takeover's measurement events
    /// are new measurements, not repeats of the earlier owner's.
    pub attempt: u32,
    #[serde(default)]
    pub verdict: Option<Decided>,
    #[serde(default)]
    pub published: bool,
    /// The W3C `traceparent` of the `release.requested` handling that created the record:
    /// whoever judges the release publishes its events in the change's trace from there.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub traceparent: String,
}

impl Record {
    pub fn finished(&self) -> bool {
        self.published
    }
}

/// A release this replica holds: its record at `revision`.
#[derive(Debug, Clone)]
pub struct Held {
    pub key: String,
    pub revision: u64,
    pub record: Record,
}

/// What claiming a release gave.
#[derive(Debug)]
pub enum Claim {
    Mine(Box<Held>),
    /// Another replica holds it, until its lease expires.
    Taken {
        owner: String,
    },
    /// Its verdict was published.
    Finished,
}

/// Why a write failed.
#[derive(Debug)]
pub enum LeaseError {
    /// Another replica wrote the record since: the lease is theirs.
    Lost,
    /// The bucket could not be reached or read; try again.
    Store(String),
}

impl std::fmt::Display for LeaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseError::Lost => f.write_str("the lease was taken over by another replica"),
            LeaseError::Store(e) => write!(f, "the canary lease bucket: {e}"),
        }
    }
}

/// The lease bucket, as one replica. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Leases {
    kv: kv::Store,
    owner: String,
    ttl: Duration,
}

impl Leases {
    /// `owner` names this replica; `ttl` is how long a lease lasts unless renewed.
    pub fn new(kv: kv::Store, owner: String, ttl: Duration) -> Leases {
        Leases { kv, owner, ttl }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The record of `key`, with its revision.
    pub async fn read(&self, key: &str) -> Result<Option<(u64, Record)>, LeaseError> {
        let entry = self
            .kv
            .entry(key)
            .await
            .map_err(|e| LeaseError::Store(e.to_string()))?;
        let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
            return Ok(None);
        };
        match serde_json::from_slice::<Record>(&entry.value) {
            Ok(record) => Ok(Some((entry.revision, record))),
            Err(e) => Err(LeaseError::Store(format!(
                "the record of {key} is unreadable: {e}"
            ))),
        }
    }

    /// Takes `job` for this replica: a new record (in the trace of `traceparent`), or an
    /// existing one whose lease expired (or is already ours), keeping any verdict it holds.
    pub async fn claim(&self, job: &Job, traceparent: &str) -> Result<Claim, LeaseError> {
        let key = job.key();
        match self.read(&key).await? {
            None => {
                let record = Record {
                    job: job.clone(),
                    owner: self.owner.clone(),
                    expires_ms: self.expiry(),
                    attempt: 1,
                    verdict: None,
                    published: false,
                    traceparent: traceparent.to_owned(),
                };
                // Revision 0: created only if the key has no value, through flotilla_bus::kv
                // (`Store::create` would skip its repair on a replicated bucket).
                match flotilla_bus::kv::update(&self.kv, &key, encode(&record)?, 0).await {
                    Ok(Update::Written(revision)) => Ok(Claim::Mine(Box::new(Held {
                        key,
                        revision,
                        record,
                    }))),
                    Ok(Update::Conflict) => {
                        // Another replica created it first: theirs.
                        Ok(Claim::Taken {
                            owner: "another replica".into(),
                        })
                    }
                    Err(e) => Err(LeaseError::Store(e.to_string())),
                }
            }
            Some((revision, record)) => self.take(key, revision, record).await,
        }
    }

    /// Takes the stored `record` (read at `revision`) if it is free.
    pub async fn take(
        &self,
        key: String,
        revision: u64,
        record: Record,
    ) -> Result<Claim, LeaseError> {
        if record.finished() {
            return Ok(Claim::Finished);
        }
        if record.owner != self.owner && record.expires_ms > now_ms() {
            return Ok(Claim::Taken {
                owner: record.owner,
            });
        }
        let taken = Record {
            owner: self.owner.clone(),
            expires_ms: self.expiry(),
            attempt: record.attempt.saturating_add(1),
            ..record
        };
        let held = Held {
            key,
            revision,
            record: taken,
        };
        match self.write(&held).await {
            Ok(held) => Ok(Claim::Mine(Box::new(held))),
            Err(LeaseError::Lost) => Ok(Claim::Taken {
                owner: "another replica".into(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Extends the lease of `held`.
    pub async fn renew(&self, held: &Held) -> Result<Held, LeaseError> {
        let mut next = held.clone();
        next.record.expires_ms = self.expiry();
        self.write(&next).await
    }

    /// Stores the verdict (before it is published).
    pub async fn decide(&self, held: &Held, decided: Decided) -> Result<Held, LeaseError> {
        let mut next = held.clone();
        next.record.verdict = Some(decided);
        next.record.expires_ms = self.expiry();
        self.write(&next).await
    }

    /// Marks the verdict published: the release is finished.
    pub async fn finish(&self, held: &Held) -> Result<Held, LeaseError> {
        let mut next = held.clone();
        next.record.published = true;
        self.write(&next).await
    }

    /// Gives the lease up (this replica stops): another replica may take it at once.
    pub async fn release(&self, held: &Held) -> Result<Held, LeaseError> {
        let mut next = held.clone();
        next.record.expires_ms = 0;
        self.write(&next).await
    }

    /// Every key of the bucket.
    pub async fn keys(&self) -> Result<Vec<String>, LeaseError> {
        flotilla_bus::kv::keys(&self.kv)
            .await
            .map_err(|e| LeaseError::Store(e.to_string()))
    }

    /// Writes `held.record` over `held.revision`; the new revision.
    async fn write(&self, held: &Held) -> Result<Held, LeaseError> {
        // Through flotilla_bus::kv: on a replicated bucket of nats-server < 2.9.21 two
        // replicas taking one expired lease together would both succeed. Here both can answer
        // `Conflict` (the first write was undone once, then put back): the record names the
        // first, whose next sweep takes it again as its own.
        match flotilla_bus::kv::update(&self.kv, &held.key, encode(&held.record)?, held.revision)
            .await
        {
            Ok(Update::Written(revision)) => Ok(Held {
                revision,
                ..held.clone()
            }),
            Ok(Update::Conflict) => Err(LeaseError::Lost),
            Err(e) => Err(LeaseError::Store(e.to_string())),
        }
    }

    fn expiry(&self) -> u64 {
        now_ms().saturating_add(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX))
    }
}

fn encode(record: &Record) -> Result<bytes::Bytes, LeaseError> {
    serde_json::to_vec(record)
        .map(bytes::Bytes::from)
        .map_err(|e| LeaseError::Store(format!("encoding a record: {e}")))
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
