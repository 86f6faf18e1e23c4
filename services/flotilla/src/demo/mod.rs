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
mod pods;
mod prometheus;
mod screen;
mod script;
mod seen;
mod setup;
mod show;
mod summary;
mod templates;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use flotilla_bus::topology::StreamLimits;
use flotilla_bus::{Bus, Names, Running};
use serde_json::json;

use crate::error::CliError;
use crate::local_nats::LocalNats;
use crate::signals::Stop;
use cluster::Cluster;
use pods::{Behaviour, Behaviours};
use prometheus::Prometheus;
use screen::{Mode, Screen};
use setup::{free_port, sha};
use templates::Measure;

/// Run the seed scenario end to end on this machine, in a temporary directory.
///
/// Three scenarios, one after the other, each event printed as it happens:
///
/// 1. A change making ping answer {"value":"pong"} is pushed (a signed GitHub webhook): built,
///    deployed to its staging env, tested there, promoted to production, judged by a canary on
///    its real metrics and promoted; the staging env is reaped.
///
/// 2. A bad change (1 request in 4 answered 500) goes the same way and passes its tests; its
///    canary is aborted and production's manifest in git goes back to the good version.
///
/// 3. A pull request gets a preview env when opened, removed when closed.
///
/// The six workers are `flotilla up`'s, in this process, on a private nats-server (a free
/// loopback port: NATS_URL and the --nats-* options are ignored, a server on 4222 is never
/// touched) and a GitOps repository in the temporary directory; no setting of the environment
/// reaches them. The demo plays what this machine lacks and says so on its lines: GitHub, the
/// build (which builds nothing), and the cluster: Argo CD runs ping (examples/ping, in-process)
/// at each env's version and its PostSync hook reports to sync-watcher; Argo Rollouts runs the
/// canary, and users send it requests. The tests and the canary analysis are real: `flotilla
/// analysis run` checks each env's answer, and the canary is measured by Prometheus when
/// `prometheus` is installed (Debian's package), by the web provider otherwise. It takes well
/// under a minute; docs/demo.md says how it works.
///
/// Ctrl-C stops it at any point, and what it started with it. Exit status: 0 when all three
/// outcomes happened, 1 when one did not (what is missing is printed), 64 when something it
/// needs is missing (nats-server), 130 when stopped while setting up.
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
        screen.outcome(
            format!(
                "Kept {}: gitops.git (the GitOps repository), nats/ (the NATS store), analysis/ and tests/ (the templates), prometheus/ (when it ran)",
                kept.display()
            ),
            json!({"kind": "kept", "dir": kept}),
        )?;
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

/// Sets everything up (Ctrl-C stops that too), then runs the scenarios.
async fn play(
    args: &Args,
    dir: &Path,
    screen: &mut Screen,
    stop: &mut Stop,
    parts: &mut Parts,
) -> Result<(), CliError> {
    let ready = tokio::select! {
        ready = set_up(args, dir, screen, parts) => Some(ready?),
        () = stop.wait() => None,
    };
    let Some(ready) = ready else {
        screen.note("stopped (Ctrl-C) while setting up")?;
        return Err(CliError::Verdict {
            code: 130,
            summary: "stopped while setting up".into(),
        });
    };
    let show = show::Show {
        screen,
        bus: &ready.bus,
        dir,
        webhooks: format!("http://{}", ready.fleet),
        secret: &ready.secret,
        nats_url: &ready.nats_url,
        production: &ready.production,
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
    show.run(
        ready.shas,
        cluster,
        stop,
        &shutdown,
        args.timeout,
        args.stay,
    )
    .await
}

/// What the scenarios need once everything runs.
struct Ready {
    bus: Bus,
    nats_url: String,
    /// The fleet's HTTP address: webhooks, reports.
    fleet: SocketAddr,
    /// Production's `/ping` through the ingress.
    production: String,
    secret: String,
    shas: script::Shas,
}

/// Starts NATS, Prometheus (or not), the cluster and the fleet, saying what runs where.
async fn set_up(
    args: &Args,
    dir: &Path,
    screen: &mut Screen,
    parts: &mut Parts,
) -> Result<Ready, CliError> {
    screen.note(format!(
        "flotilla demo: the seed scenario end to end on this machine, in {} (well under a minute)",
        dir.display()
    ))?;
    screen.note("")?;
    let (nats, client, url) = setup::start_nats(dir).await?;
    parts.nats = Some(nats);
    parts.client = Some(client.clone());
    let bus = Bus::new(client, Names::default());
    crate::init::reconcile(&bus, &StreamLimits::default()).await?;
    screen.note(format!(
        "  nats       {url}: a private nats-server, its store in {}",
        dir.join("nats").display()
    ))?;

    let canary_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let measure = setup::measure(args.canary, dir, canary_addr, screen, parts).await?;
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
    let test_command = setup::test_command(&written.functional_test)?;
    let plan = hosted::Plan {
        github_secret: &secret,
        env_url: &env_url,
        analysis_dir: &written.analysis_dir,
        analysis: &analysis,
        build_command: setup::BUILD_COMMAND,
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
    setup::explain(screen, &env_url)?;

    Ok(Ready {
        bus,
        nats_url: url,
        fleet,
        production,
        secret,
        shas,
    })
}
