//! Workers run in-process for a test: in a process of their own on a free loopback port, ready
//! when handed back, stopped as SIGTERM would stop them.

use std::time::Duration;

/// A private server with Flotilla's streams and the env registry (as `flotilla init` makes
/// them), and the bus on it. Logs go to the test's output, shown under a failing test only.
pub async fn bus() -> anyhow::Result<(crate::NatsServer, flotilla_bus::Bus)> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .with_test_writer()
        .try_init();
    let server = crate::NatsServer::start();
    let bus = flotilla_bus::Bus::new(server.connect().await, flotilla_bus::Names::default());
    bus.ensure_streams(&flotilla_bus::topology::StreamLimits::default())
        .await?;
    Ok((server, bus))
}

/// How long a test waits for a process it started to become ready.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A worker process running in-process on a free loopback port, stopped by [`Served::shutdown`].
#[derive(Debug)]
pub struct Served {
    running: flotilla_bus::Running,
}

impl Served {
    /// The process's health and metrics.
    pub fn health(&self) -> &flotilla_bus::Health {
        self.running.health()
    }

    /// Where its HTTP server listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.running.addr()
    }

    /// Stops it as SIGTERM would and waits until it has drained.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        Ok(self.running.stop().await?)
    }
}

/// Serves `process` on a free loopback port and returns once `/readyz` would answer 200.
pub async fn serve(process: flotilla_bus::Process) -> anyhow::Result<Served> {
    serve_on(process, std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Serves `process` on `addr` and returns once `/readyz` would answer 200.
pub async fn serve_on(
    process: flotilla_bus::Process,
    addr: std::net::SocketAddr,
) -> anyhow::Result<Served> {
    let running = process.serve(addr).await?;
    if let Err(why) = running.ready(READY_WITHIN).await {
        let _ = running.stop().await;
        anyhow::bail!("never became ready: {why}");
    }
    Ok(Served { running })
}

/// `config` with timings for tests: retries after 50 ms, a 5 s grace on shutdown.
pub fn quick(mut config: flotilla_bus::WorkerConfig) -> flotilla_bus::WorkerConfig {
    config.backoff = Duration::from_millis(50);
    config.grace = Duration::from_secs(5);
    config
}

/// Runs `handler` as worker `config` in a process of its own on `bus`; ready when returned.
pub async fn run_worker(
    bus: &flotilla_bus::Bus,
    config: flotilla_bus::WorkerConfig,
    handler: impl flotilla_bus::Handler,
) -> anyhow::Result<Served> {
    let mut process = flotilla_bus::Process::new(bus.clone());
    process.grace(config.grace).worker(config, handler);
    serve(process).await
}
