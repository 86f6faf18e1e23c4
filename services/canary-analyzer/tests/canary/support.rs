//! The fixture: a private bus with the lease bucket, examples/ping served on loopback, the
//! analysis templates in a temp dir, and canary-analyzer run in-process as its binary runs it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use canary_analyzer::Config;
use flotilla_bus::{Bus, Event, EventType, Outgoing, Process};
use flotilla_proto::v1::{Analysis, Canary, Release};
use flotilla_testing::{NatsServer, Served};

pub const WITHIN: Duration = Duration::from_secs(20);
pub const APP: &str = "ping";
pub const VERSION: &str = "v20240101120000-bbbbbbb";
pub const PREVIOUS: &str = "v20231231120000-aaaaaaa";
pub const RELEASE: &str = "ping-v20240101120000-bbbbbbb";

/// ping's `/status` read by the web provider: `ok`, or `degraded` while faults are injected.
/// Measured `count` times `interval` apart; one failure fails it.
pub fn web_status(count: u32, interval: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: web-status
spec:
  args:
  - name: url
  - name: app
  metrics:
  - name: status
    count: {count}
    interval: {interval}
    successCondition: result == \"ok\"
    failureLimit: 0
    provider:
      web:
        url: \"{{{{args.url}}}}\"
        jsonPath: \"{{$.status}}\"
        timeoutSeconds: 5
"
    )
}

pub struct Fixture {
    pub _server: NatsServer,
    pub bus: Bus,
    pub templates: tempfile::TempDir,
}

impl Fixture {
    pub async fn start() -> Result<Fixture> {
        let (server, bus) = flotilla_testing::bus().await?;
        let templates = tempfile::tempdir()?;
        std::fs::write(
            templates.path().join("web-status.yaml"),
            web_status(3, "100ms"),
        )?;
        Ok(Fixture {
            _server: server,
            bus,
            templates,
        })
    }

    /// Adds a template file.
    pub fn template(&self, file: &str, yaml: &str) -> Result<()> {
        std::fs::write(self.templates.path().join(file), yaml)?;
        Ok(())
    }

    /// Short leases and sweeps, so a takeover takes a second.
    pub fn config(&self) -> Config {
        let mut config = Config::new();
        config.analysis_dir = Some(self.templates.path().to_owned());
        config.lease = Duration::from_secs(1);
        config.sweep = Duration::from_millis(200);
        config
    }

    pub async fn run(&self) -> Result<Served> {
        self.run_with(self.config()).await
    }

    pub async fn run_with(&self, config: Config) -> Result<Served> {
        let mut process = Process::new(self.bus.clone());
        let leases = self.bus.canaries().await?;
        canary_analyzer::install(&mut process, &config, leases).map_err(|e| anyhow!(e))?;
        flotilla_testing::serve(process).await
    }

    /// What env-manager publishes when it put `version` into production.
    pub async fn release(
        &self,
        version: &str,
        analysis: &[(&str, &[(&str, String)])],
    ) -> Result<()> {
        let release = Release {
            change_id: format!("{APP}-{version}"),
            app: APP.into(),
            version: version.into(),
            previous_version: PREVIOUS.into(),
            analysis: analysis
                .iter()
                .map(|(template, args)| Analysis {
                    template: (*template).into(),
                    args: args
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), v.clone()))
                        .collect(),
                    cluster_scope: false,
                })
                .collect(),
            repo: "acme/ping".into(),
            sha: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb".into(),
            revision: "2222222222222222222222222222222222222222".into(),
            ..Default::default()
        };
        let event = Outgoing::new(EventType::ReleaseRequested, APP, &release)?
            .with_change_id(format!("{APP}-{version}"));
        self.bus.publisher("env-manager").publish(event).await?;
        Ok(())
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

    /// The one verdict on `release`.
    pub async fn verdict(&self, release: &str) -> Result<(EventType, Canary)> {
        let promoted = format!("flotilla.canary.promoted.{release}");
        let aborted = format!("flotilla.canary.aborted.{release}");
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            for filter in [&promoted, &aborted] {
                let events = flotilla_testing::stored_events(
                    &self.bus,
                    filter,
                    1,
                    Duration::from_millis(100),
                )
                .await
                .map_err(|e| anyhow!(e))?;
                if let Some(event) = events.first() {
                    return Ok((event.kind().context("a known type")?, event.decode()?));
                }
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "no verdict on {release}"
            );
        }
    }
}

/// examples/ping on a loopback port, failing `error_rate` of its requests.
pub async fn ping(error_rate: f64) -> Result<SocketAddr> {
    serve(ping::router(ping::Settings {
        answer: ping::Answer::Text,
        error_rate,
        extra_latency: Duration::ZERO,
        app_version: None,
    }))
    .await
}

/// `router` on a loopback port, for as long as the test runs.
pub async fn serve(router: axum::Router) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(addr)
}

pub fn status_url(addr: SocketAddr) -> String {
    format!("http://{addr}/status")
}

/// The fake API server with Argo Rollouts' Rollout and AnalysisRun, played by the test as the
/// Argo Rollouts controller (and Argo CD's sync).
pub mod cluster {
    use super::*;
    use flotilla_kube_fake::{FakeKube, Resource};
    use serde_json::{Value, json};

    pub const NS: &str = "default";
    pub const ROLLOUT: &str = "ping";
    /// The pod template hashes of the previous and the new version.
    pub const OLD_HASH: &str = "6f7c8d9aaa";
    pub const NEW_HASH: &str = "7d8e9f0bbb";

    pub async fn kube() -> FakeKube {
        FakeKube::start([Resource::argo_rollout(), Resource::argo_analysis_run()]).await
    }

    /// canary-analyzer in cluster mode against `kube`.
    pub async fn run(fx: &Fixture, kube: &FakeKube) -> Result<Served> {
        let mut config = fx.config();
        config.sync_timeout = Duration::from_secs(10);
        run_with(fx, kube, config).await
    }

    pub async fn run_with(fx: &Fixture, kube: &FakeKube, config: Config) -> Result<Served> {
        let mut process = Process::new(fx.bus.clone());
        let leases = fx.bus.canaries().await?;
        canary_analyzer::install_cluster(&mut process, &config, leases, kube.client())
            .map_err(|e| anyhow!(e))?;
        flotilla_testing::serve(process).await
    }

    /// ping's Rollout, fully rolled out at the previous version, with `steps`.
    pub fn seed(kube: &FakeKube, steps: Value) {
        kube.put(
            &Resource::argo_rollout(),
            json!({
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Rollout",
                "metadata": {
                    "name": ROLLOUT,
                    "namespace": NS,
                    "generation": 1,
                    "labels": {"flotilla.dev/app": APP},
                },
                "spec": {
                    "replicas": 4,
                    "strategy": {"canary": {"steps": steps}},
                    "template": {"spec": {"containers": [
                        {"name": "ping", "image": format!("ghcr.io/acme/ping:{PREVIOUS}")}
                    ]}},
                },
                "status": {
                    "phase": "Healthy",
                    "observedGeneration": "1",
                    "currentPodHash": OLD_HASH,
                    "stableRS": OLD_HASH,
                    "currentStepIndex": steps.as_array().map_or(0, Vec::len),
                },
            }),
        );
    }

    /// Argo CD syncs the version into the Rollout's template; the controller has not seen it yet.
    pub fn sync(kube: &FakeKube, version: &str) {
        merge(
            kube,
            json!({
                "metadata": {"generation": 2},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "ping", "image": format!("ghcr.io/acme/ping:{version}")}
                ]}}},
            }),
        );
    }

    /// The controller's status, merged.
    pub fn status(kube: &FakeKube, status: Value) {
        kube.merge_status(&Resource::argo_rollout(), NS, ROLLOUT, status)
            .expect("the Rollout is seeded");
    }

    pub fn merge(kube: &FakeKube, patch: Value) {
        kube.merge(&Resource::argo_rollout(), NS, ROLLOUT, &patch)
            .expect("the Rollout is seeded");
    }

    /// The Rollout's status now.
    pub fn rollout_status(kube: &FakeKube) -> Value {
        kube.get(&Resource::argo_rollout(), NS, ROLLOUT)
            .and_then(|r| r.get("status").cloned())
            .unwrap_or(Value::Null)
    }

    /// Waits until canary-analyzer watches Rollouts (so the test's next changes are each seen,
    /// not only the last of them in a first list).
    pub async fn watching(kube: &FakeKube) -> Result<()> {
        let deadline = tokio::time::Instant::now() + WITHIN;
        while !kube
            .requests()
            .iter()
            .any(|r| r.contains("/rollouts?") && r.contains("watch=true"))
        {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "no Rollout watch: {:?}",
                kube.requests()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Waits until the Rollout's status satisfies `probe`.
    pub async fn until(kube: &FakeKube, probe: impl Fn(&Value) -> bool) -> Result<Value> {
        flotilla_kube_fake::eventually(kube, WITHIN, |fake| {
            fake.get(&Resource::argo_rollout(), NS, ROLLOUT)
                .and_then(|r| r.get("status").cloned())
                .filter(|s| probe(s))
        })
        .await
        .context("the Rollout's status never got there")
    }
}
