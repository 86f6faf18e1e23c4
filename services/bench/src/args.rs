//! What `flotilla bench hop` and `flotilla bench env` take.

use crate::error::BenchError;

const DEFAULT_COUNT: usize = 2_000;
const DEFAULT_PIPELINED: usize = 20_000;
const DEFAULT_PAYLOAD: usize = 256;
const DEFAULT_WARMUP: usize = 200;
const DEFAULT_WINDOW: usize = 256;
const DEFAULT_ROUNDS: usize = 4;

/// The smallest payload both pipelines can carry at the same size: the bus's `Build` message
/// needs a few bytes for its fixed fields.
pub(crate) const MIN_PAYLOAD: usize = 32;

/// Room left under the server's `max_payload` for the envelope headers the bus adds.
const HEADER_ROOM: usize = 4 * 1024;

/// Settings of the two-hop benchmark. Counts are per pipeline (bare and bus each get them).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct HopArgs {
    /// Messages timed one at a time, for the latency percentiles.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_COUNT)]
    pub count: usize,
    /// Messages sent pipelined, for throughput.
    #[arg(long, value_name = "M", default_value_t = DEFAULT_PIPELINED)]
    pub pipelined: usize,
    /// Payload size in bytes, the same on both pipelines.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_PAYLOAD)]
    pub payload: usize,
    /// Messages sent one at a time before measuring, so connections, consumers and the
    /// server's caches are warm.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WARMUP)]
    pub warmup: usize,
    /// Publishes awaiting their JetStream ack at once while pipelining.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WINDOW)]
    pub window: usize,
    /// The pipelined messages are sent in this many rounds, alternating which pipeline goes
    /// first (latency messages alternate one by one).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_ROUNDS)]
    pub rounds: usize,
    /// Messages the middle hop handles at once, on both pipelines [default: the worker
    /// runtime's default concurrency].
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
}

impl Default for HopArgs {
    fn default() -> Self {
        HopArgs {
            count: DEFAULT_COUNT,
            pipelined: DEFAULT_PIPELINED,
            payload: DEFAULT_PAYLOAD,
            warmup: DEFAULT_WARMUP,
            window: DEFAULT_WINDOW,
            rounds: DEFAULT_ROUNDS,
            concurrency: None,
        }
    }
}

impl HopArgs {
    /// Refuses settings that cannot produce a measurement; `max_payload` is the server's.
    pub(crate) fn validate(&self, max_payload: usize) -> Result<(), BenchError> {
        let positive = [
            ("--count", self.count),
            ("--pipelined", self.pipelined),
            ("--window", self.window),
            ("--rounds", self.rounds),
            ("--concurrency", self.concurrency.unwrap_or(1)),
        ];
        if let Some((flag, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(BenchError::Args(format!("{flag} must be at least 1")));
        }
        let largest = max_payload.saturating_sub(HEADER_ROOM);
        if !(MIN_PAYLOAD..=largest).contains(&self.payload) {
            return Err(BenchError::Args(format!(
                "--payload must be between {MIN_PAYLOAD} and {largest} bytes on this server \
                 (max_payload {max_payload} less room for the envelope headers)"
            )));
        }
        Ok(())
    }
}

/// `total` split into `rounds` near-equal parts (the first ones take the remainder).
pub(crate) fn split(total: usize, rounds: usize) -> Vec<usize> {
    let rounds = rounds.max(1);
    (0..rounds)
        .map(|round| total / rounds + usize::from(round < total % rounds))
        .collect()
}

/// Settings of the env benchmark.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct EnvArgs {
    /// Builds timed one at a time, for the latency percentiles.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub count: usize,
    /// Builds sent before measuring, so the repository, consumers and caches are warm.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub warmup: usize,
    /// Builds published at once in each throughput burst.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub burst: usize,
    /// Bursts per mode (grouped commits on, off), taking turns.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub rounds: usize,
    /// Events env-manager handles at once (FLOTILLA_CONCURRENCY).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub concurrency: usize,
    /// Writes grouped into one commit at most with grouping on (FLOTILLA_GITOPS_GROUP_MAX).
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub group_max: usize,
}

impl Default for EnvArgs {
    fn default() -> Self {
        EnvArgs {
            count: 200,
            warmup: 10,
            burst: 200,
            rounds: 2,
            concurrency: 16,
            group_max: 32,
        }
    }
}

impl EnvArgs {
    pub(crate) fn validate(&self) -> Result<(), BenchError> {
        let positive = [
            ("--count", self.count),
            ("--burst", self.burst),
            ("--rounds", self.rounds),
            ("--concurrency", self.concurrency),
            ("--group-max", self.group_max),
        ];
        match positive.iter().find(|(_, value)| *value == 0) {
            Some((flag, _)) => Err(BenchError::Args(format!("{flag} must be at least 1"))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_the_total_and_spreads_the_remainder() {
        assert_eq!(split(10, 4), vec![3, 3, 2, 2]);
        assert_eq!(split(3, 4), vec![1, 1, 1, 0]);
        assert_eq!(split(8, 1), vec![8]);
    }

    #[test]
    fn zero_counts_and_oversized_payloads_are_refused() {
        let max_payload = 1024 * 1024;
        assert!(HopArgs::default().validate(max_payload).is_ok());
        let no_rounds = HopArgs {
            rounds: 0,
            ..HopArgs::default()
        };
        let err = no_rounds.validate(max_payload).expect_err("zero rounds");
        assert!(err.to_string().contains("--rounds"), "{err}");
        let huge = HopArgs {
            payload: max_payload,
            ..HopArgs::default()
        };
        let err = huge.validate(max_payload).expect_err("too large");
        assert!(err.to_string().contains("--payload"), "{err}");
    }
}
