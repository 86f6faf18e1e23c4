//! The timers on tokio's paused clock: hours pass in no time, and exactly.

use std::time::Duration;

use flotilla_env::{EnvRecord, State};
use serde_json::json;
use time::macros::datetime;

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

fn timers(idle: Option<Duration>) -> Timers {
    Timers {
        ttl: 72 * HOUR,
        idle,
    }
}

fn record(created: OffsetDateTime) -> EnvRecord {
    EnvRecord {
        state: State::Ready,
        kind: "preview".into(),
        change_id: "ping-v1".into(),
        created_at: rfc3339(created),
        ..Default::default()
    }
}

const T0: OffsetDateTime = datetime!(2026-03-02 09:00 UTC);
const ENV: &str = "pr-acme-ping-7";

#[tokio::test(start_paused = true)]
async fn the_ttl_fires_at_created_plus_the_ttl_and_not_a_moment_before() {
    let clock = Clock::tokio_at(T0);
    let record = record(T0);
    let timer = next(ENV, &record, &timers(None)).expect("a TTL");
    assert_eq!(timer.reason, Reason::Ttl);
    assert_eq!(timer.at, T0 + 72 * HOUR);

    tokio::time::advance(72 * HOUR - Duration::from_secs(1)).await;
    assert!(!timer.is_due(clock.now()), "one second early");
    tokio::time::sleep_until(clock.instant_of(timer.at)).await;
    assert!(timer.is_due(clock.now()));
    assert_eq!(clock.now(), T0 + 72 * HOUR);
}

#[tokio::test(start_paused = true)]
async fn the_records_own_expiry_wins_over_the_default_ttl() {
    let clock = Clock::tokio_at(T0);
    let mut record = record(T0);
    record.expires_at = rfc3339(T0 + 2 * HOUR);
    let timer = next(ENV, &record, &timers(None)).expect("a TTL");
    assert_eq!(timer.at, T0 + 2 * HOUR);
    tokio::time::advance(2 * HOUR).await;
    assert!(timer.is_due(clock.now()));
}

#[tokio::test(start_paused = true)]
async fn activity_pushes_the_idle_deadline_back_and_an_older_event_does_not_pull_it_in() {
    let clock = Clock::tokio_at(T0);
    let idle = Some(4 * HOUR);
    let record = record(T0);
    assert_eq!(
        next(ENV, &record, &timers(idle)),
        Some(Timer {
            reason: Reason::Idle,
            at: T0 + 4 * HOUR
        })
    );
    tokio::time::advance(3 * HOUR).await;
    let record = with_activity(record, clock.now()).expect("a later activity");
    let timer = next(ENV, &record, &timers(idle)).expect("idle");
    assert_eq!(timer.at, T0 + 7 * HOUR);
    assert_eq!(
        with_activity(record.clone(), T0 + HOUR),
        None,
        "a late redelivery of an older event changes nothing"
    );
    tokio::time::advance(3 * HOUR).await;
    assert!(!timer.is_due(clock.now()));
    tokio::time::advance(HOUR).await;
    assert!(timer.is_due(clock.now()));
}

#[test]
fn keep_holds_off_the_idle_timer_until_its_deadline() {
    let mut record = record(T0);
    record.expires_at = rfc3339(T0 + 100 * HOUR);
    record
        .other
        .insert(KEPT_UNTIL.into(), json!(rfc3339(T0 + 48 * HOUR)));
    let timer = next(ENV, &record, &timers(Some(HOUR))).expect("idle");
    assert_eq!((timer.reason, timer.at), (Reason::Idle, T0 + 48 * HOUR));
}

#[test]
fn a_claimed_env_has_no_timer_until_a_new_change() {
    let record = record(T0);
    let timer = next(ENV, &record, &timers(None)).expect("a TTL");
    let claimed = Claim::new(&timer, &record.change_id).put(record.clone());
    assert_eq!(next(ENV, &claimed, &timers(None)), None);
    assert_eq!(
        Claim::of(&claimed).map(|c| c.event_id(ENV)),
        Some(format!("reaper:ttl:{ENV}:2026-03-05T09:00:00Z"))
    );
    // The pull request reopened and built anew: the old claim is not this change's.
    let renewed = EnvRecord {
        change_id: "ping-v2".into(),
        ..claimed
    };
    assert_eq!(Claim::of(&renewed), None);
    assert!(next(ENV, &renewed, &timers(None)).is_some());
}

#[test]
fn production_envs_going_away_and_unknown_states_have_no_timer() {
    let mut production = record(T0);
    production.kind = "production".into();
    assert_eq!(next("production", &production, &timers(None)), None);
    for state in [
        State::Deleting,
        State::Deleted,
        State::Unknown("hibernating".into()),
    ] {
        let record = EnvRecord {
            state,
            ..record(T0)
        };
        assert_eq!(next(ENV, &record, &timers(None)), None);
    }
    let mut no_kind = record(T0);
    no_kind.kind = String::new();
    assert!(next("stg-ping-v1", &no_kind, &timers(None)).is_some());
    assert_eq!(next("something-else", &no_kind, &timers(None)), None);
}

#[test]
fn a_record_with_no_times_has_no_timer() {
    let record = EnvRecord {
        state: State::Ready,
        kind: "preview".into(),
        ..Default::default()
    };
    assert_eq!(next(ENV, &record, &timers(Some(HOUR))), None);
}
