//! `flotilla bench`: the bus's and the webhook intake's performance figures, measured against
//! bare JetStream on the same server in the same run, and env-manager's from a build to its env
//! file pushed (DESIGN.md, "Targets").

use flotilla_bench::{BenchError, EnvArgs, HopArgs, WebhookArgs, run_env, run_hop, run_webhook};
use flotilla_bus::NatsArgs;

use crate::error::CliError;
use crate::render::Output;

/// Measure the bus and the webhook intake against bare JetStream, and env-manager.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Two hops through the bus and through bare async-nats: latency and throughput.
    ///
    /// Each pipeline publishes an event, has a worker answer it with another event and receives
    /// that at a consumer: bare async-nats, then Flotilla's publisher and worker runtime. Prints
    /// latency p50/p99 (one message in flight) and pipelined msgs/s of both, and whether the
    /// bus stays within the targets (latency ≤ 1.15× bare, throughput ≥ 70% of bare).
    ///
    /// Uses streams of its own, never FLOTILLA, and deletes them afterwards; it does load the
    /// server for the length of the run.
    #[command(after_help = "Examples:
  flotilla bench hop
  flotilla bench hop --count 5000 --pipelined 50000 --payload 1024")]
    Hop(HopArgs),
    /// Signed GitHub pushes through source-listener's HTTP intake, against bare JetStream.
    ///
    /// Serves the webhook intake on a loopback port, then sends signed push deliveries (8 KiB by
    /// default) from concurrent HTTP clients, each answered 202 only once JetStream stored its
    /// event; the same number of bare JetStream publishes of the same bytes, from as many
    /// concurrent publishers, take turns with them. Then paces deliveries at a fixed rate and
    /// reports latency percentiles, each delivery timed from when it was due. Targets: intake
    /// ≥ 50% of bare, p99 < 5 ms at 500 deliveries/s.
    ///
    /// Uses streams of its own, never FLOTILLA, and deletes them afterwards.
    #[command(after_help = "Examples:
  flotilla bench webhook
  flotilla bench webhook --clients 32 --requests 20000 --rate 1000")]
    Webhook(WebhookArgs),
    /// env-manager from a build to its env file pushed: latency, and env writes/s with grouped
    /// commits on and off.
    ///
    /// Runs env-manager in this process on streams of its own and on local bare GitOps
    /// repositories in a temp dir. Latency is one build at a time, from publishing
    /// build.succeeded to receiving the env.requested env-manager publishes once the env file
    /// is pushed and registered (target: p50 < 10 ms). Throughput is bursts of builds
    /// published at once, with grouping on and off taking turns. Deletes its streams and
    /// repositories afterwards.
    #[command(after_help = "Examples:
  flotilla bench env
  flotilla bench env --count 500 --burst 500 --concurrency 32")]
    Env(EnvArgs),
}

pub async fn run(nats: &NatsArgs, command: Command) -> Result<(), CliError> {
    match command {
        Command::Hop(args) => hop(nats, args).await,
        Command::Webhook(args) => webhook(nats, args).await,
        Command::Env(args) => env(nats, args).await,
    }
}

async fn webhook(nats: &NatsArgs, args: WebhookArgs) -> Result<(), CliError> {
    eprintln!(
        "measuring signed GitHub push intake against bare JetStream on {} ...",
        nats.url
    );
    let nats = nats.clone();
    let report = on_worker_runtime(move || async move {
        let client = nats.connect("flotilla-bench").await?;
        run_webhook(client, &args)
            .await
            .map_err(bench_error("bench webhook"))
    })
    .await?;
    print(report)
}

async fn env(nats: &NatsArgs, args: EnvArgs) -> Result<(), CliError> {
    eprintln!(
        "measuring env-manager on local bare repositories, against {} ...",
        nats.url
    );
    let nats = nats.clone();
    let report = on_worker_runtime(move || async move {
        let client = nats.connect("flotilla-bench").await?;
        run_env(client, &args)
            .await
            .map_err(bench_error("bench env"))
    })
    .await?;
    print(report)
}

/// Runs `measure` on a runtime with a thread per core, as workers have: the CLI itself runs on
/// one thread, and a benchmark on it would measure a bus no worker runs.
async fn on_worker_runtime<T, F, Fut>(measure: F) -> Result<T, CliError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, CliError>>,
{
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|source| CliError::System {
                what: "start the benchmark's runtime",
                source,
            })?
            .block_on(measure())
    })
    .await
    .map_err(|e| CliError::nats("bench", e))?
}

fn bench_error(what: &'static str) -> impl Fn(BenchError) -> CliError {
    move |e| match e {
        BenchError::Args(_) => CliError::Usage(e.to_string()),
        e => CliError::nats(what, e),
    }
}

async fn hop(nats: &NatsArgs, args: HopArgs) -> Result<(), CliError> {
    eprintln!(
        "measuring two hops, bare and through the bus, against {} ...",
        nats.url
    );
    let nats = nats.clone();
    let report = on_worker_runtime(move || async move {
        let client = nats.connect("flotilla-bench").await?;
        run_hop(client, &args)
            .await
            .map_err(bench_error("bench hop"))
    })
    .await?;
    print(report)
}

/// Prints a finished report on stdout.
fn print(report: impl std::fmt::Display) -> Result<(), CliError> {
    let mut out = Output::live();
    out.line(report)?;
    out.finish()
}
