//! A nats-server that `flotilla up` starts when none answers: Debian's binary from PATH, on the
//! loopback port of NATS_URL, with JetStream storing under the data dir. Stopped with `up`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_nats::Client;
use flotilla_bus::NatsArgs;
use tokio::process::{Child, Command};

use crate::error::CliError;

/// A nats-server child process.
pub struct LocalNats {
    child: Child,
    pub store: PathBuf,
    pub log: PathBuf,
}

/// The port of a single loopback NATS URL, the only kind `up` may start a server for.
pub fn loopback_port(url: &str) -> Option<u16> {
    let rest = url.trim().strip_prefix("nats://").unwrap_or(url.trim());
    if rest.contains(',') || rest.contains('@') {
        return None;
    }
    let (host, port) = rest.rsplit_once(':')?;
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
        .then(|| port.trim_end_matches('/').parse().ok())
        .flatten()
}

impl LocalNats {
    /// Starts nats-server on `port` and connects to it.
    pub async fn start(
        nats: &NatsArgs,
        port: u16,
        data_dir: &Path,
    ) -> Result<(LocalNats, Client), CliError> {
        let store = data_dir.join("nats");
        let log = data_dir.join("nats-server.log");
        std::fs::create_dir_all(&store).map_err(|source| CliError::Input {
            what: format!("data dir {}", store.display()),
            source,
        })?;
        let binary = nats_server_binary().ok_or_else(|| {
            CliError::Usage(
                "no NATS server answers and nats-server is not installed: install it \
                 (apt-get install nats-server) or point NATS_URL at a server"
                    .into(),
            )
        })?;
        let child = Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store)
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: Ctrl-C in the terminal reaches `up`, which then stops the
            // server itself after the last acks are flushed.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| CliError::System {
                what: "start nats-server",
                source,
            })?;
        let mut local = LocalNats { child, store, log };
        let client = local.connect(nats).await?;
        Ok((local, client))
    }

    async fn connect(&mut self, nats: &NatsArgs) -> Result<Client, CliError> {
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(CliError::Usage(format!(
                    "nats-server exited ({status}) before it was ready; its log ({}) ends:\n{}",
                    self.log.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )));
            }
            if let Ok(client) = nats.connect("flotilla-up").await {
                return Ok(client);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(CliError::Usage(format!(
            "nats-server did not answer on {} within 10s; see {}",
            nats.url,
            self.log.display()
        )))
    }

    /// Stops the server with SIGTERM (it flushes its store), killing it if that fails.
    pub async fn stop(mut self) {
        let stopped = match self.child.id() {
            Some(pid) => Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await
                .is_ok_and(|s| s.success()),
            None => false,
        };
        if !stopped {
            let _ = self.child.start_kill();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// nats-server from PATH, or Debian's /usr/sbin/nats-server (not on every user's PATH).
fn nats_server_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let debian = PathBuf::from("/usr/sbin/nats-server");
        debian.is_file().then_some(debian)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_single_loopback_url_gets_a_local_server() {
        assert_eq!(loopback_port("nats://127.0.0.1:4222"), Some(4222));
        assert_eq!(loopback_port("localhost:5222"), Some(5222));
        assert_eq!(loopback_port("nats://nats.prod:4222"), None);
        assert_eq!(loopback_port("nats://a:1,nats://b:2"), None);
        assert_eq!(loopback_port("nats://user:pw@127.0.0.1:4222"), None);
    }
}
