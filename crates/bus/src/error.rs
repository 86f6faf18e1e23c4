//! Errors of the bus and of handlers.

pub use crate::handler_error::{HandlerError, HandlerErrorKind, Labelled};

/// What went wrong talking to NATS or decoding an event.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to NATS at {url}: {reason}\n  hint: {hint}")]
    Connect {
        url: String,
        reason: String,
        hint: &'static str,
    },
    #[error("invalid NATS options: {0}")]
    Options(String),
    #[error("event envelope: {0}")]
    Envelope(String),
    #[error("event payload: {0}")]
    Schema(#[from] flotilla_proto::json::SchemaError),
    #[error("publish to {subject}: {source}")]
    Publish {
        subject: String,
        #[source]
        source: async_nats::jetstream::context::PublishError,
    },
    #[error("{what}: {source}")]
    JetStream {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("a worker task ended abnormally: {0}")]
    Task(String),
    #[error("health server on {addr}: {source}")]
    Http {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl BusError {
    /// Wraps a JetStream API error with what was being done.
    pub fn jetstream(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        BusError::JetStream {
            what: what.into(),
            source: Box::new(source),
        }
    }

    /// Whether trying again later may succeed (the server was unreachable or slow).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            BusError::Connect { .. } | BusError::Publish { .. } | BusError::JetStream { .. }
        )
    }

    /// The value of a `reason` metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            BusError::Connect { .. } | BusError::Options(_) => "connect",
            BusError::Envelope(_) => "envelope",
            BusError::Schema(_) => "schema",
            BusError::Publish { .. } => "publish",
            BusError::JetStream { .. } => "jetstream",
            BusError::Http { .. } => "http",
            BusError::Task(_) => "task",
        }
    }
}

/// A payload that does not decode is the event's fault: retrying will not help.
impl Labelled for BusError {
    fn metric_label(&self) -> &'static str {
        BusError::metric_label(self)
    }

    fn is_retryable(&self) -> bool {
        BusError::is_retryable(self)
    }
}
