//! Dead letters: a copy of a message a worker gave up on, on `flotilla-dlq.<worker>`, with the
//! original subject, headers and payload, and why.

use async_nats::HeaderMap;
use bytes::Bytes;
use uuid::Uuid;

use crate::envelope::{header, now_rfc3339};
use crate::error::BusError;
use crate::publish::Publisher;

/// Namespace of the dead-letter ids derived from a message's contents (UUID v5).
const LETTER_NAMESPACE: Uuid = Uuid::from_u128(0x0d1e_7a2c_54b1_4f0e_8e0c_d1a9_5b7e_3c42);

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
    headers.insert(header::MSG_ID, letter_id(letter).as_str());
    publisher
        .publish_raw(dlq_subject, headers, letter.payload.clone())
        .await
        .map(|_| ())
}

/// The dead letter's dedup id: one dead letter per stored message and worker, however often
/// this runs. Its stream sequence names a stored message; when the sequence is unknown (0), a
/// digest of the subject, headers and payload does, which is as stable across redeliveries and
/// differs between messages (a shared id would make JetStream drop every later letter).
fn letter_id(letter: &Letter<'_>) -> String {
    if letter.stream_seq != 0 {
        return format!("dlq:{}:{}", letter.worker, letter.stream_seq);
    }
    format!(
        "dlq:{}:{}",
        letter.worker,
        content_digest(letter.subject, letter.headers, letter.payload)
    )
}

/// A digest of a message: subject, headers (sorted, since a header map's order is not
/// stable) and payload, each length-prefixed so no two messages share their bytes.
fn content_digest(subject: &str, headers: &HeaderMap, payload: &Bytes) -> Uuid {
    let mut pairs: Vec<(&str, &str)> = headers
        .iter()
        .flat_map(|(name, values)| {
            let name: &str = name.as_ref();
            values.iter().map(move |value| (name, value.as_str()))
        })
        .collect();
    pairs.sort_unstable();
    let mut bytes = Vec::with_capacity(subject.len() + payload.len() + 64 * pairs.len());
    let mut field = |part: &[u8]| {
        bytes.extend_from_slice(&(part.len() as u64).to_be_bytes());
        bytes.extend_from_slice(part);
    };
    field(subject.as_bytes());
    for (name, value) in pairs {
        field(name.as_bytes());
        field(value.as_bytes());
    }
    field(payload);
    Uuid::new_v5(&LETTER_NAMESPACE, &bytes)
}

/// Puts a message the worker could not dead-letter on its final delivery back on its subject,
/// addressed to this worker only (`flotilla-retry-for`, as `flotilla dlq retry` does), so it is
/// handled afresh instead of being lost when the process stops.
pub(super) async fn requeue(publisher: &Publisher, letter: &Letter<'_>) -> Result<(), BusError> {
    let mut headers = HeaderMap::new();
    for (name, values) in letter.headers.iter() {
        let name_str: &str = name.as_ref();
        if name_str == header::MSG_ID || name_str == header::RETRY_FOR {
            continue;
        }
        for value in values {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(header::RETRY_FOR, letter.worker);
    let id = letter_id(letter);
    headers.insert(header::MSG_ID, format!("requeue:{id}").as_str());
    publisher
        .publish_raw(letter.subject, headers, letter.payload.clone())
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{Bus, Names, StreamLimits};

    fn letter<'a>(headers: &'a HeaderMap, payload: &'a Bytes) -> Letter<'a> {
        Letter {
            worker: "w",
            subject: "flotilla.build.started.x",
            headers,
            payload,
            reason: "no sequence",
            delivered: 1,
            stream_seq: 0,
        }
    }

    #[test]
    fn an_unknown_sequence_gives_an_id_from_the_contents() {
        let mut a = HeaderMap::new();
        a.insert("ce-id", "1");
        a.insert("ce-type", "dev.flotilla.build.started.v1");
        let mut a_again = HeaderMap::new();
        a_again.insert("ce-type", "dev.flotilla.build.started.v1");
        a_again.insert("ce-id", "1");
        let mut b = HeaderMap::new();
        b.insert("ce-id", "2");
        b.insert("ce-type", "dev.flotilla.build.started.v1");
        let payload = Bytes::from_static(b"x");
        let id = letter_id(&letter(&a, &payload));
        assert_eq!(id, letter_id(&letter(&a_again, &payload)), "stable");
        assert_ne!(id, letter_id(&letter(&b, &payload)));
        assert_ne!(id, "dlq:w:0");
        let mut known = letter(&a, &payload);
        known.stream_seq = 7;
        assert_eq!(letter_id(&known), "dlq:w:7");
    }

    #[tokio::test]
    async fn two_letters_without_a_sequence_are_both_stored() {
        let server = flotilla_testing::NatsServer::start();
        let bus = Bus::new(server.connect().await, Names::default());
        bus.ensure_streams(&StreamLimits::default())
            .await
            .expect("streams");
        let publisher = bus.publisher("w");
        let payload = Bytes::from_static(b"not an event");
        for id in ["one", "two"] {
            let mut headers = HeaderMap::new();
            headers.insert("ce-id", id);
            send(&publisher, "flotilla-dlq.w", &letter(&headers, &payload))
                .await
                .expect("dead letter stored");
        }
        let dlq = bus.dlq_stream().await.expect("dlq stream");
        let mut ids = Vec::new();
        for seq in 1..=2 {
            // A letter dropped as a duplicate leaves no second sequence.
            let stored = dlq.get_raw_message(seq).await.expect("a stored letter");
            let id = stored.headers.get("ce-id").map(|v| v.to_string());
            ids.push(id.unwrap_or_default());
        }
        assert_eq!(
            ids,
            vec!["one", "two"],
            "neither letter was dropped as a duplicate"
        );
    }
}
