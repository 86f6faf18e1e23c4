//! Latency percentiles and throughput.

use std::time::Duration;

/// Percentiles of one-at-a-time latencies (nearest rank, no interpolation: every figure is a
/// latency that was actually observed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    pub samples: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latency {
    /// `None` without samples.
    pub fn from_samples(mut samples: Vec<Duration>) -> Option<Latency> {
        samples.sort_unstable();
        let max = *samples.last()?;
        Some(Latency {
            samples: samples.len(),
            p50: nearest_rank(&samples, 50),
            p99: nearest_rank(&samples, 99),
            max,
        })
    }
}

/// The smallest sample with at least `percent`% of the samples at or below it; `sorted` is
/// not empty.
fn nearest_rank(sorted: &[Duration], percent: usize) -> Duration {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Messages that went through in some time, and the CPU time this process spent on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throughput {
    pub messages: usize,
    pub elapsed: Duration,
    /// `None` where the OS does not report it.
    pub cpu: Option<Duration>,
}

impl Default for Throughput {
    /// Nothing sent, in no time, for no CPU: what rounds are added to.
    fn default() -> Self {
        Throughput {
            messages: 0,
            elapsed: Duration::ZERO,
            cpu: Some(Duration::ZERO),
        }
    }
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.messages as f64 / seconds
        } else {
            0.0
        }
    }

    /// CPU time of this process per message.
    pub fn cpu_per_message(&self) -> Option<Duration> {
        let messages = u32::try_from(self.messages).ok().filter(|m| *m > 0)?;
        Some(self.cpu? / messages)
    }

    /// Rounds add up: their messages over their total time.
    pub(crate) fn add(&mut self, round: Throughput) {
        self.messages += round.messages;
        self.elapsed += round.elapsed;
        self.cpu = self.cpu.zip(round.cpu).map(|(total, more)| total + more);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(values: impl IntoIterator<Item = u64>) -> Vec<Duration> {
        values.into_iter().map(Duration::from_micros).collect()
    }

    #[test]
    fn percentiles_are_observed_values_by_nearest_rank() {
        let latency = Latency::from_samples(micros((1..=100).rev())).expect("samples");
        assert_eq!(latency.samples, 100);
        assert_eq!(latency.p50, Duration::from_micros(50));
        assert_eq!(latency.p99, Duration::from_micros(99));
        assert_eq!(latency.max, Duration::from_micros(100));
    }

    #[test]
    fn a_single_sample_is_every_percentile() {
        let latency = Latency::from_samples(micros([7])).expect("samples");
        assert_eq!((latency.p50, latency.p99), (latency.max, latency.max));
    }

    #[test]
    fn no_samples_no_latency() {
        assert!(Latency::from_samples(Vec::new()).is_none());
    }

    #[test]
    fn rounds_add_up_to_one_rate() {
        let mut total = Throughput::default();
        total.add(Throughput {
            messages: 1_000,
            elapsed: Duration::from_millis(100),
            cpu: Some(Duration::from_millis(50)),
        });
        total.add(Throughput {
            messages: 3_000,
            elapsed: Duration::from_millis(300),
            cpu: Some(Duration::from_millis(150)),
        });
        assert!((total.per_second() - 10_000.0).abs() < 1e-6);
        assert_eq!(total.cpu_per_message(), Some(Duration::from_micros(50)));
    }

    #[test]
    fn one_round_without_cpu_time_leaves_the_total_unknown() {
        let mut total = Throughput::default();
        total.add(Throughput {
            messages: 10,
            elapsed: Duration::from_millis(1),
            cpu: None,
        });
        assert_eq!(total.cpu_per_message(), None);
    }
}
