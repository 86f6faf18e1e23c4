//! NATS connection options, read from flags or the environment, and connecting with errors that
//! say which URL failed and what to do about it.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::{Client, ConnectOptions};

use crate::error::BusError;

pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// How to reach NATS. Every Flotilla binary takes these, as flags or environment variables.
#[derive(Debug, Clone, clap::Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma separated.
    #[arg(long = "nats-url", env = "NATS_URL", default_value = DEFAULT_NATS_URL, global = true)]
    pub url: String,
    /// NATS credentials file (JWT and NKey seed), as `nsc` writes them.
    #[arg(long = "nats-creds", env = "NATS_CREDS", global = true)]
    pub creds: Option<PathBuf>,
    /// NATS user name (with --nats-password).
    #[arg(long = "nats-user", env = "NATS_USER", global = true)]
    pub user: Option<String>,
    /// NATS password (with --nats-user).
    #[arg(
        long = "nats-password",
        env = "NATS_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub password: Option<String>,
    /// NATS authentication token.
    #[arg(
        long = "nats-token",
        env = "NATS_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    /// CA certificate (PEM) to verify the server with; turns TLS on.
    #[arg(long = "nats-tls-ca", env = "NATS_TLS_CA", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS, with --nats-tls-key.
    #[arg(long = "nats-tls-cert", env = "NATS_TLS_CERT", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[arg(long = "nats-tls-key", env = "NATS_TLS_KEY", global = true)]
    pub tls_key: Option<PathBuf>,
    /// Time allowed for the first connection.
    #[arg(long = "nats-connect-timeout", env = "NATS_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub connect_timeout: Duration,
}

impl Default for NatsArgs {
    fn default() -> Self {
        NatsArgs {
            url: DEFAULT_NATS_URL.to_owned(),
            creds: None,
            user: None,
            password: None,
            token: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl NatsArgs {
    /// Options for `url` only, e.g. a test server.
    pub fn for_url(url: impl Into<String>) -> NatsArgs {
        NatsArgs {
            url: url.into(),
            ..NatsArgs::default()
        }
    }

    async fn options(&self, name: &str) -> Result<ConnectOptions, BusError> {
        let mut options = match &self.creds {
            Some(path) => ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| BusError::Options(format!("NATS_CREDS {}: {e}", path.display())))?,
            None => ConnectOptions::new(),
        };
        match (&self.user, &self.password) {
            (Some(user), Some(password)) => {
                options = options.user_and_password(user.clone(), password.clone());
            }
            (None, None) => {}
            _ => {
                return Err(BusError::Options(
                    "NATS_USER and NATS_PASSWORD go together; set both or neither".into(),
                ));
            }
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                options = options
                    .add_client_certificate(cert.clone(), key.clone())
                    .require_tls(true);
            }
            (None, None) => {}
            _ => {
                return Err(BusError::Options(
                    "NATS_TLS_CERT and NATS_TLS_KEY go together; set both or neither".into(),
                ));
            }
        }
        Ok(options
            .name(name)
            .connection_timeout(self.connect_timeout)
            // Outages are ridden out by reconnecting forever; the ack waits bound each call.
            .max_reconnects(None))
    }

    /// Connects once; fails fast with the URL and a hint when no server answers.
    pub async fn connect(&self, name: &str) -> Result<Client, BusError> {
        let servers = self.servers()?;
        let options = self.options(name).await?;
        options
            .connect(servers)
            .await
            .map_err(|e| BusError::Connect {
                url: self.url.clone(),
                reason: e.to_string(),
                hint: "start a server with `nats-server -js` (or `flotilla up`), or point NATS_URL / --nats-url at one",
            })
    }

    /// The servers `url` names: one URL, or a cluster's as a comma-separated list (async-nats
    /// parses a string as a single URL, and a list then fails with "invalid port number").
    pub fn servers(&self) -> Result<Vec<async_nats::ServerAddr>, BusError> {
        let servers = self
            .url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|server| {
                server.parse::<async_nats::ServerAddr>().map_err(|e| {
                    BusError::Options(format!("NATS_URL: {server:?} is not a NATS URL: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err(BusError::Options("NATS_URL names no server".into()));
        }
        Ok(servers)
    }

    /// Connects, retrying with capped backoff until `deadline` passes: a worker may start before
    /// the server in a cluster.
    pub async fn connect_with_retry(
        &self,
        name: &str,
        deadline: Duration,
    ) -> Result<Client, BusError> {
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(200);
        loop {
            match self.connect(name).await {
                Ok(client) => return Ok(client),
                Err(e @ BusError::Options(_)) => return Err(e),
                Err(e) if started.elapsed() + delay > deadline => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?delay, "NATS not reachable yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
