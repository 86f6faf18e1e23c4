//! Structured content mode: the whole CloudEvent as JSON in the payload
//! (`content-type: application/cloudevents+json`). Flotilla publishes binary mode; it reads
//! structured mode too, so any CloudEvents producer can feed the bus.

use base64::Engine;
use bytes::Bytes;
use serde_json::Value;

use crate::error::BusError;

/// The attributes and data of a structured-mode event.
pub(super) struct Structured {
    pub id: String,
    pub source: String,
    pub ce_type: String,
    pub time: Option<String>,
    pub subject: Option<String>,
    pub content_type: String,
    pub data: Bytes,
}

/// Whether `content_type` announces structured mode (matched case-insensitively).
pub(super) fn is_structured(content_type: &str) -> bool {
    content_type
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/cloudevents")
}

pub(super) fn parse(payload: &[u8]) -> Result<Structured, BusError> {
    let event: Value = serde_json::from_slice(payload)
        .map_err(|e| BusError::Envelope(format!("structured event is not JSON: {e}")))?;
    let text = |name: &str| event.get(name).and_then(Value::as_str).map(str::to_owned);
    let require = |name: &str| {
        text(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| BusError::Envelope(format!("structured event has no `{name}`")))
    };
    let specversion = require("specversion")?;
    if specversion != super::SPECVERSION {
        return Err(BusError::Envelope(format!(
            "unsupported specversion `{specversion}` (expected {})",
            super::SPECVERSION
        )));
    }
    let declared = text("datacontenttype");
    let (content_type, data) = if let Some(encoded) = text("data_base64") {
        let data = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| BusError::Envelope(format!("data_base64 is not base64: {e}")))?;
        (
            declared.unwrap_or_else(|| "application/octet-stream".into()),
            Bytes::from(data),
        )
    } else {
        match (event.get("data"), declared) {
            (None | Some(Value::Null), declared) => (
                declared.unwrap_or_else(|| super::CONTENT_TYPE_JSON.into()),
                Bytes::new(),
            ),
            // A string under a non-JSON media type is the data itself (e.g. XML text).
            (Some(Value::String(s)), Some(ct)) if !ct.contains("json") => {
                (ct, Bytes::from(s.clone().into_bytes()))
            }
            (Some(data), declared) => (
                declared.unwrap_or_else(|| super::CONTENT_TYPE_JSON.into()),
                Bytes::from(data.to_string().into_bytes()),
            ),
        }
    };
    Ok(Structured {
        id: require("id")?,
        source: require("source")?,
        ce_type: require("type")?,
        time: text("time"),
        subject: text("subject"),
        content_type,
        data,
    })
}
