//! Private nats-servers on loopback: one node, or a three-node JetStream cluster, each with its
//! own temporary store, that a run can kill -9 and start again on the same ports and store.
//!
//! A cluster node needs a config file (`server_name`, `jetstream { store_dir }`, `cluster {
//! name, listen, routes }`); the command line has no flag for a server name. Every node also
//! serves the monitoring port, whose `/jsz?streams=true` tells what that node itself stores:
//! the only way to see that a restarted replica caught up (stream info answers from the leader).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tempfile::TempDir;

/// How long a node may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One nats-server.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub port: u16,
    pub monitor_port: u16,
    route_port: Option<u16>,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn log(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.name))
    }

    fn config(&self, routes: &[u16]) -> String {
        let store = self.dir.join("store");
        let mut text = format!(
            "server_name: {name}\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor}\n\
             jetstream {{ store_dir: \"{store}\" }}\n",
            name = self.name,
            port = self.port,
            monitor = self.monitor_port,
            store = store.display(),
        );
        if let Some(route_port) = self.route_port {
            let routes: Vec<String> = routes
                .iter()
                .map(|p| format!("nats-route://127.0.0.1:{p}"))
                .collect();
            text.push_str(&format!(
                "cluster {{\n  name: flotilla\n  listen: 127.0.0.1:{route_port}\n  routes: [{}]\n}}\n",
                routes.join(", ")
            ));
        }
        text
    }

    fn spawn(&mut self) -> Result<()> {
        let log = self.log();
        // The log is read for "Server is ready": a previous run's line must not count.
        let _ = std::fs::remove_file(&log);
        let bin = flotilla_testing::nats_server_binary();
        let child = Command::new(&bin)
            .arg("-c")
            .arg(self.dir.join("server.conf"))
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "run {} (apt-get install nats-server, or set NATS_SERVER_BIN)",
                    bin.display()
                )
            })?;
        self.child = Some(child);
        Ok(())
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ready = std::fs::read_to_string(self.log())
                .map(|text| text.contains("Server is ready"))
                .unwrap_or(false);
            if ready && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let text = std::fs::read_to_string(self.log()).unwrap_or_default();
                bail!("nats-server {} exited with {status}:\n{text}", self.name);
            }
            if Instant::now() > deadline {
                bail!(
                    "nats-server {} not ready within {START_TIMEOUT:?}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash or a lost machine: the store stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What this node itself stores of `stream`: `(messages, last_seq)`, from its monitoring
    /// port; `None` when it has no copy (yet).
    pub async fn local_stream_state(&self, stream: &str) -> Result<Option<(u64, u64)>> {
        let url = format!(
            "http://127.0.0.1:{}/jsz?streams=true&accounts=true",
            self.monitor_port
        );
        let jsz: Value = reqwest::get(&url)
            .await
            .with_context(|| format!("GET {url}"))?
            .json()
            .await
            .with_context(|| format!("{url}: not JSON"))?;
        let streams = jsz["account_details"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|account| account["stream_detail"].as_array().into_iter().flatten());
        for detail in streams {
            if detail["name"] == stream {
                let state = &detail["state"];
                return Ok(Some((
                    state["messages"].as_u64().unwrap_or(0),
                    state["last_seq"].as_u64().unwrap_or(0),
                )));
            }
        }
        Ok(None)
    }
}

/// One node, or a cluster of nodes routed to each other.
#[derive(Debug)]
pub struct Nats {
    pub nodes: Vec<Node>,
    dir: Option<TempDir>,
    keep: bool,
}

impl Nats {
    /// A single server with JetStream.
    pub fn single() -> Result<Nats> {
        Nats::start(1)
    }

    /// `size` servers forming one JetStream cluster (`size` ≥ 2; 3 for replicated streams).
    pub fn cluster(size: usize) -> Result<Nats> {
        Nats::start(size)
    }

    fn start(size: usize) -> Result<Nats> {
        let dir = tempfile::Builder::new()
            .prefix("flotilla-nats-")
            .tempdir()
            .context("temp dir for nats-server")?;
        let clustered = size > 1;
        let mut nodes: Vec<Node> = (0..size)
            .map(|i| {
                let node_dir = dir.path().join(format!("n{i}"));
                std::fs::create_dir_all(&node_dir)?;
                Ok(Node {
                    name: format!("n{i}"),
                    port: flotilla_testing::free_port(),
                    monitor_port: flotilla_testing::free_port(),
                    route_port: clustered.then(flotilla_testing::free_port),
                    dir: node_dir,
                    child: None,
                })
            })
            .collect::<Result<_>>()?;
        let routes: Vec<u16> = nodes.iter().filter_map(|n| n.route_port).collect();
        for node in &mut nodes {
            std::fs::write(node.dir.join("server.conf"), node.config(&routes))?;
            node.spawn()?;
        }
        for node in &mut nodes {
            node.wait_ready()?;
        }
        Ok(Nats {
            nodes,
            dir: Some(dir),
            keep: false,
        })
    }

    /// Every node's URL, comma separated, as `NATS_URL` takes a cluster.
    pub fn url(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(Node::url).collect();
        urls.join(",")
    }

    /// A client that knows every node (and fails over between them).
    pub async fn connect(&self) -> Result<async_nats::Client> {
        let servers = flotilla_bus::NatsArgs::for_url(self.url()).servers()?;
        async_nats::ConnectOptions::new()
            .max_reconnects(None)
            .connect(servers)
            .await
            .with_context(|| format!("connect to {}", self.url()))
    }

    /// Waits until JetStream answers through `client` (a cluster elects its meta leader after
    /// the routes are up).
    pub async fn wait_jetstream(&self, client: &async_nats::Client) -> Result<()> {
        // Short request timeouts: before the meta leader is elected a request goes unanswered.
        let js = async_nats::jetstream::ContextBuilder::new()
            .timeout(Duration::from_millis(500))
            .build(client.clone());
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            let answer: Result<Value, _> = js.request("INFO", &serde_json::json!({})).await;
            match answer {
                Ok(info) if info.get("error").is_none() => return Ok(()),
                Ok(_) | Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(info) => bail!("JetStream not ready: {info}"),
                Err(e) => bail!("JetStream not ready: {e}"),
            }
        }
    }

    pub fn node(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// SIGKILL of node `index`; its store stays.
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// Starts node `index` again on its ports with its store.
    pub fn restart(&mut self, index: usize) -> Result<()> {
        let node = &mut self.nodes[index];
        node.kill();
        node.spawn()?;
        node.wait_ready()
    }

    /// The server name of `stream`'s leader, from stream info (`cluster.leader`).
    pub async fn stream_leader(
        js: &async_nats::jetstream::Context,
        stream: &str,
    ) -> Result<String> {
        let mut stream = js
            .get_stream(stream)
            .await
            .with_context(|| format!("stream {stream}"))?;
        let info = stream.info().await.context("stream info")?;
        info.cluster
            .as_ref()
            .and_then(|c| c.leader.clone())
            .context("the stream has no leader")
    }
}

impl Nats {
    /// Keeps the servers' directory (each node's log and store) when they are dropped, for a
    /// failure to be looked into; returns where it is.
    pub fn keep_dir(&mut self) -> Option<PathBuf> {
        self.keep = true;
        self.dir.as_ref().map(|d| d.path().to_owned())
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        if self.keep
            && let Some(dir) = self.dir.take()
        {
            let _ = dir.keep();
        }
    }
}
