//! Publishing events: envelope headers, deterministic ids, waiting for the JetStream ack.

use std::sync::{Arc, OnceLock};

use async_nats::HeaderMap;
use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use futures::future::try_join_all;
use uuid::Uuid;

use crate::dry_run::{self, EffectKind, Recorder};
use crate::envelope::{self, Event, Outgoing, codec, header, header_name as name};
use crate::error::BusError;
use crate::topology::Bus;
use flotilla_proto::EventType;
use flotilla_proto::catalog::EventSpec;

/// Namespace of derived event ids (UUID v5), so ids never collide with other systems' v5 ids.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_7a1e_4d2b_4b8e_9a57_3c0e_f107_11a0);

/// How often a publish whose ack timed out is sent again (with the same `Nats-Msg-Id`).
const PUBLISH_ATTEMPTS: u32 = 4;

/// Where an event was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub id: String,
    pub subject: String,
    pub sequence: u64,
    /// JetStream had already stored an event with this id: nothing new was written.
    pub duplicate: bool,
}

/// Publishes events as one component (`ce-source: flotilla/<component>`). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Publisher {
    bus: Bus,
    source: Arc<str>,
    /// `source` as its header value, encoded once.
    source_header: Arc<str>,
    /// Per event type (indexed by [`EventType`]), the headers all of this publisher's events of
    /// that type share, built on first use (see [`Publisher::message`]).
    shared_headers: Arc<[OnceLock<HeaderMap>]>,
    /// Set in a dry run: what would be published is recorded here and nothing is sent.
    recorder: Option<Recorder>,
}

// Here rather than beside the handle, so the handle's module does not import this one.
impl Bus {
    /// A publisher whose events say `ce-source: flotilla/<component>`.
    pub fn publisher(&self, component: &str) -> Publisher {
        Publisher::new(self.clone(), component)
    }
}

impl Publisher {
    pub fn new(bus: Bus, component: &str) -> Publisher {
        let source = format!("flotilla/{component}");
        Publisher {
            bus,
            source_header: Arc::from(codec::encode(&source).as_ref()),
            source: Arc::from(source),
            shared_headers: EventType::ALL.iter().map(|_| OnceLock::new()).collect(),
            recorder: None,
        }
    }

    /// This publisher in a dry run: [`publish`](Self::publish) and
    /// [`publish_all`](Self::publish_all) record what they would publish (subject, type, id,
    /// data) in `recorder` and answer as if stored at sequence 0, without touching NATS.
    pub fn recording(mut self, recorder: Recorder) -> Publisher {
        self.recorder = Some(recorder);
        self
    }

    /// The recorder of a dry run, `None` when this publisher publishes.
    pub fn recorder(&self) -> Option<&Recorder> {
        self.recorder.as_ref()
    }

    /// The bus it publishes on, for handlers that also speak core NATS (e.g. to tell their
    /// other replicas something no stream needs to keep).
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// `ce-source` of this publisher's events.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The id of the `ordinal`-th output of type `event_type` about `key` caused by the input
    /// `cause_id`: the same input always yields the same ids, so a redelivered input's outputs
    /// are duplicates that JetStream drops.
    pub fn derive_id(&self, cause_id: &str, event_type: &str, key: &str, ordinal: usize) -> String {
        let ordinal = ordinal.to_string();
        let name = [&*self.source, cause_id, event_type, key, &ordinal].join("\n");
        uuid_string(Uuid::new_v5(&ID_NAMESPACE, name.as_bytes()))
    }

    /// Publishes one event that has no input (a webhook, a timer, a person).
    pub async fn publish(&self, event: Outgoing) -> Result<Published, BusError> {
        let mut published = self.publish_all(vec![event], None).await?;
        published
            .pop()
            .ok_or_else(|| BusError::Envelope("publish returned no ack".into()))
    }

    /// Publishes the outputs of handling `cause` (if any), pipelined, and returns once JetStream
    /// acknowledged every one of them.
    pub async fn publish_all(
        &self,
        events: Vec<Outgoing>,
        cause: Option<&Event>,
    ) -> Result<Vec<Published>, BusError> {
        if let Some(recorder) = &self.recorder {
            return Ok(self.record(recorder, events, cause));
        }
        let mut ordinals: Vec<(&'static str, String)> = Vec::new();
        let mut pending = Vec::with_capacity(events.len());
        for event in events {
            let id = self.event_id(&event, cause, &mut ordinals);
            let subject = event.subject(&self.bus.names().prefix);
            // Ends when the publish is acknowledged (or given up), with the future below.
            let span = crate::trace::publishing(&event, &subject, &id, change_id(&event, cause));
            let message = self.message(&event, &id, cause, span.as_ref());
            let ack = self.send(&subject, message).await?;
            pending.push((id, subject, event, ack, span));
        }
        // A timed-out publish is rebuilt rather than kept: a copy per event would cost every
        // publish for a retry that rarely happens. The id, hence dedup, is the same.
        try_join_all(pending.into_iter().map(|(id, subject, event, ack, span)| {
            self.confirm(id, subject, ack, move |id| {
                self.message(&event, id, cause, span.as_ref())
            })
        }))
        .await
    }

    /// The id `event` is published with: its own, else derived from its cause and its ordinal
    /// among the outputs of the same type and key (`ordinals` counts them), else random.
    fn event_id(
        &self,
        event: &Outgoing,
        cause: Option<&Event>,
        ordinals: &mut Vec<(&'static str, String)>,
    ) -> String {
        let ordinal = ordinals
            .iter()
            .filter(|(t, k)| *t == event.spec.event_type && *k == event.key)
            .count();
        ordinals.push((event.spec.event_type, event.key.clone()));
        match (&event.id, cause) {
            (Some(id), _) => id.clone(),
            (None, Some(cause)) => {
                self.derive_id(&cause.id, event.spec.event_type, &event.key, ordinal)
            }
            (None, None) => uuid_string(Uuid::new_v4()),
        }
    }

    /// A dry run's publish: each event recorded with the id and subject it would have.
    fn record(
        &self,
        recorder: &Recorder,
        events: Vec<Outgoing>,
        cause: Option<&Event>,
    ) -> Vec<Published> {
        let mut ordinals = Vec::new();
        events
            .into_iter()
            .map(|event| {
                let id = self.event_id(&event, cause, &mut ordinals);
                let subject = event.subject(&self.bus.names().prefix);
                recorder.record_with(
                    EffectKind::Publish,
                    format!("publish {} on {subject} (id {id})", event.spec.event_type),
                    dry_run::data_json(&event).to_string(),
                );
                Published {
                    id,
                    subject,
                    sequence: 0,
                    duplicate: false,
                }
            })
            .collect()
    }

    /// The message of `event`: payload and envelope headers; `span` is its PRODUCER span.
    ///
    /// The headers start as a copy of those every event of its type shares: async-nats keeps
    /// headers in a `HashMap` that grows from empty, so inserting all of them anew hashes each
    /// name again at every growth, which took about a third more time than the copy and the
    /// per-event inserts together.
    fn message(
        &self,
        event: &Outgoing,
        id: &str,
        cause: Option<&Event>,
        span: Option<&tracing::Span>,
    ) -> PublishMessage {
        let mut headers = self.headers_of(event.spec);
        if !envelope::is_protobuf_of(&event.content_type, event.spec.message) {
            headers.insert(name::CONTENT_TYPE, event.content_type.as_str());
            headers.insert(
                name::DATACONTENTTYPE,
                codec::encode(&event.content_type).as_ref(),
            );
        }
        headers.insert(name::ID, codec::encode(id).as_ref());
        headers.insert(name::TIME, envelope::now_rfc3339());
        headers.insert(name::SUBJECT, event.key.as_str());
        if let Some(change_id) = change_id(event, cause) {
            headers.insert(name::CHANGE_ID, codec::encode(change_id).as_ref());
        }
        for (name, value) in &event.extra_headers {
            headers.insert(*name, value.as_str());
        }
        crate::trace::inject(
            &mut headers,
            span,
            event.traceparent.as_deref(),
            cause.map(|c| c.headers.as_ref()),
        );
        headers.insert(name::MSG_ID, codec::encode(id).as_ref());
        PublishMessage::build()
            .payload(event.payload.clone())
            .headers(headers)
    }

    /// A copy of the headers this publisher's events of type `spec` share: spec version,
    /// source, type, and the content type of its protobuf message.
    fn headers_of(&self, spec: &'static EventSpec) -> HeaderMap {
        let shared = self.shared_headers[spec.kind as usize].get_or_init(|| {
            let content_type = envelope::content_type(envelope::Encoding::Protobuf, spec.message);
            let mut headers = HeaderMap::new();
            headers.insert(name::SPECVERSION, envelope::SPECVERSION);
            headers.insert(name::SOURCE, self.source_header.as_ref());
            headers.insert(name::TYPE, spec.ce_type);
            headers.insert(name::CONTENT_TYPE, content_type.as_str());
            headers.insert(name::DATACONTENTTYPE, codec::encode(&content_type).as_ref());
            headers
        });
        shared.clone()
    }

    /// Publishes a prepared message as is (replay, dead letters, retries): its headers are kept.
    pub async fn publish_raw(
        &self,
        subject: &str,
        headers: HeaderMap,
        payload: bytes::Bytes,
    ) -> Result<Published, BusError> {
        let id = headers
            .get(header::MSG_ID)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        if let Some(recorder) = &self.recorder {
            recorder.record(
                EffectKind::Publish,
                format!("publish a copy on {subject} (id {id})"),
            );
            return Ok(Published {
                id,
                subject: subject.to_owned(),
                sequence: 0,
                duplicate: false,
            });
        }
        let message = PublishMessage::build().payload(payload).headers(headers);
        let ack = self.send(subject, message.clone()).await?;
        self.confirm(id, subject.to_owned(), ack, move |_| message.clone())
            .await
    }

    async fn send(
        &self,
        subject: &str,
        message: PublishMessage,
    ) -> Result<PublishAckFuture, BusError> {
        self.bus
            .jetstream()
            .send_publish(subject.to_owned(), message)
            .await
            .map_err(|source| BusError::Publish {
                subject: subject.to_owned(),
                source,
            })
    }

    /// Waits for the ack; a timed-out ack is sent again with the same id, because the message
    /// may be held in the client across a reconnect and stored later.
    async fn confirm(
        &self,
        id: String,
        subject: String,
        mut ack: PublishAckFuture,
        rebuild: impl Fn(&str) -> PublishMessage,
    ) -> Result<Published, BusError> {
        let mut attempt = 1;
        loop {
            match ack.await {
                Ok(ack) => return Ok(published(id, subject, &ack)),
                Err(e) if retry_ack(&e, attempt) => {
                    attempt += 1;
                    tracing::debug!(%subject, event_id = %id, attempt, "publish ack timed out; sending again");
                    ack = self.send(&subject, rebuild(&id)).await?;
                }
                Err(source) => return Err(BusError::Publish { subject, source }),
            }
        }
    }
}

/// `id` in its hyphenated lowercase form, as `to_string` gives it, without the formatting
/// machinery `to_string` goes through (an event id is made for every event published).
fn uuid_string(id: Uuid) -> String {
    id.hyphenated()
        .encode_lower(&mut Uuid::encode_buffer())
        .to_owned()
}

/// The change `event` is about: its own, else its cause's.
fn change_id<'a>(event: &'a Outgoing, cause: Option<&'a Event>) -> Option<&'a str> {
    event
        .change_id
        .as_deref()
        .or_else(|| cause.and_then(|c| c.change_id.as_deref()))
}

fn published(id: String, subject: String, ack: &PublishAck) -> Published {
    Published {
        id,
        subject,
        sequence: ack.sequence,
        duplicate: ack.duplicate,
    }
}

/// Whether attempt number `attempt` failed in a way worth sending again.
fn retry_ack(error: &PublishError, attempt: u32) -> bool {
    error.kind() == PublishErrorKind::TimedOut && attempt < PUBLISH_ATTEMPTS
}

#[cfg(test)]
mod tests;
