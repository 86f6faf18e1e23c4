use flotilla_proto::v1::{PullRequest, Push};

use super::*;
use crate::config::{AppMap, Rules};

const SHA: &str = "1A2B3C4D5E6F77889900AABBCCDDEEFF00112233";
const TIME: &str = "2024-03-05T07:08:09.123456Z";

fn main_push() -> Push {
    Push {
        repo: "acme/ping".into(),
        r#ref: "refs/heads/main".into(),
        branch: "main".into(),
        default_branch: "main".into(),
        sha: SHA.into(),
        ..Default::default()
    }
}

fn pr(action: &str) -> PullRequest {
    PullRequest {
        repo: "acme/ping".into(),
        number: 42,
        action: action.into(),
        head_sha: SHA.into(),
        head_ref: "feature".into(),
        base_ref: "main".into(),
        ..Default::default()
    }
}

fn labelled(rule: &str) -> Rules {
    Rules {
        pr_label: Some(rule.into()),
        ..Rules::default()
    }
}

fn built(decision: Result<Decision, Invalid>) -> Change {
    match decision.expect("decidable") {
        Decision::Build(change) => change,
        Decision::Skip(why) => panic!("expected a build, skipped: {why}"),
    }
}

fn skipped(decision: Result<Decision, Invalid>) -> bool {
    matches!(decision.expect("decidable"), Decision::Skip(_))
}

#[test]
fn version_is_the_utc_time_of_the_event_and_the_short_sha() {
    assert_eq!(
        version(TIME, SHA).expect("valid"),
        "v20240305070809-1a2b3c4"
    );
    // The same instant written with an offset decides the same version.
    assert_eq!(
        version("2024-03-05T09:08:09+02:00", SHA).expect("valid"),
        "v20240305070809-1a2b3c4"
    );
}

#[test]
fn the_same_event_always_decides_the_same_change() {
    let rules = Rules::default();
    let first = built(push(&main_push(), Some(TIME), &rules));
    let again = built(push(&main_push(), Some(TIME), &rules));
    assert_eq!(first, again);
    assert_eq!(first.change_id, "ping-v20240305070809-1a2b3c4");
    assert_eq!(first.app, "ping");
    assert_eq!(first.sha, SHA.to_ascii_lowercase());
    assert_eq!(first.pr, 0);
}

#[test]
fn an_event_without_a_usable_time_or_sha_is_invalid() {
    let rules = Rules::default();
    assert_eq!(push(&main_push(), None, &rules), Err(Invalid::MissingTime));
    assert!(matches!(
        push(&main_push(), Some("yesterday"), &rules),
        Err(Invalid::BadTime(_))
    ));
    for sha in ["", "1a2b3c", "not-a-sha-at-all"] {
        let bad = Push {
            sha: sha.into(),
            ..main_push()
        };
        assert!(
            matches!(push(&bad, Some(TIME), &rules), Err(Invalid::BadSha(_))),
            "{sha}"
        );
    }
}

#[test]
fn pushes_to_other_branches_tags_and_deletions_build_nothing() {
    let rules = Rules::default();
    let feature = Push {
        r#ref: "refs/heads/feature".into(),
        branch: "feature".into(),
        ..main_push()
    };
    let tag = Push {
        r#ref: "refs/tags/v1".into(),
        branch: String::new(),
        tag: "v1".into(),
        ..main_push()
    };
    let deleted = Push {
        deleted: true,
        ..main_push()
    };
    for event in [feature, tag, deleted] {
        assert!(skipped(push(&event, Some(TIME), &rules)), "{event:?}");
    }
}

#[test]
fn configured_extra_branches_build_too() {
    let rules = Rules {
        extra_branches: vec!["release".into()],
        ..Rules::default()
    };
    let release = Push {
        r#ref: "refs/heads/release".into(),
        branch: "release".into(),
        ..main_push()
    };
    assert_eq!(
        built(push(&release, Some(TIME), &rules)).git_ref,
        "refs/heads/release"
    );
}

#[test]
fn mapped_repos_build_the_mapped_app() {
    let rules = Rules {
        apps: AppMap::parse("acme/ping=pong").expect("valid"),
        ..Rules::default()
    };
    let change = built(push(&main_push(), Some(TIME), &rules));
    assert_eq!(change.app, "pong");
    assert_eq!(change.change_id, "pong-v20240305070809-1a2b3c4");
}

#[test]
fn pull_requests_build_on_open_synchronize_and_reopen_with_their_number() {
    let rules = Rules::default();
    for action in ["opened", "synchronize", "reopened"] {
        let change = built(pull_request(&pr(action), Some(TIME), &rules));
        assert_eq!(change.pr, 42);
        assert_eq!(change.version, "v20240305070809-1a2b3c4");
        assert_eq!(change.git_ref, "refs/heads/feature");
    }
    for action in ["closed", "labeled", "unlabeled", "edited"] {
        assert!(
            skipped(pull_request(&pr(action), Some(TIME), &rules)),
            "{action}"
        );
    }
}

#[test]
fn with_a_label_rule_only_labelled_pull_requests_build() {
    let rules = labelled("preview");
    assert!(skipped(pull_request(&pr("opened"), Some(TIME), &rules)));

    let mut tagged = pr("labeled");
    tagged.label = "preview".into();
    tagged.labels = vec!["preview".into()];
    assert_eq!(built(pull_request(&tagged, Some(TIME), &rules)).pr, 42);

    let mut other_label = tagged.clone();
    other_label.label = "bug".into();
    assert!(skipped(pull_request(&other_label, Some(TIME), &rules)));

    let mut pushed_to = tagged;
    pushed_to.action = "synchronize".into();
    assert_eq!(built(pull_request(&pushed_to, Some(TIME), &rules)).pr, 42);
}

#[test]
fn a_change_id_names_its_app_and_version() {
    use flotilla_proto::v1::AppVersion;
    let apps = [
        AppVersion {
            name: "maindb".into(),
            version: "v1".into(),
            ..Default::default()
        },
        AppVersion {
            name: "ping-api".into(),
            version: "v20240305070809-1a2b3c4".into(),
            ..Default::default()
        },
    ];
    let named = |app: &str, version: &str| Some((app.to_owned(), version.to_owned()));
    assert_eq!(
        app_and_version("ping-api-v20240305070809-1a2b3c4", &apps),
        named("ping-api", "v20240305070809-1a2b3c4")
    );
    assert_eq!(
        app_and_version("web-v20240305070809-abcdef0", &[]),
        named("web", "v20240305070809-abcdef0")
    );
    assert_eq!(app_and_version("something-else", &[]), None);
}

#[test]
fn a_push_is_versioned_by_its_head_commits_time_in_utc_not_its_delivery() {
    let mut push = main_push();
    push.commits = vec![
        flotilla_proto::v1::Commit {
            id: "0000000aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
            timestamp: "2024-03-01T00:00:00Z".into(),
            ..Default::default()
        },
        flotilla_proto::v1::Commit {
            id: SHA.to_ascii_lowercase(),
            timestamp: "2024-03-05T02:01:12-05:00".into(),
            ..Default::default()
        },
    ];
    let change = built(super::push(&push, Some(TIME), &Rules::default()));
    assert_eq!(change.version, "v20240305070112-1a2b3c4");
    assert_eq!(change.time_from, "commit");
    // A later delivery of the same push decides the same version.
    let again = built(super::push(
        &push,
        Some("2025-01-01T00:00:00Z"),
        &Rules::default(),
    ));
    assert_eq!(again, change);
}

#[test]
fn a_push_without_its_head_commits_time_falls_back_to_ce_time() {
    let mut push = main_push();
    push.commits = vec![flotilla_proto::v1::Commit {
        id: SHA.into(),
        timestamp: "not a time".into(),
        ..Default::default()
    }];
    let change = built(super::push(&push, Some(TIME), &Rules::default()));
    assert_eq!(
        (change.version.as_str(), change.time_from),
        ("v20240305070809-1a2b3c4", "ce-time")
    );
    push.commits.clear();
    assert_eq!(
        super::push(&push, None, &Rules::default()),
        Err(Invalid::MissingTime)
    );
}

#[test]
fn a_pull_request_is_versioned_by_its_updated_at() {
    let mut pr = pr("synchronize");
    pr.updated_at = "2024-03-05T07:30:00Z".into();
    let change = built(pull_request(&pr, Some(TIME), &Rules::default()));
    assert_eq!(
        (change.version.as_str(), change.time_from),
        ("v20240305073000-1a2b3c4", "pull request")
    );
    pr.updated_at.clear();
    let change = built(pull_request(&pr, Some(TIME), &Rules::default()));
    assert_eq!(change.version, "v20240305070809-1a2b3c4");
}

#[test]
fn a_pull_request_from_a_fork_is_skipped_unless_forks_build() {
    let mut pr = pr("opened");
    pr.fork = true;
    pr.head_repo = "stranger/ping".into();
    match pull_request(&pr, Some(TIME), &Rules::default()).expect("decidable") {
        Decision::Skip(why) => {
            assert!(why.contains("stranger/ping"), "{why}");
            assert!(why.contains("FLOTILLA_BUILD_FORKS"), "{why}");
        }
        other => panic!("a fork built: {other:?}"),
    }
    let rules = Rules {
        build_forks: true,
        ..Rules::default()
    };
    assert_eq!(built(pull_request(&pr, Some(TIME), &rules)).pr, 42);
}
