use serde_json::{Value, json};

use super::*;

const GOOD: &str = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const BAD: &str = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const PR: &str = "3333333ccccccccccccccccccccccccccccccccc";

fn script() -> Script {
    Script::new(Shas {
        good: GOOD.into(),
        bad: BAD.into(),
        preview: PR.into(),
    })
}

fn event(event_type: &str, key: &str, change: Option<&str>, data: Value) -> Seen {
    Seen {
        event_type: event_type.into(),
        key: key.into(),
        worker: "w".into(),
        change_id: change.map(str::to_owned),
        data,
    }
}

/// The events of one change through staging and its canary: built, env, tested, released,
/// the verdict, the staging env deleted.
fn through_canary(script: &mut Script, sha: &str, version: &str, verdict: &str) -> Vec<Action> {
    let change = format!("ping-{version}");
    let env = format!("stg-ping-{version}");
    let c = Some(change.as_str());
    let events = [
        event(
            "build.started",
            &change,
            c,
            json!({"sha": sha, "version": version}),
        ),
        event("env.requested", &env, c, json!({})),
        event("env.ready", &env, c, json!({})),
        event("tests.passed", &env, c, json!({})),
        event("release.requested", "ping", c, json!({})),
        event(verdict, &change, c, json!({"metric": "success-rate"})),
        event("env.teardown.requested", &env, c, json!({})),
        event("env.deleted", &env, None, json!({})),
    ];
    events.iter().flat_map(|e| script.observe(e)).collect()
}

#[test]
fn the_three_scenarios_run_one_after_the_other_and_all_outcomes_hold() {
    let mut script = script();
    assert_eq!(
        script.start(),
        [Action::Heading(Scenario::Good), Action::Push(GOOD.into())]
    );
    let next = through_canary(&mut script, GOOD, "v2", "canary.promoted");
    assert_eq!(
        next,
        [Action::Heading(Scenario::Bad), Action::Push(BAD.into())]
    );

    // The bad change is aborted; its staging env goes, and production is read from git once
    // the rollback is published.
    assert!(through_canary(&mut script, BAD, "v3", "canary.aborted").is_empty());
    let rolled_back = event("release.rolled_back", "ping", Some("ping-v3"), json!({}));
    assert_eq!(script.observe(&rolled_back), [Action::CheckProduction]);
    assert_eq!(
        script.production(Ok("v2".into())),
        [
            Action::Heading(Scenario::Preview),
            Action::OpenPullRequest(PR.into())
        ]
    );

    let pr = Some("ping-v4");
    let env = "pr-acme-ping-7";
    script.observe(&event(
        "build.started",
        "ping-v4",
        pr,
        json!({"sha": PR, "version": "v4", "pr": "7"}),
    ));
    script.observe(&event("env.requested", env, pr, json!({})));
    assert_eq!(
        script.observe(&event("tests.passed", env, pr, json!({}))),
        [Action::ClosePullRequest(PR.into())]
    );
    assert!(!script.finished());
    script.observe(&event("env.deleted", env, pr, json!({})));
    assert!(script.finished());
    assert_eq!(script.failure(), None);
    let outcomes = script.outcomes();
    assert!(outcomes.iter().all(|o| o.ok), "{outcomes:?}");
    assert!(
        outcomes[1].detail.contains("back at v2"),
        "{}",
        outcomes[1].detail
    );
    assert_eq!(script.good_change(), Some("ping-v2"));
}

#[test]
fn the_bad_scenario_waits_for_its_staging_env_and_fails_on_a_wrong_production_version() {
    let mut script = script();
    script.start();
    through_canary(&mut script, GOOD, "v2", "canary.promoted");
    let change = Some("ping-v3");
    for e in [
        event(
            "build.started",
            "ping-v3",
            change,
            json!({"sha": BAD, "version": "v3"}),
        ),
        event("env.requested", "stg-ping-v3", change, json!({})),
        event("canary.aborted", "ping-v3", change, json!({})),
    ] {
        script.observe(&e);
    }
    script.observe(&event("release.rolled_back", "ping", change, json!({})));
    // Production is right, but the staging env is still there: the scenario is not over.
    assert!(script.production(Ok("v2".into())).is_empty());
    assert!(!script.finished());

    let mut wrong = self::script();
    wrong.start();
    through_canary(&mut wrong, GOOD, "v2", "canary.promoted");
    through_canary(&mut wrong, BAD, "v3", "canary.aborted");
    wrong.observe(&event("release.rolled_back", "ping", change, json!({})));
    assert!(wrong.production(Ok("v3".into())).is_empty());
    assert!(wrong.finished());
    let why = wrong.failure().unwrap_or_default();
    assert!(
        why.contains("holds ping v3, not the good version v2"),
        "{why}"
    );
    assert!(!wrong.outcomes()[1].ok);
}

#[test]
fn a_failed_step_or_the_wrong_verdict_ends_the_demo_with_what_is_missing() {
    let mut script = script();
    script.start();
    let next = through_canary(&mut script, GOOD, "v2", "canary.aborted");
    assert!(next.is_empty());
    assert!(script.finished());
    let why = script.failure().unwrap_or_default();
    assert!(why.contains("good change's canary was aborted"), "{why}");
    let outcomes = script.outcomes();
    assert!(!outcomes[0].ok);
    assert!(
        outcomes[0].detail.contains("missing: canary.promoted"),
        "{}",
        outcomes[0].detail
    );
    assert!(
        outcomes[2].detail.contains("env.requested on opened"),
        "{}",
        outcomes[2].detail
    );

    let mut failing = self::script();
    failing.start();
    let c = Some("ping-v2");
    failing.observe(&event(
        "build.started",
        "ping-v2",
        c,
        json!({"sha": GOOD, "version": "v2"}),
    ));
    failing.observe(&event(
        "tests.failed",
        "stg-ping-v2",
        c,
        json!({"reason": "exit 3"}),
    ));
    assert!(failing.finished());
    let why = failing.failure().unwrap_or_default();
    assert!(why.starts_with("tests.failed stg-ping-v2"), "{why}");
}

#[test]
fn events_of_other_changes_move_nothing() {
    let mut script = script();
    script.start();
    let other = Some("ping-v9");
    for e in [
        event(
            "build.started",
            "ping-v9",
            other,
            json!({"sha": "9999999", "version": "v9"}),
        ),
        event("canary.promoted", "ping-v9", other, json!({})),
        event("env.deleted", "stg-ping-v9", other, json!({})),
    ] {
        assert!(script.observe(&e).is_empty());
    }
    assert!(!script.outcomes()[0].ok);
}
