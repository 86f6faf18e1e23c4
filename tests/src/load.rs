//! The load of a run: every change of a plan sent as a signed webhook at a steady rate, each
//! pull request closed once its preview's tests passed, until every accepted change reached its
//! terminal state or the drain time ran out.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use async_nats::jetstream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::events::Follower;
use crate::plan::Plan;
use crate::tracker::Tracker;
use crate::webhook::{Answer, Delivery, Sender};

/// How a run sends its load.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Changes sent per second.
    pub rate: f64,
    /// How long after the last send the run waits for changes to finish.
    pub drain: Duration,
    /// How long one delivery is retried (503, listener unreachable) before it is given up.
    pub give_up: Duration,
    /// The follower's durable consumer name.
    pub follower: String,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            rate: 10.0,
            drain: Duration::from_secs(120),
            give_up: Duration::from_secs(120),
            follower: "suite-follower".into(),
        }
    }
}

/// One delivery sent, and its final answer.
#[derive(Debug, Clone)]
pub struct Sent {
    pub change: usize,
    /// `source` (the push or the opened pull request) or `close.source`.
    pub stage: &'static str,
    pub delivery: String,
    pub answer: Answer,
    /// When it was first sent, from the run's start.
    pub sent: Duration,
    /// When its final answer came, from the run's start.
    pub answered: Duration,
}

impl Sent {
    pub fn accepted(&self) -> bool {
        self.answer.status == 202
    }
}

/// What a run did.
#[derive(Debug)]
pub struct Outcome {
    pub tracker: Tracker,
    pub sent: Vec<Sent>,
    /// From the first send to the last change's terminal state (or the drain's end).
    pub elapsed: Duration,
    /// From the first send to the last.
    pub sending: Duration,
}

impl Outcome {
    /// Deliveries answered 202.
    pub fn accepted(&self) -> impl Iterator<Item = &Sent> {
        self.sent.iter().filter(|s| s.accepted())
    }

    /// Final answers by status.
    pub fn statuses(&self) -> BTreeMap<u16, usize> {
        let mut counts = BTreeMap::new();
        for sent in &self.sent {
            *counts.entry(sent.answer.status).or_default() += 1;
        }
        counts
    }
}

/// A line of progress, every few seconds.
#[derive(Debug, Clone, Copy)]
pub struct Status {
    pub elapsed: Duration,
    pub sent: usize,
    pub accepted: usize,
    pub terminal: usize,
    pub total: usize,
}

/// Sends `plan` through `sender` at `config.rate`, follows the stream through `js`, closes pull
/// requests whose tests passed, and returns when every accepted change is terminal or the
/// drain time after the last send has passed.
pub async fn run(
    js: jetstream::Context,
    sender: Sender,
    plan: &Plan,
    config: &LoadConfig,
    mut progress: impl FnMut(Status),
) -> Result<Outcome> {
    let started = Instant::now();
    let mut tracker = Tracker::new(plan);
    let mut follower = Follower::new(js, &config.follower);
    let (answers, mut answered) = mpsc::unbounded_channel::<Sent>();
    let mut sends = JoinSet::new();
    let mut sent = Vec::new();
    let interval = Duration::from_secs_f64(1.0 / config.rate.max(0.001));
    let mut next_change = 0;
    let mut sending_done_at = None;
    let mut last_progress = Instant::now();
    let mut closed = vec![false; plan.changes.len()];
    loop {
        // Send what is due by now.
        while next_change < plan.changes.len() && started.elapsed() >= interval * next_change as u32
        {
            let change = &plan.changes[next_change];
            let delivery = change.delivery();
            tracker.expect_delivery(&delivery.id, change.index, "source");
            spawn_send(
                &mut sends,
                &sender,
                delivery,
                change.index,
                "source",
                started,
                config,
                &answers,
            );
            next_change += 1;
            if next_change == plan.changes.len() {
                sending_done_at = Some(started.elapsed());
            }
        }
        while let Ok(done) = answered.try_recv() {
            sent.push(done);
        }
        while sends.try_join_next().is_some() {}

        // Follow the stream until the next send is due.
        let next_due = if next_change < plan.changes.len() {
            (interval * next_change as u32).saturating_sub(started.elapsed())
        } else {
            Duration::from_millis(250)
        };
        if let Some(fact) = follower.next(next_due.max(Duration::from_millis(1))).await
            && let Some((index, stage)) = tracker.observe(&fact)
            && stage == "tests.passed"
            && !closed[index]
            && let Some(close) = tracker.change(index).close()
        {
            closed[index] = true;
            tracker.expect_delivery(&close.id, index, "close.source");
            spawn_send(
                &mut sends,
                &sender,
                close,
                index,
                "close.source",
                started,
                config,
                &answers,
            );
        }

        let accepted_opening = sent
            .iter()
            .filter(|s| s.stage == "source" && s.accepted())
            .count();
        if last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            progress(Status {
                elapsed: started.elapsed(),
                sent: next_change,
                accepted: accepted_opening,
                terminal: tracker.terminal_count(),
                total: plan.changes.len(),
            });
        }
        let Some(done_sending) = sending_done_at else {
            continue;
        };
        let everything_answered = sends.is_empty();
        let accepted: Vec<usize> = sent
            .iter()
            .filter(|s| s.stage == "source" && s.accepted())
            .map(|s| s.change)
            .collect();
        let finished = everything_answered
            && sent.iter().filter(|s| s.stage == "source").count() == plan.changes.len()
            && accepted.iter().all(|&i| tracker.is_terminal(i));
        if finished || started.elapsed() > done_sending + config.drain {
            // Read what is left of the follower's backlog before stopping.
            while let Some(fact) = follower.next(Duration::from_millis(300)).await {
                tracker.observe(&fact);
            }
            sends.abort_all();
            while let Ok(done) = answered.try_recv() {
                sent.push(done);
            }
            return Ok(Outcome {
                tracker,
                sent,
                elapsed: started.elapsed(),
                sending: done_sending,
            });
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn spawn_send(
    sends: &mut JoinSet<()>,
    sender: &Sender,
    delivery: Delivery,
    change: usize,
    stage: &'static str,
    started: Instant,
    config: &LoadConfig,
    answers: &mpsc::UnboundedSender<Sent>,
) {
    let sender = sender.clone();
    let answers = answers.clone();
    let give_up = config.give_up;
    sends.spawn(async move {
        let sent = started.elapsed();
        let answer = sender.send(&delivery, give_up).await;
        let _ = answers.send(Sent {
            change,
            stage,
            delivery: delivery.id.clone(),
            answer,
            sent,
            answered: started.elapsed(),
        });
    });
}
