//! Dead letters: a copy of a message a worker gave up on, on `flotilla-dlq.<worker>`, with the
//! original subject, headers and payload, and why.

use async_nats::HeaderMap;
use bytes::Bytes;

use crate::envelope::{header, now_rfc3339};
use crate::error::BusError;
use crate::publish::Publisher;

/// Why and where a message is dead-lettered.
pub(super) struct Letter<'a> {
    pub worker: &'a str,
    /// The original subject, headers and payload.
    pub subject: &'a str,
    pub headers: &'a HeaderMap,
    pub payload: &'a Bytes,
    pub reason: &'a str,
    pub delivered: u64,
    pub stream_seq: u64,
}

/// Headers of the dead-letter copy: the original ones, minus the dedup id, plus the DLQ ones.
pub fn headers(
    original: Option<&HeaderMap>,
    subject: &str,
    letter_fields: [(&str, String); 5],
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(original) = original {
        for (name, values) in original.iter() {
            if AsRef::<str>::as_ref(name) == header::MSG_ID {
                continue;
            }
            for value in values {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    headers.insert(header::DLQ_SUBJECT, subject);
    for (name, value) in letter_fields {
        // Header values are one line.
        headers.insert(name, value.replace(['\r', '\n'], " ").as_str());
    }
    headers
}

pub(super) async fn send(
    publisher: &Publisher,
    dlq_subject: &str,
    letter: &Letter<'_>,
) -> Result<(), BusError> {
    let mut headers = headers(
        Some(letter.headers),
        letter.subject,
        [
            (header::DLQ_REASON, letter.reason.to_owned()),
            (header::DLQ_WORKER, letter.worker.to_owned()),
            (header::DLQ_DELIVERIES, letter.delivered.to_string()),
            (header::DLQ_STREAM_SEQ, letter.stream_seq.to_string()),
            (header::DLQ_TIME, now_rfc3339()),
        ],
    );
    // One dead letter per stored message and worker, however often this runs.
    headers.insert(
        header::MSG_ID,
        format!("dlq:{}:{}", letter.worker, letter.stream_seq).as_str(),
    );
    publisher
        .publish_raw(dlq_subject, headers, letter.payload.clone())
        .await
        .map(|_| ())
}
