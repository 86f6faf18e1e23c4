//! Signed GitHub deliveries, as GitHub sends them, and a sender that retries a 503 or a refused
//! connection with the same delivery id, as GitHub's redelivery does.

use std::time::Duration;

use anyhow::{Context, Result};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// One delivery: the `X-GitHub-Event`, the `X-GitHub-Delivery` id and the body.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: String,
    pub id: String,
    pub body: Vec<u8>,
}

impl Delivery {
    /// A push of commit `sha` (made at `timestamp`, RFC 3339) to `branch` of `repo`.
    pub fn push(repo: &str, branch: &str, sha: &str, timestamp: &str) -> Delivery {
        let commit = commit(repo, sha, timestamp);
        let body = json!({
            "ref": format!("refs/heads/{branch}"),
            "before": "0000000000000000000000000000000000000000",
            "after": sha,
            "created": false,
            "deleted": false,
            "repository": repository(repo),
            "pusher": {"name": owner(repo)},
            "head_commit": commit,
            "commits": [commit],
        });
        Delivery::new("push", &body)
    }

    /// Pull request `number` of `repo`, `action` (`opened`, `closed`, ...), its head at `sha`,
    /// last updated at `updated_at`.
    pub fn pull_request(
        repo: &str,
        number: u64,
        action: &str,
        sha: &str,
        updated_at: &str,
    ) -> Delivery {
        let body = json!({
            "action": action,
            "number": number,
            "pull_request": {
                "number": number,
                "title": format!("Change {number} to {repo}"),
                "html_url": format!("https://github.com/{repo}/pull/{number}"),
                "user": {"login": owner(repo)},
                "labels": [],
                "merged": false,
                "updated_at": updated_at,
                "head": {"ref": format!("feature-{number}"), "sha": sha,
                         "repo": {"full_name": repo}},
                "base": {"ref": "main", "sha": "0000000000000000000000000000000000000000",
                         "repo": {"full_name": repo}},
            },
            "repository": repository(repo),
            "sender": {"login": owner(repo)},
        });
        Delivery::new("pull_request", &body)
    }

    fn new(event: &str, body: &Value) -> Delivery {
        Delivery {
            event: event.to_owned(),
            id: uuid::Uuid::new_v4().to_string(),
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }
}

fn owner(repo: &str) -> &str {
    repo.split_once('/').map_or(repo, |(owner, _)| owner)
}

fn repository(repo: &str) -> Value {
    let name = repo.split_once('/').map_or(repo, |(_, name)| name);
    json!({
        "full_name": repo,
        "name": name,
        "owner": {"login": owner(repo)},
        "default_branch": "main",
        "clone_url": format!("https://github.com/{repo}.git"),
    })
}

fn commit(repo: &str, sha: &str, timestamp: &str) -> Value {
    json!({
        "id": sha,
        "message": format!("A change to {repo}"),
        "timestamp": timestamp,
        "author": {"name": owner(repo), "username": owner(repo)},
        "added": [], "modified": ["src/main.rs"], "removed": [],
    })
}

/// `sha256=<hex HMAC-SHA256 of body>`, GitHub's `X-Hub-Signature-256`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What the listener answered one delivery, after retries.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// How many attempts it took (503s and refused connections retried).
    pub attempts: u32,
    /// How many of them were answered 503.
    pub unavailable: u32,
}

/// Posts signed GitHub deliveries to one source-listener.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    url: String,
    secret: String,
}

impl Sender {
    /// A sender to `base_url` (the listener's), signing with `secret`.
    pub fn new(base_url: &str, secret: &str) -> Result<Sender> {
        Ok(Sender {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            url: format!("{base_url}/webhooks/github"),
            secret: secret.to_owned(),
        })
    }

    /// One attempt; `Err` when the listener could not be reached.
    pub async fn send_once(&self, delivery: &Delivery) -> Result<(u16, String)> {
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-github-event", &delivery.event)
            .header("x-github-delivery", &delivery.id)
            .header(
                "x-hub-signature-256",
                signature(&self.secret, &delivery.body),
            )
            .body(delivery.body.clone())
            .send()
            .await
            .with_context(|| format!("POST {}", self.url))?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.unwrap_or_default()))
    }

    /// Sends until the answer is neither 503 nor a failed connection (a listener down or
    /// restarting), for at most `give_up_after`; the same delivery id every time.
    pub async fn send(&self, delivery: &Delivery, give_up_after: Duration) -> Answer {
        let deadline = tokio::time::Instant::now() + give_up_after;
        let mut attempts = 0;
        let mut unavailable = 0;
        let mut pause = Duration::from_millis(50);
        loop {
            attempts += 1;
            let outcome = self.send_once(delivery).await;
            let retry = match &outcome {
                Ok((503, _)) => {
                    unavailable += 1;
                    true
                }
                Ok(_) => false,
                Err(_) => true,
            };
            if !retry || tokio::time::Instant::now() + pause > deadline {
                let (status, body) = outcome.unwrap_or_else(|e| (0, format!("{e:#}")));
                return Answer {
                    status,
                    body,
                    attempts,
                    unavailable,
                };
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}
