//! The fixture: a private bus with the registry, a bare git repository as the GitOps remote,
//! env-manager running on it (the one writer), the fake API server playing Argo CD and the
//! cluster's Namespaces, and reapers run in-process as their binary runs them.

#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use env_manager::gitops::GitOps;
use env_manager::{EnvManager, worker_config};
use flotilla_bus::{Bus, Event, EventType, Outgoing, Process, Published};
use flotilla_env::{EnvRecord, Registry, State};
use flotilla_gitops::{Mirror, Remote};
use flotilla_kube_fake::{FakeKube, Resource};
use flotilla_proto::v1::{Build, Image};
use flotilla_testing::{NatsServer, Served};
use git2::{Repository, Signature};
use reaper::{Clock, Config, Report};
use serde_json::{Value, json};

pub const WITHIN: Duration = Duration::from_secs(15);
pub const VERSION: &str = "v20240101120000-bbbbbbb";
pub const PREVIEW: &str = "pr-acme-ping-7";
const PRODUCTION: &str = r#"{
  "apps": {
    "ping": {"image": "registry/apps/ping", "version": "v20230121117084-1a2b3c4"}
  }
}
"#;

pub struct Fixture {
    pub _server: NatsServer,
    pub bus: Bus,
    pub registry: Registry,
    pub kube: FakeKube,
    pub dir: tempfile::TempDir,
    mirrors: std::sync::atomic::AtomicUsize,
}

impl Fixture {
    pub async fn start() -> Result<Fixture> {
        let (server, bus) = flotilla_testing::bus().await?;
        let registry = Registry::new(bus.envs().await?);
        let kube = FakeKube::start([Resource::argo_application(), Resource::namespace()]).await;
        let dir = tempfile::tempdir()?;
        let fx = Fixture {
            _server: server,
            bus,
            registry,
            kube,
            dir,
            mirrors: Default::default(),
        };
        fx.seed_production()?;
        Ok(fx)
    }

    pub fn remote(&self) -> std::path::PathBuf {
        self.dir.path().join("gitops.git")
    }

    /// env-manager on the remote, with `ttl` as its FLOTILLA_ENV_TTL (each env's `expires_at`).
    pub async fn env_manager(&self, ttl: Duration) -> Result<Served> {
        let mut config = env_manager::Config::new(
            self.remote().display().to_string(),
            self.dir.path().join("work"),
        );
        config.env_ttl = ttl;
        let gitops = GitOps::open(config.gitops.clone()).await?;
        let handler = EnvManager::new(config, gitops, self.registry.clone());
        flotilla_testing::run_worker(&self.bus, flotilla_testing::quick(worker_config()), handler)
            .await
    }

    /// Short sweeps, so a test takes seconds.
    pub fn config(&self) -> Config {
        let mut config = Config::new();
        config.sweep = Duration::from_millis(200);
        config
    }

    /// A reaper with `config`, on the fake cluster, with a mirror of its own.
    pub async fn reaper(&self, config: Config) -> Result<Served> {
        self.reaper_with(config, true).await
    }

    pub async fn reaper_with(&self, config: Config, cluster: bool) -> Result<Served> {
        let n = self
            .mirrors
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mirror = Mirror::open(
            Remote::new(self.remote().display().to_string(), "main"),
            self.dir.path().join(format!("mirror-{n}.git")),
        )
        .await?;
        let mut process = Process::new(self.bus.clone());
        process.grace(Duration::from_secs(5));
        let kube = cluster.then(|| self.kube.client());
        reaper::install(
            &mut process,
            &config,
            self.registry.clone(),
            mirror,
            kube,
            Clock::System,
        );
        flotilla_testing::serve(process).await
    }

    /// A build of acme/ping#`pr`: env-manager writes its preview.
    pub async fn build(&self, pr: u64) -> Result<Published> {
        let build = Build {
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
        };
        self.publish(
            EventType::BuildSucceeded,
            &format!("ping-{VERSION}"),
            &build,
        )
        .await
    }

    pub async fn publish<M: prost::Message + prost::Name>(
        &self,
        event_type: EventType,
        key: &str,
        message: &M,
    ) -> Result<Published> {
        let event = Outgoing::new(event_type, key, message)?;
        Ok(self.bus.publisher("test").publish(event).await?)
    }

    pub async fn stored(&self, filter: &str, want: usize) -> Result<Vec<Event>> {
        flotilla_testing::stored_events(&self.bus, filter, want, WITHIN)
            .await
            .map_err(|e| anyhow!(e))
    }

    pub async fn stored_exactly(&self, filter: &str, want: usize) -> Result<Vec<Event>> {
        flotilla_testing::stored_exactly(&self.bus, filter, want, WITHIN)
            .await
            .map_err(|e| anyhow!(e))
    }

    /// The events stored under `filter` right now (a short look: for "none yet").
    pub async fn stored_now(&self, filter: &str) -> Result<usize> {
        flotilla_testing::stored_events(&self.bus, filter, usize::MAX, Duration::from_millis(300))
            .await
            .map(|events| events.len())
            .map_err(|e| anyhow!(e))
    }

    pub async fn record(&self, env: &str) -> Result<EnvRecord> {
        self.registry.get(env).await?.context("registered")
    }

    /// Waits until the env's record is in `want`.
    pub async fn state_eventually(&self, env: &str, want: State) -> Result<EnvRecord> {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            let record = self.record(env).await?;
            if record.state == want {
                return Ok(record);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{env} is {}, not {want}",
                record.state
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /reaper` of `reaper`, once `check` holds for it.
    pub async fn report_eventually(
        &self,
        reaper: &Served,
        mut check: impl FnMut(&Report) -> bool,
    ) -> Result<Value> {
        let url = format!("http://{}/reaper", reaper.addr());
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            let body: Value = reqwest::get(&url).await?.json().await?;
            let report: Report = report_of(&body);
            if check(&report) {
                return Ok(body);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the report never matched: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the env's file is on the remote's main.
    pub fn in_git(&self, env: &str) -> Result<bool> {
        let repo = Repository::open_bare(self.remote())?;
        let tree = repo.find_reference("refs/heads/main")?.peel_to_tree()?;
        Ok(tree
            .get_path(std::path::Path::new(&format!("envs/{env}.json")))
            .is_ok())
    }

    /// What Argo CD makes of an env file: the env's Application and its Namespace, labelled as
    /// the ApplicationSet and the env chart label them, created `age` ago.
    pub fn deploy(&self, env: &str, age: Duration) {
        let created = reaper::timer::rfc3339(time::OffsetDateTime::now_utc() - age);
        self.kube.put(
            &Resource::argo_application(),
            json!({
                "metadata": {"name": format!("env-{env}"), "namespace": "argocd",
                             "creationTimestamp": created,
                             "labels": {"flotilla.dev/env": env}},
                "spec": {"project": "default"},
            }),
        );
        self.kube.put(
            &Resource::namespace(),
            json!({
                "metadata": {"name": env, "creationTimestamp": created,
                             "labels": {"flotilla.dev/env": env}},
            }),
        );
    }

    /// What Argo CD does once the env file is gone: prunes both.
    pub fn prune(&self, env: &str) {
        self.kube.remove(
            &Resource::argo_application(),
            "argocd",
            &format!("env-{env}"),
        );
        self.kube.remove(&Resource::namespace(), "", env);
    }

    fn seed_production(&self) -> Result<()> {
        let repo = Repository::init_bare(self.remote())?;
        let blob = repo.blob(PRODUCTION.as_bytes())?;
        let mut apps = repo.treebuilder(None)?;
        apps.insert("production.json", blob, 0o100644)?;
        let mut root = repo.treebuilder(None)?;
        root.insert("apps", apps.write()?, 0o040000)?;
        let tree = repo.find_tree(root.write()?)?;
        let someone = Signature::now("someone", "someone@example.com")?;
        repo.commit(
            Some("refs/heads/main"),
            &someone,
            &someone,
            "production",
            &tree,
            &[],
        )?;
        Ok(())
    }
}

fn report_of(body: &Value) -> Report {
    serde_json::from_value(body.clone()).unwrap_or_default()
}

pub fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}
