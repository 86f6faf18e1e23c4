//! `flotilla up`: Flotilla on one machine. Connects to NATS (starting a local nats-server when
//! none answers), sets the bus up, serves probes and metrics, runs the workers built into this
//! binary, and follows the events until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use flotilla_bus::{Bus, Names, NatsArgs, Process, WorkerArgs};
use source_listener::{Config, SourceListener};

use crate::error::CliError;
use crate::events::{Reader, Start};
use crate::local_nats::{self, LocalNats};
use crate::render::Output;
use crate::signals::Stop;

/// Run Flotilla on this machine.
///
/// Connects to NATS_URL; when nothing answers there and it is a loopback address, starts
/// nats-server (from PATH) on that port with its store under --data-dir. Then creates or
/// updates the streams, bucket and consumers (as `flotilla init`), serves the webhooks (as
/// source-listener) with /healthz, /readyz and /metrics beside them, prints where everything
/// is, and follows the events as they flow until Ctrl-C or SIGTERM, when it stops what it
/// started. The workers run in this one process, each configured by the same flags and
/// variables as its own binary (listed below): env-manager on FLOTILLA_GITOPS_URL or a local
/// repository under --data-dir, builder-trigger on FLOTILLA_BUILD_COMMAND (without one, builds
/// make nothing and say so, so a first change still goes through); every worker's routes are
/// served beside the webhooks.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  flotilla up
  NATS_URL=nats://127.0.0.1:4333 flotilla up --data-dir /tmp/flotilla
  flotilla up --quiet")]
pub struct Args {
    /// Where a nats-server started here keeps its store and log.
    #[arg(
        long,
        env = "FLOTILLA_DATA_DIR",
        value_name = "DIR",
        default_value = ".flotilla"
    )]
    data_dir: PathBuf,
    /// Do not print events as they flow.
    #[arg(long)]
    quiet: bool,
    /// Address serving the webhooks, every worker's routes, /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "FLOTILLA_HTTP_ADDR",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    http_addr: SocketAddr,
    /// Time allowed on Ctrl-C or SIGTERM to finish in-flight events and requests.
    #[arg(long, env = "FLOTILLA_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
    #[command(flatten, next_help_heading = "Webhooks (as source-listener)")]
    webhooks: source_listener::Args,
    #[command(flatten, next_help_heading = "Workers (as each worker binary)")]
    workers: WorkerArgs,
    #[command(flatten)]
    settings: crate::fleet::WorkerSettings,
    #[command(flatten, next_help_heading = "Stream limits (as flotilla init)")]
    limits: crate::init::Args,
}

pub async fn run(nats: &NatsArgs, args: Args) -> Result<(), CliError> {
    let mut stop = Stop::install()?;
    let limits = args.limits.limits()?;
    let (client, local) = match nats.connect("flotilla-up").await {
        Ok(client) => (client, None),
        Err(unreachable) => {
            let Some(port) = local_nats::loopback_port(&nats.url) else {
                return Err(unreachable.into());
            };
            let (local, client) = LocalNats::start(nats, port, &args.data_dir).await?;
            (client, Some(local))
        }
    };
    let result = serve(&client, local.as_ref(), &args, &limits, nats, &mut stop).await;
    // Bounded: when the server is already gone, a flush would wait for a reconnect forever.
    let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    drop(client);
    if let Some(local) = local {
        local.stop().await;
    }
    result
}

async fn serve(
    client: &async_nats::Client,
    local: Option<&LocalNats>,
    args: &Args,
    limits: &flotilla_bus::topology::StreamLimits,
    nats: &NatsArgs,
    stop: &mut Stop,
) -> Result<(), CliError> {
    let bus = Bus::new(client.clone(), Names::default());
    let mut out = Output::live();
    for line in crate::init::reconcile(&bus, limits).await? {
        out.line(line)?;
    }

    // A fresh machine has no GitHub secret: one is generated into the data dir (kept across
    // runs), so the first signed delivery works and the line below can say how to send it.
    let mut webhooks = args.webhooks.clone();
    let generated = match (
        &webhooks.github_webhook_secret,
        &webhooks.github_webhook_secret_file,
    ) {
        (None, None) => {
            let path = generated_secret(&args.data_dir, "github-webhook-secret")?;
            webhooks.github_webhook_secret_file = Some(path.clone());
            Some(path)
        }
        _ => None,
    };
    let config = Config::from_args(&webhooks).map_err(|e| CliError::Usage(e.to_string()))?;
    let refused = unconfigured_endpoints(&config);
    let mut process = Process::new(bus.clone());
    process
        .grace(args.shutdown_grace)
        .worker_args(&args.workers);
    let listener = SourceListener::new(&bus, config, process.health());
    process.route(listener.router());
    let summary = crate::fleet::assemble(&mut process, &args.settings, &args.data_dir).await;
    let running = process.serve(args.http_addr).await?;
    let addr = running.addr();

    let server = match local {
        Some(local) => format!(
            "{} (started here; store {}, log {})",
            nats.url,
            local.store.display(),
            local.log.display()
        ),
        None => format!("{} (already running)", nats.url),
    };
    out.line(format!("nats      {server}"))?;
    out.line(format!(
        "webhooks  http://{addr}/webhooks/github  /webhooks/gitlab  /webhooks/generic"
    ))?;
    if !refused.is_empty() {
        out.line(format!(
            "          refusing every delivery until set: {}",
            refused.join(", ")
        ))?;
    }
    if let Some(path) = &generated {
        out.line(format!(
            "          GitHub's webhook secret generated in {}",
            path.display()
        ))?;
    }
    out.line(format!(
        "probes    http://{addr}/healthz  http://{addr}/readyz  http://{addr}/metrics"
    ))?;
    for line in &summary {
        out.line(format!("worker    {line}"))?;
    }
    out.line("publish   flotilla publish <domain>.<event> <key> --data FILE")?;
    let secret = match (&generated, &webhooks.github_webhook_secret_file) {
        (Some(path), _) | (None, Some(path)) => {
            format!("GITHUB_WEBHOOK_SECRET_FILE={} ", path.display())
        }
        (None, None) => String::new(),
    };
    out.line(format!(
        "send      {secret}flotilla webhook send github push --url http://{addr} --repo acme/ping --branch main"
    ))?;
    // "ready" means it: every worker has bound its consumer.
    if let Err(why) = running.ready(Duration::from_secs(15)).await {
        out.line(format!("waiting   {why}"))?;
    }
    out.line("ready; Ctrl-C stops")?;

    let result = tokio::select! {
        result = follow(&bus, args.quiet, &mut out, stop) => result,
        // A worker that cannot run stops the process; say why rather than hang.
        () = running.shutdown().cancelled() => Ok(()),
    };
    let stopped = running.stop().await;
    out.finish()?;
    result?;
    Ok(stopped?)
}

/// `<data dir>/secrets/<name>`, holding a random secret: created (readable by its owner
/// only) when missing, read as it is when present.
fn generated_secret(
    data_dir: &std::path::Path,
    name: &str,
) -> Result<std::path::PathBuf, CliError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = data_dir.join("secrets");
    let path = dir.join(name);
    if path.is_file() {
        return Ok(path);
    }
    let io = |what: &'static str| move |source| CliError::System { what, source };
    std::fs::create_dir_all(&dir).map_err(io("create the secrets directory"))?;
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io("create the webhook secret"))?;
    writeln!(file, "{secret}").map_err(io("write the webhook secret"))?;
    Ok(path)
}

/// The secret variables left unset: their endpoints refuse everything, which `up` says once
/// rather than leaving people to find out from a 401.
/// The endpoints that refuse every delivery for want of a secret. The generic endpoint is
/// configured by `GENERIC_WEBHOOK_TOKEN` or by any scoped token of the config file.
fn unconfigured_endpoints(config: &Config) -> Vec<&'static str> {
    // From the loaded config, so a secret given as a file (or generated) counts as set.
    [
        ("GITHUB_WEBHOOK_SECRET", !config.secrets.github.is_empty()),
        ("GITLAB_WEBHOOK_TOKEN", !config.secrets.gitlab.is_empty()),
        ("GENERIC_WEBHOOK_TOKEN", !config.tokens.is_empty()),
    ]
    .into_iter()
    .filter(|(_, configured)| !configured)
    .map(|(name, _)| name)
    .collect()
}

/// Prints events as they are stored (unless quiet) until a stop signal.
async fn follow(bus: &Bus, quiet: bool, out: &mut Output, stop: &mut Stop) -> Result<(), CliError> {
    if quiet {
        stop.wait().await;
        return Ok(());
    }
    let filter = format!("{}.>", bus.names().prefix);
    let mut reader = Reader::follow(bus, &bus.names().stream, &filter, Start::New).await?;
    loop {
        tokio::select! {
            () = stop.wait() => return Ok(()),
            next = reader.next() => match next? {
                Some(stored) => out.event(&stored, false)?,
                None => return Ok(()),
            },
        }
    }
}
