//! Properties of the intake: whatever an authenticated sender posts, the listener answers it.
//! It never panics, and never blames itself (500) for what was sent: a body is accepted,
//! ignored, or refused with a 4xx.

use axum::http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde_json::{Value, json};
use source_listener::auth::{Keys, github_signature};
use source_listener::{Endpoint, Filters, Intake, Secrets, Verdict};

const SECRET: &str = "property-secret";

fn intake() -> Intake {
    // Per-repository rules too, so that their path globs and label checks meet every payload.
    let filters = "filters:\n- name: labels\n  events: [source.pull_request]\n  data:\n  - {path: pull_request.labels.#.name, type: string, value: [preview]}\nrepos:\n- {repo: '*/*', defaultBranch: main, previewLabel: preview, paths: ['src/**'], ignorePaths: ['**/*.md']}\n";
    Intake::new(
        Secrets {
            github: Keys::of([SECRET]),
            gitlab: Keys::of([SECRET]),
            generic: Keys::of([SECRET]),
        },
        Filters::from_yaml(filters, "properties").expect("valid filters"),
    )
}

fn headers(endpoint: Endpoint, event: &str, body: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    match endpoint {
        Endpoint::GitHub => {
            set("x-github-event", event);
            set("x-github-delivery", "d-1");
            set(
                "x-hub-signature-256",
                &github_signature(SECRET.as_bytes(), body),
            );
        }
        Endpoint::GitLab => {
            set("x-gitlab-event", event);
            set("x-gitlab-token", SECRET);
        }
        Endpoint::Generic => set("authorization", &format!("Bearer {SECRET}")),
    }
    headers
}

/// Handles `body` and checks the answer is one a sender can act on.
fn answered(endpoint: Endpoint, event: &str, body: &[u8]) -> Result<(), TestCaseError> {
    match intake().handle(endpoint, &headers(endpoint, event, body), body) {
        Ok(delivery) => {
            if let Verdict::Publish(events) = &delivery.verdict {
                prop_assert_eq!(events.len(), 1);
                prop_assert_eq!(events[0].id.as_deref(), Some(delivery.id.as_str()));
            }
        }
        Err(error) => {
            let status = error.status().as_u16();
            prop_assert!((400..500).contains(&status), "{status}: {error}");
        }
    }
    Ok(())
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        "[0-9a-f]{40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// `template` with some of the fields at `paths` replaced by arbitrary JSON.
fn mutated(template: Value, paths: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop::collection::vec((0..paths.len(), json_value()), 0..4).prop_map(move |changes| {
        let mut body = template.clone();
        for (index, value) in changes {
            if let Some(slot) = body.pointer_mut(paths[index]) {
                *slot = value;
            }
        }
        body
    })
}

fn github_push() -> Value {
    json!({"ref": "refs/heads/main", "before": "a", "after": "b", "deleted": false,
           "repository": {"full_name": "acme/ping", "default_branch": "main"},
           "pusher": {"name": "dev"}, "head_commit": {"id": "b"},
           "commits": [{"id": "b", "author": {"name": "dev"}, "added": ["x"]}]})
}

fn github_pull_request() -> Value {
    json!({"action": "opened", "number": 1,
           "pull_request": {"head": {"sha": "b", "ref": "f", "repo": {"clone_url": "u"}},
                            "base": {"ref": "main"}, "labels": [{"name": "preview"}],
                            "merged": false, "user": {"login": "dev"}},
           "repository": {"full_name": "acme/ping"}, "label": {"name": "preview"}})
}

fn gitlab_merge_request() -> Value {
    json!({"user": {"username": "dev"}, "project": {"path_with_namespace": "g/p"},
           "object_attributes": {"iid": 1, "action": "update", "oldrev": "a",
                                 "last_commit": {"id": "b"}, "labels": [{"title": "x"}]},
           "changes": {"labels": {"previous": [], "current": [{"title": "x"}]}}})
}

proptest! {
    #[test]
    fn arbitrary_bytes_are_answered_on_every_endpoint(
        body in prop::collection::vec(any::<u8>(), 0..256),
        event in prop::sample::select(vec!["push", "pull_request", "ping", "Push Hook", "Merge Request Hook"]),
    ) {
        for endpoint in [Endpoint::GitHub, Endpoint::GitLab, Endpoint::Generic] {
            answered(endpoint, event, &body)?;
        }
    }

    #[test]
    fn github_pushes_with_arbitrary_field_values_are_answered(
        body in mutated(github_push(), &["/ref", "/before", "/after", "/deleted", "/repository",
            "/repository/full_name", "/pusher", "/head_commit", "/commits", "/commits/0/author"]),
    ) {
        answered(Endpoint::GitHub, "push", body.to_string().as_bytes())?;
    }

    #[test]
    fn github_pull_requests_with_arbitrary_field_values_are_answered(
        body in mutated(github_pull_request(), &["/action", "/number", "/pull_request/head",
            "/pull_request/head/sha", "/pull_request/labels", "/pull_request/merged",
            "/pull_request/user", "/repository/full_name", "/label"]),
    ) {
        answered(Endpoint::GitHub, "pull_request", body.to_string().as_bytes())?;
    }

    #[test]
    fn gitlab_merge_requests_with_arbitrary_field_values_are_answered(
        body in mutated(gitlab_merge_request(), &["/object_attributes/iid",
            "/object_attributes/action", "/object_attributes/oldrev", "/object_attributes/labels",
            "/object_attributes/last_commit", "/changes", "/changes/labels/current", "/project"]),
    ) {
        answered(Endpoint::GitLab, "Merge Request Hook", body.to_string().as_bytes())?;
    }

    #[test]
    fn generic_deliveries_with_arbitrary_data_are_answered(
        event_type in prop::sample::select(vec!["source.custom", "build.succeeded", "env.ready", "nope"]),
        key in ".{0,20}",
        data in json_value(),
    ) {
        let body = json!({"type": event_type, "key": key, "data": data});
        answered(Endpoint::Generic, "", body.to_string().as_bytes())?;
    }
}
