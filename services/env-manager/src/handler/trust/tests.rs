use flotilla_env::registry::App;

use super::*;

const OLD: &str = "v20240101120000-aaaaaaa";
const NEW: &str = "v20240101130000-bbbbbbb";

fn record(state: State, kind: Kind, version: &str) -> EnvRecord {
    EnvRecord {
        state,
        kind: kind.as_str().into(),
        change_id: format!("ping-{version}"),
        repo: "acme/ping".into(),
        sha: "b".repeat(40),
        apps: vec![
            App {
                name: "ping".into(),
                version: version.into(),
                image: String::new(),
            },
            App {
                name: "maindb".into(),
                version: "v1".into(),
                image: String::new(),
            },
        ],
        revision: "c".repeat(40),
        ..Default::default()
    }
}

fn spec(version: &str) -> EnvSpec {
    EnvSpec {
        env: "pr-acme-ping-7".into(),
        kind: Kind::Preview,
        change_id: format!("ping-{version}"),
        repo: "acme/ping".into(),
        pr: 7,
        app: "ping".into(),
        version: version.into(),
        image: None,
        created_at: "2024-01-01T13:00:00Z".into(),
        expires_at: "2024-01-04T13:00:00Z".into(),
    }
}

fn passed(version: &str) -> TestResult {
    TestResult {
        env: format!("stg-ping-{version}"),
        change_id: format!("ping-{version}"),
        app: "ping".into(),
        version: version.into(),
        ..Default::default()
    }
}

#[test]
fn a_build_of_an_env_with_no_record_writes_it() {
    assert_eq!(build(None, &spec(NEW)), Ok(Prior::Fresh));
}

#[test]
fn a_change_written_already_is_not_written_again_and_republished_only_while_requested() {
    let requested = record(State::Requested, Kind::Preview, NEW);
    assert_eq!(
        build(Some(&requested), &spec(NEW)),
        Ok(Prior::Written { republish: true })
    );
    for state in [State::Ready, State::Failed, State::Deleting, State::Deleted] {
        let record = record(state.clone(), Kind::Preview, NEW);
        assert_eq!(
            build(Some(&record), &spec(NEW)),
            Ok(Prior::Written { republish: false }),
            "{state}"
        );
    }
}

#[test]
fn an_older_change_is_not_written_over_a_newer_one() {
    let newer = record(State::Ready, Kind::Preview, NEW);
    let refused = build(Some(&newer), &spec(OLD)).expect_err("refused");
    assert!(
        refused.contains(NEW) && refused.contains("newer"),
        "{refused}"
    );
    let older = record(State::Ready, Kind::Preview, OLD);
    assert_eq!(build(Some(&older), &spec(NEW)), Ok(Prior::Fresh));
}

#[test]
fn a_build_from_before_a_teardown_does_not_bring_the_env_back_and_one_from_after_does() {
    let mut gone = record(State::Deleting, Kind::Preview, OLD);
    gone.deleted_at = "2024-01-01T12:30:00Z".into();
    gone.reason = "pr_closed".into();
    let before = "v20240101122000-ddddddd";
    let refused = build(Some(&gone), &spec(before)).expect_err("refused");
    assert!(refused.contains("pr_closed"), "{refused}");
    // Reopened after the teardown: a new change.
    assert_eq!(build(Some(&gone), &spec(NEW)), Ok(Prior::Fresh));
}

#[test]
fn only_a_staging_env_holding_the_tested_change_at_its_version_is_promoted() {
    let env = record(State::Ready, Kind::Staging, NEW);
    assert_eq!(promotion(Some(&env), &passed(NEW)), Ok(Promotion::Promote));

    assert!(promotion(None, &passed(NEW)).is_err(), "no record");
    let preview = record(State::Ready, Kind::Preview, NEW);
    assert!(promotion(Some(&preview), &passed(NEW)).is_err(), "preview");
    let mut other_version = passed(NEW);
    other_version.version = OLD.into();
    assert!(promotion(Some(&env), &other_version).is_err(), "version");
    let mut other_change = passed(NEW);
    other_change.change_id = "ping-v20990101000000-fffffff".into();
    assert!(promotion(Some(&env), &other_change).is_err(), "change");
    let mut no_change = passed(NEW);
    no_change.change_id.clear();
    assert!(promotion(Some(&env), &no_change).is_err(), "no change");
    let mut other_app = passed(NEW);
    other_app.app = "maindb".into();
    assert!(promotion(Some(&env), &other_app).is_err(), "app");
    let mut unwritten = env.clone();
    unwritten.revision.clear();
    assert!(
        promotion(Some(&unwritten), &passed(NEW)).is_err(),
        "unwritten"
    );
}

#[test]
fn a_failed_env_is_not_promoted_and_one_torn_down_only_replays() {
    let failed = record(State::Failed, Kind::Staging, NEW);
    assert!(promotion(Some(&failed), &passed(NEW)).is_err());
    let suspended = record(State::Suspended, Kind::Staging, NEW);
    assert!(promotion(Some(&suspended), &passed(NEW)).is_err());
    let not_ready = record(State::Requested, Kind::Staging, NEW);
    assert_eq!(
        promotion(Some(&not_ready), &passed(NEW)),
        Ok(Promotion::AwaitReady)
    );
    let deleting = record(State::Deleting, Kind::Staging, NEW);
    assert_eq!(
        promotion(Some(&deleting), &passed(NEW)),
        Ok(Promotion::ReplayOnly)
    );
}

#[test]
fn only_an_env_that_exists_is_torn_down() {
    let request = |change_id: &str| TeardownRequest {
        env: "pr-acme-ping-7".into(),
        reason: "superseded".into(),
        change_id: change_id.into(),
        message: String::new(),
    };
    assert!(teardown(None, &request(""), || false).is_err());
    assert_eq!(teardown(None, &request(""), || true), Ok(()));
    let env = record(State::Ready, Kind::Preview, NEW);
    assert_eq!(teardown(Some(&env), &request(""), || false), Ok(()));
    assert_eq!(
        teardown(Some(&env), &request(&format!("ping-{NEW}")), || false),
        Ok(())
    );
    let stale = teardown(Some(&env), &request(&format!("ping-{OLD}")), || false);
    assert!(stale.is_err(), "a teardown of an earlier change");
}

#[test]
fn recording_a_change_the_record_holds_already_keeps_the_record() {
    let change = format!("ping-{NEW}");
    // sync-watcher moved it on: a second handling of the build must not move it back.
    let ready = record(State::Ready, Kind::Preview, NEW);
    assert_eq!(
        recorded(Some(&ready), &change),
        Some(Prior::Written { republish: false })
    );
    // Still waiting: the env.requested the first handling may not have published goes out.
    let requested = record(State::Requested, Kind::Preview, NEW);
    assert_eq!(
        recorded(Some(&requested), &change),
        Some(Prior::Written { republish: true })
    );
}

#[test]
fn recording_a_change_over_another_change_or_no_record_writes_it() {
    let change = format!("ping-{NEW}");
    assert_eq!(recorded(None, &change), None);
    let older = record(State::Ready, Kind::Preview, OLD);
    assert_eq!(recorded(Some(&older), &change), None);
}
