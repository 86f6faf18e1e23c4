//! The demo's private Prometheus: the binary from PATH (Debian's `prometheus` 2.42 or newer),
//! on a free loopback port with its store in the demo's directory, scraping the canary's
//! address every 500 ms. Stopped with the demo.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// How long Prometheus may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// A running Prometheus.
pub struct Prometheus {
    child: Child,
    url: String,
    /// Its version, as it reports it.
    pub version: String,
}

/// `prometheus` from PATH.
pub fn binary() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("prometheus"))
            .find(|candidate| candidate.is_file())
    })
}

impl Prometheus {
    /// Starts `binary` under `dir` scraping `canary` (job `ping`), and waits until it is ready.
    pub async fn start(
        binary: &Path,
        dir: &Path,
        canary: SocketAddr,
    ) -> Result<Prometheus, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        // Half-second scrapes: a new canary has the two samples rate() needs within a second.
        let config = format!(
            "global:\n  scrape_interval: 500ms\n  scrape_timeout: 500ms\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: ping\n    static_configs:\n      - targets: [\"{canary}\"]\n"
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config)
            .map_err(|e| format!("write {}: {e}", config_path.display()))?;
        let log_path = dir.join("prometheus.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("create {}: {e}", log_path.display()))?;
        let port = super::setup::free_port().map_err(|e| format!("a free port: {e}"))?;
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // Its own process group: Ctrl-C reaches the demo, which stops it in order.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("start {}: {e}", binary.display()))?;
        let mut prometheus = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            version: String::new(),
        };
        if let Err(why) = prometheus.wait_ready().await {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            prometheus.stop().await;
            return Err(format!(
                "{why}; its log ({}) ends:\n{}",
                log_path.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        Ok(prometheus)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| format!("the HTTP client: {e}"))?;
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("prometheus exited ({status}) before it was ready"));
            }
            let ready = http.get(format!("{}/-/ready", self.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                let info = http
                    .get(format!("{}/api/v1/status/buildinfo", self.url))
                    .send()
                    .await;
                if let Ok(info) = info
                    && let Ok(body) = info.json::<serde_json::Value>().await
                {
                    self.version = body["data"]["version"].as_str().unwrap_or("?").to_owned();
                }
                return self.wait_scraping(&http, deadline).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("prometheus was not ready within {READY_WITHIN:?}"))
    }

    /// Waits for the first scrape of the canary's address (nothing answers there yet). Targets
    /// reach the scrape loop only at the discovery manager's next tick, up to 5 s after start:
    /// a canary started sooner would have no samples at its first measurement.
    async fn wait_scraping(&self, http: &reqwest::Client, deadline: Instant) -> Result<(), String> {
        while Instant::now() < deadline {
            let targets = http
                .get(format!("{}/api/v1/targets?state=active", self.url))
                .send()
                .await;
            if let Ok(targets) = targets
                && let Ok(body) = targets.json::<serde_json::Value>().await
            {
                let scraped = body["data"]["activeTargets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|t| t["health"].as_str().is_some_and(|h| h != "unknown"));
                if scraped {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!(
            "prometheus did not scrape the canary's address within {READY_WITHIN:?}"
        ))
    }

    /// Stops it with SIGTERM, killing it when that fails or takes too long.
    pub async fn stop(mut self) {
        super::setup::terminate(&mut self.child).await;
    }
}
