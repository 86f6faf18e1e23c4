//! What an Argo CD PostSync hook does for every env a run creates: on `env.requested`, report
//! each of its apps synced (`POST /report/{env}/{app}` to sync-watcher). It reads the requests
//! through a durable consumer of its own, and acks one only once every report was answered, so
//! a sync-watcher down or restarting only delays the reports.

use std::time::Duration;

use anyhow::Result;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::events::Fact;

/// Runs until `stop`: reports every requested env's apps to the sync-watcher at `base_url`.
pub async fn run(js: jetstream::Context, base_url: String, stop: CancellationToken) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "hook: no HTTP client");
            return;
        }
    };
    while !stop.is_cancelled() {
        if let Err(e) = follow(&js, &client, &base_url, &stop).await {
            tracing::debug!(error = %e, "hook: following env.requested again");
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }
}

async fn follow(
    js: &jetstream::Context,
    client: &reqwest::Client,
    base_url: &str,
    stop: &CancellationToken,
) -> Result<()> {
    let stream = js.get_stream("FLOTILLA").await?;
    let consumer = stream
        .get_or_create_consumer(
            "suite-hook",
            pull::Config {
                durable_name: Some("suite-hook".into()),
                filter_subject: "flotilla.env.requested.>".into(),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(64)
        .expires(Duration::from_secs(2))
        .heartbeat(Duration::from_millis(500))
        .messages()
        .await?;
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            next = messages.next() => match next {
                Some(message) => message?,
                None => return Ok(()),
            },
        };
        let fact = Fact::of(&message);
        if report_all(client, base_url, &fact).await {
            message.ack().await.ok();
        } else {
            message
                .ack_with(AckKind::Nak(Some(Duration::from_millis(500))))
                .await
                .ok();
        }
    }
}

/// Reports every app of the requested env; false when one must be tried again.
async fn report_all(client: &reqwest::Client, base_url: &str, fact: &Fact) -> bool {
    let env = fact.env().to_owned();
    let apps: Vec<String> = fact.data["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["name"].as_str().map(str::to_owned))
        .collect();
    for app in apps {
        let url = format!("{base_url}/report/{env}/{app}");
        let answer = client
            .post(&url)
            .json(&serde_json::json!({"status": "succeeded", "message": "post-sync checks passed"}))
            .send()
            .await;
        match answer.map(|r| r.status().as_u16()) {
            // 503: the registry is unreachable (a NATS outage, an election); the hook retries
            // as a PostSync Job's retries would.
            Ok(503) => {
                tracing::debug!(%url, "hook: sync-watcher unavailable, retrying");
                return false;
            }
            // 202 stored; 404 the env is gone or holds another change now: nothing to report.
            Ok(status) => {
                if status != 202 && status != 404 {
                    tracing::warn!(%url, status, "hook: report refused");
                }
            }
            Err(e) => {
                tracing::debug!(%url, error = %e, "hook: sync-watcher unreachable, retrying");
                return false;
            }
        }
    }
    true
}
