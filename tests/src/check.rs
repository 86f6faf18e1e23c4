//! The invariants of a run, checked against what was stored, not against what the run saw on
//! the way: the whole `FLOTILLA` stream read afresh, the dead-letter stream, and the GitOps
//! repository's history.
//!
//! - nothing accepted is lost: every delivery answered 202 has its source event, and every
//!   accepted change reached its terminal event;
//! - nothing is duplicated: no event id twice; one build, one env request, one readiness, one
//!   test result per change; one env file write per env and change, one removal per env, one
//!   teardown and one `env.deleted` per env, at most one release (and one production write)
//!   per change, and a verdict for each release;
//! - the dead-letter stream holds only the poison inputs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use anyhow::Result;
use async_nats::jetstream;

use crate::events::{self, Fact};
use crate::gitops::History;
use crate::plan::Plan;
use crate::tracker::Tracker;

/// A dead letter, as the DLQ stream holds it.
#[derive(Debug, Clone)]
pub struct Letter {
    pub worker: String,
    /// The subject of the message that died.
    pub subject: String,
    pub reason: String,
    pub deliveries: String,
}

/// What a run stored, read back.
#[derive(Debug)]
pub struct Stored {
    pub facts: Vec<Fact>,
    pub letters: Vec<Letter>,
    pub history: History,
}

impl Stored {
    pub async fn read(js: &jetstream::Context, gitops: &Path) -> Result<Stored> {
        let facts = events::read_facts(js).await?;
        let letters = read_letters(js).await?;
        let history = History::read(gitops)?;
        Ok(Stored {
            facts,
            letters,
            history,
        })
    }
}

/// Every dead letter in `FLOTILLA_DLQ`.
pub async fn read_letters(js: &jetstream::Context) -> Result<Vec<Letter>> {
    let messages = events::read_all(js, "FLOTILLA_DLQ", "flotilla-dlq.>").await?;
    Ok(messages
        .iter()
        .map(|m| {
            let header = |name: &str| {
                m.headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default()
            };
            Letter {
                worker: header("flotilla-dlq-worker"),
                subject: header("flotilla-dlq-subject"),
                reason: header("flotilla-dlq-reason"),
                deliveries: header("flotilla-dlq-deliveries"),
            }
        })
        .collect())
}

/// What the checks found: counts for the report, and every broken invariant.
#[derive(Debug, Default)]
pub struct Verdict {
    pub problems: Vec<String>,
    /// Events stored, per type.
    pub events: BTreeMap<String, usize>,
    /// Changes that reached their terminal state, of those accepted.
    pub terminal: usize,
    pub accepted: usize,
    /// Pushes released to production, and pushes whose release was skipped because production
    /// already ran a newer version.
    pub released: usize,
    pub superseded: usize,
    pub letters: usize,
    pub commits: usize,
    /// Problems that are something accepted and lost (not stored, never finished, a step
    /// missing).
    pub lost: usize,
    /// Problems that are something done twice (an event id, a step, a write, a teardown).
    pub duplicated: usize,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, text: String) {
        self.problems.push(text);
    }

    fn lost(&mut self, text: String) {
        self.lost += 1;
        self.problems.push(text);
    }

    fn duplicate(&mut self, text: String) {
        self.duplicated += 1;
        self.problems.push(text);
    }

    /// Something that must happen once happened `n` times.
    fn not_once(&mut self, n: usize, text: String) {
        match n {
            0 => self.lost(text),
            1 => self.problem(text),
            _ => self.duplicate(text),
        }
    }
}

/// What the checks are given besides what was stored.
#[derive(Debug, Default)]
pub struct Expected<'a> {
    /// Delivery ids answered 202, with the change each belongs to (`None` for probes).
    pub accepted: Vec<(String, Option<usize>)>,
    /// Subjects whose messages were poison: only they may be dead letters.
    pub poison_subjects: HashSet<String>,
    pub plan: Option<&'a Plan>,
}

/// Checks every invariant of a run.
pub fn check(stored: &Stored, expected: &Expected<'_>) -> Verdict {
    let mut verdict = Verdict {
        letters: stored.letters.len(),
        commits: stored.history.commits,
        ..Verdict::default()
    };
    for fact in &stored.facts {
        let kind = if fact.kind.is_empty() {
            "(no envelope)".to_owned()
        } else {
            fact.kind.clone()
        };
        *verdict.events.entry(kind).or_default() += 1;
    }
    unique_ids(stored, &mut verdict);
    accepted_are_stored(stored, expected, &mut verdict);
    if let Some(plan) = expected.plan {
        changes(stored, expected, plan, &mut verdict);
    }
    letters(stored, expected, &mut verdict);
    verdict
}

fn unique_ids(stored: &Stored, verdict: &mut Verdict) {
    let mut seen: HashMap<&str, u64> = HashMap::new();
    for fact in stored.facts.iter().filter(|f| !f.id.is_empty()) {
        if let Some(first) = seen.insert(&fact.id, fact.seq) {
            verdict.duplicate(format!(
                "event id {} stored twice (seq {first} and {}: {})",
                fact.id, fact.seq, fact.subject
            ));
        }
    }
}

fn accepted_are_stored(stored: &Stored, expected: &Expected<'_>, verdict: &mut Verdict) {
    let sources: HashMap<&str, usize> = stored
        .facts
        .iter()
        .filter(|f| f.kind.starts_with("source."))
        .fold(HashMap::new(), |mut counts, f| {
            *counts.entry(f.id.as_str()).or_default() += 1;
            counts
        });
    for (delivery, _) in &expected.accepted {
        match sources.get(delivery.as_str()) {
            Some(1) => {}
            Some(n) => verdict.duplicate(format!("delivery {delivery} stored {n} times")),
            None => verdict.lost(format!(
                "delivery {delivery} was answered 202 but is not stored"
            )),
        }
    }
}

/// Per change: its terminal state, and one of each step.
fn changes(stored: &Stored, expected: &Expected<'_>, plan: &Plan, verdict: &mut Verdict) {
    let mut tracker = Tracker::new(plan);
    for (delivery, change) in &expected.accepted {
        if let Some(index) = change {
            tracker.expect_delivery(delivery, *index, "source");
        }
    }
    for fact in &stored.facts {
        tracker.observe(fact);
    }
    let accepted: HashSet<usize> = expected.accepted.iter().filter_map(|(_, c)| *c).collect();
    verdict.accepted = plan
        .changes
        .iter()
        .filter(|c| accepted.contains(&c.index))
        .count();
    // Counts of each (event type, subject key) among the change's events.
    let mut per_change: HashMap<(&str, &str), usize> = HashMap::new();
    let mut per_env: HashMap<(&str, &str), usize> = HashMap::new();
    for fact in &stored.facts {
        if !fact.change_id.is_empty() {
            *per_change.entry((&fact.change_id, &fact.kind)).or_default() += 1;
        }
        if fact.kind.starts_with("env.") {
            *per_env.entry((fact.env(), &fact.kind)).or_default() += 1;
        }
    }
    let history = &stored.history;
    for change in plan.changes.iter().filter(|c| accepted.contains(&c.index)) {
        let id = change.change_id.as_str();
        let progress = &tracker.progress[change.index];
        if tracker.is_terminal(change.index) {
            verdict.terminal += 1;
        } else {
            verdict.lost(format!(
                "{id} ({}) never reached its terminal state; stages: {:?}",
                change.env,
                progress.stages.keys().collect::<Vec<_>>()
            ));
        }
        for failure in &progress.failures {
            verdict.problem(format!("{id}: {failure}"));
        }
        let count = |kind: &str| per_change.get(&(id, kind)).copied().unwrap_or(0);
        for kind in [
            "build.started",
            "build.succeeded",
            "env.requested",
            "env.ready",
            "tests.passed",
        ] {
            if count(kind) != 1 {
                verdict.not_once(
                    count(kind),
                    format!("{id}: {} {kind} events, expected 1", count(kind)),
                );
            }
        }
        let env = change.env.as_str();
        for kind in ["env.teardown.requested", "env.deleted"] {
            let n = per_env.get(&(env, kind)).copied().unwrap_or(0);
            if n != 1 {
                verdict.not_once(n, format!("{env}: {n} {kind} events, expected 1"));
            }
        }
        let writes = history.env_writes.get(env).cloned().unwrap_or_default();
        if writes != [change.change_id.clone()] {
            // Written twice is a duplicate, never a loss; once with another change, neither.
            verdict.not_once(
                writes.len().min(2),
                format!("{env}: env file written with {writes:?}, expected once with {id}"),
            );
        }
        let removals = history.env_removals.get(env).copied().unwrap_or(0);
        if removals != 1 {
            verdict.problem(format!(
                "{env}: env file removed {removals} times, expected once"
            ));
        }
        if change.is_push() {
            release(
                change,
                count("release.requested"),
                count("canary.promoted") + count("canary.aborted"),
                progress.teardown_reason.as_deref(),
                history,
                verdict,
            );
        }
    }
    for env in &history.live_envs {
        verdict.problem(format!("env file {env} is still in the GitOps repository"));
    }
}

/// A push: released once (one production write, one verdict), or skipped as superseded.
fn release(
    change: &crate::plan::Change,
    releases: usize,
    verdicts: usize,
    teardown: Option<&str>,
    history: &History,
    verdict: &mut Verdict,
) {
    let id = &change.change_id;
    let writes = history
        .production
        .get(&change.app)
        .map(|versions| versions.iter().filter(|v| **v == change.version).count())
        .unwrap_or(0);
    match (releases, teardown) {
        (1, Some("promoted")) => {
            verdict.released += 1;
            if verdicts != 1 {
                verdict.not_once(
                    verdicts,
                    format!("{id}: {verdicts} canary verdicts, expected 1"),
                );
            }
            if writes != 1 {
                verdict.not_once(writes, format!(
                    "{id}: production set to {} {writes} times, expected once",
                    change.version
                ));
            }
        }
        (0, Some("superseded")) => {
            verdict.superseded += 1;
            if writes != 0 {
                verdict.problem(format!("{id}: superseded, yet production ran {}", change.version));
            }
        }
        (n, reason) => verdict.not_once(n.clamp(1, 2), format!(
            "{id}: {n} release.requested with teardown reason {reason:?}, expected one release (promoted) or none (superseded)"
        )),
    }
}

fn letters(stored: &Stored, expected: &Expected<'_>, verdict: &mut Verdict) {
    for letter in &stored.letters {
        if !expected.poison_subjects.contains(&letter.subject) {
            verdict.problem(format!(
                "dead letter of {} on {} that was not poison: {}",
                letter.worker, letter.subject, letter.reason
            ));
        }
        if letter.reason.is_empty() {
            verdict.problem(format!(
                "dead letter of {} on {} has no reason",
                letter.worker, letter.subject
            ));
        }
    }
}
