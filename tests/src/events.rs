//! Reading what a run stored: every message of a stream, as facts with the server's storage
//! time; and a follower that hands over new events as they are stored, through server outages
//! and leader elections.

use std::time::Duration;

use anyhow::{Context, Result};
use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, Message};
use futures::StreamExt;
use serde_json::Value;
use time::OffsetDateTime;

/// One stored message of `FLOTILLA`, decoded as far as it decodes.
#[derive(Debug, Clone)]
pub struct Fact {
    pub seq: u64,
    pub subject: String,
    /// When the server stored it.
    pub stored: OffsetDateTime,
    /// `<domain>.<event>` (from `ce-type`), or empty when there is no envelope.
    pub kind: String,
    /// `ce-id`.
    pub id: String,
    /// `ce-source`.
    pub source: String,
    /// `ce-subject`: the key.
    pub key: String,
    /// `flotilla-change-id`, else the payload's `changeId`.
    pub change_id: String,
    /// The data as proto3 JSON (`null` when it does not decode).
    pub data: Value,
}

impl Fact {
    /// A fact of `message`; messages without a Flotilla envelope keep their subject only.
    pub fn of(message: &Message) -> Fact {
        let (seq, stored) = message
            .info()
            .map(|i| (i.stream_sequence, i.published))
            .unwrap_or((0, OffsetDateTime::UNIX_EPOCH));
        Fact::from_parts(
            seq,
            stored,
            message.subject.as_str(),
            message.headers.as_ref(),
            message.payload.clone(),
        )
    }

    pub fn from_parts(
        seq: u64,
        stored: OffsetDateTime,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: bytes::Bytes,
    ) -> Fact {
        let mut fact = Fact {
            seq,
            subject: subject.to_owned(),
            stored,
            kind: String::new(),
            id: String::new(),
            source: String::new(),
            key: String::new(),
            change_id: String::new(),
            data: Value::Null,
        };
        if let Ok(event) = flotilla_bus::Event::from_parts(subject, headers, payload) {
            fact.kind = event.event_type().to_owned();
            fact.id = event.id.clone();
            fact.source = event.source.clone();
            fact.key = event.key.clone();
            fact.data = event.data_json().unwrap_or(Value::Null);
            fact.change_id = event
                .change_id
                .clone()
                .or_else(|| fact.str("changeId").map(str::to_owned))
                .unwrap_or_default();
        }
        fact
    }

    /// A string field of the data.
    pub fn str(&self, field: &str) -> Option<&str> {
        self.data.get(field).and_then(Value::as_str)
    }

    /// The env an env, tests or teardown event is about (its key).
    pub fn env(&self) -> &str {
        self.str("env").unwrap_or(&self.key)
    }

    /// The worker that published it, from `ce-source` (`flotilla/<worker>`).
    pub fn worker(&self) -> &str {
        self.source
            .strip_prefix("flotilla/")
            .unwrap_or(&self.source)
    }
}

/// Every message stored in `stream` under `filter`, oldest first, read through an ephemeral
/// consumer up to the last sequence the stream had when called. Retries while the stream has no
/// leader (an election).
pub async fn read_all(js: &jetstream::Context, stream: &str, filter: &str) -> Result<Vec<Message>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match try_read_all(js, stream, filter).await {
            Ok(messages) => return Ok(messages),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "reading {stream} again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.context(format!("read {stream}"))),
        }
    }
}

async fn try_read_all(js: &jetstream::Context, stream: &str, filter: &str) -> Result<Vec<Message>> {
    let mut handle = js.get_stream(stream).await?;
    let last = handle.info().await?.state.last_sequence;
    let consumer = handle
        .create_consumer(pull::Config {
            filter_subject: filter.to_owned(),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await?;
    let mut out = Vec::new();
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(1000)
            .expires(Duration::from_millis(500))
            .messages()
            .await?;
        let mut got = 0;
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| anyhow::anyhow!(e))?;
            got += 1;
            let seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
            out.push(message);
            if seq >= last {
                return Ok(out);
            }
        }
        if got == 0 {
            // Nothing more under the filter up to `last`.
            return Ok(out);
        }
    }
}

/// Every fact of `FLOTILLA`.
pub async fn read_facts(js: &jetstream::Context) -> Result<Vec<Fact>> {
    let messages = read_all(js, "FLOTILLA", "flotilla.>").await?;
    Ok(messages.iter().map(Fact::of).collect())
}

/// Follows `FLOTILLA` from its first message through a durable consumer of its own (replicated
/// like the stream, so it survives the loss of a node), handing over facts in order.
pub struct Follower {
    js: jetstream::Context,
    name: String,
    consumer: Option<pull::Stream>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("name", &self.name)
            .finish()
    }
}

impl Follower {
    pub fn new(js: jetstream::Context, name: &str) -> Follower {
        Follower {
            js,
            name: name.to_owned(),
            consumer: None,
        }
    }

    async fn bind(&mut self) -> Result<&mut pull::Stream> {
        if self.consumer.is_none() {
            let stream = self.js.get_stream("FLOTILLA").await?;
            let consumer = stream
                .get_or_create_consumer(
                    &self.name,
                    pull::Config {
                        durable_name: Some(self.name.clone()),
                        filter_subject: "flotilla.>".into(),
                        deliver_policy: DeliverPolicy::All,
                        ack_policy: AckPolicy::Explicit,
                        ack_wait: Duration::from_secs(30),
                        max_ack_pending: 10_000,
                        ..Default::default()
                    },
                )
                .await?;
            let messages = consumer
                .stream()
                .max_messages_per_batch(500)
                .expires(Duration::from_secs(2))
                .heartbeat(Duration::from_millis(500))
                .messages()
                .await?;
            self.consumer = Some(messages);
        }
        self.consumer.as_mut().context("bound")
    }

    /// The next stored fact; waits through outages (re-binding on errors) until one comes or
    /// `within` passes.
    pub async fn next(&mut self, within: Duration) -> Option<Fact> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let messages = match tokio::time::timeout(left, self.bind()).await {
                Err(_) => return None,
                Ok(Ok(messages)) => messages,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "follower: binding again");
                    tokio::time::sleep(Duration::from_millis(200).min(left)).await;
                    continue;
                }
            };
            match tokio::time::timeout(left, messages.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(message))) => {
                    let fact = Fact::of(&message);
                    // Acked so that a re-bind after an outage resumes after it.
                    message.ack().await.ok();
                    return Some(fact);
                }
                Ok(Some(Err(e))) => {
                    tracing::debug!(error = %e, "follower: pulling again");
                    self.consumer = None;
                }
                Ok(None) => self.consumer = None,
            }
        }
    }
}
