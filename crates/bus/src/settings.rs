//! The settings every Flotilla process takes: NATS, the HTTP address, start-up and shutdown
//! deadlines.

use std::net::SocketAddr;
use std::time::Duration;

use crate::connect::NatsArgs;

/// Where a consuming worker serves its probes unless `FLOTILLA_HTTP_ADDR` says otherwise.
pub const WORKER_HTTP_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9090);
/// Where source-listener and `flotilla up` serve webhooks and probes by default.
pub const WEBHOOK_HTTP_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// Settings every Flotilla process takes, as flags or environment variables.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Address of the HTTP server: GET /healthz, /readyz, /metrics and the process's own
    /// routes [default: 127.0.0.1:9090; 127.0.0.1:8080 for source-listener and `flotilla up`].
    #[arg(long = "http-addr", env = "FLOTILLA_HTTP_ADDR", value_name = "ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// How long to keep retrying the first NATS connection at start-up.
    #[arg(long, env = "FLOTILLA_CONNECT_DEADLINE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub connect_deadline: Duration,
    /// Time allowed on SIGTERM to finish in-flight events and requests.
    #[arg(long, env = "FLOTILLA_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
}

impl ServiceArgs {
    /// The HTTP address, or this binary's default.
    pub fn http_addr_or(&self, default: SocketAddr) -> SocketAddr {
        self.http_addr.unwrap_or(default)
    }
}
