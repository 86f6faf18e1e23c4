//! Names of the pipelines under test and of the phases they run, shared by the lanes that run
//! them and the errors and reports that name them.

use std::fmt;

/// Which of the two pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipeline {
    /// async-nats alone.
    Bare,
    /// Flotilla's publisher and worker runtime.
    Bus,
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pipeline::Bare => "bare",
            Pipeline::Bus => "bus",
        })
    }
}

/// What a pipeline was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Warmup,
    Latency,
    Pipelined,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Warmup => "warm-up",
            Phase::Latency => "latency",
            Phase::Pipelined => "pipelined",
        })
    }
}
