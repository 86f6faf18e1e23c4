//! The environment registry: one JSON record per env in the KV bucket `flotilla-envs`, keyed by
//! env id, written with compare-and-set on the key's revision so that concurrent writers
//! (env-manager's replicas, the reaper, sync-watcher) never overwrite each other blindly.

use async_nats::jetstream::kv::{self, Operation};
use flotilla_proto::v1::AppVersion;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;

/// Compare-and-set attempts before giving up (the event is then retried later).
const CAS_ATTEMPTS: u32 = 10;

/// `requested`: written to git, not yet seen ready.
pub const REQUESTED: &str = "requested";
/// `deleting`: removed from git; the reaper verifies it is gone.
pub const DELETING: &str = "deleting";
/// `failed`: its tests failed; it stays (for people to look at) until it is reaped.
pub const FAILED: &str = "failed";

/// One environment as recorded in the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct EnvRecord {
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub change_id: String,
    #[serde(default)]
    pub repo: String,
    #[serde(default)]
    pub pr: u64,
    /// The source commit the env runs, for reporting on it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha: String,
    #[serde(default)]
    pub apps: Vec<App>,
    /// The GitOps commit the env was written at.
    #[serde(default)]
    pub revision: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub expires_at: String,
    #[serde(default)]
    pub owner: String,
    /// Why the env failed, when it did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Fields other workers added: kept as they are.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// An app of an env record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct App {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub image: String,
}

impl App {
    /// The app as events carry it.
    pub fn to_proto(&self) -> AppVersion {
        AppVersion {
            name: self.name.clone(),
            version: self.version.clone(),
            image: self.image.clone(),
        }
    }
}

impl From<&AppVersion> for App {
    fn from(app: &AppVersion) -> App {
        App {
            name: app.name.clone(),
            version: app.version.clone(),
            image: app.image.clone(),
        }
    }
}

/// The registry bucket.
#[derive(Debug, Clone)]
pub struct Registry {
    store: kv::Store,
}

impl Registry {
    pub fn new(store: kv::Store) -> Registry {
        Registry { store }
    }

    /// The record of `env`, `None` when there is none (or it was deleted).
    pub async fn get(&self, env: &str) -> Result<Option<EnvRecord>, Error> {
        Ok(self.read(env).await?.1)
    }

    /// Applies `change` to the current record of `env` and writes the result, retrying on a
    /// concurrent write. `change` returns `None` to leave the record as it is.
    pub async fn update(
        &self,
        env: &str,
        mut change: impl FnMut(Option<EnvRecord>) -> Option<EnvRecord>,
    ) -> Result<(), Error> {
        for _ in 0..CAS_ATTEMPTS {
            let (revision, current) = self.read(env).await?;
            let Some(record) = change(current) else {
                return Ok(());
            };
            let value = serde_json::to_vec(&record)
                .map_err(|e| Error::Registry(format!("encode {env}: {e}")))?;
            // Revision 0 expects no value: on a new key, update is a create.
            match self.store.update(env, value.into(), revision).await {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    tracing::debug!(env, "registry record changed meanwhile; reading it again");
                }
                Err(e) => return Err(Error::Registry(format!("write {env}: {e}"))),
            }
        }
        Err(Error::Registry(format!(
            "{env} kept changing: gave up after {CAS_ATTEMPTS} compare-and-set attempts"
        )))
    }

    /// The key's revision (0 when it never existed) and its live record.
    async fn read(&self, env: &str) -> Result<(u64, Option<EnvRecord>), Error> {
        let entry = self
            .store
            .entry(env)
            .await
            .map_err(|e| Error::Registry(format!("read {env}: {e}")))?;
        let Some(entry) = entry else {
            return Ok((0, None));
        };
        if entry.operation != Operation::Put {
            return Ok((entry.revision, None));
        }
        let record = serde_json::from_slice(&entry.value).unwrap_or_else(|e| {
            // A record nobody can read is replaced rather than blocking the env forever.
            tracing::warn!(env, error = %e, "unreadable registry record; it will be rewritten");
            EnvRecord::default()
        });
        Ok((entry.revision, Some(record)))
    }
}
