//! The [`Bus`] handle: one NATS connection, its JetStream context and the names of Flotilla's
//! streams, with the look-ups every worker and tool makes.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};

use super::Names;
use crate::error::BusError;

/// A connection to NATS with the names of Flotilla's streams: the handle every worker and tool
/// holds. Cheap to clone: a handler's context clones it per event, and a bare client or
/// JetStream context clone costs channel handles and an allocation, hence the `Arc`s.
#[derive(Clone, Debug)]
pub struct Bus {
    pub(super) client: Arc<async_nats::Client>,
    pub(super) js: Arc<jetstream::Context>,
    pub(super) names: Arc<Names>,
}

/// Bounds every JetStream API call and publish ack; a timed-out publish is retried with the same
/// `Nats-Msg-Id`, so it is never stored twice.
const API_TIMEOUT: Duration = Duration::from_secs(5);

impl Bus {
    pub fn new(client: async_nats::Client, names: Names) -> Bus {
        let js = jetstream::context::ContextBuilder::new()
            .timeout(API_TIMEOUT)
            .backpressure_on_inflight(true)
            .build(client.clone());
        Bus {
            client: Arc::new(client),
            js: Arc::new(js),
            names: Arc::new(names),
        }
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    /// nats-server 2.10 added consumers with several filter subjects; 2.9 accepts the field and
    /// silently ignores it, so this must be asked before relying on it.
    pub fn supports_multi_filter(&self) -> bool {
        self.client.is_server_compatible(2, 10, 0)
    }

    /// The main stream.
    pub async fn stream(&self) -> Result<stream::Stream, BusError> {
        self.js
            .get_stream(&self.names.stream)
            .await
            .map_err(|e| BusError::jetstream(format!("stream {}", self.names.stream), e))
    }

    /// The dead-letter stream.
    pub async fn dlq_stream(&self) -> Result<stream::Stream, BusError> {
        self.js
            .get_stream(&self.names.dlq_stream)
            .await
            .map_err(|e| BusError::jetstream(format!("stream {}", self.names.dlq_stream), e))
    }

    /// The env registry bucket (made by [`Bus::ensure_streams`]).
    pub async fn envs(&self) -> Result<jetstream::kv::Store, BusError> {
        self.bucket(&self.names.envs_bucket).await
    }

    /// The canary lease bucket (made by [`Bus::ensure_streams`]).
    pub async fn canaries(&self) -> Result<jetstream::kv::Store, BusError> {
        self.bucket(&self.names.canaries_bucket).await
    }

    /// Opens bucket `name`, waiting up to [`BUCKET_WITHIN`] while JetStream does not answer;
    /// a bucket that does not exist fails at once.
    ///
    /// Workers open their buckets as they start, and a worker restarted while a cluster elects
    /// the leader of a bucket's stream got no answer and exited (measured: builder-trigger
    /// killed and started again 6 s into an election exited 69 with "failed to get the bucket:
    /// timed out", and changes stopped at their tests).
    async fn bucket(&self, name: &str) -> Result<jetstream::kv::Store, BusError> {
        let what = format!("KV bucket {name}");
        let deadline = tokio::time::Instant::now() + BUCKET_WITHIN;
        let mut pause = Duration::from_millis(200);
        loop {
            let outcome = match self.js.get_stream(format!("KV_{name}")).await {
                Err(e) if super::is_stream_not_found(&e) => {
                    return Err(BusError::jetstream(what, e));
                }
                Err(e) => Err(BusError::jetstream(what.clone(), e)),
                Ok(_) => self
                    .js
                    .get_key_value(name)
                    .await
                    .map_err(|e| BusError::jetstream(what.clone(), e)),
            };
            match outcome {
                Ok(store) => return Ok(store),
                Err(e) if tokio::time::Instant::now() + pause < deadline => {
                    tracing::warn!(error = %e, retry_in = ?pause, "bucket not reachable yet");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// How long opening a bucket waits for JetStream to answer: longer than a cluster's leader
/// election (6-10 s measured on loopback).
const BUCKET_WITHIN: Duration = Duration::from_secs(30);
