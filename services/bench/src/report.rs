//! The result of a run, and how it compares with the targets of DESIGN.md.

use std::fmt;
use std::time::Duration;

use crate::args::HopArgs;
use crate::stats::{Latency, Throughput};

/// Bus two-hop latency p50 may be at most this multiple of bare async-nats'.
pub const LATENCY_TARGET: f64 = 1.15;
/// Bus pipelined throughput must be at least this fraction of bare async-nats'.
pub const THROUGHPUT_TARGET: f64 = 0.7;

/// What was measured on one pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SideReport {
    pub latency: Latency,
    pub throughput: Throughput,
}

/// Both pipelines, measured in one run on one server.
#[derive(Debug, Clone, PartialEq)]
pub struct HopReport {
    /// The settings as given.
    pub args: HopArgs,
    /// Messages the middle hop of each pipeline handled at once.
    pub concurrency: usize,
    /// The payload size both pipelines carried, in bytes.
    pub payload: usize,
    /// `nats-server` version.
    pub server: String,
    pub bare: SideReport,
    pub bus: SideReport,
    /// The isolated streams the run used (deleted when it returned).
    pub streams: Vec<String>,
}

impl HopReport {
    /// Bus p50 over bare p50: 1.0 is as fast, lower is better.
    pub fn latency_ratio(&self) -> f64 {
        ratio(self.bus.latency.p50, self.bare.latency.p50)
    }

    /// Bus p99 over bare p99.
    pub fn p99_ratio(&self) -> f64 {
        ratio(self.bus.latency.p99, self.bare.latency.p99)
    }

    /// Bus msgs/s over bare msgs/s: 1.0 is as fast, higher is better.
    pub fn throughput_ratio(&self) -> f64 {
        let bare = self.bare.throughput.per_second();
        if bare > 0.0 {
            self.bus.throughput.per_second() / bare
        } else {
            0.0
        }
    }

    /// Bus CPU time per message over bare's, where the OS reports CPU time.
    pub fn cpu_ratio(&self) -> Option<f64> {
        let bus = self.bus.throughput.cpu_per_message()?;
        let bare = self.bare.throughput.cpu_per_message()?;
        Some(ratio(bus, bare))
    }

    pub fn latency_target_met(&self) -> bool {
        self.latency_ratio() <= LATENCY_TARGET
    }

    pub fn throughput_target_met(&self) -> bool {
        self.throughput_ratio() >= THROUGHPUT_TARGET
    }
}

fn ratio(numerator: Duration, denominator: Duration) -> f64 {
    let denominator = denominator.as_secs_f64();
    if denominator > 0.0 {
        numerator.as_secs_f64() / denominator
    } else {
        f64::INFINITY
    }
}

impl fmt::Display for HopReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_settings(f)?;
        writeln!(f)?;
        self.fmt_table(f)?;
        writeln!(f)?;
        self.fmt_ratios(f)
    }
}

impl HopReport {
    fn fmt_settings(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "two hops on nats-server {}: payload {} B, middle hop concurrency {}",
            self.server, self.payload, self.concurrency
        )?;
        writeln!(
            f,
            "latency: {} messages one at a time, the pipelines taking turns (after {} warm-up); \
             throughput: {} messages in {} round(s) taking turns, {} publishes awaiting ack",
            self.bare.latency.samples,
            self.args.warmup,
            self.bare.throughput.messages,
            self.args.rounds,
            self.args.window
        )
    }

    fn fmt_table(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<6} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "", "p50", "p99", "max", "msgs/s", "cpu/msg"
        )?;
        for (name, side) in [("bare", &self.bare), ("bus", &self.bus)] {
            let cpu = side.throughput.cpu_per_message().map_or("-".into(), micros);
            writeln!(
                f,
                "{name:<6} {:>10} {:>10} {:>10} {:>10.0} {cpu:>10}",
                micros(side.latency.p50),
                micros(side.latency.p99),
                micros(side.latency.max),
                side.throughput.per_second(),
            )?;
        }
        Ok(())
    }

    fn fmt_ratios(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "bus/bare latency p50  {:>6.2}×  target ≤ {LATENCY_TARGET}×  {}",
            self.latency_ratio(),
            verdict(self.latency_target_met())
        )?;
        writeln!(
            f,
            "bus/bare throughput   {:>6.1}%  target ≥ {:.0}%   {}",
            self.throughput_ratio() * 100.0,
            THROUGHPUT_TARGET * 100.0,
            verdict(self.throughput_target_met())
        )?;
        write!(f, "bus/bare latency p99  {:>6.2}×", self.p99_ratio())?;
        if let Some(cpu) = self.cpu_ratio() {
            writeln!(f, "\nbus/bare cpu/msg      {cpu:>6.2}×")?;
            write!(
                f,
                "\ncpu/msg: CPU time of this process (publisher, middle hop, end consumer) per \
                 pipelined message; the server's is not counted"
            )?;
        }
        Ok(())
    }
}

/// `123.4 µs` or `1.23 ms`.
pub(crate) fn micros(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.2} ms", us / 1_000.0)
    }
}

pub(crate) fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(p50_us: u64, msgs_per_sec: usize) -> SideReport {
        let p50 = Duration::from_micros(p50_us);
        SideReport {
            latency: Latency {
                samples: 10,
                p50,
                p99: p50 * 2,
                max: p50 * 3,
            },
            throughput: Throughput {
                messages: msgs_per_sec,
                elapsed: Duration::from_secs(1),
                cpu: Some(Duration::from_secs(1)),
            },
        }
    }

    fn report(bare: SideReport, bus: SideReport) -> HopReport {
        HopReport {
            args: HopArgs::default(),
            concurrency: 16,
            payload: 256,
            server: "2.9.10".into(),
            bare,
            bus,
            streams: Vec::new(),
        }
    }

    #[test]
    fn a_bus_within_both_targets_is_reported_as_meeting_them() {
        let report = report(side(200, 40_000), side(220, 30_000));
        assert!((report.latency_ratio() - 1.1).abs() < 1e-9);
        assert!(report.latency_target_met() && report.throughput_target_met());
        let text = report.to_string();
        assert!(
            text.contains("200.0 µs") && text.contains("220.0 µs"),
            "{text}"
        );
        assert!(!text.contains("NOT MET"), "{text}");
    }

    #[test]
    fn a_slow_bus_is_reported_as_missing_the_targets() {
        let report = report(side(200, 40_000), side(400, 10_000));
        assert!(!report.latency_target_met() && !report.throughput_target_met());
        assert_eq!(report.to_string().matches("NOT MET").count(), 2);
    }
}
