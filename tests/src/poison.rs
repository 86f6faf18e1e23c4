//! Poison: malformed messages on every subject a worker consumes, and what must become of them
//! (a dead letter per consuming worker, with a reason; the worker keeps running).
//!
//! Two kinds per event type: a message with no CloudEvents envelope at all (raw bytes, no
//! headers), and one with a valid envelope whose data does not decode as the type's message.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use flotilla_bus::topology::WORKERS;

/// A poison message sent, and the workers that consume its subject.
#[derive(Debug, Clone)]
pub struct Poison {
    pub subject: String,
    pub kind: &'static str,
    pub consumers: BTreeSet<String>,
}

/// Every event type some worker consumes, with the workers consuming it.
pub fn consumed() -> BTreeMap<String, BTreeSet<String>> {
    let mut types: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (worker, subjects) in WORKERS {
        for subject in *subjects {
            let event_type = subject.strip_suffix(".>").unwrap_or(subject);
            types
                .entry(event_type.to_owned())
                .or_default()
                .insert((*worker).to_owned());
        }
    }
    types
}

/// Publishes both kinds of poison on every consumed event type; returns what was sent.
pub async fn publish_all(js: &jetstream::Context) -> Result<Vec<Poison>> {
    let mut sent = Vec::new();
    for (event_type, consumers) in consumed() {
        for kind in ["no-envelope", "bad-data"] {
            let subject = format!("flotilla.{event_type}.poison-{kind}");
            let payload = Bytes::from_static(b"\xff\x00 not an event \xfe");
            let headers = match kind {
                "no-envelope" => HeaderMap::new(),
                _ => envelope(&event_type, &format!("poison-{kind}")),
            };
            // A per-message id, so the stream never drops the next run's poison as a duplicate.
            let mut headers = headers;
            headers.insert(
                "Nats-Msg-Id",
                format!("poison:{event_type}:{kind}:{}", uuid::Uuid::new_v4()).as_str(),
            );
            js.publish_with_headers(subject.clone(), headers, payload)
                .await
                .with_context(|| format!("publish {subject}"))?
                .await
                .with_context(|| format!("store {subject}"))?;
            sent.push(Poison {
                subject,
                kind,
                consumers: consumers.clone(),
            });
        }
    }
    Ok(sent)
}

/// Valid CloudEvents headers for `event_type` with key `key`, claiming protobuf data.
fn envelope(event_type: &str, key: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let message = flotilla_proto::catalog::lookup(event_type)
        .map(|spec| spec.message)
        .unwrap_or("flotilla.v1.Build");
    for (name, value) in [
        ("ce-specversion", "1.0".to_owned()),
        ("ce-id", format!("poison-{}", uuid::Uuid::new_v4())),
        ("ce-source", "suite/poison".to_owned()),
        ("ce-type", format!("dev.flotilla.{event_type}.v1")),
        ("ce-time", "2025-01-01T00:00:00Z".to_owned()),
        ("ce-subject", key.to_owned()),
        (
            "content-type",
            format!("application/protobuf; proto={message}"),
        ),
    ] {
        headers.insert(name, value.as_str());
    }
    headers
}
