//! The CloudEvents NATS protocol binding, binary mode.
//!
//! Attributes travel as `ce-*` headers, the data as the message payload, and `content-type`
//! names the protobuf message (`application/protobuf; proto=flotilla.v1.Build`) so any consumer
//! with `proto/` can decode it, or is `application/json` for events published as JSON.
//! Attribute values are percent-encoded as the binding requires ([`codec`]). Flotilla writes
//! lowercase header names and reads any case. Structured mode is read too ([`structured`]).

pub mod codec;
pub mod header;
pub mod header_name;
mod kind;
mod outgoing;
mod structured;

use std::sync::Arc;

use async_nats::{HeaderMap, HeaderName};
use bytes::Bytes;
use flotilla_proto::catalog::{self, EventSpec};
use flotilla_proto::json;
use prost::Message;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::BusError;

pub use outgoing::Outgoing;

pub const SPECVERSION: &str = "1.0";
pub const CONTENT_TYPE_JSON: &str = "application/json";
const PROTOBUF_PREFIX: &str = "application/protobuf; proto=";

/// How an event's data is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

/// The `content-type` for data of message `full_name` in `encoding`.
pub fn content_type(encoding: Encoding, full_name: &str) -> String {
    match encoding {
        // Concatenated rather than `format!`ed: this runs for every event published.
        Encoding::Protobuf => [PROTOBUF_PREFIX, full_name].concat(),
        Encoding::Json => CONTENT_TYPE_JSON.to_owned(),
    }
}

/// Whether `content_type` is exactly what [`content_type`] gives for protobuf message
/// `full_name`, without building it.
pub fn is_protobuf_of(content_type: &str, full_name: &str) -> bool {
    content_type.strip_prefix(PROTOBUF_PREFIX) == Some(full_name)
}

/// An event as received from the bus.
#[derive(Debug, Clone)]
pub struct Event {
    /// The NATS subject it was stored under.
    pub subject: String,
    /// `ce-id`.
    pub id: String,
    /// `ce-source`, e.g. `flotilla/env-manager`.
    pub source: String,
    /// `ce-type`, e.g. `dev.flotilla.build.succeeded.v1`.
    pub ce_type: String,
    /// `ce-time` as sent (RFC 3339).
    pub time: Option<String>,
    /// `ce-subject`: the key (repo, change, env or release id).
    pub key: String,
    pub change_id: Option<String>,
    pub content_type: String,
    pub payload: Bytes,
    /// All headers as received, shared: cloning an event does not copy them.
    pub headers: Arc<HeaderMap>,
}

impl Event {
    /// Reads the envelope of a NATS message, binary or structured mode. Fails when a required
    /// attribute is missing or badly encoded.
    pub fn from_parts(
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: Bytes,
    ) -> Result<Event, BusError> {
        Event::from_shared(
            subject,
            Arc::new(headers.cloned().unwrap_or_default()),
            payload,
        )
    }

    /// [`Event::from_parts`] for headers already owned and shared: nothing is copied.
    pub fn from_shared(
        subject: &str,
        headers: Arc<HeaderMap>,
        payload: Bytes,
    ) -> Result<Event, BusError> {
        let content_type = codec::get(&headers, &header_name::CONTENT_TYPE);
        if content_type.is_some_and(structured::is_structured) {
            return Event::from_structured(subject, headers, &payload);
        }
        let get = |name: &HeaderName| -> Result<Option<String>, BusError> {
            codec::get(&headers, name)
                .map(|raw| codec::decode(raw).map(|v| v.into_owned()))
                .transpose()
        };
        let require = |name: &HeaderName| {
            get(name)?
                .filter(|v| !v.is_empty())
                .ok_or_else(|| BusError::Envelope(format!("missing header `{name}`")))
        };
        let specversion = require(&header_name::SPECVERSION)?;
        if specversion != SPECVERSION {
            return Err(BusError::Envelope(format!(
                "unsupported ce-specversion `{specversion}` (expected {SPECVERSION})"
            )));
        }
        let content_type = match content_type {
            Some(ct) => ct.to_owned(),
            None => get(&header_name::DATACONTENTTYPE)?.unwrap_or_default(),
        };
        Ok(Event {
            subject: subject.to_owned(),
            id: require(&header_name::ID)?,
            source: require(&header_name::SOURCE)?,
            ce_type: require(&header_name::TYPE)?,
            time: get(&header_name::TIME)?,
            key: get(&header_name::SUBJECT)?.unwrap_or_default(),
            change_id: get(&header_name::CHANGE_ID)?.filter(|v| !v.is_empty()),
            content_type,
            payload,
            headers,
        })
    }

    fn from_structured(
        subject: &str,
        headers: Arc<HeaderMap>,
        payload: &[u8],
    ) -> Result<Event, BusError> {
        let event = structured::parse(payload)?;
        let change_id = codec::get(&headers, &header_name::CHANGE_ID)
            .map(codec::decode)
            .transpose()?
            .map(|v| v.into_owned())
            .filter(|v| !v.is_empty());
        Ok(Event {
            subject: subject.to_owned(),
            id: event.id,
            source: event.source,
            ce_type: event.ce_type,
            time: event.time,
            key: event.subject.unwrap_or_default(),
            change_id,
            content_type: event.content_type,
            payload: event.data,
            headers,
        })
    }

    /// The catalog entry of this event's type, when it is a v1 Flotilla event.
    pub fn spec(&self) -> Option<&'static EventSpec> {
        catalog::lookup_ce_type(&self.ce_type)
    }

    /// `<domain>.<event>`, e.g. `build.succeeded`, derived from `ce-type`.
    pub fn event_type(&self) -> &str {
        self.ce_type
            .strip_prefix("dev.flotilla.")
            .and_then(|t| t.strip_suffix(".v1"))
            .unwrap_or(&self.ce_type)
    }

    /// The encoding and protobuf message name its `content-type` declares.
    pub fn encoding(&self) -> Result<(Encoding, Option<&str>), BusError> {
        let ct = self.content_type.trim();
        if let Some(name) = ct.strip_prefix(PROTOBUF_PREFIX) {
            return Ok((Encoding::Protobuf, Some(name.trim())));
        }
        let media = ct.split(';').next().unwrap_or_default().trim();
        match media {
            CONTENT_TYPE_JSON => Ok((Encoding::Json, None)),
            "application/protobuf" | "application/x-protobuf" => Ok((Encoding::Protobuf, None)),
            other => Err(BusError::Envelope(format!(
                "unsupported content-type `{other}`"
            ))),
        }
    }

    /// Decodes the data as `M`, from protobuf or JSON as the `content-type` says.
    pub fn decode<M: Message + prost::Name + Default>(&self) -> Result<M, BusError> {
        let expected = M::full_name();
        match self.encoding()? {
            (Encoding::Protobuf, declared) => {
                if let Some(declared) = declared
                    && declared != expected
                {
                    return Err(BusError::Envelope(format!(
                        "content-type names {declared}, expected {expected}"
                    )));
                }
                M::decode(self.payload.as_ref()).map_err(|source| {
                    BusError::Schema(json::SchemaError::Decode {
                        message: expected,
                        source,
                    })
                })
            }
            (Encoding::Json, _) => Ok(json::from_json::<M>(&self.payload)?),
        }
    }

    /// The data as proto3 JSON, whatever its encoding; `null` for a type Flotilla does not know.
    pub fn data_json(&self) -> Result<serde_json::Value, BusError> {
        match self.encoding()? {
            (Encoding::Json, _) => serde_json::from_slice(&self.payload)
                .map_err(|e| BusError::Envelope(format!("data is not JSON: {e}"))),
            (Encoding::Protobuf, declared) => {
                let name = declared
                    .map(str::to_owned)
                    .or_else(|| self.spec().map(|s| s.message.to_owned()));
                match name {
                    Some(name) => Ok(json::protobuf_to_json(&name, &self.payload)?),
                    None => Ok(serde_json::Value::Null),
                }
            }
        }
    }
}

/// Now as RFC 3339, the `ce-time` format.
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_proto::EventType;
    use flotilla_proto::v1::Build;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, *v);
        }
        map
    }

    #[test]
    fn missing_id_is_an_envelope_error() {
        let h = headers(&[
            ("ce-specversion", "1.0"),
            ("ce-source", "x"),
            ("ce-type", "t"),
        ]);
        let err = Event::from_parts("s", Some(&h), Bytes::new()).expect_err("no id");
        assert!(err.to_string().contains("ce-id"), "{err}");
    }

    #[test]
    fn wrong_message_for_type_is_refused() {
        let err = Outgoing::new(EventType::EnvReady, "k", &Build::default()).expect_err("mismatch");
        assert!(err.to_string().contains("flotilla.v1.Environment"), "{err}");
    }

    #[test]
    fn protobuf_content_type_names_the_message() {
        let out =
            Outgoing::new(EventType::BuildStarted, "ping-v1", &Build::default()).expect("valid");
        assert_eq!(
            out.content_type,
            "application/protobuf; proto=flotilla.v1.Build"
        );
        assert_eq!(out.subject("flotilla"), "flotilla.build.started.ping-v1");
    }
}
