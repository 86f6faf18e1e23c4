//! Worker settings: defaults, environment variables and the consumer they imply.

use std::time::Duration;

use crate::topology::{ConsumerSpec, worker_subjects};

/// A handler's deadline unless its worker or `FLOTILLA_HANDLER_TIMEOUT` says otherwise.
pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(300);

/// Settings of one worker's runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// The worker's name: its durable consumer, its `ce-source` (`flotilla/<name>`), its dead
    /// letter subject (`flotilla-dlq.<name>`) and its metric label.
    pub name: String,
    /// Subject patterns below the prefix, e.g. `build.succeeded.>`.
    pub subjects: Vec<String>,
    /// Events handled at once by one replica.
    pub concurrency: usize,
    /// Attempts before an event goes to the dead-letter stream.
    pub max_deliver: i64,
    /// How long the server waits for an ack before redelivering; handlers running longer keep
    /// their event with progress acks.
    pub ack_wait: Duration,
    /// Delay before the second attempt; doubles each attempt up to `backoff_max`.
    pub backoff: Duration,
    pub backoff_max: Duration,
    /// How long one attempt of the handler may run: past it the handler is cancelled and the
    /// attempt counts as a retryable failure (`deadline`). A worker whose work legitimately
    /// takes longer (a build it waits for) sets its own.
    pub handler_timeout: Duration,
    /// Time allowed to finish in-flight events on shutdown.
    pub grace: Duration,
}

impl WorkerConfig {
    pub fn new(name: impl Into<String>, subjects: &[&str]) -> WorkerConfig {
        WorkerConfig {
            name: name.into(),
            subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
            concurrency: 16,
            max_deliver: 5,
            ack_wait: Duration::from_secs(30),
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            handler_timeout: DEFAULT_HANDLER_TIMEOUT,
            grace: Duration::from_secs(30),
        }
    }

    /// The config of one of the six workers, with its subscriptions from the topology.
    pub fn for_worker(name: &str) -> Option<WorkerConfig> {
        worker_subjects(name).map(|subjects| WorkerConfig::new(name, subjects))
    }

    /// Delay before the attempt after delivery number `delivered`.
    pub fn backoff_after(&self, delivered: u64) -> Duration {
        let exponent = delivered.saturating_sub(1).min(32) as u32;
        self.backoff
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(self.backoff_max)
    }

    pub fn consumer_spec(&self) -> ConsumerSpec {
        ConsumerSpec {
            name: self.name.clone(),
            subjects: self.subjects.clone(),
            ack_wait: self.ack_wait,
            max_deliver: self.max_deliver,
            max_ack_pending: (self.concurrency as i64 * 64).max(1000),
        }
    }

    /// Applies flags and environment overrides (the grace period is the process's).
    pub fn with_args(mut self, args: &WorkerArgs) -> WorkerConfig {
        self.concurrency = args.concurrency.max(1);
        self.max_deliver = args.max_deliver.max(1);
        self.ack_wait = args.ack_wait;
        self.backoff = args.backoff;
        if let Some(timeout) = args.handler_timeout {
            self.handler_timeout = timeout;
        }
        self
    }
}

/// Runtime settings every worker binary takes, as flags or environment variables.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// Events handled at once by this replica.
    #[arg(long, env = "FLOTILLA_CONCURRENCY", default_value_t = 16)]
    pub concurrency: usize,
    /// Attempts before an event goes to the dead-letter stream `flotilla-dlq.<worker>`.
    #[arg(long, env = "FLOTILLA_MAX_DELIVER", default_value_t = 5)]
    pub max_deliver: i64,
    /// Time the server waits for an ack before redelivering (progress acks extend it).
    #[arg(long, env = "FLOTILLA_ACK_WAIT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub ack_wait: Duration,
    /// Delay before the first retry; doubles each attempt up to 5m.
    #[arg(long, env = "FLOTILLA_BACKOFF", default_value = "1s", value_parser = humantime::parse_duration)]
    pub backoff: Duration,
    /// How long one attempt of a handler may run before it is cancelled and retried
    /// [default: the worker's own, 5m unless it sets one].
    #[arg(long, env = "FLOTILLA_HANDLER_TIMEOUT", value_parser = humantime::parse_duration)]
    pub handler_timeout: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let config = WorkerConfig::new("w", &["x.>"]);
        assert_eq!(config.backoff_after(1), Duration::from_secs(1));
        assert_eq!(config.backoff_after(2), Duration::from_secs(2));
        assert_eq!(config.backoff_after(4), Duration::from_secs(8));
        assert_eq!(config.backoff_after(40), Duration::from_secs(300));
    }

    #[test]
    fn known_workers_have_subscriptions() {
        let config = WorkerConfig::for_worker("canary-analyzer").expect("known");
        assert_eq!(config.subjects, vec!["release.requested.>"]);
        assert!(WorkerConfig::for_worker("nobody").is_none());
    }
}
