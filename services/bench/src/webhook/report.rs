//! What the webhook intake benchmark takes, and what it reports against its targets.

use std::fmt;
use std::time::Duration;

use crate::error::BenchError;
use crate::report::{micros, verdict};
use crate::stats::{Latency, Throughput};

/// Intake throughput must be at least this fraction of bare JetStream publishing.
pub const INTAKE_TARGET: f64 = 0.5;
/// The paced run's p99 must stay under this.
pub const PACED_P99_TARGET: Duration = Duration::from_millis(5);

const HEADER_ROOM: usize = 4 * 1024;

/// Settings of the webhook intake benchmark.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct WebhookArgs {
    /// Concurrent senders on each side (HTTP clients, and bare publishers).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub clients: usize,
    /// Deliveries sent for throughput on each side.
    #[arg(long, value_name = "N", default_value_t = 8_000)]
    pub requests: usize,
    /// The throughput deliveries are sent in this many rounds, the sides taking turns.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub rounds: usize,
    /// Size of the signed push body in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 8 * 1024)]
    pub payload: usize,
    /// Deliveries a second in the paced run.
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub rate: u32,
    /// Deliveries in the paced run.
    #[arg(long, value_name = "N", default_value_t = 2_500)]
    pub paced: usize,
    /// Deliveries on each side before measuring, so connections and caches are warm.
    #[arg(long, value_name = "N", default_value_t = 400)]
    pub warmup: usize,
}

impl Default for WebhookArgs {
    fn default() -> Self {
        WebhookArgs {
            clients: 16,
            requests: 8_000,
            rounds: 4,
            payload: 8 * 1024,
            rate: 500,
            paced: 2_500,
            warmup: 400,
        }
    }
}

impl WebhookArgs {
    pub(super) fn validate(&self, max_payload: usize) -> Result<(), BenchError> {
        let positive = [
            ("--clients", self.clients),
            ("--requests", self.requests),
            ("--rounds", self.rounds),
            ("--rate", self.rate as usize),
            ("--paced", self.paced),
        ];
        if let Some((flag, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(BenchError::Args(format!("{flag} must be at least 1")));
        }
        let largest = max_payload.saturating_sub(HEADER_ROOM);
        if !(1024..=largest).contains(&self.payload) {
            return Err(BenchError::Args(format!(
                "--payload must be between 1024 and {largest} bytes on this server"
            )));
        }
        Ok(())
    }
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookReport {
    pub args: WebhookArgs,
    /// The exact size of the body both sides sent.
    pub body: usize,
    /// `nats-server` version.
    pub server: String,
    pub bare: Throughput,
    pub intake: Throughput,
    /// Latency of the paced run, each delivery timed from when it was due.
    pub paced: Latency,
    /// The rate the paced run achieved (deliveries over the time from first due to last answer).
    pub paced_rate: f64,
}

impl WebhookReport {
    /// Intake deliveries a second over bare publishes a second.
    pub fn throughput_ratio(&self) -> f64 {
        let bare = self.bare.per_second();
        if bare > 0.0 {
            self.intake.per_second() / bare
        } else {
            0.0
        }
    }

    pub fn throughput_target_met(&self) -> bool {
        self.throughput_ratio() >= INTAKE_TARGET
    }

    pub fn paced_target_met(&self) -> bool {
        self.paced.p99 < PACED_P99_TARGET
    }
}

impl fmt::Display for WebhookReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "signed GitHub push intake on nats-server {}: body {} B, {} concurrent senders, \
             {} deliveries a side in {} round(s) taking turns (after {} warm-up)",
            self.server,
            self.body,
            self.args.clients,
            self.bare.messages,
            self.args.rounds,
            self.args.warmup
        )?;
        writeln!(f)?;
        writeln!(f, "{:<8} {:>10} {:>10}", "", "msgs/s", "cpu/msg")?;
        for (name, side) in [("bare", &self.bare), ("intake", &self.intake)] {
            let cpu = side.cpu_per_message().map_or("-".into(), micros);
            writeln!(f, "{name:<8} {:>10.0} {cpu:>10}", side.per_second())?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "paced: {} deliveries due at {}/s (achieved {:.0}/s): p50 {}  p99 {}  max {}",
            self.paced.samples,
            self.args.rate,
            self.paced_rate,
            micros(self.paced.p50),
            micros(self.paced.p99),
            micros(self.paced.max)
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "intake/bare throughput {:>6.1}%  target ≥ {:.0}%    {}",
            self.throughput_ratio() * 100.0,
            INTAKE_TARGET * 100.0,
            verdict(self.throughput_target_met())
        )?;
        write!(
            f,
            "paced p99 at {}/s     {:>8}  target < {} {}\n\
             cpu/msg: CPU time of this process (senders and listener) per delivery; the \
             server's is not counted",
            self.args.rate,
            micros(self.paced.p99),
            micros(PACED_P99_TARGET),
            verdict(self.paced_target_met())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_cannot_measure_are_refused() {
        let args = WebhookArgs::default();
        assert!(args.validate(1 << 20).is_ok());
        let none = WebhookArgs {
            clients: 0,
            ..WebhookArgs::default()
        };
        let error = none.validate(1 << 20).expect_err("no clients");
        assert!(error.to_string().contains("--clients"), "{error}");
        let huge = WebhookArgs {
            payload: 1 << 20,
            ..WebhookArgs::default()
        };
        assert!(huge.validate(1 << 20).is_err());
    }

    fn report(bare: usize, intake: usize, p99_ms: u64) -> WebhookReport {
        let per_second = |messages| Throughput {
            messages,
            elapsed: Duration::from_secs(1),
            cpu: None,
        };
        let p99 = Duration::from_millis(p99_ms);
        WebhookReport {
            args: WebhookArgs::default(),
            body: 8192,
            server: "2.9.10".into(),
            bare: per_second(bare),
            intake: per_second(intake),
            paced: Latency {
                samples: 100,
                p50: p99 / 2,
                p99,
                max: p99,
            },
            paced_rate: 500.0,
        }
    }

    #[test]
    fn the_report_compares_intake_with_bare_against_the_targets() {
        let good = report(10_000, 6_000, 4);
        assert!((good.throughput_ratio() - 0.6).abs() < 1e-9);
        assert!(good.throughput_target_met() && good.paced_target_met());
        assert!(!good.to_string().contains("NOT MET"), "{good}");
        let bad = report(10_000, 2_000, 12);
        assert!(!bad.throughput_target_met() && !bad.paced_target_met());
        assert_eq!(bad.to_string().matches("NOT MET").count(), 2, "{bad}");
    }
}
