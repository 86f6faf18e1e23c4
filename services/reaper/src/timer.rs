//! The timers of an env, computed from its registry record alone (so a restarted or second
//! reaper computes the same ones): its TTL (`expires_at`, else `created_at` plus
//! `FLOTILLA_ENV_TTL`) and, when `FLOTILLA_ENV_IDLE` is set, its idle deadline (the last event
//! about it plus the idle time, never before `flotilla envs keep` said). Pure: the time is
//! passed in, read from a [`Clock`].

use std::time::Duration;

use flotilla_env::envid::Kind;
use flotilla_env::{EnvRecord, State};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;

use crate::config::Timers;

/// The record key of the last event about the env (RFC 3339).
pub const LAST_ACTIVITY: &str = "last_activity";
/// The record key of `flotilla envs keep`'s deadline (RFC 3339): no idle teardown before it.
pub const KEPT_UNTIL: &str = "kept_until";
/// The record key of the reaper's claim of a teardown.
pub const TEARDOWN: &str = "reaper_teardown";

/// Why a timer tears an env down (the `reason` of `env.teardown.requested`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Ttl,
    Idle,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ttl => "ttl",
            Reason::Idle => "idle",
        }
    }
}

/// The next timer of an env: why, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    pub reason: Reason,
    pub at: OffsetDateTime,
}

impl Timer {
    /// Whether it has fired by `now`.
    pub fn is_due(&self, now: OffsetDateTime) -> bool {
        self.at <= now
    }
}

/// The reaper's claim of a teardown, kept in the env's record: the replica that writes it (by
/// compare-and-set) publishes the event; the others, and the same replica later, see it and do
/// not fire again. It names the change it was for: a new change of the env (a reopened pull
/// request) starts with its timers anew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub reason: String,
    pub change_id: String,
    /// The deadline that fired (RFC 3339): part of the event id.
    pub deadline: String,
    /// Whether `env.teardown.requested` was published (else it is published again, under the
    /// same id).
    pub published: bool,
}

impl Claim {
    pub fn new(timer: &Timer, change_id: &str) -> Claim {
        Claim {
            reason: timer.reason.as_str().to_owned(),
            change_id: change_id.to_owned(),
            deadline: rfc3339(timer.at),
            published: false,
        }
    }

    /// The claim in `record` for its current change, if any.
    pub fn of(record: &EnvRecord) -> Option<Claim> {
        let claim = record.other.get(TEARDOWN)?;
        let text = |name: &str| claim.get(name).and_then(Value::as_str).map(str::to_owned);
        let claim = Claim {
            reason: text("reason")?,
            change_id: text("change_id")?,
            deadline: text("deadline").unwrap_or_default(),
            published: claim
                .get("published")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        };
        (claim.change_id == record.change_id).then_some(claim)
    }

    /// `record` holding this claim.
    pub fn put(&self, mut record: EnvRecord) -> EnvRecord {
        record.other.insert(
            TEARDOWN.into(),
            json!({
                "reason": self.reason,
                "change_id": self.change_id,
                "deadline": self.deadline,
                "published": self.published,
            }),
        );
        record
    }

    /// The id of the teardown event: the same for every replica and every retry.
    pub fn event_id(&self, env: &str) -> String {
        format!("reaper:{}:{env}:{}", self.reason, self.deadline)
    }
}

/// Whether the reaper's timers apply to an env in this record at all: a preview or staging env
/// (never production), alive (not on its way out), in a state this version knows.
pub fn applies(env: &str, record: &EnvRecord) -> bool {
    let kind = match record.kind.as_str() {
        "preview" => Some(Kind::Preview),
        "staging" => Some(Kind::Staging),
        "" => Kind::of(env),
        _ => None,
    };
    kind.is_some()
        && matches!(
            record.state,
            State::Requested | State::Ready | State::Failed | State::Suspended
        )
}

/// The env's earliest timer, `None` when it has none (not a reaped kind, going away already,
/// fired already for this change, or no time to count from).
pub fn next(env: &str, record: &EnvRecord, timers: &Timers) -> Option<Timer> {
    if !applies(env, record) || Claim::of(record).is_some() {
        return None;
    }
    let created = parse(&record.created_at);
    let ttl = parse(&record.expires_at)
        .or_else(|| created.map(|c| c + timers.ttl))
        .map(|at| Timer {
            reason: Reason::Ttl,
            at,
        });
    let idle = timers.idle.and_then(|idle| {
        let activity = [
            created,
            record
                .other
                .get(LAST_ACTIVITY)
                .and_then(Value::as_str)
                .and_then(parse),
        ]
        .into_iter()
        .flatten()
        .max()?;
        let kept = record
            .other
            .get(KEPT_UNTIL)
            .and_then(Value::as_str)
            .and_then(parse);
        let at = [Some(activity + idle), kept].into_iter().flatten().max()?;
        Some(Timer {
            reason: Reason::Idle,
            at,
        })
    });
    // The TTL first on a tie: it is the one people set.
    match (ttl, idle) {
        (Some(t), Some(i)) if i.at < t.at => Some(i),
        (Some(t), _) => Some(t),
        (None, i) => i,
    }
}

/// `record` with its last activity at `at`, unless it has a later one already (events arrive
/// out of order and are redelivered: the latest wins). `None` when nothing changes.
pub fn with_activity(mut record: EnvRecord, at: OffsetDateTime) -> Option<EnvRecord> {
    let current = record
        .other
        .get(LAST_ACTIVITY)
        .and_then(Value::as_str)
        .and_then(parse);
    if current.is_some_and(|current| current >= at) {
        return None;
    }
    record
        .other
        .insert(LAST_ACTIVITY.into(), Value::String(rfc3339(at)));
    Some(record)
}

/// An RFC 3339 time; `None` when empty or malformed.
pub fn parse(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// `at` in RFC 3339, UTC.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Where the reaper reads the time. The system clock in production; tokio's clock anchored at a
/// wall time in tests, so a paused clock moves the timers too.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    Tokio {
        wall: OffsetDateTime,
        instant: Instant,
    },
}

impl Clock {
    /// Tokio's clock, reading `wall` now.
    pub fn tokio_at(wall: OffsetDateTime) -> Clock {
        Clock::Tokio {
            wall,
            instant: Instant::now(),
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        match self {
            Clock::System => OffsetDateTime::now_utc(),
            Clock::Tokio { wall, instant } => *wall + instant.elapsed(),
        }
    }

    /// The tokio instant at which the clock reads `at` (now when it is past).
    pub fn instant_of(&self, at: OffsetDateTime) -> Instant {
        let ahead = Duration::try_from(at - self.now()).unwrap_or_default();
        Instant::now() + ahead
    }
}

#[cfg(test)]
mod tests;
