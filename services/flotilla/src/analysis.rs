//! `flotilla analysis run TEMPLATE.yaml [--arg NAME=VALUE ...]`: one canary analysis on the spot,
//! judged as Argo Rollouts judges it (crates/analysis), each measurement printed as it is
//! taken. The exit status is the verdict: 0 Successful, 1 Failed, 2 Inconclusive, 3 Error.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use flotilla_analysis::{Event, HttpProvider, Phase, RunOptions, Verdict};
use serde_json::json;

use crate::error::CliError;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Runs one AnalysisTemplate (or ClusterAnalysisTemplate) now, against the Prometheus or
    /// web endpoints it names, and prints each measurement as it is taken.
    #[command(
        after_help = "Exit status: 0 Successful, 1 Failed, 2 Inconclusive, 3 Error (a bad \
template: broken YAML, an unknown provider, a missing arg or a bad expression, named by line or \
field).

A metric with an `interval` and no `count` never ends in Argo Rollouts (it runs beside the
rollout until the rollout ends): give `--duration`, after which no measurement is taken and
such metrics end Successful unless a limit was already breached.

Examples:
  flotilla analysis run deploy/analysis/success-rate.yaml --arg service=ping
  flotilla analysis run web-check.yaml --arg url=http://127.0.0.1:8080/ping --json
  flotilla analysis run background.yaml --duration 5m"
    )]
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The template's YAML file, `-` for stdin.
    pub template: PathBuf,
    /// A value for one of the template's `args` (repeat for each).
    #[arg(long = "arg", value_name = "NAME=VALUE", value_parser = parse_arg)]
    pub args: Vec<(String, String)>,
    /// Ends the run this long after it starts, as Argo ends a background analysis when its
    /// rollout completes.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// One JSON object a line: each measurement, then the verdict.
    #[arg(long)]
    pub json: bool,
}

fn parse_arg(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    if name.trim().is_empty() {
        return Err(format!("{text:?} has no name before `=`"));
    }
    Ok((name.trim().to_owned(), value.to_owned()))
}

pub async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Run(args) => run_one(args).await,
    }
}

async fn run_one(args: RunArgs) -> Result<(), CliError> {
    let yaml = read_template(&args.template)?;
    let provider =
        HttpProvider::new().map_err(|e| CliError::Usage(format!("the HTTP client: {e}")))?;
    let json = args.json;
    let mut out = std::io::stdout();
    let mut failed_write = None;
    let mut on_event = |event: Event<'_>| {
        let line = match event {
            Event::Measurement {
                metric,
                measurement,
                result,
            } => {
                if json {
                    json!({
                        "metric": metric,
                        "phase": measurement.phase.to_string(),
                        "value": measurement.value,
                        "message": measurement.message,
                        "at_ms": measurement.finished_at.as_millis() as u64,
                        "count": result.count,
                        "successful": result.successful,
                        "failed": result.failed,
                        "inconclusive": result.inconclusive,
                        "error": result.error,
                    })
                    .to_string()
                } else {
                    let value = measurement.value.as_deref().unwrap_or("-");
                    let why = if measurement.message.is_empty() {
                        String::new()
                    } else {
                        format!("  ({})", measurement.message)
                    };
                    format!(
                        "{:>8.1?}  {metric}  {value}  {}  [{} ok, {} failed, {} inconclusive, {} error]{why}",
                        measurement.finished_at,
                        measurement.phase,
                        result.successful,
                        result.failed,
                        result.inconclusive,
                        result.error
                    )
                }
            }
            Event::MetricCompleted {
                metric,
                phase,
                message,
            } => {
                if json {
                    json!({"metric": metric, "completed": phase.to_string(), "message": message})
                        .to_string()
                } else if message.is_empty() {
                    format!("          {metric}: {phase}")
                } else {
                    format!("          {metric}: {phase}: {message}")
                }
            }
        };
        if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
            failed_write.get_or_insert(e);
        }
    };
    let options = RunOptions {
        deadline: args.duration,
    };
    let verdict =
        flotilla_analysis::run_yaml(&yaml, &args.args, &provider, options, &mut on_event).await;
    if let Some(e) = failed_write {
        return Err(CliError::Output(e));
    }
    print_verdict(&verdict, json)?;
    match verdict.phase {
        Phase::Successful => Ok(()),
        _ => Err(CliError::Verdict {
            code: u8::try_from(verdict.exit_code()).unwrap_or(3),
            summary: summary(&verdict),
        }),
    }
}

fn read_template(path: &PathBuf) -> Result<String, CliError> {
    let input = |source| CliError::Input {
        what: path.display().to_string(),
        source,
    };
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(input)?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(input)
}

fn print_verdict(verdict: &Verdict, json: bool) -> Result<(), CliError> {
    let mut out = std::io::stdout();
    if json {
        let metrics: Vec<_> = verdict
            .metrics
            .iter()
            .map(|m| {
                json!({
                    "metric": m.name, "phase": m.phase.to_string(), "message": m.message,
                    "dry_run": m.dry_run, "count": m.count, "successful": m.successful,
                    "failed": m.failed, "inconclusive": m.inconclusive, "error": m.error,
                })
            })
            .collect();
        writeln!(
            out,
            "{}",
            json!({
                "verdict": verdict.phase.to_string(),
                "message": verdict.message,
                "elapsed_ms": verdict.elapsed.as_millis() as u64,
                "metrics": metrics,
            })
        )?;
    } else {
        writeln!(out, "verdict: {}", summary(verdict))?;
    }
    Ok(())
}

/// `Failed after 3.2s: success-rate Failed (2 of 3 failed)`, or the template's error.
fn summary(verdict: &Verdict) -> String {
    let metrics = verdict
        .metrics
        .iter()
        .map(|m| {
            format!(
                "{} {} ({} measured: {} ok, {} failed, {} inconclusive, {} error{})",
                m.name,
                m.phase,
                m.count,
                m.successful,
                m.failed,
                m.inconclusive,
                m.error,
                if m.dry_run { ", dry run" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let mut text = format!("{} after {:.1?}", verdict.phase, verdict.elapsed);
    if !verdict.message.is_empty() {
        text.push_str(&format!(": {}", verdict.message));
    }
    if !metrics.is_empty() {
        text.push_str(&format!(" — {metrics}"));
    }
    text
}
