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
        self.js
            .get_key_value(&self.names.envs_bucket)
            .await
            .map_err(|e| BusError::jetstream(format!("KV bucket {}", self.names.envs_bucket), e))
    }

    /// The canary lease bucket (made by [`Bus::ensure_streams`]).
    pub async fn canaries(&self) -> Result<jetstream::kv::Store, BusError> {
        self.js
            .get_key_value(&self.names.canaries_bucket)
            .await
            .map_err(|e| {
                BusError::jetstream(format!("KV bucket {}", self.names.canaries_bucket), e)
            })
    }
}
