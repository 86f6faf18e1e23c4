//! Component tests: real HTTP to the listener served in-process, a real nats-server behind it.

use crate::support;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use anyhow::Result;
use flotilla_proto::v1;
use prost::Message;
use serde_json::{Value, json};
use support::{Harness, header};

const SHA: &str = "2222222222222222222222222222222222222222";

fn push(git_ref: &str, after: &str) -> Vec<u8> {
    json!({
        "ref": git_ref,
        "before": "1111111111111111111111111111111111111111",
        "after": after,
        "repository": {"full_name": "acme/ping", "default_branch": "main",
                       "clone_url": "https://github.test/acme/ping.git"},
        "pusher": {"name": "dev"},
        "commits": [{"id": after, "message": "answer JSON"}]
    })
    .to_string()
    .into_bytes()
}

fn pull_request(action: &str, labels: &[&str]) -> Vec<u8> {
    let labels: Vec<Value> = labels.iter().map(|name| json!({"name": name})).collect();
    json!({
        "action": action,
        "number": 42,
        "pull_request": {"labels": labels, "head": {"ref": "json", "sha": SHA}, "base": {"ref": "main"}},
        "repository": {"full_name": "acme/ping"}
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn a_signed_push_is_answered_202_after_it_is_stored_as_a_protobuf_cloudevent() -> Result<()> {
    let harness = Harness::start().await?;
    let answer = harness
        .github("push", "delivery-1", &push("refs/heads/main", SHA))
        .await?;
    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(answer.body["events"][0]["id"], "delivery-1");
    assert_eq!(answer.subjects(), ["flotilla.source.push.acme_ping"]);

    // 202 means stored: it is there at once, under the subject the answer named.
    let stored = harness.stored("flotilla.source.push.>", 1).await?;
    assert_eq!(stored.len(), 1);
    let message = &stored[0];
    assert_eq!(message.subject.as_str(), "flotilla.source.push.acme_ping");
    for (name, value) in [
        ("ce-specversion", "1.0"),
        ("ce-id", "delivery-1"),
        ("Nats-Msg-Id", "delivery-1"),
        ("ce-source", "flotilla/source-listener"),
        ("ce-type", "dev.flotilla.source.push.v1"),
        ("ce-subject", "acme_ping"),
        (
            "content-type",
            "application/protobuf; proto=flotilla.v1.Push",
        ),
    ] {
        assert_eq!(header(message, name), Some(value), "header {name}");
    }
    let push = v1::Push::decode(message.payload.as_ref())?;
    assert_eq!(
        (push.repo.as_str(), push.branch.as_str()),
        ("acme/ping", "main")
    );
    assert_eq!((push.sha.as_str(), push.provider.as_str()), (SHA, "github"));
    assert_eq!(push.delivery_id, "delivery-1");
    harness.shutdown().await
}

#[tokio::test]
async fn a_redelivered_github_delivery_stores_nothing_new() -> Result<()> {
    let harness = Harness::start().await?;
    let body = push("refs/heads/main", SHA);
    let first = harness.github("push", "delivery-7", &body).await?;
    let again = harness.github("push", "delivery-7", &body).await?;
    assert_eq!((first.status, again.status), (202, 202));
    assert_eq!(again.body["events"][0]["duplicate"], true, "{again:?}");
    assert_eq!(again.body["events"][0]["id"], "delivery-7");

    let stored = harness.stored("flotilla.source.>", 2).await?;
    assert_eq!(stored.len(), 1, "the redelivery was a duplicate");
    harness.shutdown().await
}

#[tokio::test]
async fn bad_signatures_and_tokens_are_401_and_store_nothing() -> Result<()> {
    let harness = Harness::start().await?;
    let body = push("refs/heads/main", SHA);
    let unsigned = support::Answer::of(
        harness
            .http
            .post(harness.url("/webhooks/github"))
            .header("x-github-event", "push")
            .body(body.clone()),
    )
    .await?;
    let forged = support::Answer::of(
        harness
            .http
            .post(harness.url("/webhooks/github"))
            .header("x-github-event", "push")
            .header("x-hub-signature-256", format!("sha256={}", "ab".repeat(32)))
            .body(body.clone()),
    )
    .await?;
    let gitlab = harness
        .gitlab("Push Hook", "wrong", &json!({"object_kind": "push"}))
        .await?;
    let generic = support::Answer::of(
        harness
            .http
            .post(harness.url("/webhooks/generic"))
            .json(&json!({"type": "source.custom", "key": "k", "data": {"kind": "x"}})),
    )
    .await?;
    for answer in [&unsigned, &forged, &gitlab, &generic] {
        assert_eq!(answer.status, 401, "{answer:?}");
        assert!(answer.body["error"].is_string(), "{answer:?}");
    }
    assert!(harness.stored("flotilla.>", 1).await?.is_empty());
    harness.shutdown().await
}

#[tokio::test]
async fn an_endpoint_without_a_configured_secret_refuses_signed_deliveries() -> Result<()> {
    let harness = Harness::with(source_listener::Config::new(Default::default())).await?;
    let answer = harness
        .github("push", "d-1", &push("refs/heads/main", SHA))
        .await?;
    assert_eq!(answer.status, 401);
    let error = answer.body["error"].as_str().unwrap_or_default();
    assert!(error.contains("GITHUB_WEBHOOK_SECRET"), "{error}");
    harness.shutdown().await
}

#[tokio::test]
async fn malformed_and_incomplete_deliveries_are_400_with_a_reason() -> Result<()> {
    let harness = Harness::start().await?;
    let not_json = harness.github("push", "d-1", b"{not json").await?;
    let mut incomplete: Value = serde_json::from_slice(&push("refs/heads/main", SHA))?;
    incomplete.as_object_mut().map(|o| o.remove("after"));
    let no_after = harness
        .github("push", "d-2", incomplete.to_string().as_bytes())
        .await?;
    let bad_field = harness
        .generic(&json!({"type": "source.custom", "key": "k", "data": {"kind": "x", "colour": 1}}))
        .await?;
    for (answer, names) in [
        (&not_json, "push"),
        (&no_after, "after"),
        (&bad_field, "colour"),
    ] {
        assert_eq!(answer.status, 400, "{answer:?}");
        let error = answer.body["error"].as_str().unwrap_or_default();
        assert!(error.contains(names) && !error.contains('\n'), "{error}");
    }
    assert!(harness.stored("flotilla.>", 1).await?.is_empty());
    harness.shutdown().await
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() -> Result<()> {
    let mut config = support::config();
    config.max_body = 1024;
    let harness = Harness::with(config).await?;
    let big = json!({"zen": "x".repeat(2048)}).to_string();
    let answer = harness.github("ping", "d-1", big.as_bytes()).await?;
    assert_eq!(answer.status, 413, "{answer:?}");
    let small = harness.github("ping", "d-2", b"{}").await?;
    assert_eq!(small.status, 200, "under the limit: {small:?}");
    harness.shutdown().await
}

#[tokio::test]
async fn an_event_too_large_for_one_nats_message_is_413_not_503() -> Result<()> {
    let harness = Harness::start().await?;
    // Within FLOTILLA_MAX_BODY (5 MiB), but over the server's 1 MiB max_payload.
    let data = json!({"source": "ci", "kind": "log", "data": {"text": "x".repeat(1_100_000)}});
    let answer = harness
        .generic(&json!({"type": "source.custom", "key": "ci", "data": data}))
        .await?;
    assert_eq!(answer.status, 413, "{answer:?}");
    let error = answer.body["error"].as_str().unwrap_or_default();
    assert!(error.contains("max_payload"), "{error}");
    harness.shutdown().await
}

#[tokio::test]
async fn pings_deletes_and_filtered_deliveries_are_200_ignored() -> Result<()> {
    let rules = "filters:\n- name: previews-need-the-label\n  events: [source.pull_request]\n  data:\n  - {path: pull_request.labels.#.name, type: string, value: ['^preview$']}\n";
    let harness = Harness::with(support::with_filters(support::config(), rules)).await?;
    let ping = harness.github("ping", "d-1", br#"{"zen":"hi"}"#).await?;
    let deleted = harness
        .github("push", "d-2", &push("refs/heads/old", &"0".repeat(40)))
        .await?;
    let unlabelled = harness
        .github("pull_request", "d-3", &pull_request("opened", &["backend"]))
        .await?;
    for answer in [&ping, &deleted, &unlabelled] {
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(answer.body["ignored"].is_string(), "{answer:?}");
    }
    assert_eq!(
        unlabelled.body["ignored"],
        "filter `previews-need-the-label` did not match"
    );
    assert!(harness.stored("flotilla.>", 1).await?.is_empty());

    let labelled = harness
        .github("pull_request", "d-4", &pull_request("opened", &["preview"]))
        .await?;
    assert_eq!(labelled.status, 202, "{labelled:?}");
    assert_eq!(
        labelled.subjects(),
        ["flotilla.source.pull_request.acme_ping"]
    );
    harness.shutdown().await
}

#[tokio::test]
async fn gitlab_merge_requests_and_generic_events_are_published() -> Result<()> {
    let harness = Harness::start().await?;
    let mr = json!({
        "object_kind": "merge_request",
        "user": {"username": "dev"},
        "project": {"path_with_namespace": "group/ping"},
        "object_attributes": {"iid": 3, "action": "merge", "source_branch": "json",
                              "target_branch": "main", "last_commit": {"id": SHA}}
    });
    let answer = harness
        .gitlab("Merge Request Hook", support::GITLAB_TOKEN, &mr)
        .await?;
    assert_eq!(answer.status, 202, "{answer:?}");
    let custom = json!({"type": "source.custom", "key": "nightly", "id": "n-1",
                        "data": {"source": "cron", "kind": "nightly"}});
    let answer = harness.generic(&custom).await?;
    assert_eq!(answer.subjects(), ["flotilla.source.custom.nightly"]);

    let stored = harness.stored("flotilla.source.pull_request.>", 1).await?;
    let pr = v1::PullRequest::decode(stored[0].payload.as_ref())?;
    assert_eq!((pr.provider.as_str(), pr.number), ("gitlab", 3));
    assert_eq!((pr.action.as_str(), pr.merged), ("closed", true));
    let stored = harness.stored("flotilla.source.custom.>", 1).await?;
    assert_eq!(header(&stored[0], "ce-id"), Some("n-1"));
    harness.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_nats_is_down_deliveries_are_503_and_after_a_restart_they_are_accepted() -> Result<()>
{
    let mut config = support::config();
    // Far longer than the answer may take: a 503 that waited for it would be a defect.
    config.publish_timeout = Duration::from_secs(60);
    let mut harness = Harness::with(config).await?;
    tokio::task::block_in_place(|| harness.nats.kill());
    let client = harness.bus.client().clone();
    let noticed = flotilla_testing::eventually(Duration::from_secs(5), || {
        client.connection_state() != async_nats::connection::State::Connected
    })
    .await;
    assert!(noticed, "the client noticed the server is gone");

    let body = push("refs/heads/main", SHA);
    let started = Instant::now();
    let down = harness.github("push", "during-outage", &body).await?;
    assert_eq!(down.status, 503, "{down:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "answered at once, not after the publish timeout: {:?}",
        started.elapsed()
    );
    // Answers that need no publish do not depend on NATS.
    assert_eq!(harness.github("ping", "p-1", b"{}").await?.status, 200);

    tokio::task::block_in_place(|| harness.nats.restart());
    // The sender retries the same delivery until it is accepted.
    let deadline = Instant::now() + Duration::from_secs(20);
    let accepted = loop {
        let answer = harness.github("push", "during-outage", &body).await?;
        if answer.status == 202 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(accepted.status, 202, "{accepted:?}");
    let stored = harness.stored("flotilla.source.push.>", 2).await?;
    assert_eq!(stored.len(), 1, "stored once, however often it was sent");
    harness.shutdown().await
}

#[tokio::test]
async fn probes_answer_and_metrics_count_deliveries_by_outcome() -> Result<()> {
    let harness = Harness::start().await?;
    harness.github("ping", "d-1", b"{}").await?;
    harness
        .github("push", "d-2", &push("refs/heads/main", SHA))
        .await?;
    harness.gitlab("Push Hook", "wrong", &json!({})).await?;

    let ready = harness.http.get(harness.url("/readyz")).send().await?;
    assert_eq!(ready.status().as_u16(), 200, "{}", ready.text().await?);
    let health = harness.http.get(harness.url("/healthz")).send().await?;
    assert_eq!(health.status().as_u16(), 200);
    let metrics = harness
        .http
        .get(harness.url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    for line in [
        r#"flotilla_webhook_deliveries_total{provider="github",event="ping",outcome="ignored",status="200"} 1"#,
        r#"flotilla_webhook_deliveries_total{provider="github",event="push",outcome="accepted",status="202"} 1"#,
        r#"flotilla_webhook_deliveries_total{provider="gitlab",event="push",outcome="rejected",status="401"} 1"#,
        r#"flotilla_webhook_duration_seconds_count{provider="github",outcome="accepted"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    harness.shutdown().await
}

/// Opens a connection and sends a signed push's headers and half its body, then stalls, as a
/// slow or stuck sender would. Returns the connection, to finish or read the answer from.
async fn stalled_delivery(harness: &Harness) -> Result<TcpStream> {
    let body = push("refs/heads/main", SHA);
    let signature =
        source_listener::auth::github_signature(support::GITHUB_SECRET.as_bytes(), &body);
    let url = harness.url("");
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await?;
    let head = format!(
        "POST /webhooks/github HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         x-github-event: push\r\nx-github-delivery: slow-1\r\nx-hub-signature-256: {signature}\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body[..body.len() / 2]).await?;
    stream.flush().await?;
    Ok(stream)
}

/// The status line of the answer on `stream`.
async fn status_line(stream: &mut TcpStream) -> Result<String> {
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer)).await??;
    let text = String::from_utf8_lossy(&answer[..read]);
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn a_sender_that_stalls_mid_body_is_answered_408_and_nothing_is_stored() -> Result<()> {
    let mut config = support::config();
    config.request_timeout = Duration::from_millis(300);
    let harness = Harness::with(config).await?;
    let mut stalled = stalled_delivery(&harness).await?;
    let status = status_line(&mut stalled).await?;
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert!(harness.stored("flotilla.>", 1).await?.is_empty());
    harness.shutdown().await
}

#[tokio::test]
async fn past_the_in_flight_limit_deliveries_are_shed_with_503_and_retry_after() -> Result<()> {
    let mut config = support::config();
    config.max_in_flight = 1;
    config.request_timeout = Duration::from_secs(30);
    let harness = Harness::with(config).await?;
    // The stalled delivery holds the only slot while it sends its body.
    let mut stalled = stalled_delivery(&harness).await?;
    // Retried until the server has read the stalled request's headers and taken the slot.
    let deadline = Instant::now() + Duration::from_secs(5);
    let shed = loop {
        let response = harness
            .http
            .post(harness.url("/webhooks/github"))
            .header("x-github-event", "ping")
            .body("{}")
            .send()
            .await?;
        if response.status().as_u16() == 503 || Instant::now() > deadline {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        shed.status().as_u16(),
        503,
        "a second delivery is shed while the slot is taken"
    );
    assert_eq!(
        shed.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let error = shed.json::<Value>().await?["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("FLOTILLA_MAX_IN_FLIGHT"), "{error}");

    // The slot is given back once the first delivery is answered.
    let body = push("refs/heads/main", SHA);
    stalled.write_all(&body[body.len() / 2..]).await?;
    let status = status_line(&mut stalled).await?;
    assert!(status.starts_with("HTTP/1.1 202"), "{status}");
    let after = harness.github("ping", "p-2", b"{}").await?;
    assert_eq!(after.status, 200, "{after:?}");
    harness.shutdown().await
}

#[tokio::test]
async fn a_10_mib_body_and_a_body_that_is_not_json_store_nothing() -> Result<()> {
    let harness = Harness::start().await?;
    let huge = vec![b' '; 10 << 20];
    let too_large = harness.github("push", "big-1", &huge).await?;
    assert_eq!(too_large.status, 413, "{too_large:?}");
    let truncated = push("refs/heads/main", SHA);
    let truncated = harness
        .github("push", "cut-1", &truncated[..truncated.len() - 10])
        .await?;
    assert_eq!(truncated.status, 400, "{truncated:?}");
    let form = harness
        .http
        .post(harness.url("/webhooks/generic"))
        .bearer_auth(support::GENERIC_TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("type=source.custom&key=k")
        .send()
        .await?;
    assert_eq!(form.status().as_u16(), 400);
    let error = form.json::<Value>().await?["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("application/json"), "{error}");
    let unhandled = harness
        .github("issues", "i-1", b"{\"action\":\"opened\"}")
        .await?;
    assert_eq!(unhandled.status, 200, "{unhandled:?}");
    assert!(
        unhandled.body["ignored"]
            .as_str()
            .unwrap_or_default()
            .contains("issues"),
        "{unhandled:?}"
    );
    assert!(harness.stored("flotilla.>", 1).await?.is_empty());
    harness.shutdown().await
}

#[tokio::test]
async fn while_a_secret_is_rotated_deliveries_signed_with_either_secret_are_accepted() -> Result<()>
{
    let mut config = support::config();
    config.secrets.github =
        source_listener::auth::Keys::of([support::GITHUB_SECRET, "next-secret"]);
    let harness = Harness::with(config).await?;
    let body = push("refs/heads/main", SHA);
    let answer = harness.github("push", "old-1", &body).await?;
    assert_eq!(
        answer.status, 202,
        "signed with the current secret: {answer:?}"
    );
    let signed_with = |secret: &str, delivery: &str| {
        harness
            .http
            .post(harness.url("/webhooks/github"))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", delivery)
            .header(
                "x-hub-signature-256",
                source_listener::auth::github_signature(secret.as_bytes(), &body),
            )
            .body(body.clone())
    };
    let next = support::Answer::of(signed_with("next-secret", "new-1")).await?;
    assert_eq!(next.status, 202, "signed with the next secret: {next:?}");
    let retired = support::Answer::of(signed_with("retired-secret", "bad-1")).await?;
    assert_eq!(retired.status, 401, "{retired:?}");
    assert_eq!(harness.stored("flotilla.source.push.>", 3).await?.len(), 2);
    harness.shutdown().await
}

#[tokio::test]
async fn repository_rules_gate_previews_on_the_label_and_skip_pushes_that_only_touch_docs()
-> Result<()> {
    let rules = "repos:\n- repo: acme/ping\n  defaultBranch: trunk\n  previewLabel: preview\n  ignorePaths: [docs/]\n";
    let harness = Harness::with(support::with_filters(support::config(), rules)).await?;
    let docs_only = json!({
        "ref": "refs/heads/main", "after": SHA,
        "repository": {"full_name": "acme/ping", "default_branch": "main"},
        "commits": [{"id": SHA, "modified": ["docs/guide.md"], "added": ["docs/new.md"]}]
    });
    let answer = harness
        .github("push", "docs-1", docs_only.to_string().as_bytes())
        .await?;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        answer.body["ignored"]
            .as_str()
            .unwrap_or_default()
            .contains("docs/"),
        "{answer:?}"
    );
    let unlabelled = harness
        .github(
            "pull_request",
            "pr-1",
            &pull_request("opened", &["backend"]),
        )
        .await?;
    assert_eq!(unlabelled.status, 200, "{unlabelled:?}");
    let closed = harness
        .github(
            "pull_request",
            "pr-2",
            &pull_request("closed", &["backend"]),
        )
        .await?;
    assert_eq!(closed.status, 202, "closing always passes: {closed:?}");

    let mut code = docs_only.clone();
    code["commits"][0]["modified"] = json!(["docs/guide.md", "src/main.rs"]);
    let answer = harness
        .github("push", "code-1", code.to_string().as_bytes())
        .await?;
    assert_eq!(answer.status, 202, "{answer:?}");
    let stored = harness.stored("flotilla.source.push.>", 1).await?;
    let push = v1::Push::decode(stored[0].payload.as_ref())?;
    assert_eq!(
        push.default_branch, "trunk",
        "the configured default branch"
    );
    harness.shutdown().await
}
