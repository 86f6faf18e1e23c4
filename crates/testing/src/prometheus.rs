//! A private Prometheus (Debian's `prometheus` package) on a free loopback port, scraping the
//! given targets every second into a temporary store; killed and removed when dropped. Canary
//! analysis is tested against it as users run it, not against a double.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::free_port;

/// How long Prometheus may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// A running private Prometheus.
pub struct Prometheus {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("url", &self.url())
            .finish()
    }
}

impl Prometheus {
    /// `PROMETHEUS_BIN`, else `prometheus` from PATH; `None` when neither exists (the caller says
    /// the test is skipped: `scripts/test` installs it).
    pub fn binary() -> Option<PathBuf> {
        if let Some(bin) = std::env::var_os("PROMETHEUS_BIN") {
            return Some(PathBuf::from(bin));
        }
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("prometheus"))
                .find(|candidate| candidate.is_file())
        })
    }

    /// Starts Prometheus scraping `targets` (job `ping`) every second, and waits until it is
    /// ready. Errors say what failed (no binary, did not come up, and its log).
    pub async fn start(targets: &[SocketAddr]) -> anyhow::Result<Prometheus> {
        let binary = Prometheus::binary().ok_or_else(|| {
            anyhow::anyhow!("prometheus is not installed (scripts/test installs it)")
        })?;
        let dir = tempfile::Builder::new()
            .prefix("flotilla-prometheus-")
            .tempdir()?;
        let targets = targets
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let config = dir.path().join("prometheus.yml");
        std::fs::File::create(&config)?.write_all(
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: ping\n    static_configs:\n      - targets: [{targets}]\n"
            )
            .as_bytes(),
        )?;
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let prometheus = Prometheus {
            child,
            port,
            _dir: dir,
        };
        prometheus.wait_ready().await?;
        Ok(prometheus)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_WITHIN;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        while Instant::now() < deadline {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let request = "GET /-/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
                if stream.write_all(request.as_bytes()).await.is_ok() {
                    let mut answer = Vec::new();
                    let _ = stream.read_to_end(&mut answer).await;
                    if answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200") {
                        return Ok(());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log =
            std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default();
        anyhow::bail!("prometheus was not ready within {READY_WITHIN:?}:\n{log}")
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
