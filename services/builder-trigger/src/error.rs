//! Why builder-trigger could not start, and why it could not handle an event.
//!
//! A build or test command that fails is not an error here: it is an outcome, reported as
//! `build.failed` or `tests.failed`. These are the cases where no outcome can be reported.

use flotilla_bus::{BusError, Labelled};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is malformed; the binary exits 64.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The event cannot be acted on however often it is retried (e.g. no `ce-time`, a sha that
    /// is not a commit id): it goes to the dead-letter stream.
    #[error("cannot handle {event_type} event {event_id}: {reason}")]
    BadEvent {
        event_type: String,
        event_id: String,
        reason: String,
    },
    /// The event claims what the registry contradicts (an env that is not there, not at that
    /// change): nothing is run, and it goes to the dead-letter stream with the reason.
    #[error("refused {event_type} event {event_id}: {reason}")]
    Refused {
        event_type: String,
        event_id: String,
        reason: String,
    },
    /// The registry does not agree yet (the env's record still moving to `ready`), or could
    /// not be read: retried later.
    #[error("environment registry: {0}")]
    Registry(String),
    /// The Kubernetes client could not be set up (job backend).
    #[error("Kubernetes: {0}")]
    Kube(String),
    /// The bus: a payload that does not decode (permanent) or a publish that failed (retryable).
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Config(_) | Error::BadEvent { .. } | Error::Refused { .. } | Error::Kube(_) => {
                false
            }
            Error::Registry(_) => true,
            Error::Bus(e) => e.is_retryable(),
        }
    }

    /// The value of a `reason` metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::BadEvent { .. } => "bad_event",
            Error::Refused { .. } => "refused",
            Error::Registry(_) => "registry",
            Error::Kube(_) => "kube",
            Error::Bus(_) => "bus",
        }
    }
}

/// `?` in the handler turns an [`Error`] into a `HandlerError` that keeps it, its label and
/// its retry policy.
impl Labelled for Error {
    fn metric_label(&self) -> &'static str {
        Error::metric_label(self)
    }

    fn is_retryable(&self) -> bool {
        Error::is_retryable(self)
    }
}
