//! The bare pipeline: the same two hops written directly on async-nats, the baseline the bus
//! is held to.
//!
//! It is a competent hand-written relay, not a strawman: the middle hop's consumer has exactly
//! the worker's consumer config, pulls in batches of the same size and handles as many
//! messages at once, and keeps the same order of work (output stored, then input acked).

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, MessagesErrorKind};
use async_nats::jetstream::{self, Message, stream};
use bytes::Bytes;
use flotilla_bus::WorkerConfig;
use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::error::{BenchError, BoxError};
use crate::fixture::Fixture;
use crate::lane::{Inject, Lane};
use crate::pipeline::Pipeline;
use crate::sink::Sink;
use crate::via_bus::{INPUT, OUTPUT};

/// How the worker runtime pulls (crates/bus/src/runtime/mod.rs), repeated so both middle hops
/// ask the server for work the same way.
const PULL_HEARTBEAT: Duration = Duration::from_secs(5);
const PULL_EXPIRES: Duration = Duration::from_secs(30);

/// Publishes raw bytes on `<prefix>.build.started.<seq>`.
pub(crate) struct BareEntry {
    js: jetstream::Context,
    input: String,
    payload: Bytes,
}

impl Inject for BareEntry {
    async fn send(&self, seq: u64) -> Result<(), BoxError> {
        let subject = format!("{}.{seq}", self.input);
        self.js
            .publish(subject, self.payload.clone())
            .await?
            .await?;
        Ok(())
    }
}

/// The middle hop, running until dropped.
pub(crate) struct Relay {
    task: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the bare pipeline on `stream`. `config` is the bus worker's config: the relay's
/// consumer and concurrency are taken from it.
pub(crate) async fn start(
    fixture: &Fixture,
    stream: &stream::Stream,
    config: &WorkerConfig,
    payload: Bytes,
    window: usize,
) -> Result<(Lane<BareEntry>, Relay), BenchError> {
    let names = &fixture.bare;
    // The bus's own context, so ack timeout and in-flight limit cannot differ between the two.
    let js = fixture.bus.jetstream().clone();
    let input = names.subject(INPUT.as_str());
    let output = names.subject(OUTPUT.as_str());

    let consumer_config = config.consumer_spec().config(names, false);
    let consumer = stream
        .create_consumer(consumer_config)
        .await
        .map_err(|e| BenchError::setup("create the bare relay's consumer", e))?;
    let messages = consumer
        .stream()
        .max_messages_per_batch(config.concurrency)
        .heartbeat(PULL_HEARTBEAT)
        .expires(PULL_EXPIRES)
        .messages()
        .await
        .map_err(|e| BenchError::setup("pull from the bare relay's consumer", e))?;
    let relay = Relay {
        task: tokio::spawn(relay(
            messages,
            js.clone(),
            output.clone(),
            config.concurrency,
        )),
    };

    let sink = Sink::start(
        Pipeline::Bare,
        stream,
        "bench-bare-end",
        format!("{output}.>"),
    )
    .await?;
    let entry = BareEntry { js, input, payload };
    Ok((
        Lane::new(Pipeline::Bare, entry, consumer, sink, window),
        relay,
    ))
}

/// Forwards every message on the consumer to `output`, `concurrency` at a time.
async fn relay(messages: pull::Stream, js: jetstream::Context, output: String, concurrency: usize) {
    let (js, output) = (&js, output.as_str());
    messages
        .for_each_concurrent(concurrency, |next| async move {
            match next {
                Ok(message) => {
                    if let Err(e) = forward(js, output, &message).await {
                        tracing::warn!(subject = %message.subject, error = %e, "bare relay failed");
                    }
                }
                Err(e) if e.kind() == MessagesErrorKind::MissingHeartbeat => {}
                Err(e) => tracing::warn!(error = %e, "bare relay's consumer failed"),
            }
        })
        .await;
}

/// Stores the input's payload as `<output>.<seq>`, then acks the input.
async fn forward(js: &jetstream::Context, output: &str, message: &Message) -> Result<(), BoxError> {
    let (_, seq) = message
        .subject
        .rsplit_once('.')
        .ok_or("input subject has no sequence token")?;
    js.publish(format!("{output}.{seq}"), message.payload.clone())
        .await?
        .await?;
    message.ack().await
}
