//! One worker binary run as a separate process: started with its environment, its output kept
//! in a log file, killed with SIGKILL and started again as an orchestrator would restart it,
//! and measured (resident memory from `/proc`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

/// How long a worker may take to answer `/readyz` 200 after it starts.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// A worker process and what it takes to start it again.
#[derive(Debug)]
pub struct WorkerProcess {
    pub name: String,
    binary: PathBuf,
    env: Vec<(String, String)>,
    /// `FLOTILLA_HTTP_ADDR`'s port: probes, metrics and the worker's routes.
    pub http_port: u16,
    log: PathBuf,
    child: Option<Child>,
    /// The running process's id (0 while it is down), shared with whoever samples it.
    pid: Arc<AtomicU32>,
    /// How many times it was started.
    pub starts: u32,
}

impl WorkerProcess {
    pub fn new(
        name: &str,
        binary: PathBuf,
        env: Vec<(String, String)>,
        http_port: u16,
        log_dir: &Path,
    ) -> WorkerProcess {
        WorkerProcess {
            name: name.to_owned(),
            binary,
            env,
            http_port,
            log: log_dir.join(format!("{name}.log")),
            child: None,
            pid: Arc::new(AtomicU32::new(0)),
            starts: 0,
        }
    }

    /// Moves its probes to `port` (`FLOTILLA_HTTP_ADDR`), for its next start.
    pub fn set_http_port(&mut self, port: u16) {
        self.http_port = port;
        self.env.retain(|(k, _)| k != "FLOTILLA_HTTP_ADDR");
        self.env
            .push(("FLOTILLA_HTTP_ADDR".into(), format!("127.0.0.1:{port}")));
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Starts the binary; its stdout and stderr are appended to its log.
    pub fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("open {}", self.log.display()))?;
        let err = log.try_clone()?;
        let child = Command::new(&self.binary)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", self.binary.display()))?;
        self.pid.store(child.id().unwrap_or(0), Ordering::SeqCst);
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// Waits until `/readyz` answers 200; fails early when the process exits.
    pub async fn wait_ready(&mut self) -> Result<()> {
        let url = format!("{}/readyz", self.base_url());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "{} exited with {status} before it was ready; its log:\n{}",
                    self.name,
                    tail(&self.log, 30)
                );
            }
            let ready = client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{} not ready within {READY_WITHIN:?}; its log:\n{}",
                    self.name,
                    tail(&self.log, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no drain, no goodbye, as a node lost or an OOM kill.
    pub async fn kill(&mut self) -> Result<()> {
        self.pid.store(0, Ordering::SeqCst);
        if let Some(mut child) = self.child.take() {
            child.start_kill().ok();
            child.wait().await.context("reap the killed worker")?;
        }
        Ok(())
    }

    /// SIGTERM, then waits for the exit; the exit code.
    pub async fn terminate(&mut self, within: Duration) -> Result<Option<i32>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        self.pid.store(0, Ordering::SeqCst);
        if let Some(pid) = child.id() {
            let pid = rustix::process::Pid::from_raw(pid as i32).context("a live pid")?;
            rustix::process::kill_process(pid, rustix::process::Signal::TERM).ok();
        }
        match tokio::time::timeout(within, child.wait()).await {
            Ok(status) => Ok(status?.code()),
            Err(_) => {
                child.start_kill().ok();
                child.wait().await.ok();
                bail!("{} did not stop within {within:?} of SIGTERM", self.name)
            }
        }
    }

    /// Whether it exited on its own (it should never).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Resident memory in bytes (`VmRSS`), while it runs.
    pub fn rss(&self) -> Option<u64> {
        rss_of(self.pid()?)
    }

    /// A handle on its current process id, which follows restarts (0 while it is down).
    pub fn pid_cell(&self) -> Arc<AtomicU32> {
        self.pid.clone()
    }
}

/// `VmRSS` of process `pid`, from `/proc/<pid>/status`.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
