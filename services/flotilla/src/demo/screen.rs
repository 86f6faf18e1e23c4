//! What `flotilla demo` prints: a timeline for people (a line per event as it happens, grouped
//! per scenario), one JSON object a line for programs, or only the outcome.

use std::fmt::Display;

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::error::CliError;
use crate::render::Output;

/// How the demo reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Timeline,
    Json,
    Quiet,
}

/// One line of the timeline: an event of the fleet, or something the demo played.
#[derive(Debug)]
pub struct Entry<'a> {
    pub at: OffsetDateTime,
    /// The event type (`build.succeeded`), or what the demo played (`cluster`, `webhook`).
    pub stage: &'a str,
    pub worker: &'a str,
    pub key: &'a str,
    pub summary: &'a str,
    pub change_id: Option<&'a str>,
}

/// The demo's stdout.
pub struct Screen {
    out: Output,
    mode: Mode,
    /// When the first scenario began: offsets are counted from there.
    zero: Option<OffsetDateTime>,
    scenario: u8,
}

impl Screen {
    pub fn new(mode: Mode) -> Screen {
        Screen {
            out: Output::live(),
            mode,
            zero: None,
            scenario: 0,
        }
    }

    /// A line of explanation (set-up, what the demo plays); JSON as `{"kind":"note"}`.
    pub fn note(&mut self, text: impl Display) -> Result<(), CliError> {
        match self.mode {
            Mode::Timeline => self.out.line(text),
            Mode::Json => self
                .out
                .json(&json!({"kind": "note", "text": text.to_string()})),
            Mode::Quiet => Ok(()),
        }
    }

    /// Facts a program needs (where NATS is, the temp dir); JSON only.
    pub fn facts(&mut self, facts: Value) -> Result<(), CliError> {
        match self.mode {
            Mode::Json => self.out.json(&facts),
            Mode::Timeline | Mode::Quiet => Ok(()),
        }
    }

    /// Starts scenario `number`; the clock starts with the first.
    pub fn heading(&mut self, number: u8, title: &str) -> Result<(), CliError> {
        self.zero.get_or_insert_with(OffsetDateTime::now_utc);
        self.scenario = number;
        match self.mode {
            Mode::Timeline => {
                self.out.line("")?;
                self.out.line(format!("{number}. {title}"))
            }
            Mode::Json => self.out.json(&json!({
                "kind": "scenario", "scenario": number, "title": title,
            })),
            Mode::Quiet => Ok(()),
        }
    }

    /// A line of the timeline; `played` when the demo did it (it plays the cluster and GitHub).
    pub fn entry(&mut self, entry: &Entry<'_>, played: bool) -> Result<(), CliError> {
        let offset = self
            .zero
            .map_or(time::Duration::ZERO, |zero| entry.at - zero);
        match self.mode {
            Mode::Timeline => self.out.line(line(offset, entry)),
            Mode::Json => self.out.json(&json!({
                "kind": if played { "demo" } else { "event" },
                "scenario": self.scenario,
                "t_ms": offset.whole_milliseconds().max(0),
                "stage": entry.stage,
                "worker": entry.worker,
                "key": entry.key,
                "summary": entry.summary,
                "change_id": entry.change_id,
            })),
            Mode::Quiet => Ok(()),
        }
    }

    /// The outcome: shown in every mode.
    pub fn outcome(&mut self, text: impl Display, json: Value) -> Result<(), CliError> {
        match self.mode {
            Mode::Json => self.out.json(&json),
            Mode::Timeline | Mode::Quiet => self.out.line(text),
        }
    }
}

/// `  +12.3s  build.succeeded      builder-trigger  ping-v1                          built …`
fn line(offset: time::Duration, entry: &Entry<'_>) -> String {
    let seconds = offset.whole_milliseconds().max(0) as f64 / 1000.0;
    format!(
        "{:>8}  {:<22} {:<16} {:<33} {}",
        format!("+{seconds:.1}s"),
        entry.stage,
        entry.worker,
        entry.key,
        entry.summary
    )
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_line_has_the_offset_stage_worker_key_and_summary_in_columns() {
        let entry = Entry {
            at: datetime!(2026-01-01 12:00:01.26 UTC),
            stage: "build.succeeded",
            worker: "builder-trigger",
            key: "ping-v1",
            summary: "built registry/apps/ping:v1",
            change_id: Some("ping-v1"),
        };
        let text = line(time::Duration::milliseconds(1260), &entry);
        assert_eq!(
            text,
            "   +1.3s  build.succeeded        builder-trigger  ping-v1                           built registry/apps/ping:v1"
        );
    }
}
