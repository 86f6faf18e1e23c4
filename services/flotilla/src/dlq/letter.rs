//! One dead letter as `FLOTILLA_DLQ` stores it: where it came from, why, and the headers a retry
//! puts back.

use async_nats::HeaderMap;
use flotilla_bus::envelope::header;
use serde::Serialize;

use crate::events::{self, Stored};

/// A dead letter as FLOTILLA_DLQ stores it.
#[derive(Debug, Clone)]
pub(super) struct DeadLetter {
    pub(super) stored: Stored,
    pub(super) worker: String,
    /// The subject the event was consumed from, where a retry puts it back.
    pub(super) subject: Option<String>,
    pub(super) deliveries: Option<u64>,
    pub(super) time: String,
    pub(super) reason: String,
}

/// The JSON line of `dlq list --json`.
#[derive(Debug, Serialize)]
pub(super) struct LetterJson<'a> {
    seq: u64,
    worker: &'a str,
    subject: Option<&'a str>,
    deliveries: Option<u64>,
    time: &'a str,
    reason: &'a str,
    /// The event's `ce-id`.
    id: Option<&'a str>,
    /// Its sequence in FLOTILLA.
    stream_seq: Option<u64>,
}

impl DeadLetter {
    pub(super) fn new(stored: Stored) -> DeadLetter {
        let text = |name| stored.header(name).map(str::to_owned);
        // A letter without the worker header still names it in its subject.
        let worker = text(header::DLQ_WORKER).unwrap_or_else(|| {
            let token = stored.subject.rsplit('.').next().unwrap_or_default();
            token.to_owned()
        });
        DeadLetter {
            worker,
            subject: text(header::DLQ_SUBJECT),
            deliveries: text(header::DLQ_DELIVERIES).and_then(|d| d.parse().ok()),
            time: text(header::DLQ_TIME).unwrap_or_else(|| events::rfc3339(stored.stored_at)),
            reason: text(header::DLQ_REASON).unwrap_or_default(),
            stored,
        }
    }

    pub(super) fn seq(&self) -> u64 {
        self.stored.seq
    }

    pub(super) fn json(&self) -> LetterJson<'_> {
        LetterJson {
            seq: self.seq(),
            worker: &self.worker,
            subject: self.subject.as_deref(),
            deliveries: self.deliveries,
            time: &self.time,
            reason: &self.reason,
            id: self.stored.header(header::ID),
            stream_seq: self
                .stored
                .header(header::DLQ_STREAM_SEQ)
                .and_then(|s| s.parse().ok()),
        }
    }

    /// The original headers, with the dead-letter ones replaced by the retry markers.
    pub(super) fn retry_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, values) in self.stored.headers.iter().flat_map(HeaderMap::iter) {
            let name_str: &str = name.as_ref();
            if name_str.starts_with("flotilla-dlq-")
                || name_str == header::RETRY_FOR
                || name_str == header::MSG_ID
            {
                continue;
            }
            for value in values {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(header::RETRY_FOR, self.worker.as_str());
        headers.insert(header::MSG_ID, format!("retry:{}", self.seq()));
        headers
    }
}
