//! `flotilla publish`: one event from JSON, checked against its schema, stored in JetStream.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use flotilla_bus::{Encoding, EventType, NatsArgs, Outgoing};
use serde::Serialize;

use crate::error::CliError;
use crate::render::Output;

/// Publish one event from JSON.
///
/// The data is the event's message in the proto3 JSON mapping (lowerCamelCase names,
/// snake_case accepted). It is checked against the schema first: an unknown field, a wrong type
/// or a missing required field is refused (exit 65) with the field named. The event goes out
/// as protobuf, or as JSON with --as-json, on `flotilla.<domain>.<event>.<key>`, and the command
/// waits for JetStream to store it, then prints `{"id","subject","seq","duplicate"}`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  flotilla publish build.started ping-v1 --data build.json
  echo '{\"env\":\"pr-ping-42\",\"reason\":\"manual\"}' | flotilla publish env.teardown.requested pr-ping-42
  flotilla publish tests.passed stg-ping-v2 --data - --id tests-1 < result.json")]
pub struct Args {
    /// The event type, `<domain>.<event>` (e.g. build.succeeded, env.ready).
    #[arg(value_name = "DOMAIN.EVENT")]
    event_type: String,
    /// The subject's key: repo slug, change id, env id or release id (characters outside
    /// [A-Za-z0-9_-] become `_`).
    key: String,
    /// JSON file with the event data, or `-` for stdin. Without it, data is read from stdin
    /// when something is piped in.
    #[arg(long, value_name = "FILE|-")]
    data: Option<PathBuf>,
    /// Keep the data JSON-encoded on the wire (content-type application/json) instead of
    /// protobuf.
    #[arg(long)]
    as_json: bool,
    /// The event id (`ce-id`, also the dedup `Nats-Msg-Id`); random when unset. Publishing the
    /// same id again within the duplicate window stores nothing and reports a duplicate.
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    id: Option<String>,
    /// The change id (`flotilla-change-id`); by default the data's changeId field, if any.
    #[arg(long)]
    change_id: Option<String>,
}

/// What the command prints.
#[derive(Debug, Serialize)]
struct Receipt {
    id: String,
    subject: String,
    seq: u64,
    duplicate: bool,
}

pub async fn run(nats: &NatsArgs, args: Args) -> Result<(), CliError> {
    let event = prepare(&args)?;
    let bus = crate::connect(nats).await?;
    let published = bus.publisher("cli").publish(event).await?;
    let mut out = Output::buffered();
    out.json(&Receipt {
        id: published.id,
        subject: published.subject,
        seq: published.sequence,
        duplicate: published.duplicate,
    })?;
    out.finish()
}

/// Reads and checks everything before connecting, so bad input is reported even without NATS.
fn prepare(args: &Args) -> Result<Outgoing, CliError> {
    // The user's string becomes a catalog type here, or a usage error naming the known ones.
    let event_type =
        EventType::parse(&args.event_type).map_err(|e| CliError::Usage(e.to_string()))?;
    let data = read_data(args.data.as_ref())?;
    let encoding = if args.as_json {
        Encoding::Json
    } else {
        Encoding::Protobuf
    };
    let mut event =
        Outgoing::from_json(event_type, &args.key, &data, encoding).map_err(|source| {
            CliError::Data {
                context: format!("{event_type} data"),
                source,
            }
        })?;
    if let Some(change_id) = args.change_id.clone().or_else(|| change_id_in(&data)) {
        event = event.with_change_id(change_id);
    }
    if let Some(id) = &args.id {
        event = event.with_id(id.clone());
    }
    Ok(event)
}

fn read_data(source: Option<&PathBuf>) -> Result<Vec<u8>, CliError> {
    let (what, data) = match source {
        Some(path) if path.as_os_str() != "-" => (path.display().to_string(), std::fs::read(path)),
        Some(_) => ("stdin".to_owned(), read_stdin()),
        None if !std::io::stdin().is_terminal() => ("stdin".to_owned(), read_stdin()),
        // Waiting on a terminal for JSON nobody announced would look like a hang.
        None => {
            return Err(CliError::Usage(
                "no event data: pass --data FILE, or --data - and JSON on stdin".into(),
            ));
        }
    };
    let data = data.map_err(|source| CliError::Input {
        what: what.clone(),
        source,
    })?;
    if data.trim_ascii().is_empty() {
        return Err(CliError::Usage(format!(
            "no event data: {what} is empty; the data is a JSON object"
        )));
    }
    Ok(data)
}

fn read_stdin() -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    std::io::stdin().read_to_end(&mut data)?;
    Ok(data)
}

/// The data's own change id (`changeId`, or `change_id` as proto3 JSON also accepts), so
/// events of a change are tagged without repeating it on the command line.
fn change_id_in(data: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(data).ok()?;
    ["changeId", "change_id"]
        .iter()
        .find_map(|field| value.get(field)?.as_str())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_change_id_comes_from_either_spelling_of_the_field() {
        assert_eq!(
            change_id_in(br#"{"changeId":"ping-v1"}"#).as_deref(),
            Some("ping-v1")
        );
        assert_eq!(
            change_id_in(br#"{"change_id":"ping-v2"}"#).as_deref(),
            Some("ping-v2")
        );
        assert_eq!(change_id_in(br#"{"changeId":""}"#), None);
        assert_eq!(change_id_in(br#"{"env":"pr-1"}"#), None);
    }
}
