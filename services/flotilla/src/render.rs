//! How stored events are shown: one line for people, or one JSON object a line for programs.

use std::fmt::Display;
use std::io::{self, BufWriter, Stdout, Write};

use flotilla_bus::Event;
use flotilla_bus::envelope::header;
use serde::Serialize;
use serde_json::Value;

use crate::error::CliError;
use crate::events::{Stored, rfc3339};

/// What is known about one stored event. A message without a valid envelope still yields one:
/// what could not be read is `None` (`null` in JSON) and `error` says why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventView {
    pub seq: u64,
    pub subject: String,
    /// The CloudEvents type, e.g. `dev.flotilla.build.succeeded.v1`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub id: Option<String>,
    /// `ce-time`, or when the stream stored the message if it carries none.
    pub time: String,
    pub change_id: Option<String>,
    /// The data as proto3 JSON, whatever its encoding on the wire.
    pub data: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl EventView {
    pub fn of(stored: &Stored) -> EventView {
        let envelope = Event::from_parts(
            &stored.subject,
            stored.headers.as_ref(),
            stored.payload.clone(),
        );
        let event = match envelope {
            Ok(event) => event,
            Err(e) => {
                let get = |name| {
                    stored
                        .header(name)
                        .filter(|v| !v.is_empty())
                        .map(str::to_owned)
                };
                return EventView {
                    seq: stored.seq,
                    subject: stored.subject.clone(),
                    event_type: get(header::TYPE),
                    id: get(header::ID),
                    time: get(header::TIME).unwrap_or_else(|| rfc3339(stored.stored_at)),
                    change_id: get(header::CHANGE_ID),
                    data: raw_data(&stored.payload),
                    error: Some(e.to_string()),
                };
            }
        };
        let (data, error) = match event.data_json() {
            Ok(data) => (data, None),
            Err(e) => (raw_data(&stored.payload), Some(e.to_string())),
        };
        EventView {
            seq: stored.seq,
            subject: stored.subject.clone(),
            time: event
                .time
                .clone()
                .unwrap_or_else(|| rfc3339(stored.stored_at)),
            event_type: Some(event.ce_type),
            id: Some(event.id),
            change_id: event.change_id,
            data,
            error,
        }
    }

    /// `seq  time  subject  type  id=..  change=..  data`, with `-` for what is unknown.
    pub fn line(&self) -> String {
        let known = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
        let mut line = format!(
            "{:>6}  {}  {}  {}  id={}  change={}  {}",
            self.seq,
            self.time,
            self.subject,
            known(&self.event_type),
            known(&self.id),
            known(&self.change_id),
            self.data,
        );
        if let Some(error) = &self.error {
            line.push_str("  ! ");
            line.push_str(error);
        }
        line
    }
}

/// A payload shown as it is: JSON when it parses, text when it is UTF-8, else nothing.
fn raw_data(payload: &[u8]) -> Value {
    if payload.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(payload).unwrap_or_else(|_| match std::str::from_utf8(payload) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => Value::Null,
    })
}

/// The command's stdout.
pub struct Output {
    out: BufWriter<Stdout>,
    /// A command that runs until stopped shows each line at once; a bounded one is buffered.
    live: bool,
}

impl Output {
    /// For a command that ends by itself: buffered, flushed by [`Output::finish`].
    pub fn buffered() -> Output {
        Output {
            out: BufWriter::new(io::stdout()),
            live: false,
        }
    }

    /// For a command that runs until stopped: every line is flushed as it is written.
    pub fn live() -> Output {
        Output {
            out: BufWriter::new(io::stdout()),
            live: true,
        }
    }

    pub fn line(&mut self, line: impl Display) -> Result<(), CliError> {
        writeln!(self.out, "{line}")?;
        if self.live {
            self.out.flush()?;
        }
        Ok(())
    }

    /// Writes `value` as one line of JSON.
    pub fn json(&mut self, value: &impl Serialize) -> Result<(), CliError> {
        let text = serde_json::to_string(value).map_err(io::Error::from)?;
        self.line(text)
    }

    /// Writes a stored event as a human line or as JSON.
    pub fn event(&mut self, stored: &Stored, json: bool) -> Result<(), CliError> {
        let view = EventView::of(stored);
        if json {
            self.json(&view)
        } else {
            self.line(view.line())
        }
    }

    pub fn finish(mut self) -> Result<(), CliError> {
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use async_nats::HeaderMap;
    use bytes::Bytes;
    use flotilla_bus::{Encoding, EventType, Outgoing};
    use time::macros::datetime;

    use super::*;

    fn stored(headers: &[(&str, &str)], payload: &[u8]) -> Stored {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, *value);
        }
        Stored {
            seq: 7,
            subject: "flotilla.build.started.ping-v1".into(),
            headers: (!headers.is_empty()).then_some(map),
            payload: Bytes::copy_from_slice(payload),
            stored_at: datetime!(2024-05-01 12:00:00 UTC),
        }
    }

    #[test]
    fn a_protobuf_event_is_shown_as_proto3_json() {
        let data = br#"{"changeId":"ping-v1","app":"ping","version":"v1"}"#;
        let event =
            Outgoing::from_json(EventType::BuildStarted, "ping-v1", data, Encoding::Protobuf)
                .expect("valid build");
        let message = stored(
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "e-1"),
                ("ce-source", "flotilla/cli"),
                ("ce-type", "dev.flotilla.build.started.v1"),
                ("ce-time", "2024-05-01T11:59:59Z"),
                ("content-type", &event.content_type),
                ("flotilla-change-id", "ping-v1"),
            ],
            &event.payload,
        );
        let json = serde_json::to_value(EventView::of(&message)).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "seq": 7,
                "subject": "flotilla.build.started.ping-v1",
                "type": "dev.flotilla.build.started.v1",
                "id": "e-1",
                "time": "2024-05-01T11:59:59Z",
                "change_id": "ping-v1",
                "data": {"changeId": "ping-v1", "app": "ping", "version": "v1"},
            })
        );
    }

    #[test]
    fn a_message_without_an_envelope_shows_what_is_known() {
        let view = EventView::of(&stored(&[("ce-id", "e-2")], b"{\"x\":1}"));
        assert_eq!(view.id.as_deref(), Some("e-2"));
        assert_eq!(view.event_type, None);
        assert_eq!(view.time, "2024-05-01T12:00:00Z");
        assert_eq!(view.data, serde_json::json!({"x": 1}));
        let error = view.error.as_deref().unwrap_or_default();
        assert!(error.contains("ce-specversion"), "{error}");
        assert!(view.line().contains("id=e-2  change=-"), "{}", view.line());
    }

    #[test]
    fn a_payload_that_is_not_json_is_shown_as_text_or_null() {
        assert_eq!(raw_data(b"plain"), Value::String("plain".into()));
        assert_eq!(raw_data(&[0xff, 0x00]), Value::Null);
        assert_eq!(raw_data(b""), Value::Null);
    }
}
