//! Slow and unauthenticated senders cannot shed real deliveries: real TCP clients on loopback
//! open connections and dribble or never send their bodies while signed and token-authenticated
//! deliveries still get their 202.

use crate::support::{self, GENERIC_TOKEN, GITHUB_SECRET, GITLAB_TOKEN, Harness};

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;
use source_listener::auth::github_signature;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SHA: &str = "3333333333333333333333333333333333333333";

fn push_body() -> Vec<u8> {
    json!({
        "ref": "refs/heads/main", "before": "1111111111111111111111111111111111111111",
        "after": SHA, "repository": {"full_name": "acme/ping"}, "pusher": {"name": "dev"},
        "commits": [{"id": SHA, "message": "m"}]
    })
    .to_string()
    .into_bytes()
}

fn address(harness: &Harness) -> String {
    harness.url("").trim_start_matches("http://").to_owned()
}

/// Sends a request's headers, declaring a body of 1000 bytes that never comes.
async fn headers_only(harness: &Harness, path: &str, auth: &str) -> Result<TcpStream> {
    let addr = address(harness);
    let mut stream = TcpStream::connect(&addr).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         x-gitlab-event: Push Hook\r\n{auth}content-length: 1000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    Ok(stream)
}

/// A GitHub delivery with a valid-looking signature whose body stops halfway: the listener
/// cannot tell it from a real one until the body is complete.
async fn stalled_signed(harness: &Harness, id: &str) -> Result<TcpStream> {
    let body = push_body();
    let signature = github_signature(GITHUB_SECRET.as_bytes(), &body);
    let addr = address(harness);
    let mut stream = TcpStream::connect(&addr).await?;
    let head = format!(
        "POST /webhooks/github HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         x-github-event: push\r\nx-github-delivery: {id}\r\nx-hub-signature-256: {signature}\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body[..body.len() / 2]).await?;
    Ok(stream)
}

/// The status line the server answers on `stream`, or "" once it closed the connection.
async fn status_line(stream: &mut TcpStream) -> Result<String> {
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .context("no answer within 10 s")??;
    let text = String::from_utf8_lossy(&answer[..read]);
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

fn slow_config(max_in_flight: usize) -> source_listener::Config {
    let mut config = support::config();
    config.max_in_flight = max_in_flight;
    // Long enough that a listener waiting for these bodies would never answer in the test.
    config.request_timeout = Duration::from_secs(60);
    config
}

async fn signed_push(harness: &Harness, id: &str) -> Result<support::Answer> {
    harness.github("push", id, &push_body()).await
}

async fn custom(harness: &Harness) -> Result<support::Answer> {
    let body = json!({"type": "source.custom", "key": "nightly", "id": "real-1",
                      "data": {"source": "cron", "kind": "nightly"}});
    harness.generic(&body).await
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_answered_401_before_the_body_and_holds_no_slot() -> Result<()>
{
    let harness = Harness::with(slow_config(4)).await?;
    let mut refused = Vec::new();
    for i in 0..24 {
        let (path, auth) = match i % 3 {
            0 => (
                "/webhooks/generic",
                "authorization: Bearer wrong\r\n".to_owned(),
            ),
            1 => ("/webhooks/generic", String::new()),
            _ => ("/webhooks/gitlab", "x-gitlab-token: wrong\r\n".to_owned()),
        };
        let mut stream = headers_only(&harness, path, &auth).await?;
        let status = status_line(&mut stream).await?;
        assert!(status.starts_with("HTTP/1.1 401"), "{path} #{i}: {status}");
        refused.push(stream);
    }
    // A slow signed sender reads in a slot of its own.
    let _stalled = stalled_signed(&harness, "slow-1").await?;

    let answer = signed_push(&harness, "real-push").await?;
    assert_eq!(answer.status, 202, "{answer:?}");
    let answer = custom(&harness).await?;
    assert_eq!(answer.status, 202, "{answer:?}");
    let push = json!({"ref": "refs/heads/main", "after": SHA, "checkout_sha": SHA,
                      "project": {"path_with_namespace": "group/ping"}});
    let answer = harness.gitlab("Push Hook", GITLAB_TOKEN, &push).await?;
    assert_eq!(answer.status, 202, "{answer:?}");
    drop(refused);
    harness.shutdown().await
}

#[tokio::test]
async fn unauthenticated_body_reads_never_take_the_slots_of_authenticated_senders() -> Result<()> {
    // Two slots for authenticated senders, one for bodies read before their signature holds.
    let harness = Harness::with(slow_config(2)).await?;
    let mut stalled = Vec::new();
    for i in 0..4 {
        stalled.push(stalled_signed(&harness, &format!("slow-{i}")).await?);
    }
    // Retried until the listener has read a stalled request's headers and the read slot is
    // taken: from then on a signed delivery is shed.
    let deadline = Instant::now() + Duration::from_secs(5);
    let shed = loop {
        let answer = signed_push(&harness, "shed").await?;
        if answer.status == 503 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(shed.status, 503, "the read slot is taken: {shed:?}");

    // Senders that proved who they are from their headers are not held up.
    let answer = custom(&harness).await?;
    assert_eq!(answer.status, 202, "{answer:?}");
    let request = harness
        .http
        .post(harness.url("/webhooks/generic"))
        .bearer_auth(GENERIC_TOKEN)
        .json(&json!({"type": "source.custom", "key": "k", "id": "real-2",
                      "data": {"source": "ci", "kind": "x"}}));
    let answer = support::Answer::of(request).await?;
    assert_eq!(answer.status, 202, "{answer:?}");
    drop(stalled);
    harness.shutdown().await
}

#[tokio::test]
async fn a_client_that_dribbles_its_headers_is_cut_off() -> Result<()> {
    let mut config = support::config();
    config.request_timeout = Duration::from_millis(300);
    let harness = Harness::with(config).await?;
    let addr = address(&harness);
    let mut stream = TcpStream::connect(&addr).await?;
    // One header byte at a time, each well within the timeout, for far longer than it: only a
    // bound on the whole header read stops this.
    let head = format!("POST /webhooks/github HTTP/1.1\r\nhost: {addr}\r\n");
    let mut closed = false;
    for byte in head.bytes().chain(std::iter::repeat(b'x')).take(400) {
        if stream.write_all(&[byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut buffer = [0; 256];
        let read = tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buffer));
        if let Ok(Ok(0) | Err(_)) = read.await {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "the connection was still open after 400 dribbled bytes"
    );

    // The listener still answers a real delivery.
    let answer = signed_push(&harness, "after-loris").await?;
    assert_eq!(answer.status, 202, "{answer:?}");
    harness.shutdown().await
}
