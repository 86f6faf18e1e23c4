//! `flotilla runs` and `flotilla run CHANGE`: the timeline of a change across the workers, from
//! the events the stream holds (every event of a change carries its `flotilla-change-id`), with
//! how long each step took. Choreography has no orchestrator to ask: the bus is the record.

use std::collections::BTreeMap;

use flotilla_bus::NatsArgs;
use serde_json::json;
use time::OffsetDateTime;

use crate::error::CliError;
use crate::events::{Reader, Start, Stored, parse_time, rfc3339};
use crate::render::{EventView, Output};

/// Lists the changes the stream holds, a line each: first seen, how long, events, the latest.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  flotilla runs
  flotilla runs --since 2h --json")]
pub struct RunsArgs {
    /// Only changes with events stored since then (a duration ago, or an RFC 3339 time).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<OffsetDateTime>,
    /// One JSON object a line.
    #[arg(long)]
    pub json: bool,
}

/// The timeline of one change: every event of it in order, with the time since the first and
/// since the one before.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  flotilla run ping-v20240101120000-1a2b3c4
  flotilla run ping-v20240101120000-1a2b3c4 --json | jq .data")]
pub struct RunArgs {
    /// The change id, `<app>-<version>`.
    pub change_id: String,
    /// One JSON object a line.
    #[arg(long)]
    pub json: bool,
}

/// One event of a change on the timeline.
struct Step {
    at: OffsetDateTime,
    stored: Stored,
}

pub async fn runs(nats: &NatsArgs, args: RunsArgs) -> Result<(), CliError> {
    let changes = read(nats, args.since.map_or(Start::All, Start::Time), None).await?;
    let mut out = Output::buffered();
    if changes.is_empty() && !args.json {
        out.line("no change has events in the stream")?;
    }
    let mut ordered: Vec<_> = changes.into_iter().collect();
    ordered.sort_by_key(|(_, steps)| steps.first().map(|s| s.at));
    for (change, steps) in ordered {
        let (Some(first), Some(last)) = (steps.first(), steps.last()) else {
            continue;
        };
        let latest = event_type(&last.stored);
        let took = last.at - first.at;
        if args.json {
            out.json(&json!({
                "change_id": change,
                "first": rfc3339(first.at),
                "last": rfc3339(last.at),
                "took_ms": took.whole_milliseconds(),
                "events": steps.len(),
                "latest": latest,
            }))?;
        } else {
            out.line(format!(
                "{}  {change}  {} events over {}  latest {latest}",
                rfc3339(first.at),
                steps.len(),
                duration(took)
            ))?;
        }
    }
    out.finish()
}

pub async fn run(nats: &NatsArgs, args: RunArgs) -> Result<(), CliError> {
    let mut changes = read(nats, Start::All, Some(&args.change_id)).await?;
    let Some(steps) = changes.remove(&args.change_id) else {
        return Err(CliError::Usage(format!(
            "no event of change {} in the stream (see `flotilla runs`)",
            args.change_id
        )));
    };
    let mut out = Output::buffered();
    let start = steps.first().map(|s| s.at);
    let mut previous = start;
    for step in &steps {
        let since_start = start.map(|s| step.at - s).unwrap_or_default();
        let since_previous = previous.map(|p| step.at - p).unwrap_or_default();
        previous = Some(step.at);
        if args.json {
            let view = EventView::of(&step.stored);
            out.json(&json!({
                "time": rfc3339(step.at),
                "since_start_ms": since_start.whole_milliseconds(),
                "since_previous_ms": since_previous.whole_milliseconds(),
                "type": event_type(&step.stored),
                "subject": step.stored.subject,
                "source": step.stored.header("ce-source"),
                "data": view.data,
            }))?;
        } else {
            let reason = EventView::of(&step.stored).data["reason"]
                .as_str()
                .filter(|r| !r.is_empty())
                .map(|r| format!("  ({r})"))
                .unwrap_or_default();
            out.line(format!(
                "{:>10}  {:>9}  {:<24} {:<34} {}{reason}",
                format!("+{}", duration(since_start)),
                format!("+{}", duration(since_previous)),
                event_type(&step.stored),
                key(&step.stored),
                step.stored.header("ce-source").unwrap_or("-"),
            ))?;
        }
    }
    if !args.json
        && let (Some(first), Some(last)) = (steps.first(), steps.last())
    {
        out.line(format!(
            "{} events over {}",
            steps.len(),
            duration(last.at - first.at)
        ))?;
    }
    out.finish()
}

/// The events of every change (or of `only`), by change id, in stream order.
async fn read(
    nats: &NatsArgs,
    start: Start,
    only: Option<&str>,
) -> Result<BTreeMap<String, Vec<Step>>, CliError> {
    let bus = crate::connect(nats).await?;
    let names = bus.names().clone();
    let filter = format!("{}.>", names.prefix);
    let mut reader = Reader::snapshot(&bus, &names.stream, &filter, start, None).await?;
    let mut changes: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    while let Some(stored) = reader.next().await? {
        let Some(change) = stored.header("flotilla-change-id").map(str::to_owned) else {
            continue;
        };
        if only.is_some_and(|only| only != change) {
            continue;
        }
        // When the event says it happened (ce-time), else when it was stored.
        let at = stored
            .header("ce-time")
            .and_then(|t| parse_time(t).ok())
            .unwrap_or(stored.stored_at);
        changes.entry(change).or_default().push(Step { at, stored });
    }
    for steps in changes.values_mut() {
        steps.sort_by_key(|s| (s.at, s.stored.seq));
    }
    Ok(changes)
}

/// `build.succeeded` from `dev.flotilla.build.succeeded.v1`.
fn event_type(stored: &Stored) -> String {
    stored
        .header("ce-type")
        .and_then(|t| t.strip_prefix("dev.flotilla."))
        .and_then(|t| t.strip_suffix(".v1"))
        .unwrap_or("?")
        .to_owned()
}

/// The subject's key: the env, release or change the event is about.
fn key(stored: &Stored) -> &str {
    stored.subject.rsplit('.').next().unwrap_or_default()
}

/// `1.2s`, `3m4s`, `850ms`.
fn duration(d: time::Duration) -> String {
    let ms = d.whole_milliseconds().max(0);
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        let s = ms / 1000;
        format!("{}m{}s", s / 60, s % 60)
    }
}
