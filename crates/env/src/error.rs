//! Why the environment contract could not be read or written: the registry bucket or a secret
//! file. Each variant keeps its cause, says whether retrying can help, and names its metric label.

use std::path::PathBuf;

/// A cause from the NATS client, boxed: listing the bucket fails with more than one type.
pub type NatsError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading an env's record from the KV bucket failed.
    #[error("read {env}: {source}")]
    Read {
        env: String,
        #[source]
        source: async_nats::jetstream::kv::EntryError,
    },
    /// Writing an env's record failed for another reason than a concurrent write.
    #[error("write {env}: {source}")]
    Write {
        env: String,
        #[source]
        source: NatsError,
    },
    /// A record could not be encoded as JSON.
    #[error("encode {env}: {source}")]
    Encode {
        env: String,
        #[source]
        source: serde_json::Error,
    },
    /// Other writers kept changing the record between our read and our write.
    #[error("{env} kept changing: gave up after {attempts} compare-and-set attempts")]
    Contended { env: String, attempts: u32 },
    /// Listing the bucket's records failed.
    #[error("list the environments: {source}")]
    List {
        #[source]
        source: NatsError,
    },
    /// A secret file named by `variable` could not be read.
    #[error("{variable} {}: {source}", path.display())]
    SecretUnreadable {
        variable: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A secret file named by `variable` holds no secret (only blank lines or comments):
    /// the operator meant to configure something, so running without it would hide the mistake.
    #[error("{variable} {}: the file holds no secret", path.display())]
    SecretEmpty { variable: String, path: PathBuf },
    /// The hooks file (`FLOTILLA_HOOKS`) could not be read.
    #[error("FLOTILLA_HOOKS {}: {source}", path.display())]
    HooksUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The hooks file is not valid: the reason names the hook and the field.
    #[error("FLOTILLA_HOOKS {}: {reason}", path.display())]
    HooksInvalid { path: PathBuf, reason: String },
}

impl Error {
    /// Whether the same operation may succeed later: the bucket may come back and a contended
    /// record settle; a record that does not encode or a bad secret file needs a person.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Read { .. } | Error::Write { .. } | Error::Contended { .. } => true,
            Error::List { .. } => true,
            Error::Encode { .. }
            | Error::SecretUnreadable { .. }
            | Error::SecretEmpty { .. }
            | Error::HooksUnreadable { .. }
            | Error::HooksInvalid { .. } => false,
        }
    }

    /// The value of a `reason` metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Read { .. } => "registry_read",
            Error::Write { .. } => "registry_write",
            Error::Encode { .. } => "registry_encode",
            Error::Contended { .. } => "registry_contended",
            Error::List { .. } => "registry_list",
            Error::SecretUnreadable { .. } => "secret_unreadable",
            Error::SecretEmpty { .. } => "secret_empty",
            Error::HooksUnreadable { .. } => "hooks_unreadable",
            Error::HooksInvalid { .. } => "hooks_invalid",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_errors_name_the_variable_and_the_path_and_are_not_retried() {
        let unreadable = Error::SecretUnreadable {
            variable: "X_FILE".into(),
            path: "/run/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let empty = Error::SecretEmpty {
            variable: "X_FILE".into(),
            path: "/run/x".into(),
        };
        for error in [&unreadable, &empty] {
            assert!(error.to_string().starts_with("X_FILE /run/x: "), "{error}");
            assert!(!error.is_retryable());
        }
        assert!(empty.to_string().contains("no secret"));
        assert!(std::error::Error::source(&unreadable).is_some());
        assert_eq!(unreadable.metric_label(), "secret_unreadable");
    }

    #[test]
    fn a_contended_record_is_retried_later() {
        let error = Error::Contended {
            env: "pr-ping-1".into(),
            attempts: 10,
        };
        assert!(error.is_retryable());
        assert_eq!(error.metric_label(), "registry_contended");
    }
}
