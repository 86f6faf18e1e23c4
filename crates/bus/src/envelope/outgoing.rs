//! An event on its way out: the message, its key and type, and what the envelope will say.

use bytes::Bytes;
use flotilla_proto::EventType;
use flotilla_proto::catalog::EventSpec;
use flotilla_proto::json;
use prost::Message;

use super::{Encoding, content_type};
use crate::error::BusError;
use crate::subject::sanitize_key;

/// An event a handler or a tool wants published.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub spec: &'static EventSpec,
    /// Sanitized key token.
    pub key: String,
    pub content_type: String,
    pub payload: Bytes,
    pub change_id: Option<String>,
    /// An explicit event id (e.g. a webhook delivery id); derived from the input when `None`.
    pub id: Option<String>,
    /// Extra headers copied onto the message (replay and retry markers).
    pub extra_headers: Vec<(&'static str, String)>,
    /// The trace context this event continues when it is published outside a handler: the
    /// `traceparent` kept with the state it reports on (see [`crate::trace`]).
    pub traceparent: Option<String>,
}

impl Outgoing {
    /// A protobuf-encoded event of `event_type` about `key`.
    pub fn new<M: Message + prost::Name>(
        event_type: EventType,
        key: &str,
        message: &M,
    ) -> Result<Outgoing, BusError> {
        let spec = event_type.spec();
        let name = M::full_name();
        if name != spec.message {
            return Err(BusError::Envelope(format!(
                "{event_type} carries {}, not {name}",
                spec.message
            )));
        }
        Ok(Outgoing::raw(
            spec,
            key,
            content_type(Encoding::Protobuf, spec.message),
            Bytes::from(message.encode_to_vec()),
        ))
    }

    /// An event from proto3 JSON, checked against the schema and its required fields, encoded as
    /// protobuf (or kept as JSON with [`Encoding::Json`]).
    pub fn from_json(
        event_type: EventType,
        key: &str,
        data: &[u8],
        encoding: Encoding,
    ) -> Result<Outgoing, BusError> {
        let spec = event_type.spec();
        let message = json::parse_json(spec.message, data, spec.required)?;
        let payload = match encoding {
            Encoding::Protobuf => Bytes::from(message.encode_to_vec()),
            Encoding::Json => Bytes::from(
                serde_json::to_vec(&message)
                    .map_err(|e| BusError::Envelope(format!("render JSON: {e}")))?,
            ),
        };
        Ok(Outgoing::raw(
            spec,
            key,
            content_type(encoding, spec.message),
            payload,
        ))
    }

    /// An event with an already encoded payload.
    pub fn raw(spec: &'static EventSpec, key: &str, content_type: String, payload: Bytes) -> Self {
        Outgoing {
            spec,
            key: sanitize_key(key),
            content_type,
            payload,
            change_id: None,
            id: None,
            extra_headers: Vec::new(),
            traceparent: None,
        }
    }

    pub fn with_change_id(mut self, change_id: impl Into<String>) -> Self {
        self.change_id = Some(change_id.into()).filter(|c| !c.is_empty());
        self
    }

    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Publishes the event in the trace of `traceparent` (kept in a registry record or a
    /// lease): a background task's event then stays in the change's trace. Empty is none.
    pub fn with_traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.traceparent = Some(traceparent.into()).filter(|t| !t.is_empty());
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.extra_headers.push((name, value.into()));
        self
    }

    /// `<prefix>.<domain>.<event>.<key>`.
    pub fn subject(&self, prefix: &str) -> String {
        [prefix, ".", self.spec.event_type, ".", &self.key].concat()
    }
}
