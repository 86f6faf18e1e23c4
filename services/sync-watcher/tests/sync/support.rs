//! The fixture: a private bus with the registry, the fake API server with Argo CD's
//! Application, and sync-watcher run in-process on both, as its binary runs it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use flotilla_bus::{Bus, Event, EventType, Outgoing, Process};
use flotilla_env::{App, EnvRecord, Registry, State};
use flotilla_kube_fake::{FakeKube, Resource};
use flotilla_proto::v1::Environment;
use flotilla_testing::{NatsServer, Served};
use serde_json::{Value, json};
use sync_watcher::history::{History, SameRevisionOnly};
use sync_watcher::{Config, Kube};

pub const WITHIN: Duration = Duration::from_secs(15);
/// The GitOps commit env-manager pushed for the change under test.
pub const PUSHED: &str = "2222222222222222222222222222222222222222";
/// The commit before it.
pub const OLDER: &str = "1111111111111111111111111111111111111111";

pub struct Fixture {
    pub _server: NatsServer,
    pub bus: Bus,
    pub kube: FakeKube,
    pub registry: Registry,
}

impl Fixture {
    pub async fn start() -> Result<Fixture> {
        let (server, bus) = flotilla_testing::bus().await?;
        let kube = FakeKube::start([Resource::argo_application()]).await;
        let registry = Registry::new(bus.envs().await?);
        Ok(Fixture {
            _server: server,
            bus,
            kube,
            registry,
        })
    }

    /// Short windows, so a test takes seconds.
    pub fn config(&self) -> Config {
        let mut config = Config::new();
        config.tracker.stable = Duration::from_millis(300);
        config.tracker.timeout = Duration::from_secs(30);
        config.tracker.sweep = Duration::from_millis(500);
        config.tracker.env_url = Some("https://{env}.preview.example.com".into());
        config
    }

    pub async fn run(&self) -> Result<Served> {
        self.run_with(self.config(), Arc::new(SameRevisionOnly))
            .await
    }

    pub async fn run_with(&self, config: Config, history: Arc<dyn History>) -> Result<Served> {
        let kube = (config.kube == Kube::Auto).then(|| self.kube.client());
        let mut process = Process::new(self.bus.clone());
        sync_watcher::install(&mut process, &config, self.registry.clone(), kube, history);
        flotilla_testing::serve(process).await
    }

    /// What env-manager does for a change: the record, then `env.requested`.
    pub async fn request(
        &self,
        env: &str,
        change_id: &str,
        revision: &str,
        apps: &[&str],
    ) -> Result<()> {
        let record = self.record(env, change_id, revision, apps, "").await?;
        self.publish_requested(env, &record, None).await
    }

    /// The env's record alone, as env-manager writes it before `env.requested`, keeping the
    /// trace context `traceparent` (empty for none).
    pub async fn record(
        &self,
        env: &str,
        change_id: &str,
        revision: &str,
        apps: &[&str],
        traceparent: &str,
    ) -> Result<EnvRecord> {
        let record = EnvRecord {
            state: State::Requested,
            kind: "preview".into(),
            change_id: change_id.into(),
            repo: "acme/ping".into(),
            pr: 7,
            apps: apps
                .iter()
                .map(|name| App {
                    name: (*name).into(),
                    version: "v20240101120000-bbbbbbb".into(),
                    image: String::new(),
                })
                .collect(),
            revision: revision.into(),
            created_at: now(),
            traceparent: traceparent.into(),
            ..Default::default()
        };
        self.registry.update(env, |_| Some(record.clone())).await?;
        Ok(record)
    }

    /// `env.requested` of `record`, in the trace of `traceparent` when given.
    pub async fn publish_requested(
        &self,
        env: &str,
        record: &EnvRecord,
        traceparent: Option<&str>,
    ) -> Result<()> {
        let requested = Environment {
            env: env.into(),
            kind: record.kind.clone(),
            change_id: record.change_id.clone(),
            apps: record.apps.iter().map(App::to_proto).collect(),
            revision: record.revision.clone(),
            ..Default::default()
        };
        let event = Outgoing::new(EventType::EnvRequested, env, &requested)?
            .with_change_id(&record.change_id)
            .with_traceparent(traceparent.unwrap_or_default());
        self.bus.publisher("env-manager").publish(event).await?;
        Ok(())
    }

    /// Argo CD creates an env's child Application (as the env chart renders it), no status yet.
    pub fn create_application(&self, env: &str, app: &str) {
        self.kube.put(
            &Resource::argo_application(),
            json!({
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Application",
                "metadata": {
                    "name": format!("{env}-{app}"),
                    "namespace": "argocd",
                    "labels": {"flotilla.dev/env": env, "flotilla.dev/app": app},
                },
                "spec": {"project": "default", "destination": {"namespace": env}},
            }),
        );
    }

    /// Argo CD's status of an app, as its controller writes it (merged into the object).
    pub fn set_status(&self, env: &str, app: &str, sync: &str, health: &str, revision: &str) {
        self.set_raw_status(
            env,
            app,
            json!({
                "sync": {"status": sync, "revision": revision},
                "health": {"status": health},
            }),
        );
    }

    pub fn set_raw_status(&self, env: &str, app: &str, status: Value) {
        self.kube
            .merge_status(
                &Resource::argo_application(),
                "argocd",
                &format!("{env}-{app}"),
                status,
            )
            .expect("the Application exists");
    }

    /// Every event stored under `filter`, waiting for `want`.
    pub async fn stored(&self, filter: &str, want: usize) -> Result<Vec<Event>> {
        flotilla_testing::stored_events(&self.bus, filter, want, WITHIN)
            .await
            .map_err(|e| anyhow!(e))
    }

    /// Exactly `want` events under `filter`.
    pub async fn stored_exactly(&self, filter: &str, want: usize) -> Result<Vec<Event>> {
        flotilla_testing::stored_exactly(&self.bus, filter, want, WITHIN)
            .await
            .map_err(|e| anyhow!(e))
    }

    /// The one verdict on the env: `env.ready` or `env.failed`.
    pub async fn verdict(&self, env: &str) -> Result<(EventType, Environment)> {
        let events = self.stored(&format!("flotilla.env.*.{env}"), 2).await?;
        let verdict = events
            .iter()
            .find(|e| matches!(e.kind(), Some(EventType::EnvReady | EventType::EnvFailed)))
            .context("a verdict on the env")?;
        Ok((verdict.kind().context("a known type")?, verdict.decode()?))
    }

    pub async fn state(&self, env: &str) -> Result<State> {
        Ok(self.registry.get(env).await?.context("registered")?.state)
    }

    /// Waits until the env's record is in `want`.
    pub async fn state_eventually(&self, env: &str, want: State) -> Result<()> {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            let state = self.state(env).await?;
            if state == want {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{env} is {state}, not {want}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
