//! Hostile webhook deliveries and the answer each must get: bad and missing signatures,
//! truncated and oversized bodies, wrong types, a replayed delivery, senders that dribble their
//! headers or body. Run against a live source-listener; what it stored is checked by the
//! caller.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::webhook::{Delivery, signature};

/// One case and what it got.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    /// The statuses that are right for it (`0`: the connection is closed without an answer).
    pub expected: &'static [u16],
    pub got: u16,
    /// What the answer said, for a failure message.
    pub answer: String,
    pub took: Duration,
}

impl Case {
    pub fn ok(&self) -> bool {
        self.expected.contains(&self.got)
    }
}

/// The listener under test: where it is and its secret.
#[derive(Debug, Clone)]
pub struct Target {
    pub port: u16,
    pub secret: String,
    /// `FLOTILLA_MAX_BODY` of the listener.
    pub max_body: usize,
    /// `FLOTILLA_REQUEST_TIMEOUT` of the listener.
    pub request_timeout: Duration,
}

/// A valid push of the corpus, to a branch nothing builds (so a delivery that gets through
/// starts no change): `refs/heads/corpus`.
fn valid_push() -> Delivery {
    Delivery::push(
        "acme/ping",
        "corpus",
        "c0ffee0000000000000000000000000000000001",
        "2025-01-01T00:00:00Z",
    )
}

/// Runs every case; the replayed delivery's id is returned with the cases (it is the one
/// delivery that may be stored, once).
pub async fn run(target: &Target) -> Result<(Vec<Case>, String)> {
    let mut cases = Vec::new();
    let valid = valid_push();

    let mut forged = valid.clone();
    forged.id = uuid::Uuid::new_v4().to_string();
    cases.push(
        post(
            "bad signature",
            &[401],
            target,
            &forged,
            Some("sha256=00"),
            "push",
        )
        .await?,
    );
    cases.push(
        post(
            "signed with another secret",
            &[401],
            target,
            &forged,
            Some(&signature("not-the-secret", &forged.body)),
            "push",
        )
        .await?,
    );
    cases.push(post_unsigned("missing signature", &[401], target, &forged).await?);

    let mut truncated = valid.clone();
    truncated.id = uuid::Uuid::new_v4().to_string();
    truncated.body.truncate(truncated.body.len() / 2);
    cases.push(
        post(
            "truncated JSON, signed",
            &[400],
            target,
            &truncated,
            None,
            "push",
        )
        .await?,
    );
    cases.push(short_body(target, &valid).await?);

    let mut not_json = valid.clone();
    not_json.id = uuid::Uuid::new_v4().to_string();
    not_json.body = b"this is not JSON".to_vec();
    cases.push(post("not JSON", &[400], target, &not_json, None, "push").await?);

    let mut wrong_types = valid.clone();
    wrong_types.id = uuid::Uuid::new_v4().to_string();
    wrong_types.body = serde_json::to_vec(&json!({
        "ref": 42, "after": ["not", "a", "sha"], "repository": "acme/ping", "commits": "none",
    }))?;
    cases.push(post("wrong types", &[400], target, &wrong_types, None, "push").await?);

    let mut missing = valid.clone();
    missing.id = uuid::Uuid::new_v4().to_string();
    missing.body = serde_json::to_vec(&json!({"ref": "refs/heads/main"}))?;
    cases.push(
        post(
            "required fields missing",
            &[400],
            target,
            &missing,
            None,
            "push",
        )
        .await?,
    );

    let mut unhandled = valid.clone();
    unhandled.id = uuid::Uuid::new_v4().to_string();
    cases.push(
        post(
            "an event type Flotilla does not handle",
            &[200],
            target,
            &unhandled,
            None,
            "issues",
        )
        .await?,
    );

    cases.push(oversized(target).await?);

    cases.push(post("a delivery", &[202], target, &valid, None, "push").await?);
    cases.push(
        post(
            "the same delivery replayed",
            &[202],
            target,
            &valid,
            None,
            "push",
        )
        .await?,
    );

    cases.push(slow_headers(target).await?);
    cases.push(slow_body(target, &valid).await?);
    Ok((cases, valid.id))
}

async fn post(
    name: &'static str,
    expected: &'static [u16],
    target: &Target,
    delivery: &Delivery,
    signed: Option<&str>,
    event: &str,
) -> Result<Case> {
    let signature = signed
        .map(str::to_owned)
        .unwrap_or_else(|| signature(&target.secret, &delivery.body));
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/webhooks/github", target.port))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", &delivery.id)
        .header("x-hub-signature-256", signature)
        .body(delivery.body.clone())
        .send()
        .await;
    answered(name, expected, started, response).await
}

async fn post_unsigned(
    name: &'static str,
    expected: &'static [u16],
    target: &Target,
    delivery: &Delivery,
) -> Result<Case> {
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/webhooks/github", target.port))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", &delivery.id)
        .body(delivery.body.clone())
        .send()
        .await;
    answered(name, expected, started, response).await
}

async fn answered(
    name: &'static str,
    expected: &'static [u16],
    started: Instant,
    response: reqwest::Result<reqwest::Response>,
) -> Result<Case> {
    let (got, answer) = match response {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
        // A listener that closes the connection on a body it refuses (an oversized one, say)
        // may do so before the client finished sending.
        Err(e) => (0, format!("{e:#}")),
    };
    Ok(Case {
        name,
        expected,
        got,
        answer,
        took: started.elapsed(),
    })
}

/// The request head of a signed GitHub push delivery of `body_len` bytes.
fn head(target: &Target, delivery: &Delivery, body_len: usize) -> String {
    format!(
        "POST /webhooks/github HTTP/1.1\r\nhost: 127.0.0.1:{}\r\ncontent-type: application/json\r\n\
         x-github-event: push\r\nx-github-delivery: {}\r\nx-hub-signature-256: {}\r\n\
         content-length: {body_len}\r\n\r\n",
        target.port,
        uuid::Uuid::new_v4(),
        signature(&target.secret, &delivery.body),
    )
}

/// Reads an HTTP answer's status, or 0 when the connection closes without one.
async fn status_of(stream: &mut TcpStream, within: Duration) -> (u16, String) {
    let mut buf = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    match read {
        Ok(_) => (status, text.lines().last().unwrap_or_default().to_owned()),
        Err(_) => (status, format!("no answer within {within:?}")),
    }
}

/// A body over `FLOTILLA_MAX_BODY`, sent in chunks while the answer is read: the listener
/// answers 413 (and may stop reading, so writes can fail once it did).
pub async fn oversized(target: &Target) -> Result<Case> {
    let started = Instant::now();
    let mut body = valid_push();
    body.body = vec![b' '; target.max_body + 1024];
    let stream = TcpStream::connect(("127.0.0.1", target.port))
        .await
        .context("connect")?;
    let (mut read, mut write) = stream.into_split();
    let head = head(target, &body, body.body.len());
    let sending = async move {
        if write.write_all(head.as_bytes()).await.is_ok() {
            for chunk in body.body.chunks(64 * 1024) {
                if write.write_all(chunk).await.is_err() {
                    break;
                }
            }
        }
    };
    let mut answer = Vec::new();
    let reading = tokio::time::timeout(target.request_timeout * 3, read.read_to_end(&mut answer));
    let (_, _) = tokio::join!(sending, reading);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let got = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Ok(Case {
        name: "oversized body",
        expected: &[413],
        got,
        answer: text.lines().last().unwrap_or_default().to_owned(),
        took: started.elapsed(),
    })
}

/// A body shorter than its `content-length`, then the sender stops writing.
async fn short_body(target: &Target, delivery: &Delivery) -> Result<Case> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", target.port))
        .await
        .context("connect")?;
    stream
        .write_all(head(target, delivery, delivery.body.len()).as_bytes())
        .await?;
    stream
        .write_all(&delivery.body[..delivery.body.len() / 2])
        .await?;
    stream.shutdown().await?;
    let (got, answer) = status_of(&mut stream, target.request_timeout * 3).await;
    Ok(Case {
        name: "body shorter than its content-length",
        expected: &[400, 0],
        got,
        answer,
        took: started.elapsed(),
    })
}

/// Writes `bytes` one every 100 ms until the listener answers or closes the connection, or
/// `give_up` passes; then its status (0: closed without an answer, 1: still open and silent).
async fn dribble(stream: &mut TcpStream, bytes: &[u8], give_up: Duration) -> (u16, String) {
    let started = Instant::now();
    let mut closed = false;
    for byte in bytes.iter().cycle() {
        if started.elapsed() > give_up {
            break;
        }
        if stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut peek = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(100), stream.peek(&mut peek)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => break,
            Err(_) => {}
        }
    }
    let (got, answer) = status_of(stream, Duration::from_secs(2)).await;
    match (got, closed) {
        (0, false) => (1, format!("still open after {give_up:?}")),
        _ => (got, answer),
    }
}

/// Headers dribbled a byte at a time, slower than the request timeout allows: the listener
/// closes the connection.
async fn slow_headers(target: &Target) -> Result<Case> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", target.port))
        .await
        .context("connect")?;
    let head = b"POST /webhooks/github HTTP/1.1\r\nhost: 127.0.0.1\r\nx-github-event: push\r\n";
    let (got, answer) = dribble(&mut stream, head, target.request_timeout * 3).await;
    Ok(Case {
        name: "headers dribbled slower than the request timeout",
        expected: &[0, 408],
        got,
        answer,
        took: started.elapsed(),
    })
}

/// Headers at once, the body a byte at a time: answered 408 once the request timeout passed.
async fn slow_body(target: &Target, delivery: &Delivery) -> Result<Case> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", target.port))
        .await
        .context("connect")?;
    stream
        .write_all(head(target, delivery, delivery.body.len()).as_bytes())
        .await?;
    let (got, answer) = dribble(&mut stream, &delivery.body, target.request_timeout * 3).await;
    Ok(Case {
        name: "body dribbled slower than the request timeout",
        expected: &[408],
        got,
        answer,
        took: started.elapsed(),
    })
}
