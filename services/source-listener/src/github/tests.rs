use axum::http::{HeaderMap, HeaderValue};
use flotilla_proto::v1;
use prost::Message;
use serde_json::{Value, json};

use super::*;
use crate::auth::{Keys, github_signature};
use crate::delivery::Verdict;

/// Parses with no per-repository rules, as most tests want.
fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Delivery, WebhookError> {
    super::parse(headers, body, &Repos::default())
}

const BEFORE: &str = "1111111111111111111111111111111111111111";
const AFTER: &str = "2222222222222222222222222222222222222222";
const ZERO: &str = "0000000000000000000000000000000000000000";

fn headers(event: &str, delivery: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(EVENT_HEADER, HeaderValue::from_str(event).expect("ascii"));
    headers.insert(
        DELIVERY_HEADER,
        HeaderValue::from_str(delivery).expect("ascii"),
    );
    headers
}

fn push_body(git_ref: &str) -> Value {
    json!({
        "ref": git_ref,
        "before": BEFORE,
        "after": AFTER,
        "created": false,
        "deleted": false,
        "compare": "https://github.test/acme/ping/compare/1111...2222",
        "repository": {
            "full_name": "acme/ping",
            "default_branch": "main",
            "clone_url": "https://github.test/acme/ping.git"
        },
        "pusher": {"name": "dev", "email": "dev@example.test"},
        "commits": [{
            "id": AFTER,
            "message": "answer JSON",
            "timestamp": "2024-01-01T12:00:00Z",
            "url": "https://github.test/acme/ping/commit/2222",
            "author": {"name": "Dev Eloper", "username": "dev"},
            "added": [], "removed": [], "modified": ["src/main.rs"]
        }],
        "head_commit": {"id": AFTER}
    })
}

fn pr_body(action: &str) -> Value {
    json!({
        "action": action,
        "number": 42,
        "pull_request": {
            "number": 42,
            "title": "Answer JSON",
            "html_url": "https://github.test/acme/ping/pull/42",
            "merged": null,
            "user": {"login": "contributor"},
            "labels": [{"name": "preview"}, {"name": "backend"}],
            "head": {"ref": "json", "sha": AFTER, "repo": {"clone_url": "https://github.test/fork/ping.git"}},
            "base": {"ref": "main", "sha": BEFORE, "repo": {"clone_url": "https://github.test/acme/ping.git"}}
        },
        "repository": {"full_name": "acme/ping", "clone_url": "https://github.test/acme/ping.git"}
    })
}

fn parse_json(event: &str, body: &Value) -> Result<Delivery, WebhookError> {
    parse(&headers(event, "d-1"), body.to_string().as_bytes())
}

fn only_event(delivery: &Delivery) -> &flotilla_bus::Outgoing {
    match &delivery.verdict {
        Verdict::Publish(events) if events.len() == 1 => &events[0],
        other => panic!("expected one event, got {other:?}"),
    }
}

fn ignored(delivery: &Delivery) -> &str {
    match &delivery.verdict {
        Verdict::Ignore(why) => why,
        other => panic!("expected an ignored delivery, got {other:?}"),
    }
}

fn decode_push(delivery: &Delivery) -> v1::Push {
    v1::Push::decode(only_event(delivery).payload.as_ref()).expect("a Push payload")
}

fn decode_pr(delivery: &Delivery) -> v1::PullRequest {
    v1::PullRequest::decode(only_event(delivery).payload.as_ref()).expect("a PullRequest payload")
}

#[test]
fn a_branch_push_becomes_a_push_event_keyed_by_the_repo_with_the_delivery_id() {
    let delivery = parse_json("push", &push_body("refs/heads/main")).expect("valid");
    let event = only_event(&delivery);
    assert_eq!(event.subject("flotilla"), "flotilla.source.push.acme_ping");
    assert_eq!(event.id.as_deref(), Some("d-1"));
    let push = decode_push(&delivery);
    assert_eq!(push.provider, "github");
    assert_eq!(push.repo, "acme/ping");
    assert_eq!(push.r#ref, "refs/heads/main");
    assert_eq!(push.branch, "main");
    assert_eq!(push.tag, "");
    assert_eq!(push.default_branch, "main");
    assert_eq!((push.before.as_str(), push.sha.as_str()), (BEFORE, AFTER));
    assert_eq!(push.pusher, "dev");
    assert_eq!(push.commits.len(), 1);
    assert_eq!(push.commits[0].author, "dev");
    assert_eq!(push.commits[0].modified, ["src/main.rs"]);
    assert_eq!(push.clone_url, "https://github.test/acme/ping.git");
    assert!(push.compare_url.ends_with("1111...2222"));
    assert_eq!(push.delivery_id, "d-1");
    assert!(!push.deleted);
}

#[test]
fn a_tag_push_names_the_tag_and_carries_the_tagged_commit() {
    let mut body = push_body("refs/tags/v1.2.0");
    // An annotated tag: `after` is the tag object, head_commit the commit it points at.
    body["head_commit"] = json!({"id": BEFORE});
    let push = decode_push(&parse_json("push", &body).expect("valid"));
    assert_eq!((push.branch.as_str(), push.tag.as_str()), ("", "v1.2.0"));
    assert_eq!(push.sha, BEFORE);
}

#[test]
fn a_branch_delete_is_ignored() {
    let mut body = push_body("refs/heads/feature");
    body["after"] = json!(ZERO);
    body["deleted"] = json!(true);
    body["head_commit"] = Value::Null;
    let delivery = parse_json("push", &body).expect("valid");
    assert!(
        ignored(&delivery).contains("branch `feature`"),
        "{delivery:?}"
    );
}

#[test]
fn a_push_to_a_ref_that_is_neither_branch_nor_tag_is_ignored() {
    let delivery = parse_json("push", &push_body("refs/notes/commits")).expect("valid");
    assert!(ignored(&delivery).contains("refs/notes/commits"));
}

#[test]
fn ping_and_unhandled_events_are_ignored_with_a_reason() {
    let ping = parse_json("ping", &json!({"zen": "Keep it simple."})).expect("valid");
    assert!(ignored(&ping).contains("ping"));
    assert_eq!(ping.event, "ping");
    let issues = parse_json("issues", &json!({"action": "opened"})).expect("valid");
    assert!(ignored(&issues).contains("`issues`"));
    assert_eq!(issues.event, "other");
}

#[test]
fn a_push_missing_a_required_field_is_a_bad_request_naming_it() {
    let mut body = push_body("refs/heads/main");
    body.as_object_mut().expect("object").remove("after");
    let error = parse_json("push", &body).expect_err("no after");
    assert_eq!(error.status().as_u16(), 400);
    assert!(error.to_string().contains("after"), "{error}");

    let mut body = push_body("refs/heads/main");
    body["repository"]["full_name"] = json!("");
    let error = parse_json("push", &body).expect_err("no repo");
    assert!(
        error.to_string().contains("repository.full_name"),
        "{error}"
    );
}

#[test]
fn a_body_that_is_not_json_or_lacks_the_event_header_is_a_bad_request() {
    let error = parse(&headers("push", "d-1"), b"not json").expect_err("not JSON");
    assert_eq!(error.status().as_u16(), 400);
    let error = parse(&HeaderMap::new(), b"{}").expect_err("no event header");
    assert!(error.to_string().contains("X-GitHub-Event"), "{error}");
}

#[test]
fn without_a_delivery_header_the_id_is_derived_from_the_body() {
    let body = push_body("refs/heads/main").to_string();
    let mut headers = headers("push", "x");
    headers.remove(DELIVERY_HEADER);
    let first = parse(&headers, body.as_bytes()).expect("valid");
    let second = parse(&headers, body.as_bytes()).expect("valid");
    assert_eq!(first.id, second.id);
    assert!(first.id.starts_with("github-"), "{}", first.id);
}

#[test]
fn an_opened_pull_request_carries_head_base_labels_and_the_fork_clone_url() {
    let delivery = parse_json("pull_request", &pr_body("opened")).expect("valid");
    assert_eq!(
        only_event(&delivery).subject("flotilla"),
        "flotilla.source.pull_request.acme_ping"
    );
    let pr = decode_pr(&delivery);
    assert_eq!(pr.number, 42);
    assert_eq!(pr.action, "opened");
    assert_eq!(pr.head_sha, AFTER);
    assert_eq!(
        (pr.head_ref.as_str(), pr.base_ref.as_str()),
        ("json", "main")
    );
    assert_eq!(pr.labels, ["preview", "backend"]);
    assert_eq!(pr.author, "contributor");
    assert_eq!(pr.title, "Answer JSON");
    assert_eq!(pr.url, "https://github.test/acme/ping/pull/42");
    assert_eq!(pr.clone_url, "https://github.test/fork/ping.git");
    assert!(!pr.merged);
}

#[test]
fn a_labeled_pull_request_names_the_label_added() {
    let mut body = pr_body("labeled");
    body["label"] = json!({"name": "preview"});
    let pr = decode_pr(&parse_json("pull_request", &body).expect("valid"));
    assert_eq!(
        (pr.action.as_str(), pr.label.as_str()),
        ("labeled", "preview")
    );
}

#[test]
fn a_merged_pull_request_is_closed_and_merged() {
    let mut body = pr_body("closed");
    body["pull_request"]["merged"] = json!(true);
    let pr = decode_pr(&parse_json("pull_request", &body).expect("valid"));
    assert_eq!(pr.action, "closed");
    assert!(pr.merged);
}

#[test]
fn pull_request_actions_without_pipeline_meaning_are_ignored() {
    for action in ["assigned", "review_requested", "auto_merge_enabled"] {
        let delivery = parse_json("pull_request", &pr_body(action)).expect("valid");
        assert!(ignored(&delivery).contains(action), "{action}");
    }
    let edited = parse_json("pull_request", &pr_body("edited")).expect("valid");
    assert_eq!(
        decode_pr(&edited).action,
        "edited",
        "a retitled PR is passed on"
    );
}

#[test]
fn a_pull_request_without_a_head_sha_is_a_bad_request() {
    let mut body = pr_body("synchronize");
    body["pull_request"]["head"]["sha"] = Value::Null;
    let error = parse_json("pull_request", &body).expect_err("no head sha");
    assert!(error.to_string().contains("head.sha"), "{error}");
}

#[test]
fn gitea_deliveries_say_gitea_and_use_github_action_names() {
    let mut headers = headers("pull_request", "g-1");
    headers.insert(GITEA_EVENT_HEADER, HeaderValue::from_static("pull_request"));
    let body = pr_body("synchronized").to_string();
    let delivery = parse(&headers, body.as_bytes()).expect("valid");
    assert_eq!(delivery.provider, Provider::Gitea);
    let pr = decode_pr(&delivery);
    assert_eq!(
        (pr.provider.as_str(), pr.action.as_str()),
        ("gitea", "synchronize")
    );
}

#[test]
fn a_correct_signature_authenticates_and_a_wrong_or_missing_one_does_not() {
    let secret = Keys::of(["s3cret"]);
    let body = br#"{"zen":"hi"}"#;
    let mut headers = headers("ping", "d-1");
    let missing = authenticate(&secret, &headers, body).expect_err("no signature");
    assert_eq!(missing.status().as_u16(), 401);

    headers.insert(
        SIGNATURE_HEADER,
        HeaderValue::from_str(&github_signature(b"s3cret", body)).expect("ascii"),
    );
    authenticate(&secret, &headers, body).expect("signed with the secret");
    authenticate(&secret, &headers, br#"{"zen":"ho"}"#).expect_err("another body");

    let unconfigured =
        authenticate(&Keys::default(), &headers, body).expect_err("no secret configured");
    assert!(unconfigured.to_string().contains("GITHUB_WEBHOOK_SECRET"));
}

#[test]
fn gitea_signatures_authenticate_without_the_github_header() {
    let secret = Keys::of(["s3cret"]);
    let body = b"{}";
    let mut headers = headers("push", "g-1");
    let bare = github_signature(b"s3cret", body).replace("sha256=", "");
    headers.insert(
        GITEA_SIGNATURE_HEADER,
        HeaderValue::from_str(&bare).expect("ascii"),
    );
    authenticate(&secret, &headers, body).expect("bare hex signature");
}

#[test]
fn a_form_encoded_delivery_is_refused_with_what_to_change() {
    let error = parse(&headers("ping", "d-1"), b"payload=%7B%7D").expect_err("form body");
    assert_eq!(error.status().as_u16(), 400);
    assert!(error.to_string().contains("application/json"), "{error}");
}

#[test]
fn a_pull_request_says_whether_its_head_is_a_fork_and_when_it_last_changed() {
    let mut body = pr_body("synchronize");
    body["pull_request"]["updated_at"] = json!("2019-11-26T02:01:12-05:00");
    body["pull_request"]["head"]["repo"]["full_name"] = json!("contributor/ping");
    body["pull_request"]["base"]["repo"]["full_name"] = json!("acme/ping");
    let fork = decode_pr(&parse_json("pull_request", &body).expect("valid"));
    assert!(fork.fork);
    assert_eq!(fork.head_repo, "contributor/ping");
    assert_eq!(fork.updated_at, "2019-11-26T07:01:12Z", "in UTC");

    body["pull_request"]["head"]["repo"]["full_name"] = json!("Acme/Ping");
    let same = decode_pr(&parse_json("pull_request", &body).expect("valid"));
    assert!(!same.fork, "a branch of the base repository");

    // A deleted fork's head repository is null: still not the base repository.
    body["pull_request"]["head"]["repo"] = Value::Null;
    let gone = decode_pr(&parse_json("pull_request", &body).expect("valid"));
    assert!(gone.fork);
    assert_eq!(gone.head_repo, "");
}
