//! Why a benchmark run produced no report.

use std::time::Duration;

use crate::pipeline::{Phase, Pipeline};

/// Any error of a NATS or bus call, kept as the cause of a [`BenchError`].
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Settings that cannot produce a measurement.
    #[error("invalid benchmark settings: {0}")]
    Args(String),
    /// Creating the isolated streams, consumers or the worker under test failed.
    #[error("{what}: {source}")]
    Setup {
        what: String,
        #[source]
        source: BoxError,
    },
    /// Publishing into the first hop failed.
    #[error("{pipeline} {phase}: publishing message {seq} failed: {source}")]
    Publish {
        pipeline: Pipeline,
        phase: Phase,
        seq: u64,
        #[source]
        source: BoxError,
    },
    /// Messages stopped reaching the end consumer: the middle hop is stuck or failing.
    #[error(
        "{pipeline} {phase} stalled: the end consumer has {received} of {expected} messages and \
         got none for {waited:?}; the middle hop is stuck or failing (its log says why). \
         Consumers: {consumers}"
    )]
    Stalled {
        pipeline: Pipeline,
        phase: Phase,
        received: usize,
        expected: usize,
        waited: Duration,
        /// The server's view of the pipeline's consumers when the stall was noticed.
        consumers: String,
    },
    /// The webhook intake did not accept a delivery the benchmark sent.
    #[error("the listener answered {status} instead of 202: {body}")]
    Refused { status: u16, body: String },
    /// The end consumer's message stream ended.
    #[error("{pipeline}: the end consumer stopped receiving")]
    SinkClosed { pipeline: Pipeline },
    /// Deleting the isolated streams failed; they are named so they can be removed by hand.
    #[error("could not delete the benchmark's stream(s) {names}: {source}")]
    Cleanup {
        names: String,
        #[source]
        source: BoxError,
    },
}

impl BenchError {
    /// Wraps the error of a setup or teardown step with what was being done.
    pub(crate) fn setup(what: impl Into<String>, source: impl Into<BoxError>) -> BenchError {
        BenchError::Setup {
            what: what.into(),
            source: source.into(),
        }
    }
}
