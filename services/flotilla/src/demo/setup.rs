//! Setting the demo up: its private nats-server, how the canary is measured (and said so),
//! the build and test commands it gives builder-trigger, what it says it plays, and reading
//! production's version back from git.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use flotilla_bus::NatsArgs;
use sha2::{Digest, Sha256};
use tokio::process::Child;

use super::prometheus::{self, Prometheus};
use super::screen::Screen;
use super::templates::Measure;
use super::{CanaryChoice, Parts};
use crate::error::CliError;
use crate::local_nats::LocalNats;

/// What a real build command would do, said by the demo's, which builds nothing.
pub const BUILD_COMMAND: &str = r#"echo "a real build runs here: docker build -t $FLOTILLA_IMAGE . && docker push $FLOTILLA_IMAGE (the demo builds nothing)""#;

/// The change's tests: this binary's `analysis run` of the functional test against the env.
pub fn test_command(template: &Path) -> Result<String, CliError> {
    let exe = std::env::current_exe().map_err(|source| CliError::System {
        what: "find the flotilla binary",
        source,
    })?;
    Ok(format!(
        "{} analysis run {} --arg \"url=$FLOTILLA_ENV_URL/ping\"",
        quote(&exe.display().to_string()),
        quote(&template.display().to_string())
    ))
}

/// `text` as one word for `sh`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The lines that say what the demo plays.
pub fn explain(screen: &mut Screen, env_url: &str) -> Result<(), CliError> {
    for line in [
        String::new(),
        "The demo plays what this machine lacks; its lines say `demo:` in the worker column:".into(),
        "  github         the signed webhook deliveries of two pushes and a pull request".into(),
        "  the build      a command that builds nothing (a real one builds and pushes registry/apps/ping:<version>)".into(),
        format!("  argo cd        runs ping (examples/ping) at each env's version, behind {env_url}, and prunes it"),
        "  hook           the PostSync hook: reports each synced app to sync-watcher (POST /report/{env}/{app})".into(),
        "  rollouts       Argo Rollouts: runs the canary at the released version, promotes or aborts it as canary-analyzer decides".into(),
        "  users          send the canary 20 requests a second".into(),
        "The tests are real (builder-trigger runs `flotilla analysis run`: GET $FLOTILLA_ENV_URL/ping must answer {\"value\":\"pong\"}),".into(),
        "and so is the canary analysis of the new version's metrics.".into(),
    ] {
        screen.note(line)?;
    }
    Ok(())
}

/// Prometheus when asked or installed, else the web provider; said on screen.
pub async fn measure(
    choice: CanaryChoice,
    dir: &Path,
    canary: SocketAddr,
    screen: &mut Screen,
    parts: &mut Parts,
) -> Result<Measure, CliError> {
    let web = Measure::Web {
        status_url: format!("http://{canary}/status"),
    };
    let binary = match (choice, prometheus::binary()) {
        (CanaryChoice::Web, _) => {
            screen.note(format!("  canary     web-success-rate (deploy/analysis): the web provider reads the canary's own count at http://{canary}/status"))?;
            return Ok(web);
        }
        (CanaryChoice::Prometheus, None) => {
            return Err(CliError::Usage(
                "--canary prometheus: prometheus is not installed (apt-get install prometheus)"
                    .into(),
            ));
        }
        (CanaryChoice::Auto, None) => {
            screen.note(format!("  canary     prometheus is not installed, so web-success-rate (deploy/analysis): the web provider reads the canary's own count at http://{canary}/status (apt-get install prometheus for the Prometheus path)"))?;
            return Ok(web);
        }
        (_, Some(binary)) => binary,
    };
    match Prometheus::start(&binary, &dir.join("prometheus"), canary).await {
        Ok(prometheus) => {
            let url = prometheus.url().to_owned();
            screen.note(format!(
                "  canary     success-rate (deploy/analysis) on Prometheus {} at {url}, scraping the canary at {canary}",
                prometheus.version
            ))?;
            parts.prometheus = Some(prometheus);
            Ok(Measure::Prometheus { url })
        }
        Err(why) if choice == CanaryChoice::Auto => {
            screen.note(format!("  canary     Prometheus did not start ({why}), so web-success-rate on the canary's /status"))?;
            Ok(web)
        }
        Err(why) => Err(CliError::Usage(format!("Prometheus: {why}"))),
    }
}

/// A private nats-server on a free loopback port, its store under `dir`.
pub async fn start_nats(dir: &Path) -> Result<(LocalNats, async_nats::Client, String), CliError> {
    let mut last = None;
    // A port found free can be taken before the server binds it: try another.
    for _ in 0..3 {
        let port = free_port()?;
        let url = format!("nats://127.0.0.1:{port}");
        match LocalNats::start(&NatsArgs::for_url(&url), port, dir).await {
            Ok((nats, client)) => return Ok((nats, client, url)),
            Err(e @ CliError::Usage(_)) if !nats_missing(&e) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| CliError::Usage("nats-server did not start".into())))
}

fn nats_missing(e: &CliError) -> bool {
    e.to_string().contains("not installed")
}

/// A loopback port nothing listens on.
pub fn free_port() -> Result<u16, CliError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|source| CliError::System {
            what: "find a free port",
            source,
        })
}

/// A commit id (40 hex digits) unique to this run.
pub fn sha(what: &str) -> String {
    let digest = Sha256::digest(format!("{what}:{}", uuid::Uuid::new_v4()));
    hex::encode(digest)[..40].to_owned()
}

/// Stops a child with SIGTERM, killing it when that fails or takes longer than 10 s.
pub async fn terminate(child: &mut Child) {
    let stopped = match child.id() {
        Some(pid) => tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .is_ok_and(|s| s.success()),
        None => false,
    };
    if !stopped {
        let _ = child.start_kill();
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

/// `<dir>/gitops.git`'s production version of ping, on `main`.
pub fn production_version(dir: &Path) -> Result<String, String> {
    let repo_path = dir.join("gitops.git");
    let repo = git2::Repository::open_bare(&repo_path).map_err(|e| e.to_string())?;
    let commit = repo
        .find_reference("refs/heads/main")
        .and_then(|r| r.peel_to_commit())
        .map_err(|e| e.to_string())?;
    let entry = commit
        .tree()
        .and_then(|tree| tree.get_path(Path::new("apps/production.json")))
        .map_err(|e| e.to_string())?;
    let blob = repo.find_blob(entry.id()).map_err(|e| e.to_string())?;
    let manifest: serde_json::Value =
        serde_json::from_slice(blob.content()).map_err(|e| e.to_string())?;
    manifest["apps"]["ping"]["version"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "apps/production.json has no apps.ping.version".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_one_word_for_sh_whatever_it_holds() {
        assert_eq!(quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(quote("/tmp/it's"), r"'/tmp/it'\''s'");
    }

    #[test]
    fn production_version_is_read_from_the_repository_flotilla_up_creates() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(production_version(dir.path()).is_err(), "no repository yet");
        crate::local_gitops::ensure(dir.path(), "main").expect("created");
        assert_eq!(
            production_version(dir.path()).as_deref(),
            Ok(crate::local_gitops::SEED_VERSION)
        );
    }
}
