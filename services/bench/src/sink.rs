//! The end of a pipeline: a durable pull consumer that stamps the moment each message arrives.

use std::ops::Range;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull::{self, MessagesErrorKind};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::stream::Stream;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::BenchError;
use crate::pipeline::{Phase, Pipeline};

/// How long the end consumer may go without a message before the run is called stalled: far
/// above a healthy hop (under a millisecond) and well below the worker's ack wait, so a lost
/// message is reported instead of being hidden by a redelivery much later.
const STALL: Duration = Duration::from_secs(10);

/// A message's arrival at the end consumer.
#[derive(Debug, Clone, Copy)]
struct Receipt {
    seq: u64,
    at: Instant,
}

/// The end consumer of one pipeline. Its task stamps arrivals as they happen, so the time the
/// benchmark's own task takes to look at them never counts.
pub(crate) struct Sink {
    pipeline: Pipeline,
    consumer: PullConsumer,
    receipts: mpsc::UnboundedReceiver<Receipt>,
    task: JoinHandle<()>,
}

impl Sink {
    /// Creates durable consumer `durable` on `stream` for `filter` and starts receiving.
    pub(crate) async fn start(
        pipeline: Pipeline,
        stream: &Stream,
        durable: &str,
        filter: String,
    ) -> Result<Sink, BenchError> {
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some(durable.to_owned()),
                filter_subject: filter,
                ack_policy: AckPolicy::Explicit,
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| BenchError::setup(format!("create end consumer {durable}"), e))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| BenchError::setup(format!("pull from end consumer {durable}"), e))?;
        let (stamp, receipts) = mpsc::unbounded_channel();
        Ok(Sink {
            pipeline,
            consumer,
            receipts,
            task: tokio::spawn(receive(messages, stamp)),
        })
    }

    pub(crate) fn consumer(&self) -> &PullConsumer {
        &self.consumer
    }

    /// When message `seq` arrived. Arrivals of other messages (a redelivery of an earlier
    /// one) are passed over.
    pub(crate) async fn receipt_of(
        &mut self,
        seq: u64,
        phase: Phase,
    ) -> Result<Instant, BenchError> {
        loop {
            let receipt = self.next(phase, 0, 1).await?;
            if receipt.seq == seq {
                return Ok(receipt.at);
            }
        }
    }

    /// When the last of the messages `seqs` arrived, once every one of them has; `None` for no
    /// messages.
    pub(crate) async fn last_receipt_of(
        &mut self,
        seqs: Range<u64>,
        phase: Phase,
    ) -> Result<Option<Instant>, BenchError> {
        let mut pending: Vec<bool> = seqs.clone().map(|_| true).collect();
        let expected = pending.len();
        let mut received = 0;
        let mut last = None;
        while received < expected {
            let receipt = self.next(phase, received, expected).await?;
            let Some(index) = receipt
                .seq
                .checked_sub(seqs.start)
                .and_then(|offset| usize::try_from(offset).ok())
            else {
                continue;
            };
            if pending.get(index).copied().unwrap_or(false) {
                pending[index] = false;
                received += 1;
                last = last.max(Some(receipt.at));
            }
        }
        Ok(last)
    }

    async fn next(
        &mut self,
        phase: Phase,
        received: usize,
        expected: usize,
    ) -> Result<Receipt, BenchError> {
        match tokio::time::timeout(STALL, self.receipts.recv()).await {
            Ok(Some(receipt)) => Ok(receipt),
            Ok(None) => Err(BenchError::SinkClosed {
                pipeline: self.pipeline,
            }),
            Err(_) => Err(BenchError::Stalled {
                pipeline: self.pipeline,
                phase,
                received,
                expected,
                waited: STALL,
                // Filled in by the lane, which knows every consumer of the pipeline.
                consumers: String::new(),
            }),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Stamps each arrival, then acks it. Ends when the benchmark stops listening or the consumer
/// fails (the benchmark then reports the sink closed).
async fn receive(mut messages: pull::Stream, stamp: mpsc::UnboundedSender<Receipt>) {
    while let Some(next) = messages.next().await {
        let message = match next {
            Ok(message) => message,
            Err(e) if e.kind() == MessagesErrorKind::MissingHeartbeat => continue,
            Err(e) => {
                tracing::warn!(error = %e, "benchmark end consumer failed");
                return;
            }
        };
        let at = Instant::now();
        if let Some(seq) = seq_of(&message.subject)
            && stamp.send(Receipt { seq, at }).is_err()
        {
            return;
        }
        if let Err(e) = message.ack().await {
            tracing::debug!(error = %e, "benchmark end consumer could not ack");
        }
    }
}

/// The sequence number a message carries as the last token of its subject.
pub(crate) fn seq_of(subject: &str) -> Option<u64> {
    subject.rsplit('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_the_last_subject_token() {
        assert_eq!(seq_of("flotilla-x.build.succeeded.42"), Some(42));
        assert_eq!(seq_of("flotilla-x.build.succeeded.ping"), None);
    }
}
