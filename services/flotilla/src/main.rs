//! `flotilla`: the command line of Flotilla's event bus.
//!
//! Each subcommand is a module with its clap arguments and an async `run`. This file parses the
//! command line, sets up logging (stderr; command output goes to stdout) and turns errors into
//! exit codes: 64 usage or config, 65 bad input data, 69 NATS unreachable, 1 anything else.

mod analysis;
mod bench;
mod demo;
mod dlq;
mod dry_run;
mod envs;
mod error;
mod events;
mod fleet;
mod init;
mod local_gitops;
mod local_nats;
mod publish;
mod render;
mod replay;
mod runs;
mod signals;
mod tail;
mod up;
mod webhook;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flotilla_bus::{Bus, Names, NatsArgs};

use crate::error::CliError;

/// Set up and inspect Flotilla's event bus on NATS JetStream.
///
/// Flotilla's workers talk only through events stored in the JetStream stream FLOTILLA
/// (subjects `flotilla.<domain>.<event>.<key>`). This tool creates the streams and consumers,
/// publishes events by hand, follows and replays what was stored, and puts dead letters back.
#[derive(Debug, Parser)]
#[command(name = "flotilla", version, after_long_help = EXAMPLES)]
struct Cli {
    #[command(flatten, next_help_heading = "NATS connection (every command)")]
    nats: NatsArgs,
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "Examples:
  flotilla demo
  flotilla up
  flotilla init
  echo '{\"changeId\":\"ping-v1\",\"app\":\"ping\",\"version\":\"v1\"}' | flotilla publish build.started ping-v1
  flotilla tail 'build.>' --json
  flotilla replay 'env.>' --since 1h --to flotilla.replay
  flotilla envs
  flotilla dlq list
  flotilla analysis run success-rate.yaml --arg service=ping
  flotilla webhook send github push --repo acme/ping --branch main";

#[derive(Debug, Subcommand)]
enum Command {
    // Boxed (as is replay): the workers' flags outweigh every other command's several times over.
    Up(Box<up::Args>),
    Demo(demo::Args),
    Init(init::Args),
    Publish(publish::Args),
    Tail(tail::Args),
    Replay(Box<replay::Args>),
    /// The changes the stream holds: first seen, how long, how many events, the latest.
    Runs(runs::RunsArgs),
    /// The timeline of one change across the workers, with how long each step took.
    Run(runs::RunArgs),
    Envs(envs::Args),
    #[command(subcommand)]
    Dlq(dlq::Command),
    #[command(subcommand)]
    Bench(bench::Command),
    /// Canary analysis: run an Argo Rollouts AnalysisTemplate on the spot.
    #[command(subcommand)]
    Analysis(analysis::Command),
    /// Webhooks: send a realistic signed delivery to a source-listener.
    #[command(subcommand)]
    Webhook(webhook::Command),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // `--help` and `--version` arrive as "errors" meant for stdout.
            return ExitCode::from(if e.use_stderr() { error::EX_USAGE } else { 0 });
        }
    };
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        // The verdict is on stdout already; its exit status says the rest.
        Err(error::CliError::Verdict { code, .. }) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    // `up` hosts the whole fleet: its spans say so (`flotilla-up`), the other commands' `flotilla-cli`.
    // The demo's workers warn of what its timeline shows anyway (a retry, an aborted canary).
    let (service, level) = match cli.command {
        Command::Up(_) => ("up", "warn"),
        Command::Demo(_) => ("cli", "error"),
        _ => ("cli", "warn"),
    };
    let _telemetry = flotilla_telemetry::init(service, level)
        .map_err(|e| CliError::Usage(format!("logging: {e}")))?;
    let nats = &cli.nats;
    match cli.command {
        Command::Up(args) => up::run(nats, *args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Init(args) => init::run(nats, args).await,
        Command::Publish(args) => publish::run(nats, args).await,
        Command::Tail(args) => tail::run(nats, args).await,
        Command::Replay(args) => replay::run(nats, *args).await,
        Command::Runs(args) => runs::runs(nats, args).await,
        Command::Run(args) => runs::run(nats, args).await,
        Command::Envs(args) => envs::run(nats, args).await,
        Command::Dlq(command) => dlq::run(nats, command).await,
        Command::Bench(command) => bench::run(nats, command).await,
        Command::Analysis(command) => analysis::run(command).await,
        Command::Webhook(command) => webhook::run(command).await,
    }
}

/// Connects to the bus under its default names. Each command connects after checking what it
/// can without NATS, so e.g. bad event data is reported as such even while NATS is down.
async fn connect(nats: &NatsArgs) -> Result<Bus, CliError> {
    let client = nats.connect("flotilla-cli").await?;
    Ok(Bus::new(client, Names::default()))
}
