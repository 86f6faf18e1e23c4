//! The environment registry: one JSON record per env in the KV bucket `flotilla-envs`, keyed by
//! env id, written with compare-and-set on the key's revision so that concurrent writers
//! (env-manager's replicas, the reaper, sync-watcher) never overwrite each other blindly.

use async_nats::jetstream::kv::{self, Operation};
use flotilla_bus::dry_run::Recorder;
use flotilla_bus::kv::Update;
use flotilla_proto::v1::{AppVersion, Environment};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, NatsError};
use crate::hooks::HookState;
use crate::state::State;

/// Compare-and-set attempts before giving up (the event is then retried later).
const CAS_ATTEMPTS: u32 = 10;
/// Records read at once by [`Registry::list`]: a sweep over thousands of envs is bounded by
/// round trips, not by the server.
const LIST_CONCURRENCY: usize = 64;

/// One environment as recorded in the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct EnvRecord {
    #[serde(default)]
    pub state: State,
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
    /// Why the env failed, or why it was torn down.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// When its teardown was asked for (RFC 3339): a build of the env's pull request from
    /// before that time does not bring it back.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub deleted_at: String,
    /// Environment hooks of its changes and their runs (`crate::hooks`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookState>,
    /// The W3C `traceparent` of the handling that created the env or last moved it through
    /// its change's stages: what a background task publishes about the env later (its
    /// readiness, its teardown confirmed) continues the change's trace from there.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub traceparent: String,
    /// Fields other workers added: kept as they are.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl EnvRecord {
    /// The env `env` as its events carry it (`env.requested`, `env.ready`, `env.deleted`...);
    /// the fields only an event has (its URL, how long readiness took) are left empty.
    pub fn to_environment(&self, env: &str) -> Environment {
        Environment {
            env: env.to_owned(),
            kind: self.kind.clone(),
            change_id: self.change_id.clone(),
            apps: self.apps.iter().map(App::to_proto).collect(),
            revision: self.revision.clone(),
            reason: self.reason.clone(),
            repo: self.repo.clone(),
            pr: self.pr,
            owner: self.owner.clone(),
            created_at: self.created_at.clone(),
            expires_at: self.expires_at.clone(),
            ..Default::default()
        }
    }
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
    /// Set in a dry run: updates are computed from the real records and recorded here, not
    /// written.
    recorder: Option<Recorder>,
}

impl Registry {
    /// The registry in `store`, the `flotilla-envs` bucket.
    pub fn new(store: kv::Store) -> Registry {
        Registry {
            store,
            recorder: None,
        }
    }

    /// This registry in a dry run: reads are real; [`update`](Self::update) computes the new
    /// record from the current one and records `env X: <old state> -> <new state>` (with the
    /// record as JSON) in `recorder` instead of writing it.
    pub fn recording(mut self, recorder: Recorder) -> Registry {
        self.recorder = Some(recorder);
        self
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
        for attempt in 1..=CAS_ATTEMPTS {
            let (revision, current) = self.read(env).await?;
            let old_state = current.as_ref().map(|c| c.state.clone());
            let Some(record) = change(current) else {
                return Ok(());
            };
            let value = serde_json::to_vec(&record).map_err(|source| Error::Encode {
                env: env.to_owned(),
                source,
            })?;
            if let Some(recorder) = &self.recorder {
                crate::dry_run::record_update(
                    recorder,
                    env,
                    old_state.as_ref(),
                    &record.state,
                    &value,
                );
                return Ok(());
            }
            // Revision 0 expects no value: on a new key, update is a create.
            match flotilla_bus::kv::update(&self.store, env, value.into(), revision).await {
                Ok(Update::Written(_)) => return Ok(()),
                Ok(Update::Conflict) => {
                    tracing::debug!(env, "registry record changed meanwhile; reading it again");
                    flotilla_bus::kv::conflict_pause(attempt).await;
                }
                Err(source) => {
                    return Err(Error::Write {
                        env: env.to_owned(),
                        source,
                    });
                }
            }
        }
        Err(Error::Contended {
            env: env.to_owned(),
            attempts: CAS_ATTEMPTS,
        })
    }

    /// Every live record (deleted keys left out), with its env id, sorted by env id: what
    /// `flotilla envs` shows and the reaper sweeps.
    pub async fn list(&self) -> Result<Vec<(String, EnvRecord)>, Error> {
        let list_error = |source: NatsError| Error::List { source };
        // Through flotilla_bus::kv: a listing consumer placed on a cluster node that is down
        // is never created, and another is tried.
        let keys: Vec<String> = flotilla_bus::kv::keys(&self.store)
            .await
            .map_err(list_error)?;
        let mut records: Vec<(String, EnvRecord)> = futures::stream::iter(keys)
            .map(|env| async move {
                let record = self.get(&env).await?;
                Ok::<_, Error>(record.map(|record| (env, record)))
            })
            .buffer_unordered(LIST_CONCURRENCY)
            .try_filter_map(|entry| async move { Ok(entry) })
            .try_collect()
            .await?;
        records.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(records)
    }

    /// The key's revision (0 when it never existed) and its live record.
    async fn read(&self, env: &str) -> Result<(u64, Option<EnvRecord>), Error> {
        let entry = self.store.entry(env).await.map_err(|source| Error::Read {
            env: env.to_owned(),
            source,
        })?;
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
