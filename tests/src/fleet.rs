//! A whole Flotilla on loopback, as a deployment runs it: a private NATS (one node or a
//! three-node JetStream cluster), the bus set up by `flotilla init`, a real bare GitOps
//! repository, the six workers as separate processes configured by environment variables as
//! deploy/ configures them, and a PostSync hook reporting every requested env.
//!
//! Timers are short so that a run is bounded: redelivery after 5 s, sweeps every second, and a
//! canary lease of 3 s (a killed canary-analyzer's release is taken over within seconds).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::binaries::{Binaries, CLI, WORKERS};
use crate::gitops::{self, GitopsDirs};
use crate::nats::Nats;
use crate::process::WorkerProcess;
use crate::webhook::Sender;

/// The webhook secret of a run's source-listener.
pub const SECRET: &str = "suite-webhook-secret";

/// What kind of fleet to start.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Nodes of the NATS cluster: 1, or 3 with every stream and bucket replicated 3 times.
    pub nodes: usize,
    /// The source repositories (`owner/name`); each one's app is in production.
    pub repos: Vec<String>,
    /// `FLOTILLA_ACK_WAIT` of every worker: how long a killed worker's event waits.
    pub ack_wait: Duration,
    /// `RUST_LOG` of every worker.
    pub log: String,
    /// More settings of one worker: `(worker, variable, value)`.
    pub extra_env: Vec<(String, String, String)>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            nodes: 1,
            repos: vec!["acme/ping".into(), "acme/pong".into(), "acme/api".into()],
            ack_wait: Duration::from_secs(5),
            log: "info".into(),
            extra_env: Vec::new(),
        }
    }
}

impl FleetConfig {
    /// The app of each repo, as builder-trigger names it by default (the repo's name).
    pub fn apps(&self) -> Vec<String> {
        self.repos
            .iter()
            .map(|r| r.rsplit('/').next().unwrap_or(r).to_lowercase())
            .collect()
    }
}

/// A running fleet; everything stops and is removed on drop.
#[derive(Debug)]
pub struct Fleet {
    pub config: FleetConfig,
    pub nats: Nats,
    pub client: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    pub workers: BTreeMap<String, WorkerProcess>,
    pub gitops: GitopsDirs,
    pub binaries: Binaries,
    hook: Option<(CancellationToken, JoinHandle<()>)>,
    dir: Option<TempDir>,
    root: PathBuf,
    keep: bool,
}

impl Fleet {
    /// Starts NATS, sets the bus up, seeds the GitOps repository and starts the six workers;
    /// returns once every worker is ready.
    pub async fn start(config: FleetConfig) -> Result<Fleet> {
        let binaries = Binaries::locate()?;
        let dir = tempfile::Builder::new()
            .prefix("flotilla-fleet-")
            .tempdir()
            .context("the fleet's temp dir")?;
        let nats = if config.nodes > 1 {
            Nats::cluster(config.nodes)?
        } else {
            Nats::single()?
        };
        let client = nats.connect().await?;
        nats.wait_jetstream(&client).await?;
        init(&binaries, &nats, config.nodes).await?;
        let gitops = GitopsDirs::under(dir.path());
        gitops::seed(&gitops.remote, &config.apps())?;
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs)?;
        let mut workers = BTreeMap::new();
        for name in WORKERS {
            let env = worker_env(name, &config, &nats, &gitops, dir.path());
            let port = flotilla_testing::free_port();
            let mut env = env;
            env.push(("FLOTILLA_HTTP_ADDR".into(), format!("127.0.0.1:{port}")));
            let worker = WorkerProcess::new(name, binaries.path(name), env, port, &logs);
            workers.insert(name.to_owned(), worker);
        }
        for worker in workers.values_mut() {
            worker.start()?;
        }
        for worker in workers.values_mut() {
            if let Err(e) = worker.wait_ready().await {
                // A free port picked for its probes can be taken before the worker binds it
                // (by any connection's ephemeral port): another one, once.
                if !format!("{e:#}").contains("Address already in use") {
                    return Err(e);
                }
                worker.set_http_port(flotilla_testing::free_port());
                worker.start()?;
                worker.wait_ready().await?;
            }
        }
        let js = async_nats::jetstream::new(client.clone());
        let mut fleet = Fleet {
            config,
            nats,
            client,
            js,
            workers,
            gitops,
            binaries,
            hook: None,
            root: dir.path().to_path_buf(),
            dir: Some(dir),
            keep: false,
        };
        fleet.start_hook()?;
        Ok(fleet)
    }

    fn start_hook(&mut self) -> Result<()> {
        let stop = CancellationToken::new();
        let url = self.worker("sync-watcher")?.base_url();
        let task = tokio::spawn(crate::hook::run(self.js.clone(), url, stop.clone()));
        self.hook = Some((stop, task));
        Ok(())
    }

    pub fn worker(&self, name: &str) -> Result<&WorkerProcess> {
        self.workers
            .get(name)
            .with_context(|| format!("no worker {name}"))
    }

    pub fn worker_mut(&mut self, name: &str) -> Result<&mut WorkerProcess> {
        self.workers
            .get_mut(name)
            .with_context(|| format!("no worker {name}"))
    }

    /// A sender of signed GitHub deliveries to the fleet's source-listener.
    pub fn sender(&self) -> Result<Sender> {
        Sender::new(&self.worker("source-listener")?.base_url(), SECRET)
    }

    /// kill -9 of a worker, then a start as an orchestrator would restart it; returns once it
    /// is ready again.
    pub async fn crash_and_restart(&mut self, name: &str, down_for: Duration) -> Result<()> {
        let worker = self.worker_mut(name)?;
        worker.kill().await?;
        tokio::time::sleep(down_for).await;
        worker.start()?;
        worker.wait_ready().await
    }

    /// Workers that exited on their own (none should).
    pub fn exited(&mut self) -> Vec<String> {
        self.workers
            .values_mut()
            .filter_map(|w| w.exited().map(|s| format!("{} ({s})", w.name)))
            .collect()
    }

    /// Where the workers' logs are.
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// Keeps the run's directory (workers' logs, GitOps repository, and under `nats/` the
    /// servers' logs and stores) when the fleet is dropped, for a failure to be looked into;
    /// returns where it is.
    pub fn keep_dir(&mut self) -> PathBuf {
        self.keep = true;
        if let Some(nats) = self.nats.keep_dir() {
            let _ = std::os::unix::fs::symlink(nats, self.root.join("nats"));
        }
        self.root.clone()
    }

    fn stop_hook(&mut self) {
        if let Some((stop, task)) = self.hook.take() {
            stop.cancel();
            task.abort();
        }
    }

    /// SIGTERM to every worker: each must drain and exit 0.
    pub async fn stop(mut self) -> Result<()> {
        self.stop_hook();
        let mut failures = Vec::new();
        for worker in self.workers.values_mut() {
            match worker.terminate(Duration::from_secs(40)).await {
                Ok(Some(0)) => {}
                Ok(code) => failures.push(format!("{} exited with {code:?}", worker.name)),
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        if !failures.is_empty() {
            bail!("workers did not stop cleanly: {}", failures.join("; "));
        }
        Ok(())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop_hook();
        if self.keep
            && let Some(dir) = self.dir.take()
        {
            let _ = dir.keep();
        }
    }
}

/// `flotilla init`, with `--replicas 3` on a cluster; retried while the cluster settles (R3
/// assets need every node up and routed).
async fn init(binaries: &Binaries, nats: &Nats, nodes: usize) -> Result<()> {
    let replicas = if nodes >= 3 { "3" } else { "1" };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let output = tokio::process::Command::new(binaries.path(CLI))
            .args(["init", "--replicas", replicas])
            .env("NATS_URL", nats.url())
            .env("RUST_LOG", "warn")
            .output()
            .await
            .context("run flotilla init")?;
        if output.status.success() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "flotilla init --replicas {replicas} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The environment of one worker: NATS, the GitOps repository, and its own settings.
fn worker_env(
    name: &str,
    config: &FleetConfig,
    nats: &Nats,
    gitops: &GitopsDirs,
    home: &std::path::Path,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("NATS_URL".into(), nats.url()),
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
        // No ~/.kube, no ~/.gitconfig: nothing of the machine's user leaks into the run.
        ("HOME".into(), home.display().to_string()),
        ("RUST_LOG".into(), config.log.clone()),
        (
            "FLOTILLA_ACK_WAIT".into(),
            humantime::format_duration(config.ack_wait).to_string(),
        ),
        ("FLOTILLA_SHUTDOWN_GRACE".into(), "10s".into()),
        ("FLOTILLA_CONNECT_DEADLINE".into(), "60s".into()),
    ];
    let gitops_env = [
        ("FLOTILLA_GITOPS_URL", gitops.remote.display().to_string()),
        ("FLOTILLA_GITOPS_DIR", gitops.work.display().to_string()),
    ];
    let own: Vec<(&str, String)> = match name {
        "source-listener" => vec![("GITHUB_WEBHOOK_SECRET", SECRET.into())],
        "builder-trigger" => vec![
            ("FLOTILLA_BUILD_COMMAND", "true".into()),
            ("FLOTILLA_TEST_COMMAND", "true".into()),
        ],
        "env-manager" => {
            let mut own = gitops_env.to_vec();
            own.push(("FLOTILLA_ENV_TTL", "1h".into()));
            own
        }
        "sync-watcher" => {
            let mut own = gitops_env.to_vec();
            own.extend([
                ("FLOTILLA_KUBE", "off".into()),
                ("FLOTILLA_READY_SWEEP", "1s".into()),
                ("FLOTILLA_READY_TIMEOUT", "5m".into()),
            ]);
            own
        }
        "canary-analyzer" => vec![
            ("FLOTILLA_KUBE", "off".into()),
            ("FLOTILLA_CANARY_LEASE", "3s".into()),
            ("FLOTILLA_CANARY_SWEEP", "1s".into()),
        ],
        "reaper" => {
            let mut own = gitops_env.to_vec();
            own.extend([
                ("FLOTILLA_REAP_KUBE", "off".into()),
                ("FLOTILLA_REAP_SWEEP", "1s".into()),
                ("FLOTILLA_ENV_TTL", "1h".into()),
            ]);
            own
        }
        _ => Vec::new(),
    };
    env.extend(own.into_iter().map(|(k, v)| (k.to_owned(), v)));
    env.extend(
        config
            .extra_env
            .iter()
            .filter(|(worker, _, _)| worker == name)
            .map(|(_, k, v)| (k.clone(), v.clone())),
    );
    env
}
