//! One pipeline under test, from the first publish to the end consumer, and the two ways of
//! timing it.

use std::future::Future;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::PullConsumer;
use futures::{StreamExt, TryStreamExt};

use crate::cpu;
use crate::error::{BenchError, BoxError};
use crate::pipeline::{Phase, Pipeline};
use crate::report::SideReport;
use crate::sink::Sink;
use crate::stats::{Latency, Throughput};

/// The entry of a pipeline: publishes message `seq` into the first hop.
pub(crate) trait Inject: Send + Sync {
    /// Returns once JetStream acknowledged the message.
    fn send(&self, seq: u64) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// A pipeline's entry, its end consumer and what was measured on it so far. Every message gets
/// a sequence number of its own, carried in its subject, so a late or repeated delivery is
/// never taken for another message.
pub(crate) struct Lane<I> {
    pipeline: Pipeline,
    entry: I,
    /// The middle hop's consumer, asked for its state when the pipeline stalls.
    middle: PullConsumer,
    sink: Sink,
    window: usize,
    next_seq: u64,
    latencies: Vec<Duration>,
    throughput: Throughput,
}

impl<I: Inject> Lane<I> {
    /// `window` bounds the publishes awaiting their ack at once while pipelining.
    pub(crate) fn new(
        pipeline: Pipeline,
        entry: I,
        middle: PullConsumer,
        sink: Sink,
        window: usize,
    ) -> Self {
        Lane {
            pipeline,
            entry,
            middle,
            sink,
            window,
            next_seq: 0,
            latencies: Vec::new(),
            throughput: Throughput::default(),
        }
    }

    /// Sends `count` messages in the manner of `phase` and adds what was measured to the
    /// lane's totals (a warm-up is not measured).
    pub(crate) async fn run(&mut self, phase: Phase, count: usize) -> Result<(), BenchError> {
        let mut result = self.measure(phase, count).await;
        if let Err(BenchError::Stalled { consumers, .. }) = &mut result {
            *consumers = self.consumer_states().await;
        }
        result
    }

    async fn measure(&mut self, phase: Phase, count: usize) -> Result<(), BenchError> {
        match phase {
            Phase::Warmup => {
                self.one_at_a_time(count, phase).await?;
            }
            Phase::Latency => {
                let samples = self.one_at_a_time(count, phase).await?;
                self.latencies.extend(samples);
            }
            Phase::Pipelined => {
                let round = self.pipelined(count).await?;
                self.throughput.add(round);
            }
        }
        Ok(())
    }

    /// Everything measured on this lane; `None` before any latency was measured.
    pub(crate) fn report(&self) -> Option<SideReport> {
        Some(SideReport {
            latency: Latency::from_samples(self.latencies.clone())?,
            throughput: self.throughput,
        })
    }

    /// Sends `count` messages one at a time and returns each one's time from the start of its
    /// publish to its receipt at the end consumer.
    async fn one_at_a_time(
        &mut self,
        count: usize,
        phase: Phase,
    ) -> Result<Vec<Duration>, BenchError> {
        let mut samples = Vec::with_capacity(count);
        for seq in self.take(count) {
            let started = Instant::now();
            self.entry
                .send(seq)
                .await
                .map_err(|source| BenchError::Publish {
                    pipeline: self.pipeline,
                    phase,
                    seq,
                    source,
                })?;
            let received = self.sink.receipt_of(seq, phase).await?;
            samples.push(received.saturating_duration_since(started));
        }
        Ok(samples)
    }

    /// Sends `count` messages with up to `window` publishes awaiting their ack at once, and
    /// times the first publish to the last receipt at the end consumer.
    async fn pipelined(&mut self, count: usize) -> Result<Throughput, BenchError> {
        let seqs = self.take(count);
        let (pipeline, entry, sink) = (self.pipeline, &self.entry, &mut self.sink);
        let cpu_before = cpu::process_time();
        let started = Instant::now();
        let publish = futures::stream::iter(seqs.clone())
            .map(|seq| async move {
                entry.send(seq).await.map_err(|source| BenchError::Publish {
                    pipeline,
                    phase: Phase::Pipelined,
                    seq,
                    source,
                })
            })
            .buffer_unordered(self.window)
            .try_collect::<()>();
        // Receipts are stamped by the sink as they arrive, so collecting them alongside the
        // publishes costs the measurement nothing.
        let ((), last) = tokio::try_join!(publish, sink.last_receipt_of(seqs, Phase::Pipelined))?;
        let cpu = cpu_before
            .zip(cpu::process_time())
            .map(|(before, after)| after.saturating_sub(before));
        Ok(Throughput {
            messages: count,
            elapsed: last.map_or(Duration::ZERO, |last| {
                last.saturating_duration_since(started)
            }),
            cpu,
        })
    }

    /// What the server says about the middle and end consumers, for a stall report.
    async fn consumer_states(&self) -> String {
        let mut states = Vec::new();
        for consumer in [&self.middle, self.sink.consumer()] {
            let name = &consumer.cached_info().name;
            states.push(match consumer.get_info().await {
                Ok(info) => format!(
                    "{name}: {} pending, {} awaiting ack, {} redelivered, {} pull requests waiting",
                    info.num_pending, info.num_ack_pending, info.num_redelivered, info.num_waiting
                ),
                Err(e) => format!("{name}: state unavailable ({e})"),
            });
        }
        states.join("; ")
    }

    /// The next `count` unused sequence numbers.
    fn take(&mut self, count: usize) -> std::ops::Range<u64> {
        let first = self.next_seq;
        self.next_seq += count as u64;
        first..self.next_seq
    }
}
