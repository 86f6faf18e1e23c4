use axum::http::{HeaderMap, HeaderValue};
use flotilla_proto::v1;
use prost::Message;
use serde_json::{Value, json};

use super::*;
use crate::delivery::Verdict;

/// Parses with no per-repository rules, as most tests want.
fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Delivery, WebhookError> {
    super::parse(headers, body, &Repos::default())
}

const BEFORE: &str = "1111111111111111111111111111111111111111";
const AFTER: &str = "2222222222222222222222222222222222222222";
const ZERO: &str = "0000000000000000000000000000000000000000";

fn headers(event: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(EVENT_HEADER, HeaderValue::from_static(event));
    headers.insert(EVENT_UUID_HEADER, HeaderValue::from_static("uuid-1"));
    headers
}

fn project() -> Value {
    json!({
        "path_with_namespace": "group/ping",
        "default_branch": "main",
        "git_http_url": "https://gitlab.test/group/ping.git",
        "web_url": "https://gitlab.test/group/ping"
    })
}

fn push_body(git_ref: &str) -> Value {
    json!({
        "object_kind": "push",
        "ref": git_ref,
        "before": BEFORE,
        "after": AFTER,
        "checkout_sha": AFTER,
        "user_username": "dev",
        "user_name": "Dev Eloper",
        "project": project(),
        "commits": [{"id": AFTER, "message": "answer JSON", "author": {"name": "Dev Eloper"},
                     "added": ["a.rs"], "modified": [], "removed": []}],
        "total_commits_count": 1
    })
}

fn mr_body(action: &str) -> Value {
    json!({
        "object_kind": "merge_request",
        "user": {"username": "contributor", "name": "Con Tributor"},
        "project": project(),
        "object_attributes": {
            "iid": 7,
            "action": action,
            "state": "opened",
            "source_branch": "json",
            "target_branch": "main",
            "title": "Answer JSON",
            "url": "https://gitlab.test/group/ping/-/merge_requests/7",
            "last_commit": {"id": AFTER},
            "labels": [{"title": "preview"}],
            "source": {"git_http_url": "https://gitlab.test/fork/ping.git"}
        },
        "labels": [{"title": "preview"}]
    })
}

fn parse_json(event: &'static str, body: &Value) -> Result<Delivery, WebhookError> {
    parse(&headers(event), body.to_string().as_bytes())
}

fn decode<M: Message + Default>(delivery: &Delivery) -> M {
    match &delivery.verdict {
        Verdict::Publish(events) if events.len() == 1 => {
            M::decode(events[0].payload.as_ref()).expect("payload decodes")
        }
        other => panic!("expected one event, got {other:?}"),
    }
}

fn ignored(delivery: &Delivery) -> &str {
    match &delivery.verdict {
        Verdict::Ignore(why) => why,
        other => panic!("expected an ignored delivery, got {other:?}"),
    }
}

#[test]
fn a_push_hook_becomes_a_push_event_with_a_compare_url() {
    let delivery = parse_json("Push Hook", &push_body("refs/heads/main")).expect("valid");
    assert_eq!(delivery.id, "uuid-1");
    let push: v1::Push = decode(&delivery);
    assert_eq!(push.provider, "gitlab");
    assert_eq!(push.repo, "group/ping");
    assert_eq!((push.branch.as_str(), push.sha.as_str()), ("main", AFTER));
    assert_eq!(push.pusher, "dev");
    assert_eq!(push.commits[0].added, ["a.rs"]);
    assert_eq!(push.clone_url, "https://gitlab.test/group/ping.git");
    assert_eq!(
        push.compare_url,
        format!("https://gitlab.test/group/ping/-/compare/{BEFORE}...{AFTER}")
    );
}

#[test]
fn a_tag_push_hook_names_the_tag_and_its_commit() {
    let mut body = push_body("refs/tags/v1.0.0");
    body["after"] = json!("3333333333333333333333333333333333333333");
    let push: v1::Push = decode(&parse_json("Tag Push Hook", &body).expect("valid"));
    assert_eq!((push.branch.as_str(), push.tag.as_str()), ("", "v1.0.0"));
    assert_eq!(push.sha, AFTER, "checkout_sha, not the tag object");
}

#[test]
fn a_deleted_branch_is_ignored() {
    let mut body = push_body("refs/heads/feature");
    body["after"] = json!(ZERO);
    body["checkout_sha"] = Value::Null;
    let delivery = parse_json("Push Hook", &body).expect("valid");
    assert!(ignored(&delivery).contains("branch `feature`"));
}

#[test]
fn the_idempotency_key_is_preferred_and_the_body_is_the_last_resort() {
    let body = push_body("refs/heads/main").to_string();
    let mut headers = headers("Push Hook");
    headers.insert(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_static("idem-1"));
    assert_eq!(
        parse(&headers, body.as_bytes()).expect("valid").id,
        "idem-1"
    );
    headers.remove(IDEMPOTENCY_KEY_HEADER);
    headers.remove(EVENT_UUID_HEADER);
    let derived = parse(&headers, body.as_bytes()).expect("valid").id;
    assert!(derived.starts_with("gitlab-"), "{derived}");
    assert_eq!(derived, parse(&headers, body.as_bytes()).expect("valid").id);
}

#[test]
fn merge_request_actions_map_to_github_action_names() {
    for (gitlab, github, merged) in [
        ("open", "opened", false),
        ("reopen", "reopened", false),
        ("close", "closed", false),
        ("merge", "closed", true),
    ] {
        let pr: v1::PullRequest =
            decode(&parse_json("Merge Request Hook", &mr_body(gitlab)).expect("valid"));
        assert_eq!(
            (pr.action.as_str(), pr.merged),
            (github, merged),
            "{gitlab}"
        );
    }
}

#[test]
fn an_opened_merge_request_carries_branches_labels_and_the_source_clone_url() {
    let delivery = parse_json("Merge Request Hook", &mr_body("open")).expect("valid");
    let pr: v1::PullRequest = decode(&delivery);
    assert_eq!((pr.repo.as_str(), pr.number), ("group/ping", 7));
    assert_eq!(
        (pr.head_ref.as_str(), pr.base_ref.as_str()),
        ("json", "main")
    );
    assert_eq!(pr.head_sha, AFTER);
    assert_eq!(pr.labels, ["preview"]);
    assert_eq!(pr.author, "contributor");
    assert_eq!(pr.clone_url, "https://gitlab.test/fork/ping.git");
    assert_eq!(delivery.event, "pull_request");
}

#[test]
fn an_update_with_new_commits_is_a_synchronize() {
    let mut body = mr_body("update");
    body["object_attributes"]["oldrev"] = json!(BEFORE);
    let pr: v1::PullRequest = decode(&parse_json("Merge Request Hook", &body).expect("valid"));
    assert_eq!(pr.action, "synchronize");
}

#[test]
fn an_update_that_changes_labels_is_labeled_or_unlabeled() {
    let mut body = mr_body("update");
    body["changes"] = json!({"labels": {"previous": [{"title": "backend"}],
                                        "current": [{"title": "backend"}, {"title": "preview"}]}});
    let pr: v1::PullRequest = decode(&parse_json("Merge Request Hook", &body).expect("valid"));
    assert_eq!(
        (pr.action.as_str(), pr.label.as_str()),
        ("labeled", "preview")
    );

    body["changes"] = json!({"labels": {"previous": [{"title": "preview"}], "current": []}});
    let pr: v1::PullRequest = decode(&parse_json("Merge Request Hook", &body).expect("valid"));
    assert_eq!(
        (pr.action.as_str(), pr.label.as_str()),
        ("unlabeled", "preview")
    );
}

#[test]
fn an_update_of_the_title_or_description_is_edited() {
    let mut body = mr_body("update");
    body["changes"] = json!({"title": {"previous": "Draft: json", "current": "json"}});
    let pr: v1::PullRequest = decode(&parse_json("Merge Request Hook", &body).expect("valid"));
    assert_eq!(pr.action, "edited");
}

#[test]
fn updates_and_approvals_without_pipeline_meaning_are_ignored() {
    for action in ["update", "approved", "unapproval"] {
        let delivery = parse_json("Merge Request Hook", &mr_body(action)).expect("valid");
        assert!(ignored(&delivery).contains(action), "{action}");
    }
}

#[test]
fn other_gitlab_events_are_ignored() {
    let delivery = parse_json("Pipeline Hook", &json!({"object_kind": "pipeline"})).expect("valid");
    assert!(ignored(&delivery).contains("Pipeline Hook"));
    assert_eq!(delivery.event, "other");
}

#[test]
fn a_merge_request_without_its_head_commit_is_a_bad_request() {
    let mut body = mr_body("open");
    body["object_attributes"]["last_commit"] = Value::Null;
    let error = parse_json("Merge Request Hook", &body).expect_err("no head");
    assert_eq!(error.status().as_u16(), 400);
    assert!(error.to_string().contains("last_commit.id"), "{error}");
}

#[test]
fn the_token_must_match_and_an_unset_token_refuses_everything() {
    let token = Keys::of(["glpat"]);
    let mut headers = headers("Push Hook");
    let missing = authenticate(&token, &headers).expect_err("no token");
    assert_eq!(missing.status().as_u16(), 401);
    headers.insert(TOKEN_HEADER, HeaderValue::from_static("wrong"));
    authenticate(&token, &headers).expect_err("wrong token");
    headers.insert(TOKEN_HEADER, HeaderValue::from_static("glpat"));
    authenticate(&token, &headers).expect("right token");
    let unset = authenticate(&Keys::default(), &headers).expect_err("not configured");
    assert!(
        unset.to_string().contains("GITLAB_WEBHOOK_TOKEN"),
        "{unset}"
    );
}

#[test]
fn a_merge_request_says_whether_its_source_is_a_fork_and_when_it_last_changed() {
    let mut body = mr_body("update");
    let attributes = &mut body["object_attributes"];
    attributes["updated_at"] = json!("2017-12-10 17:01:11 UTC");
    attributes["source_project_id"] = json!(15);
    attributes["target_project_id"] = json!(14);
    attributes["source"]["path_with_namespace"] = json!("fork/ping");
    attributes["oldrev"] = json!(BEFORE);
    let fork: v1::PullRequest = decode(&parse_json("Merge Request Hook", &body).expect("valid"));
    assert!(fork.fork);
    assert_eq!(fork.head_repo, "fork/ping");
    assert_eq!(
        fork.updated_at, "2017-12-10T17:01:11Z",
        "normalised to RFC 3339"
    );

    body["object_attributes"]["source_project_id"] = json!(14);
    body["object_attributes"]["updated_at"] = json!("2013-12-03T17:23:34Z");
    let same: v1::PullRequest = decode(&parse_json("Merge Request Hook", &body).expect("valid"));
    assert!(!same.fork, "the ids decide, whatever the source's path");
    assert_eq!(same.updated_at, "2013-12-03T17:23:34Z");

    // Without ids, the source project's path decides.
    if let Some(attributes) = body["object_attributes"].as_object_mut() {
        attributes.remove("source_project_id");
        attributes.remove("target_project_id");
    }
    let by_path: v1::PullRequest = decode(&parse_json("Merge Request Hook", &body).expect("valid"));
    assert!(by_path.fork);
    body["object_attributes"]["source"]["path_with_namespace"] = json!("group/ping");
    let own: v1::PullRequest = decode(&parse_json("Merge Request Hook", &body).expect("valid"));
    assert!(!own.fork);
}
