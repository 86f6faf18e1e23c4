//! Where each change of a run is, from the events stored so far: the stages it reached and when
//! the server stored each one, and whether it reached its terminal state. Fed by the follower
//! while a run goes, and by a full read of the stream when it is checked.

use std::collections::{BTreeMap, HashMap, HashSet};

use time::OffsetDateTime;

use crate::events::Fact;
use crate::plan::{Change, Plan};

/// The stages of a change, in the order a healthy change reaches them.
pub const STAGES: [&str; 11] = [
    "source",
    "build.started",
    "build.succeeded",
    "env.requested",
    "env.ready",
    "tests.passed",
    "release.requested",
    "canary.verdict",
    "close.source",
    "env.teardown.requested",
    "env.deleted",
];

/// The time each stage was first stored, per change.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub stages: BTreeMap<&'static str, OffsetDateTime>,
    /// The teardown's reason (`promoted`, `superseded`, `pr_closed`, ...).
    pub teardown_reason: Option<String>,
    /// Failures seen (`build.failed`, `env.failed`, `tests.failed`, `canary.aborted`).
    pub failures: Vec<String>,
}

impl Progress {
    pub fn at(&self, stage: &str) -> Option<OffsetDateTime> {
        self.stages.get(stage).copied()
    }

    fn mark(&mut self, stage: &'static str, at: OffsetDateTime) {
        self.stages.entry(stage).or_insert(at);
    }
}

/// Every change's progress, matched from facts.
#[derive(Debug)]
pub struct Tracker {
    changes: Vec<Change>,
    by_change_id: HashMap<String, usize>,
    by_env: HashMap<String, usize>,
    /// Delivery id → change, for the source events (opening and closing deliveries).
    by_delivery: HashMap<String, (usize, &'static str)>,
    pub progress: Vec<Progress>,
    seen: HashSet<u64>,
}

impl Tracker {
    pub fn new(plan: &Plan) -> Tracker {
        let changes = plan.changes.clone();
        let by_change_id = changes
            .iter()
            .map(|c| (c.change_id.clone(), c.index))
            .collect();
        let by_env = changes.iter().map(|c| (c.env.clone(), c.index)).collect();
        let progress = vec![Progress::default(); changes.len()];
        Tracker {
            changes,
            by_change_id,
            by_env,
            by_delivery: HashMap::new(),
            progress,
            seen: HashSet::new(),
        }
    }

    /// The source event with ce-id `delivery` is change `index`'s opening (`source`) or
    /// closing (`close.source`) delivery.
    pub fn expect_delivery(&mut self, delivery: &str, index: usize, stage: &'static str) {
        self.by_delivery.insert(delivery.to_owned(), (index, stage));
    }

    pub fn change(&self, index: usize) -> &Change {
        &self.changes[index]
    }

    /// Takes one stored fact into account (each sequence once). Returns the change it moved
    /// and the stage, when it did.
    pub fn observe(&mut self, fact: &Fact) -> Option<(usize, &'static str)> {
        if fact.seq != 0 && !self.seen.insert(fact.seq) {
            return None;
        }
        let (index, stage) = self.classify(fact)?;
        let progress = &mut self.progress[index];
        match fact.kind.as_str() {
            "env.teardown.requested" if progress.teardown_reason.is_none() => {
                progress.teardown_reason = fact.str("reason").map(str::to_owned);
            }
            "build.failed" | "env.failed" | "tests.failed" | "canary.aborted" => {
                progress.failures.push(format!(
                    "{}: {}",
                    fact.kind,
                    fact.str("reason").unwrap_or_default()
                ));
            }
            _ => {}
        }
        let fresh = progress.at(stage).is_none();
        progress.mark(stage, fact.stored);
        fresh.then_some((index, stage))
    }

    fn classify(&self, fact: &Fact) -> Option<(usize, &'static str)> {
        let by_change = || self.by_change_id.get(&fact.change_id).copied();
        let by_env = || self.by_env.get(fact.env()).copied();
        let stage = match fact.kind.as_str() {
            "source.push" | "source.pull_request" => {
                return self.by_delivery.get(&fact.id).copied();
            }
            "build.started" => "build.started",
            "build.succeeded" | "build.failed" => "build.succeeded",
            "env.requested" => "env.requested",
            "env.ready" | "env.failed" => "env.ready",
            "tests.passed" | "tests.failed" => "tests.passed",
            "release.requested" => "release.requested",
            "canary.promoted" | "canary.aborted" => "canary.verdict",
            "env.teardown.requested" => return by_env().map(|i| (i, "env.teardown.requested")),
            "env.deleted" => return by_env().map(|i| (i, "env.deleted")),
            _ => return None,
        };
        // Env events name the env; a staging env is one change, a preview holds its PR's.
        by_change().or_else(by_env).map(|i| (i, stage))
    }

    /// Whether change `index` reached its end: its env deleted, and for a push also its
    /// release judged (or the release skipped because production already ran a newer one).
    pub fn is_terminal(&self, index: usize) -> bool {
        let progress = &self.progress[index];
        if progress.at("env.deleted").is_none() {
            return false;
        }
        if !self.changes[index].is_push() {
            return true;
        }
        progress.at("canary.verdict").is_some()
            || progress.teardown_reason.as_deref() == Some("superseded")
            || !progress.failures.is_empty()
    }

    pub fn terminal_count(&self) -> usize {
        (0..self.changes.len())
            .filter(|&i| self.is_terminal(i))
            .count()
    }

    /// Changes not terminal yet, with the last stage each reached.
    pub fn stuck(&self) -> Vec<(String, &'static str)> {
        (0..self.changes.len())
            .filter(|&i| !self.is_terminal(i))
            .map(|i| {
                let last = STAGES
                    .iter()
                    .rev()
                    .find(|s| self.progress[i].at(s).is_some())
                    .copied()
                    .unwrap_or("nothing");
                (self.changes[i].change_id.clone(), last)
            })
            .collect()
    }
}
