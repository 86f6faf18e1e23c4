//! One delivery of a message, split from its acker, and how it is settled.

use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::jetstream::message::Acker;
use async_nats::jetstream::{AckKind, Message};
use bytes::Bytes;

/// One delivery, split from its acker so the headers move into the event without a copy.
pub(super) struct Delivery {
    pub(super) subject: String,
    pub(super) headers: Arc<HeaderMap>,
    pub(super) payload: Bytes,
    acker: Acker,
    pub(super) delivered: u64,
    pub(super) stream_seq: u64,
}

impl Delivery {
    pub(super) fn new(message: Message) -> Delivery {
        let (delivered, stream_seq) = match message.info() {
            Ok(info) => (info.delivered.max(1) as u64, info.stream_sequence),
            Err(_) => (1, 0),
        };
        let (message, acker) = message.split();
        Delivery {
            // `as_str`: `Subject::to_string` would go through `Display`.
            subject: message.subject.as_str().to_owned(),
            headers: Arc::new(message.headers.unwrap_or_default()),
            payload: message.payload,
            acker,
            delivered,
            stream_seq,
        }
    }

    /// Sends an ack of `kind`; a lost ack only means a redelivery, whose outputs are
    /// duplicates.
    pub(super) async fn settle(&self, kind: AckKind) {
        if let Err(e) = self.acker.ack_with(kind).await {
            tracing::warn!(error = %e, "ack failed; the event may be redelivered");
        }
    }
}
