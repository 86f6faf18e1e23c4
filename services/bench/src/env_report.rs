//! What `flotilla bench env` found, and how it compares with DESIGN.md's target.

use std::fmt;
use std::time::Duration;

use crate::args::EnvArgs;
use crate::stats::{Latency, Throughput};

/// build.succeeded → env file pushed, p50, must stay under this on a local repository.
pub const ENV_LATENCY_TARGET: Duration = Duration::from_millis(10);

/// Bursts written in one mode (grouped commits on or off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeReport {
    /// Writes grouped into one commit at most (1: grouping off).
    pub group_max: usize,
    pub throughput: Throughput,
    /// Commits the bursts made.
    pub commits: usize,
}

impl ModeReport {
    pub(crate) fn new(group_max: usize) -> ModeReport {
        ModeReport {
            group_max,
            throughput: Throughput {
                cpu: None,
                ..Throughput::default()
            },
            commits: 0,
        }
    }

    pub(crate) fn add(&mut self, burst: Throughput, commits: usize) {
        self.throughput.add(burst);
        self.commits += commits;
    }

    /// Env writes per commit.
    pub fn writes_per_commit(&self) -> f64 {
        if self.commits == 0 {
            0.0
        } else {
            self.throughput.messages as f64 / self.commits as f64
        }
    }
}

/// The run's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvReport {
    pub args: EnvArgs,
    /// `nats-server` version.
    pub server: String,
    /// build.succeeded published → env.requested received, one build at a time.
    pub latency: Latency,
    pub grouped: ModeReport,
    pub single: ModeReport,
}

impl EnvReport {
    pub fn latency_target_met(&self) -> bool {
        self.latency.p50 < ENV_LATENCY_TARGET
    }

    /// Grouped env writes/s over one-commit-per-write env writes/s.
    pub fn grouping_gain(&self) -> f64 {
        let single = self.single.throughput.per_second();
        if single > 0.0 {
            self.grouped.throughput.per_second() / single
        } else {
            0.0
        }
    }
}

impl fmt::Display for EnvReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "env-manager on nats-server {} and a local bare GitOps repository, handling {} \
             events at once",
            self.server, self.args.concurrency
        )?;
        writeln!(
            f,
            "latency: {} builds one at a time (after {} warm-up), build.succeeded published → \
             env.requested received (env file pushed, env registered)",
            self.latency.samples, self.args.warmup
        )?;
        writeln!(f, "{:<12} {:>10} {:>10} {:>10}", "", "p50", "p99", "max")?;
        writeln!(
            f,
            "{:<12} {:>10} {:>10} {:>10}",
            "latency",
            millis(self.latency.p50),
            millis(self.latency.p99),
            millis(self.latency.max)
        )?;
        writeln!(
            f,
            "latency p50 {}  target < {}  {}",
            millis(self.latency.p50),
            millis(ENV_LATENCY_TARGET),
            if self.latency_target_met() {
                "met"
            } else {
                "NOT MET"
            }
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "throughput: bursts of {} builds published at once, {} per mode, the modes taking turns",
            self.args.burst, self.args.rounds
        )?;
        writeln!(
            f,
            "{:<22} {:>10} {:>8} {:>14}",
            "", "writes/s", "commits", "writes/commit"
        )?;
        for (name, mode) in [
            (
                format!("grouped (max {})", self.grouped.group_max),
                &self.grouped,
            ),
            ("one commit per write".to_owned(), &self.single),
        ] {
            writeln!(
                f,
                "{name:<22} {:>10.1} {:>8} {:>14.1}",
                mode.throughput.per_second(),
                mode.commits,
                mode.writes_per_commit()
            )?;
        }
        write!(
            f,
            "grouped/one-by-one writes/s {:>6.2}×",
            self.grouping_gain()
        )
    }
}

/// `12.3 ms`.
fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(group_max: usize, writes: usize, secs: u64, commits: usize) -> ModeReport {
        let mut mode = ModeReport::new(group_max);
        let burst = Throughput {
            messages: writes,
            elapsed: Duration::from_secs(secs),
            cpu: None,
        };
        mode.add(burst, commits);
        mode
    }

    fn report(p50_ms: u64) -> EnvReport {
        let p50 = Duration::from_millis(p50_ms);
        EnvReport {
            args: EnvArgs::default(),
            server: "2.9.10".into(),
            latency: Latency {
                samples: 10,
                p50,
                p99: p50 * 2,
                max: p50 * 3,
            },
            grouped: mode(32, 400, 2, 20),
            single: mode(1, 400, 8, 400),
        }
    }

    #[test]
    fn the_report_gives_the_grouping_gain_and_writes_per_commit() {
        let report = report(8);
        assert!((report.grouping_gain() - 4.0).abs() < 1e-9);
        assert!((report.grouped.writes_per_commit() - 20.0).abs() < 1e-9);
        let text = report.to_string();
        assert!(text.contains("8.0 ms") && text.contains("4.00×"), "{text}");
        assert!(!text.contains("NOT MET"), "{text}");
    }

    #[test]
    fn a_slow_env_is_reported_as_missing_the_target() {
        assert!(!report(12).latency_target_met());
        assert!(report(12).to_string().contains("NOT MET"));
    }
}
