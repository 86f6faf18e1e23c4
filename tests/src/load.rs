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
    /// Opening deliveries with their final answer.
    pub answered: usize,
    pub accepted: usize,
    pub terminal: usize,
    pub total: usize,
}

/// Sends `plan` through `sender` at `config.rate`, follows the stream through `js`, closes pull
/// requests whose tests passed, and returns when every accepted change is terminal or the
/// drain time after the last send has passed. Sending is paced by a task of its own, so an
/// outage that holds the follower up does not hold the rate up.
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
    let openings: Vec<(usize, Delivery)> = plan
        .changes
        .iter()
        .map(|c| (c.index, c.delivery()))
        .collect();
    for (index, delivery) in &openings {
        tracker.expect_delivery(&delivery.id, *index, "source");
    }
    let interval = Duration::from_secs_f64(1.0 / config.rate.max(0.001));
    let pacer = tokio::spawn(pace(
        openings,
        sender.clone(),
        interval,
        started,
        config.give_up,
        answers.clone(),
    ));
    let mut closes = JoinSet::new();
    let mut sent = Vec::new();
    let mut last_progress = Instant::now();
    let mut closed = vec![false; plan.changes.len()];
    let mut sending_done_at = None;
    loop {
        if let Some(fact) = follower.next(Duration::from_millis(250)).await
            && let Some((index, stage)) = tracker.observe(&fact)
            && stage == "tests.passed"
            && !closed[index]
            && let Some(close) = tracker.change(index).close()
        {
            closed[index] = true;
            tracker.expect_delivery(&close.id, index, "close.source");
            let (sender, answers) = (sender.clone(), answers.clone());
            let give_up = config.give_up;
            closes.spawn(async move {
                send(
                    &sender,
                    close,
                    index,
                    "close.source",
                    started,
                    give_up,
                    &answers,
                )
                .await
            });
        }
        while let Ok(done) = answered.try_recv() {
            sent.push(done);
        }
        while closes.try_join_next().is_some() {}
        if sending_done_at.is_none() && pacer.is_finished() {
            sending_done_at = Some(
                sent.iter()
                    .filter(|s| s.stage == "source")
                    .map(|s| s.sent)
                    .max()
                    .unwrap_or_default(),
            );
        }
        let opening_answers = sent.iter().filter(|s| s.stage == "source").count();
        let accepted: Vec<usize> = sent
            .iter()
            .filter(|s| s.stage == "source" && s.accepted())
            .map(|s| s.change)
            .collect();
        if last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            progress(Status {
                elapsed: started.elapsed(),
                answered: opening_answers,
                accepted: accepted.len(),
                terminal: tracker.terminal_count(),
                total: plan.changes.len(),
            });
        }
        let Some(done_sending) = sending_done_at else {
            continue;
        };
        let finished = closes.is_empty()
            && opening_answers == plan.changes.len()
            && accepted.iter().all(|&i| tracker.is_terminal(i));
        if finished || started.elapsed() > done_sending + config.drain {
            // Read what is left of the follower's backlog before stopping.
            while let Some(fact) = follower.next(Duration::from_millis(300)).await {
                tracker.observe(&fact);
            }
            closes.abort_all();
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

/// Sends each opening delivery when it is due (one every `interval` from `started`), each in a
/// task of its own; returns once every one has its final answer.
async fn pace(
    openings: Vec<(usize, Delivery)>,
    sender: Sender,
    interval: Duration,
    started: Instant,
    give_up: Duration,
    answers: mpsc::UnboundedSender<Sent>,
) {
    let mut sends = JoinSet::new();
    for (k, (index, delivery)) in openings.into_iter().enumerate() {
        let due = started + interval * k as u32;
        tokio::time::sleep_until(due.into()).await;
        let (sender, answers) = (sender.clone(), answers.clone());
        sends.spawn(async move {
            send(
                &sender, delivery, index, "source", started, give_up, &answers,
            )
            .await
        });
    }
    while sends.join_next().await.is_some() {}
}

/// Sends one delivery (retrying 503s and refused connections) and reports its final answer.
async fn send(
    sender: &Sender,
    delivery: Delivery,
    change: usize,
    stage: &'static str,
    started: Instant,
    give_up: Duration,
    answers: &mpsc::UnboundedSender<Sent>,
) {
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
}
