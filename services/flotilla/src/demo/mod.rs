//! `flotilla demo`: the seed scenario end to end on this machine, in a temporary directory.
//!
//! The fleet is `flotilla up`'s (the six workers' own code, in this process) on a private
//! nats-server and a local GitOps repository. What this machine lacks the demo plays, and says
//! so: GitHub (signed webhook deliveries), the build (a command that builds nothing), the
//! cluster (Argo CD running ping per env and its PostSync hook's reports, Argo Rollouts' canary,
//! users' traffic; see [`cluster`]). Canary analysis is real: Prometheus when installed, the
//! web provider otherwise. [`script`] says which events complete each scenario.

mod cluster;
mod hosted;
mod prometheus;
mod screen;
mod script;
mod seen;
mod show;
mod templates;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flotilla_bus::topology::StreamLimits;
use flotilla_bus::{Bus, Names, NatsArgs, Running};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::process::Child;

use crate::error::CliError;
use crate::local_nats::LocalNats;
use crate::signals::Stop;
use cluster::{Behaviour, Behaviours, Cluster};
use prometheus::Prometheus;
use screen::{Mode, Screen};
use templates::Measure;

/// Run the seed scenario end to end on this machine, in a temporary directory.
///
/// Three scenarios, one after the other, each event printed as it happens:
///
/// 1. a change making ping answer {"value":"pong"} is pushed (a signed GitHub webhook): built,
///    deployed to its staging env, tested there, promoted to production, judged by a canary on
///    its real metrics and promoted; the staging env is reaped;
/// 2. a bad change (1 request in 4 answered 500) goes the same way, passes its tests, and its
///    canary is aborted: production's manifest in git goes back to the good version;
/// 3. a pull request gets a preview env when opened, removed when closed.
///
/// The six workers are `flotilla up`'s, in this process, on a private nats-server (a free
/// loopback port; the one on 4222 is never touched) and a GitOps repository in the temporary
/// directory; no setting of the environment reaches them. The demo plays what this machine
/// lacks and says so on its lines: GitHub, the build (which builds nothing), and the cluster:
/// Argo CD runs ping (examples/ping, in-process) at each env's version and its PostSync hook
/// reports to sync-watcher; Argo Rollouts runs the canary, and users send it requests. The
/// tests and the canary analysis are real: `flotilla analysis run` checks each env's answer,
/// and the canary is measured by Prometheus when `prometheus` is installed (Debian's package),
/// by the web provider otherwise. It takes about a minute.
///
/// Exit status: 0 when all three outcomes happened, 1 when one did not (what is missing is
/// printed), 64 when something it needs is missing (nats-server).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  flotilla demo
  flotilla demo --keep                  # leave the temporary directory to look at
  flotilla demo --stay                  # then keep the bus up: NATS_URL=... flotilla run <change>
  flotilla demo --canary web --json")]
pub struct Args {
    /// Leave the temporary directory (the GitOps repository, the NATS store, the templates,
    /// Prometheus' log) for inspection.
    #[arg(long)]
    keep: bool,
    /// After the scenarios, keep NATS, the fleet and the pings up until Ctrl-C, to look at
    /// them with `flotilla runs`, `flotilla run`, `flotilla envs` (the demo prints NATS_URL).
    #[arg(long)]
    stay: bool,
    /// How long the scenarios may take together before the demo gives up.
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// How the canary is measured: `auto` (Prometheus when installed, else the web provider),
    /// `prometheus` or `web`.
    #[arg(long, value_enum, default_value_t = CanaryChoice::Auto)]
    canary: CanaryChoice,
    /// One JSON object a line (set-up facts, scenarios, events, the outcome).
    #[arg(long, conflicts_with = "quiet")]
    json: bool,
    /// Print the outcome only.
    #[arg(long)]
    quiet: bool,
}

/// How the canary is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CanaryChoice {
    Auto,
    Prometheus,
    Web,
}

pub async fn run(args: Args) -> Result<(), CliError> {
    let mut stop = Stop::install()?;
    let mode = match (args.json, args.quiet) {
        (true, _) => Mode::Json,
        (false, true) => Mode::Quiet,
        (false, false) => Mode::Timeline,
    };
    let mut screen = Screen::new(mode);
    let dir = tempfile::Builder::new()
        .prefix("flotilla-demo-")
        .tempdir()
        .map_err(|source| CliError::System {
            what: "create the demo's directory",
            source,
        })?;
    let mut parts = Parts::default();
    let result = play(&args, dir.path(), &mut screen, &mut stop, &mut parts).await;
    parts.stop().await;
    if args.keep {
        let kept = dir.keep();
        screen.note(format!(
            "kept {}: gitops.git (the GitOps repository), nats/ (the NATS store), analysis/ and tests/ (the templates), prometheus/",
            kept.display()
        ))?;
    }
    result
}

/// What the demo started, stopped in order whatever happens.
#[derive(Default)]
struct Parts {
    nats: Option<LocalNats>,
    client: Option<async_nats::Client>,
    prometheus: Option<Prometheus>,
    cluster: Option<Cluster>,
    running: Option<Running>,
}

impl Parts {
    async fn stop(&mut self) {
        if let Some(running) = self.running.take()
            && let Err(e) = running.stop().await
        {
            tracing::warn!(error = %e, "the fleet did not stop cleanly");
        }
        if let Some(cluster) = self.cluster.take() {
            cluster.stop().await;
        }
        if let Some(prometheus) = self.prometheus.take() {
            prometheus.stop().await;
        }
        if let Some(client) = self.client.take() {
            // Bounded: a server already gone would make a flush wait for a reconnect.
            let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
        }
        if let Some(nats) = self.nats.take() {
            nats.stop().await;
        }
    }
}

/// Sets everything up, then runs the scenarios.
async fn play(
    args: &Args,
    dir: &Path,
    screen: &mut Screen,
    stop: &mut Stop,
    parts: &mut Parts,
) -> Result<(), CliError> {
    screen.note(format!(
        "flotilla demo: the seed scenario end to end on this machine, in {} (about a minute)",
        dir.display()
    ))?;
    screen.note("")?;
    let (nats, client, url) = start_nats(dir).await?;
    parts.nats = Some(nats);
    parts.client = Some(client.clone());
    let bus = Bus::new(client, Names::default());
    crate::init::reconcile(&bus, &StreamLimits::default()).await?;
    screen.note(format!(
        "  nats       {url}: a private nats-server, its store in {}",
        dir.join("nats").display()
    ))?;

    let canary_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let measure = measure(args.canary, dir, canary_addr, screen, parts).await?;
    let written = templates::write(dir, &measure).map_err(CliError::Usage)?;

    let shas = script::Shas {
        good: sha("good"),
        bad: sha("bad"),
        preview: sha("preview"),
    };
    let json = Behaviour {
        answer: ping::Answer::Json,
        error_rate: 0.0,
    };
    let behaviours = Behaviours::default()
        .with(&shas.good, json)
        .with(
            &shas.bad,
            Behaviour {
                error_rate: 0.25,
                ..json
            },
        )
        .with(&shas.preview, json);
    let seed = crate::local_gitops::SEED_VERSION;
    let cluster = Cluster::start(canary_addr, behaviours, seed)
        .await
        .map_err(CliError::Usage)?;
    let env_url = cluster.env_url();
    let production = cluster.url("production", "ping");
    parts.cluster = Some(cluster);

    let secret = uuid::Uuid::new_v4().simple().to_string();
    let analysis = format!("ping={}", written.canary);
    let test_command = test_command(&written.functional_test)?;
    let plan = hosted::Plan {
        github_secret: &secret,
        env_url: &env_url,
        analysis_dir: &written.analysis_dir,
        analysis: &analysis,
        build_command: BUILD_COMMAND,
        test_command: &test_command,
    };
    let settings = hosted::settings(&plan)?;
    let (running, summary) = hosted::start(&bus, &settings, dir).await?;
    let fleet = running.addr();
    parts.running = Some(running);
    if let Some(cluster) = parts.cluster.as_mut() {
        cluster.report_to(fleet);
    }
    screen.note(format!(
        "  gitops     {}: production runs ping {seed}, which answers pong ({production})",
        dir.join("gitops.git").display()
    ))?;
    screen.note(format!(
        "  fleet      the six workers of `flotilla up`, in this process; webhooks at http://{fleet}/webhooks/github"
    ))?;
    for line in &summary {
        screen.note(format!("             {line}"))?;
    }
    screen.facts(json!({
        "kind": "setup",
        "dir": dir,
        "nats": url,
        "http": format!("http://{fleet}"),
        "canary": match measure { Measure::Prometheus { .. } => "prometheus", Measure::Web { .. } => "web" },
        "env_url": env_url,
    }))?;
    explain(screen, &env_url)?;

    let show = show::Show {
        screen,
        bus: &bus,
        dir,
        webhooks: format!("http://{fleet}"),
        secret: &secret,
        nats_url: &url,
        production: &production,
    };
    let cluster = parts
        .cluster
        .as_mut()
        .ok_or_else(|| CliError::Usage("the cluster is not running".into()))?;
    let shutdown = parts
        .running
        .as_ref()
        .map(|r| r.shutdown().clone())
        .unwrap_or_default();
    show.run(shas, cluster, stop, &shutdown, args.timeout, args.stay)
        .await
}

/// What a real build command would do, said by the demo's, which builds nothing.
const BUILD_COMMAND: &str = r#"echo "a real build runs here: docker build -t $FLOTILLA_IMAGE . && docker push $FLOTILLA_IMAGE (the demo builds nothing)""#;

/// The change's tests: this binary's `analysis run` of the functional test against the env.
fn test_command(template: &Path) -> Result<String, CliError> {
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
fn explain(screen: &mut Screen, env_url: &str) -> Result<(), CliError> {
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
async fn measure(
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
async fn start_nats(dir: &Path) -> Result<(LocalNats, async_nats::Client, String), CliError> {
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
fn free_port() -> Result<u16, CliError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|source| CliError::System {
            what: "find a free port",
            source,
        })
}

/// A commit id (40 hex digits) unique to this run.
fn sha(what: &str) -> String {
    let digest = Sha256::digest(format!("{what}:{}", uuid::Uuid::new_v4()));
    hex::encode(digest)[..40].to_owned()
}

/// Stops a child with SIGTERM, killing it when that fails or takes longer than 10 s.
async fn terminate(child: &mut Child) {
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
fn production_version(dir: &Path) -> Result<String, String> {
    let repo_path: PathBuf = dir.join("gitops.git");
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
