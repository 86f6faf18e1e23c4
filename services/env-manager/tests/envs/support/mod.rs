//! Fixtures of env-manager's component tests: a private nats-server with Flotilla's streams,
//! a bare git repository as the GitOps remote, env-manager running in-process on a clone of
//! it, events to feed it, and what it stored.

#![allow(dead_code)]

pub mod github;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use env_manager::gitops::GitOps;
use env_manager::{Config, EnvManager, worker_config};
use flotilla_bus::{Bus, Event, EventType, Handler, Outgoing, Published};
use flotilla_env::{EnvRecord, Registry};
use flotilla_proto::v1::{Build, Image};
use flotilla_testing::NatsServer;
use git2::{Repository, Signature};

/// Long enough for a slow machine, short enough that a missing event fails the test quickly.
pub const WITHIN: Duration = Duration::from_secs(15);
pub const VERSION: &str = "v20240101120000-bbbbbbb";
pub const PRODUCTION_VERSION: &str = "v20230121117084-1a2b3c4";
pub const PRODUCTION: &str = r#"{
  "apps": {
    "maindb": {"image": "registry/apps/maindb", "version": "v20230101000000-aaaaaaa"},
    "ping": {"image": "registry/apps/ping", "version": "v20230121117084-1a2b3c4"}
  }
}
"#;

/// A private server with the streams and the env registry, and a GitOps remote holding
/// `apps/production.json`.
pub struct Fixture {
    pub server: NatsServer,
    pub bus: Bus,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub async fn start() -> Result<Fixture> {
        let (server, bus) = flotilla_testing::bus().await?;
        let dir = tempfile::tempdir().context("scratch dir")?;
        let fx = Fixture { server, bus, dir };
        Repository::init_bare(fx.remote()).context("bare remote")?;
        fx.seed_production()?;
        Ok(fx)
    }

    /// Builds ping at [`VERSION`] on main, waits for its staging env and marks it ready (as
    /// sync-watcher would): what passed tests may promote.
    pub async fn stage(&self) -> Result<String> {
        self.publish(
            EventType::BuildSucceeded,
            &format!("ping-{VERSION}"),
            &build(0),
        )
        .await?;
        self.stored("flotilla.env.requested.>", 1, WITHIN).await?;
        self.mark_ready(&staging_env()).await?;
        Ok(staging_env())
    }

    /// What sync-watcher does when every app of the env is ready: the record moves to `ready`.
    pub async fn mark_ready(&self, env: &str) -> Result<()> {
        self.registry()
            .await?
            .update(env, |record| {
                record.map(|r| EnvRecord {
                    state: flotilla_env::State::Ready,
                    ..r
                })
            })
            .await?;
        Ok(())
    }

    /// The bare repository Argo CD would follow.
    pub fn remote(&self) -> PathBuf {
        self.dir.path().join("gitops.git")
    }

    pub fn config(&self) -> Config {
        let mut config = Config::new(
            self.remote().display().to_string(),
            self.dir.path().join("work"),
        );
        config.env_ttl = Duration::from_secs(3600);
        config
    }

    /// Runs env-manager until the returned worker is shut down.
    pub async fn run(&self) -> Result<Running> {
        self.run_handler(self.env_manager().await?).await
    }

    pub async fn env_manager(&self) -> Result<EnvManager> {
        self.env_manager_with(self.config()).await
    }

    pub async fn env_manager_with(&self, config: Config) -> Result<EnvManager> {
        let gitops = GitOps::open(config.gitops.clone()).await?;
        Ok(EnvManager::new(config, gitops, self.registry().await?))
    }

    /// Runs env-manager with `config` until the returned worker is shut down.
    pub async fn run_with(&self, config: Config) -> Result<Running> {
        self.run_handler(self.env_manager_with(config).await?).await
    }

    pub async fn registry(&self) -> Result<Registry> {
        Ok(Registry::new(self.bus.envs().await?))
    }

    /// The registry record of `env`.
    pub async fn record(&self, env: &str) -> Result<Option<EnvRecord>> {
        Ok(self.registry().await?.get(env).await?)
    }

    /// The state of `env`'s registry record once it is `want`, or as it is after `WITHIN`.
    pub async fn record_state_eventually(&self, env: &str, want: &str) -> Result<Option<String>> {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            let state = self.record(env).await?.map(|r| r.state.to_string());
            if state.as_deref() == Some(want) || tokio::time::Instant::now() >= deadline {
                return Ok(state);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs any handler as env-manager (same consumer and subjects), with fast retries.
    pub async fn run_handler(&self, handler: impl Handler) -> Result<Running> {
        let config = flotilla_testing::quick(worker_config());
        flotilla_testing::run_worker(&self.bus, config, handler).await
    }

    /// Publishes an event as its producer would.
    pub async fn publish<M: prost::Message + prost::Name>(
        &self,
        event_type: EventType,
        key: &str,
        message: &M,
    ) -> Result<Published> {
        let event = Outgoing::new(event_type, key, message)?;
        Ok(self.bus.publisher("test").publish(event).await?)
    }

    /// The events stored under `filter`, waiting up to `within` for `want` of them.
    pub async fn stored(&self, filter: &str, want: usize, within: Duration) -> Result<Vec<Event>> {
        flotilla_testing::stored_events(&self.bus, filter, want, within)
            .await
            .map_err(|e| anyhow!(e))
    }

    /// Exactly `want` events under `filter` (see [`flotilla_testing::stored_exactly`]).
    pub async fn stored_exactly(&self, filter: &str, want: usize) -> Result<Vec<Event>> {
        flotilla_testing::stored_exactly(&self.bus, filter, want, WITHIN)
            .await
            .map_err(|e| anyhow!(e))
    }

    /// A file at the head of the remote's `main`, `None` when absent.
    pub fn remote_file(&self, path: &str) -> Result<Option<String>> {
        let repo = Repository::open_bare(self.remote())?;
        let tree = repo.find_reference("refs/heads/main")?.peel_to_tree()?;
        let Ok(entry) = tree.get_path(Path::new(path)) else {
            return Ok(None);
        };
        let blob = repo.find_blob(entry.id())?;
        Ok(Some(String::from_utf8(blob.content().to_vec())?))
    }

    /// A file at the remote's head, parsed as JSON; fails when absent.
    pub fn remote_json(&self, path: &str) -> Result<serde_json::Value> {
        let text = self
            .remote_file(path)?
            .with_context(|| format!("{path} is on main"))?;
        Ok(serde_json::from_str(&text)?)
    }

    /// The remote's `main` head commit id.
    pub fn remote_head(&self) -> Result<String> {
        let repo = Repository::open_bare(self.remote())?;
        let head = repo.find_reference("refs/heads/main")?.peel_to_commit()?;
        Ok(head.id().to_string())
    }

    /// How many commits `main` has.
    pub fn remote_commits(&self) -> Result<usize> {
        let repo = Repository::open_bare(self.remote())?;
        let mut walk = repo.revwalk()?;
        walk.push_ref("refs/heads/main")?;
        Ok(walk.count())
    }

    /// The summaries of `main`'s commits, newest first.
    pub fn remote_messages(&self) -> Result<Vec<String>> {
        let repo = Repository::open_bare(self.remote())?;
        let mut walk = repo.revwalk()?;
        walk.push_ref("refs/heads/main")?;
        walk.map(|oid| {
            let commit = repo.find_commit(oid?)?;
            Ok(commit.summary().unwrap_or_default().to_owned())
        })
        .collect()
    }

    /// Waits until `check` holds for the remote, or `WITHIN` passes.
    pub async fn remote_eventually(&self, mut check: impl FnMut(&Fixture) -> bool) -> bool {
        flotilla_testing::eventually(WITHIN, || check(self)).await
    }

    /// The first commit of the remote: the production manifest, as a person would push it.
    fn seed_production(&self) -> Result<()> {
        self.commit_as_someone(
            &[("apps/production.json", PRODUCTION.as_bytes())],
            "production",
        )
    }

    /// A commit of `files` (path, contents) on the remote's `main`, by someone else than
    /// env-manager (written into the bare repository, as a push would).
    pub fn commit_as_someone(&self, files: &[(&str, &[u8])], message: &str) -> Result<()> {
        let repo = Repository::open_bare(self.remote())?;
        let parent = repo
            .find_reference("refs/heads/main")
            .ok()
            .and_then(|r| r.peel_to_commit().ok());
        let base = parent.as_ref().map(|p| p.tree()).transpose()?;
        let mut index = git2::Index::new()?;
        if let Some(base) = &base {
            index.read_tree(base)?;
        }
        for (path, contents) in files {
            let blob = repo.blob(contents)?;
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                file_size: 0,
                id: blob,
                flags: 0,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            };
            index.add(&entry)?;
        }
        let tree = repo.find_tree(index.write_tree_to(&repo)?)?;
        let someone = Signature::now("someone", "someone@example.com")?;
        let parents: Vec<_> = parent.iter().collect();
        repo.commit(
            Some("refs/heads/main"),
            &someone,
            &someone,
            message,
            &tree,
            &parents,
        )?;
        Ok(())
    }

    /// A commit removing `path` on the remote's `main`, by someone else than env-manager.
    pub fn remove_as_someone(&self, path: &str, message: &str) -> Result<()> {
        let repo = Repository::open_bare(self.remote())?;
        let parent = repo.find_reference("refs/heads/main")?.peel_to_commit()?;
        let mut index = git2::Index::new()?;
        index.read_tree(&parent.tree()?)?;
        index.remove_path(Path::new(path))?;
        let tree = repo.find_tree(index.write_tree_to(&repo)?)?;
        let someone = Signature::now("someone", "someone@example.com")?;
        repo.commit(
            Some("refs/heads/main"),
            &someone,
            &someone,
            message,
            &tree,
            &[&parent],
        )?;
        Ok(())
    }

    /// The files under `dir` at the remote's head.
    pub fn remote_files(&self, dir: &str) -> Result<Vec<String>> {
        let repo = Repository::open_bare(self.remote())?;
        let tree = repo.find_reference("refs/heads/main")?.peel_to_tree()?;
        let Ok(entry) = tree.get_path(Path::new(dir)) else {
            return Ok(Vec::new());
        };
        let dir = repo.find_tree(entry.id())?;
        Ok(dir
            .iter()
            .filter_map(|e| e.name().map(str::to_owned))
            .collect())
    }

    /// Waits until env-manager acknowledged every event up to stream sequence `seq` (handled,
    /// skipped or dead-lettered).
    pub async fn handled(&self, seq: u64) -> Result<()> {
        let stream = self.bus.stream().await?;
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            let mut consumer: async_nats::jetstream::consumer::PullConsumer = stream
                .get_consumer("env-manager")
                .await
                .map_err(|e| anyhow!(e))?;
            let info = consumer.info().await?;
            if info.ack_floor.stream_sequence >= seq {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "env-manager acknowledged up to {} of {seq}",
                info.ack_floor.stream_sequence
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether env-manager got an event again (a retry), waiting for it.
    pub async fn redelivered(&self) -> Result<bool> {
        let stream = self.bus.stream().await?;
        Ok(flotilla_testing::eventually_async(WITHIN, || {
            let stream = stream.clone();
            async move {
                let consumer: Result<async_nats::jetstream::consumer::PullConsumer, _> =
                    stream.get_consumer("env-manager").await;
                match consumer {
                    Ok(mut consumer) => consumer
                        .info()
                        .await
                        .is_ok_and(|info| info.num_redelivered > 0),
                    Err(_) => false,
                }
            }
        })
        .await)
    }

    /// The dead letters of env-manager, waiting for `want` of them.
    pub async fn dead_letters(&self, want: usize) -> Result<Vec<String>> {
        let dead = flotilla_testing::stored_messages(
            self.bus.jetstream(),
            "FLOTILLA_DLQ",
            "flotilla-dlq.env-manager",
            want,
            WITHIN,
        )
        .await
        .map_err(|e| anyhow!(e))?;
        Ok(dead
            .iter()
            .map(|m| {
                m.headers
                    .as_ref()
                    .and_then(|h| h.get("flotilla-dlq-reason"))
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default()
            })
            .collect())
    }
}

pub use flotilla_testing::Served as Running;

/// ping's build at [`VERSION`]: a push to main (`pr` 0) or a pull request.
pub fn build(pr: u64) -> Build {
    Build {
        change_id: format!("ping-{VERSION}"),
        app: "ping".into(),
        repo: "acme/ping".into(),
        sha: "bbbbbbbccccccccccccccccccccccccccccccccc".into(),
        version: VERSION.into(),
        pr,
        images: vec![Image {
            name: "ping".into(),
            r#ref: format!("registry.example.com/team/ping:{VERSION}"),
            digest: String::new(),
        }],
        ..Default::default()
    }
}

/// The preview env of acme/ping#42.
pub const PREVIEW: &str = "pr-acme-ping-42";

pub fn staging_env() -> String {
    format!("stg-ping-{VERSION}")
}
