//! Why a command failed, and the exit code that tells a script what kind of failure it was.

use flotilla_bus::BusError;

/// sysexits(3) codes, so a script can tell "fix the command" from "fix the data" from "try
/// again when NATS is back".
pub const EX_USAGE: u8 = 64;
pub const EX_DATAERR: u8 = 65;
pub const EX_UNAVAILABLE: u8 = 69;

/// A failed command. Each message says what was being done; `main` prints it on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// No NATS server answered. The bus error names the URL and says what to do.
    #[error(transparent)]
    Unreachable(BusError),
    /// An argument, flag or setting that cannot work, or a bus that was never set up.
    #[error("{0}")]
    Usage(String),
    /// Event data that does not fit its schema.
    #[error("{context}: {source}")]
    Data {
        context: String,
        #[source]
        source: BusError,
    },
    /// A file (or stdin) named on the command line could not be read.
    #[error("read {what}: {source}")]
    Input {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The operating system refused something the command needs (e.g. signal handlers).
    #[error("{what}: {source}")]
    System {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Writing to stdout failed.
    #[error("write output: {0}")]
    Output(#[from] std::io::Error),
    /// NATS or JetStream refused or failed an operation.
    #[error(transparent)]
    Bus(BusError),
    /// An HTTP endpoint named on the command line could not be reached.
    #[error("could not reach {url}: {reason}")]
    Unsent { url: String, reason: String },
    /// A judgement that did not pass (an analysis Failed, Inconclusive or in Error): its exit
    /// status says which.
    #[error("{summary}")]
    Verdict { code: u8, summary: String },
    /// Some items of a batch failed; each one was reported on stderr as it happened.
    #[error("{failed} of {total} {what} failed")]
    Partial {
        failed: usize,
        total: usize,
        what: &'static str,
    },
}

impl CliError {
    /// Wraps an async-nats error with what was being done.
    pub fn nats(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> CliError {
        CliError::Bus(BusError::JetStream {
            what: what.into(),
            source: source.into(),
        })
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Unreachable(_) | CliError::Unsent { .. } => EX_UNAVAILABLE,
            CliError::Usage(_) | CliError::Input { .. } => EX_USAGE,
            CliError::Data { .. } => EX_DATAERR,
            CliError::Verdict { code, .. } => *code,
            CliError::System { .. }
            | CliError::Output(_)
            | CliError::Bus(_)
            | CliError::Partial { .. } => 1,
        }
    }

    /// The reader of stdout went away (`flotilla tail | head -1`): it has what it wanted, so
    /// this ends the command normally rather than as a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl From<BusError> for CliError {
    fn from(err: BusError) -> Self {
        match err {
            BusError::Connect { .. } => CliError::Unreachable(err),
            BusError::Options(_) => CliError::Usage(err.to_string()),
            err => CliError::Bus(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_server_exits_69_with_the_bus_message() {
        let err = CliError::from(BusError::Connect {
            url: "nats://127.0.0.1:1".into(),
            reason: "connection refused".into(),
            hint: "start one",
        });
        assert_eq!(err.exit_code(), EX_UNAVAILABLE);
        assert!(err.to_string().contains("nats://127.0.0.1:1"), "{err}");
    }

    #[test]
    fn bad_nats_options_are_usage_errors() {
        let err = CliError::from(BusError::Options("set both".into()));
        assert_eq!(err.exit_code(), EX_USAGE);
    }

    #[test]
    fn only_a_broken_pipe_counts_as_a_closed_reader() {
        let closed = CliError::Output(std::io::ErrorKind::BrokenPipe.into());
        let full = CliError::Output(std::io::ErrorKind::StorageFull.into());
        assert!(closed.is_broken_pipe());
        assert!(!full.is_broken_pipe());
    }
}
