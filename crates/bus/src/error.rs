//! Errors of the bus and of handlers.

use std::fmt;

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
}

/// Why a handler did not finish an event. The runtime decides what to do from the kind:
/// retryable errors are nak'd with backoff and dead-lettered after `max_deliver`; permanent ones
/// are dead-lettered at once.
#[derive(Debug)]
pub struct HandlerError {
    kind: HandlerErrorKind,
    message: String,
}

/// The kinds of [`HandlerError`], also the `reason` label of the failure metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerErrorKind {
    /// A dependency failed (NATS, git, the cluster, a CI system): try again later.
    Retryable,
    /// The event itself cannot be handled (bad payload, impossible request): never retry.
    Permanent,
}

impl HandlerError {
    /// A failure worth retrying, e.g. an unreachable dependency.
    pub fn retryable(message: impl fmt::Display) -> Self {
        HandlerError {
            kind: HandlerErrorKind::Retryable,
            message: message.to_string(),
        }
    }

    /// A failure that will not go away: the event goes to the dead-letter stream at once.
    pub fn permanent(message: impl fmt::Display) -> Self {
        HandlerError {
            kind: HandlerErrorKind::Permanent,
            message: message.to_string(),
        }
    }

    pub fn kind(&self) -> HandlerErrorKind {
        self.kind
    }

    pub fn is_retryable(&self) -> bool {
        self.kind == HandlerErrorKind::Retryable
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The value of the `reason` label on failure metrics.
    pub fn metric_label(&self) -> &'static str {
        match self.kind {
            HandlerErrorKind::Retryable => "retryable",
            HandlerErrorKind::Permanent => "permanent",
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HandlerError {}

/// A payload that does not decode is the event's fault: retrying will not help.
impl From<BusError> for HandlerError {
    fn from(err: BusError) -> Self {
        if err.is_retryable() {
            HandlerError::retryable(err)
        } else {
            HandlerError::permanent(err)
        }
    }
}
