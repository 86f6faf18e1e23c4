//! GitHub's web form creates webhooks as `application/x-www-form-urlencoded` unless the user
//! changes it: such a delivery, signed over its raw form body, is the same event as the JSON one.

use crate::support::{self, GITHUB_SECRET, Harness};

use anyhow::Result;
use flotilla_proto::v1;
use prost::Message;
use serde_json::json;
use source_listener::auth::github_signature;

const SHA: &str = "4444444444444444444444444444444444444444";

fn push_json() -> String {
    json!({
        "ref": "refs/heads/main", "before": "1111111111111111111111111111111111111111",
        "after": SHA, "compare": "https://github.test/acme/ping/compare/1...4",
        "repository": {"full_name": "acme/ping", "default_branch": "main",
                       "clone_url": "https://github.test/acme/ping.git"},
        "pusher": {"name": "dev"},
        // Characters a form must escape: spaces, `&`, `=`, `+`, `%`, non-ASCII.
        "commits": [{"id": SHA, "message": "fix: a&b = c + 100% größer"}]
    })
    .to_string()
}

fn form(json: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", json)
        .finish()
}

async fn send(
    harness: &Harness,
    content_type: &str,
    body: &str,
    signed_body: &str,
) -> Result<support::Answer> {
    let request = harness
        .http
        .post(harness.url("/webhooks/github"))
        .header("content-type", content_type)
        .header("x-github-event", "push")
        .header("x-github-delivery", "push-1")
        .header(
            "x-hub-signature-256",
            github_signature(GITHUB_SECRET.as_bytes(), signed_body.as_bytes()),
        )
        .body(body.to_owned());
    support::Answer::of(request).await
}

async fn stored_push(harness: &Harness) -> Result<v1::Push> {
    let stored = harness.stored("flotilla.source.push.>", 1).await?;
    anyhow::ensure!(stored.len() == 1, "one push stored, got {}", stored.len());
    Ok(v1::Push::decode(stored[0].payload.as_ref())?)
}

#[tokio::test]
async fn a_signed_form_encoded_push_is_the_same_event_as_the_json_one() -> Result<()> {
    let json = push_json();
    let form = form(&json);
    let json_harness = Harness::start().await?;
    let answer = send(&json_harness, "application/json", &json, &json).await?;
    assert_eq!(answer.status, 202, "{answer:?}");
    let from_json = stored_push(&json_harness).await?;
    json_harness.shutdown().await?;

    let form_harness = Harness::start().await?;
    let content_type = "application/x-www-form-urlencoded";
    let answer = send(&form_harness, content_type, &form, &form).await?;
    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(answer.subjects(), ["flotilla.source.push.acme_ping"]);
    let from_form = stored_push(&form_harness).await?;
    assert_eq!(from_form, from_json);
    assert_eq!(from_form.commits[0].message, "fix: a&b = c + 100% größer");

    // The signature covers the form as sent, not the JSON inside it.
    let answer = send(&form_harness, content_type, &form, &json).await?;
    assert_eq!(answer.status, 401, "{answer:?}");
    let answer = send(&form_harness, content_type, "zen=1", "zen=1").await?;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(
        answer.body["error"].to_string().contains("`payload`"),
        "{answer:?}"
    );
    form_harness.shutdown().await
}

#[tokio::test]
async fn filters_see_the_json_of_a_form_encoded_delivery() -> Result<()> {
    let rules = "filters:\n- name: main-only\n  events: [source.push]\n  data:\n  - {path: ref, type: string, value: ['^refs/heads/release$']}\n";
    let harness = Harness::with(support::with_filters(support::config(), rules)).await?;
    let form = form(&push_json());
    let answer = send(&harness, "application/x-www-form-urlencoded", &form, &form).await?;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        answer.body["ignored"].to_string().contains("main-only"),
        "{answer:?}"
    );
    harness.shutdown().await
}
