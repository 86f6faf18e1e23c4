//! Why a handler did not finish an event, keeping the error it came from and its metric label.

use std::error::Error as StdError;
use std::fmt;

use flotilla_proto::EventType;

/// The boxed error a [`HandlerError`] keeps as its source.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// An error that knows its `reason` metric label and whether retrying may help: a service's
/// typed error implements it, and `?` turns it into a [`HandlerError`] that keeps both.
pub trait Labelled: StdError + Send + Sync + 'static {
    /// The value of the `reason` label of `flotilla_events_failed_total`.
    fn metric_label(&self) -> &'static str;
    /// Whether trying again later may succeed.
    fn is_retryable(&self) -> bool;
}

/// Why a handler did not finish an event. The runtime decides what to do from the kind:
/// retryable errors are nak'd with backoff and dead-lettered after `max_deliver`; permanent ones
/// are dead-lettered at once; an unhandled event is acked and counted.
#[derive(Debug)]
pub struct HandlerError {
    kind: HandlerErrorKind,
    label: &'static str,
    source: BoxError,
}

/// The kinds of [`HandlerError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerErrorKind {
    /// A dependency failed (NATS, git, the cluster, a CI system): try again later.
    Retryable,
    /// The event itself cannot be handled (bad payload, impossible request): never retry.
    Permanent,
    /// The worker receives this event type but has nothing to do for it: acked, and counted in
    /// `flotilla_events_unhandled_total`, so a subscription the handler forgot shows up.
    Unhandled,
}

/// The type a worker was given but does not handle.
#[derive(Debug, thiserror::Error)]
#[error("{0} events are not handled by this worker")]
struct NotHandled(String);

impl HandlerError {
    /// A failure worth retrying, e.g. an unreachable dependency; labelled `retryable`.
    pub fn retryable(err: impl Into<BoxError>) -> Self {
        HandlerError::new(HandlerErrorKind::Retryable, "retryable", err.into())
    }

    /// A failure that will not go away: the event goes to the dead-letter stream at once;
    /// labelled `permanent`.
    pub fn permanent(err: impl Into<BoxError>) -> Self {
        HandlerError::new(HandlerErrorKind::Permanent, "permanent", err.into())
    }

    /// An error that labels itself; retryable or permanent as it says.
    pub fn labelled<E: Labelled>(err: E) -> Self {
        let kind = if err.is_retryable() {
            HandlerErrorKind::Retryable
        } else {
            HandlerErrorKind::Permanent
        };
        HandlerError::new(kind, err.metric_label(), Box::new(err))
    }

    /// An event of a type the worker does not handle.
    pub fn unhandled(event_type: impl fmt::Display) -> Self {
        let source = Box::new(NotHandled(event_type.to_string()));
        HandlerError::new(HandlerErrorKind::Unhandled, "unhandled", source)
    }

    /// [`HandlerError::unhandled`] for a catalog type.
    pub fn unhandled_type(event_type: EventType) -> Self {
        HandlerError::unhandled(event_type.as_str())
    }

    fn new(kind: HandlerErrorKind, label: &'static str, source: BoxError) -> Self {
        HandlerError {
            kind,
            label,
            source,
        }
    }

    /// Replaces the `reason` label, e.g. to name a failure of a dependency in the metric.
    pub fn with_label(mut self, label: &'static str) -> Self {
        self.label = label;
        self
    }

    pub fn kind(&self) -> HandlerErrorKind {
        self.kind
    }

    pub fn is_retryable(&self) -> bool {
        self.kind == HandlerErrorKind::Retryable
    }

    pub fn is_unhandled(&self) -> bool {
        self.kind == HandlerErrorKind::Unhandled
    }

    /// The value of the `reason` label on failure metrics: the source error's own label, or
    /// `retryable` / `permanent` for an error built from a message.
    pub fn metric_label(&self) -> &'static str {
        self.label
    }

    /// The error the handler returned, for callers that downcast it.
    pub fn inner(&self) -> &(dyn StdError + Send + Sync + 'static) {
        self.source.as_ref()
    }

    /// The message with its causes, `error: cause: cause`, as dead letters record it.
    pub fn message(&self) -> String {
        let mut text = self.source.to_string();
        let mut cause = self.source.source();
        while let Some(err) = cause {
            let part = err.to_string();
            // Many errors already print their source in their own message; say it once.
            if !text.contains(&part) {
                text.push_str(": ");
                text.push_str(&part);
            }
            cause = err.source();
        }
        text
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

/// Transparent: the causes are those of the source error, so a chain is not printed twice.
impl StdError for HandlerError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.source()
    }
}

impl<E: Labelled> From<E> for HandlerError {
    fn from(err: E) -> Self {
        HandlerError::labelled(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("push to the GitOps remote")]
    struct Push(#[source] std::io::Error);

    impl Labelled for Push {
        fn metric_label(&self) -> &'static str {
            "git"
        }
        fn is_retryable(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_labelled_error_keeps_its_label_kind_and_source() {
        let io = std::io::Error::other("connection refused");
        let err: HandlerError = Push(io).into();
        assert_eq!(err.metric_label(), "git");
        assert!(err.is_retryable());
        assert_eq!(
            err.message(),
            "push to the GitOps remote: connection refused"
        );
        assert!(err.inner().downcast_ref::<Push>().is_some());
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let err = HandlerError::permanent(crate::BusError::jetstream(
            "read the registry",
            std::io::Error::other("timed out"),
        ));
        assert_eq!(err.message(), "read the registry: timed out");
        assert_eq!(err.metric_label(), "permanent");
    }

    #[test]
    fn unhandled_is_neither_retried_nor_a_failure_label() {
        let err = HandlerError::unhandled_type(EventType::CanaryStep);
        assert!(err.is_unhandled());
        assert!(!err.is_retryable());
        assert!(err.message().contains("canary.step"), "{}", err.message());
    }
}
