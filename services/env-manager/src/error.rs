//! Why env-manager could not start, and why it could not handle an event.

use flotilla_bus::{BusError, Labelled};

use crate::github::error::GithubError;
use crate::gitops::GitError;
use crate::manifest::ManifestError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is malformed; the binary exits 64.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The event cannot be acted on however often it is retried (no `ce-time`, an env id that
    /// is not a DNS label): it goes to the dead-letter stream.
    #[error("cannot handle {event_type} event {event_id}: {reason}")]
    BadEvent {
        event_type: String,
        event_id: String,
        reason: String,
    },
    /// The event claims what the registry or the GitOps repository contradicts (a promotion of
    /// a version the env does not hold, a teardown of an env that never existed, a build older
    /// than what its env runs): nothing is changed, and it goes to the dead-letter stream with
    /// the reason.
    #[error("refused {event_type} event {event_id}: {reason}")]
    Refused {
        event_type: String,
        event_id: String,
        reason: String,
    },
    /// The registry and the GitOps repository disagree in a way a write under way explains: a
    /// teardown removes the env's file, then marks its record, and a result redelivered in
    /// between finds a ready env without a file. Retried; dead-lettered with the reason only if
    /// they still disagree after every attempt.
    #[error("{event_type} event {event_id} waits: {reason}")]
    Unsettled {
        event_type: String,
        event_id: String,
        reason: String,
    },
    /// The GitOps repository's manifests do not allow the change (an app missing from
    /// production, a manifest that does not parse): a person must fix the repository, then
    /// retry the dead letter.
    #[error("{path}: {source}")]
    Manifest {
        path: String,
        #[source]
        source: ManifestError,
    },
    /// Reading, committing or pushing the GitOps repository failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The GitHub API (a pull-request promotion) failed.
    #[error(transparent)]
    Github(#[from] GithubError),
    /// The environment registry (KV bucket) could not be read or written.
    #[error("environment registry: {0}")]
    Registry(#[from] flotilla_env::Error),
    /// The bus: a payload that does not decode (permanent) or a publish that failed (retryable).
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Config(_)
            | Error::BadEvent { .. }
            | Error::Refused { .. }
            | Error::Manifest { .. } => false,
            Error::Git(_) | Error::Unsettled { .. } => true,
            Error::Registry(e) => e.is_retryable(),
            Error::Github(e) => e.is_retryable(),
            Error::Bus(e) => e.is_retryable(),
        }
    }

    /// The value of a `reason` metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::BadEvent { .. } => "bad_event",
            Error::Refused { .. } => "refused",
            Error::Unsettled { .. } => "unsettled",
            Error::Manifest { .. } => "manifest",
            Error::Git(_) => "git",
            Error::Github(_) => "github",
            Error::Registry(_) => "registry",
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
