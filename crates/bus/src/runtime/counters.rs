//! One worker's per-event metrics, looked up once: a `Family` lookup hashes the label set and
//! takes a lock, on every event otherwise.

use std::sync::OnceLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use crate::health::{Health, Metrics, WorkerLabel};

/// Handles on the series labelled with one worker. Each is created on first use, as the
/// family would create it, so `/metrics` shows the same series as without the cache.
pub(super) struct Counters {
    health: Health,
    label: WorkerLabel,
    handled: OnceLock<Counter>,
    redelivered: OnceLock<Counter>,
    skipped: OnceLock<Counter>,
    dead_lettered: OnceLock<Counter>,
    duration: OnceLock<Histogram>,
}

impl Counters {
    pub(super) fn new(health: &Health, worker: &str) -> Self {
        Counters {
            health: health.clone(),
            label: Metrics::worker(worker),
            handled: OnceLock::new(),
            redelivered: OnceLock::new(),
            skipped: OnceLock::new(),
            dead_lettered: OnceLock::new(),
            duration: OnceLock::new(),
        }
    }

    fn metrics(&self) -> &Metrics {
        self.health.metrics()
    }

    pub(super) fn handled(&self) -> &Counter {
        self.handled
            .get_or_init(|| self.metrics().handled.get_or_create(&self.label).clone())
    }

    pub(super) fn redelivered(&self) -> &Counter {
        self.redelivered.get_or_init(|| {
            self.metrics()
                .redelivered
                .get_or_create(&self.label)
                .clone()
        })
    }

    pub(super) fn skipped(&self) -> &Counter {
        self.skipped
            .get_or_init(|| self.metrics().skipped.get_or_create(&self.label).clone())
    }

    pub(super) fn dead_lettered(&self) -> &Counter {
        self.dead_lettered.get_or_init(|| {
            self.metrics()
                .dead_lettered
                .get_or_create(&self.label)
                .clone()
        })
    }

    pub(super) fn duration(&self) -> &Histogram {
        self.duration
            .get_or_init(|| self.metrics().duration.get_or_create(&self.label).clone())
    }
}
