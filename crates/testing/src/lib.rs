//! Test support: a private `nats-server -js` per test.
//!
//! Each [`NatsServer`] runs the machine's `nats-server` on a free loopback port with its own
//! temporary JetStream store, and kills it and removes the store when dropped. Tests open with two
//! lines: start a server, connect to it. [`stored_messages`] and [`eventually`] read back what a
//! test caused, without sleeping for a fixed time. [`run_worker`] and [`serve`] run workers
//! in-process, on the same process runtime as their binaries, until the test stops them.
//!
//! ```no_run
//! # async fn t() {
//! let server = flotilla_testing::NatsServer::start();
//! let client = server.connect().await;
//! # }
//! ```

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

mod process;
mod prometheus;

pub use process::{Served, bus, quick, run_worker, serve, serve_on};
pub use prometheus::Prometheus;

/// How long a server may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running private `nats-server` with JetStream.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl std::fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsServer")
            .field("url", &self.url())
            .field("store", &self.store_dir())
            .finish()
    }
}

impl NatsServer {
    /// Starts a server on a free loopback port. Panics with a clear message when `nats-server`
    /// is not installed or does not come up: a test cannot run without it.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("flotilla-nats-")
            .tempdir()
            .expect("create a temp dir for nats-server");
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            dir,
        };
        server.spawn();
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The loopback port the server listens on; it stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory; it survives restarts and is removed on drop.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("jetstream")
    }

    /// A connected client with default options.
    pub async fn connect(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .unwrap_or_else(|e| panic!("connect to test nats-server at {}: {e}", self.url()))
    }

    /// Kills the server (SIGKILL) without removing its store, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let log = self.dir.path().join("nats-server.log");
        let _ = std::fs::remove_file(&log);
        let bin = nats_server_binary();
        let child = Command::new(&bin)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(self.store_dir())
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {}: {e}. Install it (apt-get install nats-server) or set NATS_SERVER_BIN",
                    bin.display()
                )
            });
        self.child = Some(child);
        self.wait_ready(&log);
    }

    fn wait_ready(&mut self, log: &Path) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ready = std::fs::read_to_string(log)
                .map(|text| text.contains("Server is ready"))
                .unwrap_or(false);
            if ready && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                panic!("nats-server exited with {status} before it was ready:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "nats-server on port {} was not ready within {START_TIMEOUT:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind a free loopback port")
}

/// `NATS_SERVER_BIN`, else `nats-server` from PATH, else Debian's `/usr/sbin/nats-server`.
pub fn nats_server_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    });
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
}

/// Every message stored under `filter` in `stream`, read through a fresh ephemeral consumer;
/// polls until there are at least `want` of them or `within` has passed, then returns what
/// there is (the caller asserts on it).
pub async fn stored_messages(
    js: &async_nats::jetstream::Context,
    stream: &str,
    filter: &str,
    want: usize,
    within: Duration,
) -> Result<Vec<async_nats::jetstream::Message>, async_nats::Error> {
    use async_nats::jetstream::consumer::{DeliverPolicy, pull};
    use futures::StreamExt;

    let stream = js.get_stream(stream).await?;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let consumer = stream
            .create_consumer(pull::Config {
                filter_subject: filter.to_owned(),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await?;
        let mut batch = consumer
            .fetch()
            .max_messages(10_000)
            .expires(Duration::from_millis(300))
            .messages()
            .await?;
        let mut messages = Vec::new();
        while let Some(message) = batch.next().await {
            messages.push(message?);
        }
        if messages.len() >= want || tokio::time::Instant::now() >= deadline {
            return Ok(messages);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `check` every 20 ms until it holds or `within` passes; returns whether it held.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`eventually`] for a check that must await (an HTTP request, say); checks every 100 ms.
pub async fn eventually_async<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The events stored under `filter` on the bus's main stream, decoded from their envelopes;
/// polls as [`stored_messages`] does.
pub async fn stored_events(
    bus: &flotilla_bus::Bus,
    filter: &str,
    want: usize,
    within: Duration,
) -> Result<Vec<flotilla_bus::Event>, async_nats::Error> {
    let stream = bus.names().stream.clone();
    stored_messages(bus.jetstream(), &stream, filter, want, within)
        .await?
        .iter()
        .map(|m| {
            flotilla_bus::Event::from_parts(&m.subject, m.headers.as_ref(), m.payload.clone())
                .map_err(Into::into)
        })
        .collect()
}

/// Exactly `want` events under `filter`: waits up to `within` for them, then a second more so
/// that an extra one (the bug a test looks for) would show.
pub async fn stored_exactly(
    bus: &flotilla_bus::Bus,
    filter: &str,
    want: usize,
    within: Duration,
) -> Result<Vec<flotilla_bus::Event>, async_nats::Error> {
    let events = stored_events(bus, filter, want, within).await?;
    if events.len() < want {
        return Err(format!("{filter}: {} of {want} events stored", events.len()).into());
    }
    let events = stored_events(bus, filter, want + 1, Duration::from_secs(1)).await?;
    if events.len() != want {
        let subjects: Vec<_> = events.iter().map(|e| e.subject.as_str()).collect();
        return Err(format!(
            "{filter}: expected {want} events, found {}: {subjects:?}",
            events.len()
        )
        .into());
    }
    Ok(events)
}
