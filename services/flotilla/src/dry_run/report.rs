//! What a dry run shows per event: its effects and the events it would emit, as text for
//! people or one JSON object for programs.

use flotilla_bus::dry_run::{self, Effect, Recorder};
use flotilla_bus::{Event, HandlerError, Outgoing, Publisher};
use serde::Serialize;
use serde_json::Value;

use crate::events::Stored;

/// What one event would have caused.
#[derive(Debug, Serialize)]
pub(super) struct Report {
    seq: u64,
    subject: String,
    #[serde(rename = "type")]
    event_type: String,
    id: String,
    effects: Vec<Effect>,
    emits: Vec<Emitted>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// An event the handler would emit.
#[derive(Debug, Serialize)]
struct Emitted {
    #[serde(rename = "type")]
    event_type: String,
    key: String,
    subject: String,
    id: String,
    data: Value,
}

pub(super) async fn report(
    stored: &Stored,
    event: &Event,
    outcome: Result<Vec<Outgoing>, HandlerError>,
    recorder: &Recorder,
    publisher: &Publisher,
) -> Report {
    let mut report = Report {
        seq: stored.seq,
        subject: stored.subject.clone(),
        event_type: event.event_type().to_owned(),
        id: event.id.clone(),
        effects: Vec::new(),
        emits: Vec::new(),
        error: None,
    };
    match outcome {
        Ok(outputs) => {
            let data: Vec<(String, String, Value)> = outputs
                .iter()
                .map(|o| {
                    (
                        o.spec.event_type.to_owned(),
                        o.key.clone(),
                        dry_run::data_json(o),
                    )
                })
                .collect();
            // The ids and subjects the runtime would publish them with, recorded apart so
            // they are listed as emitted events rather than as effects.
            let aside = publisher.clone().recording(Recorder::new());
            match aside.publish_all(outputs, Some(event)).await {
                Ok(published) => {
                    report.emits = data
                        .into_iter()
                        .zip(published)
                        .map(|((event_type, key, data), p)| Emitted {
                            event_type,
                            key,
                            subject: p.subject,
                            id: p.id,
                            data,
                        })
                        .collect();
                }
                Err(e) => report.error = Some(e.to_string()),
            }
        }
        Err(e) => report.error = Some(format!("the handler failed: {e}")),
    }
    report.effects = recorder.take();
    report
}

/// The report for people: the event, then one line per effect (details indented below it) and
/// per emitted event.
pub(super) fn text(report: &Report) -> String {
    let mut text = format!(
        "{:>6}  {}  {}  id={}",
        report.seq, report.subject, report.event_type, report.id
    );
    for effect in &report.effects {
        text.push_str(&format!(
            "\n        {:<10} {}",
            effect.kind.as_str(),
            effect.summary
        ));
        if let Some(detail) = &effect.detail {
            for line in detail.lines() {
                text.push_str("\n                   | ");
                text.push_str(line);
            }
        }
    }
    for emitted in &report.emits {
        text.push_str(&format!(
            "\n        {:<10} {} {}  {}",
            "emit", emitted.event_type, emitted.key, emitted.data
        ));
    }
    if report.effects.is_empty() && report.emits.is_empty() && report.error.is_none() {
        text.push_str("\n        (nothing: no side effect, no event)");
    }
    if let Some(error) = &report.error {
        text.push_str(&format!("\n        error      {error}"));
    }
    text
}
