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
