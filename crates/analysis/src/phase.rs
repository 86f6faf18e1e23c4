//! Argo's `AnalysisPhase`, and its order from best to worst.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Pending,
    Running,
    Successful,
    Failed,
    Inconclusive,
    Error,
}

impl Phase {
    pub fn completed(self) -> bool {
        matches!(
            self,
            Phase::Successful | Phase::Failed | Phase::Inconclusive | Phase::Error
        )
    }

    /// Position in Argo's `analysisStatusOrder` (utils/analysis/helpers.go): Successful,
    /// Running, Pending, Inconclusive, Error, Failed. Failed is the worst, above Error.
    fn rank(self) -> u8 {
        match self {
            Phase::Successful => 0,
            Phase::Running => 1,
            Phase::Pending => 2,
            Phase::Inconclusive => 3,
            Phase::Error => 4,
            Phase::Failed => 5,
        }
    }

    /// Argo's `IsWorse(current, new)`.
    pub fn is_worse(current: Phase, new: Phase) -> bool {
        new.rank() > current.rank()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Successful => "Successful",
            Phase::Failed => "Failed",
            Phase::Inconclusive => "Inconclusive",
            Phase::Error => "Error",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
