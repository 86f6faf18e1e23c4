//! `run_webhook`: signed GitHub pushes through source-listener's HTTP intake, against bare
//! JetStream publishing the same bytes, on one server in one run.
//!
//! - **bare**: `clients` tasks, each publishing the push body to a stream of its own with a
//!   unique `Nats-Msg-Id` and awaiting the ack before the next;
//! - **intake**: `clients` tasks, each POSTing the signed body to `/webhooks/github` with a
//!   unique delivery id over a kept-alive connection and awaiting the 202 (which the listener
//!   sends only once JetStream acknowledged the event);
//! - **paced**: requests started on a fixed schedule (`--rate` a second, whatever the previous
//!   ones are doing), each timed from the moment it was due, so a stall shows up in the
//!   percentiles instead of slowing the schedule down.
//!
//! The bare and intake sides take turns round by round, so drift weighs on both alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use flotilla_bus::Process;
use serde_json::json;
use source_listener::auth::{Keys, github_signature};
use source_listener::{Config, Secrets, SourceListener};
use tokio::task::JoinSet;

use crate::args::split;
use crate::cpu;
use crate::error::BenchError;
use crate::fixture::{Fixture, after_cleanup};
use crate::stats::{Latency, Throughput};

mod report;

pub use report::{INTAKE_TARGET, PACED_P99_TARGET, WebhookArgs, WebhookReport};

const SECRET: &str = "flotilla-bench-secret";

/// Measures source-listener's intake against bare JetStream publishing on the server `client`
/// is connected to, on streams of its own that it deletes before returning.
pub async fn run_webhook(
    client: async_nats::Client,
    args: &WebhookArgs,
) -> Result<WebhookReport, BenchError> {
    let server = client.server_info();
    args.validate(server.max_payload)?;
    let fixture = Fixture::new(client);
    let measured = measure(&fixture, args, server.version).await;
    after_cleanup(measured, fixture.delete().await)
}

/// Everything one side needs to send one delivery.
struct Target {
    http: reqwest::Client,
    url: String,
    js: async_nats::jetstream::Context,
    bare_subject: String,
    body: Bytes,
    signature: String,
    /// Unique ids across sides and phases, so JetStream stores every delivery.
    next: AtomicUsize,
    run: String,
}

#[derive(Debug, Clone, Copy)]
enum Side {
    Bare,
    Intake,
}

impl Target {
    fn id(&self) -> String {
        format!("{}-{}", self.run, self.next.fetch_add(1, Ordering::Relaxed))
    }

    async fn send(&self, side: Side) -> Result<(), BenchError> {
        let id = self.id();
        match side {
            Side::Bare => {
                let publish = PublishMessage::build()
                    .payload(self.body.clone())
                    .message_id(id.as_str());
                self.js
                    .send_publish(self.bare_subject.clone(), publish)
                    .await
                    .map_err(|e| BenchError::setup("bare publish", e))?
                    .await
                    .map_err(|e| BenchError::setup("bare publish ack", e))?;
            }
            Side::Intake => {
                let response = self
                    .http
                    .post(&self.url)
                    .header("content-type", "application/json")
                    .header("x-github-event", "push")
                    .header("x-github-delivery", id.as_str())
                    .header("x-hub-signature-256", self.signature.as_str())
                    .body(self.body.clone())
                    .send()
                    .await
                    .map_err(|e| BenchError::setup("send a delivery", e))?;
                let status = response.status();
                if status.as_u16() != 202 {
                    let text = response.text().await.unwrap_or_default();
                    return Err(BenchError::Refused {
                        status: status.as_u16(),
                        body: text,
                    });
                }
            }
        }
        Ok(())
    }
}

async fn measure(
    fixture: &Fixture,
    args: &WebhookArgs,
    server: String,
) -> Result<WebhookReport, BenchError> {
    let (_, bare_stream) = fixture.create().await?;
    let bus = fixture.bus.clone();
    let mut config = Config::new(Secrets {
        github: Keys::of([SECRET]),
        ..Secrets::default()
    });
    // Room for every sender and the paced run's backlog, should one build up.
    config.max_in_flight = args.clients.max(args.rate as usize) * 4;
    // The intake served as source-listener's binary serves it: in a process of its own.
    let mut process = Process::new(bus.clone());
    process.grace(Duration::from_secs(5));
    let listener = SourceListener::new(&bus, config, process.health());
    process.route(listener.router());
    let served = process
        .serve(([127, 0, 0, 1], 0).into())
        .await
        .map_err(|e| BenchError::setup("serve the webhook intake", e))?;
    let body = push_body(args.payload);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients.max(64))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| BenchError::setup("build the HTTP client", e))?;
    let bare_prefix = bare_stream
        .cached_info()
        .config
        .subjects
        .first()
        .map(|s| s.trim_end_matches(".>").to_owned())
        .unwrap_or_default();
    let target = Arc::new(Target {
        http,
        url: format!("http://{}/webhooks/github", served.addr()),
        js: bus.jetstream().clone(),
        bare_subject: format!("{bare_prefix}.source.push.acme_ping"),
        signature: github_signature(SECRET.as_bytes(), &body),
        body: Bytes::from(body),
        next: AtomicUsize::new(0),
        run: uuid::Uuid::new_v4().simple().to_string(),
    });

    let result = sides(&target, args).await;
    if let Err(e) = served.stop().await {
        tracing::warn!(error = %e, "the webhook intake did not stop cleanly");
    }
    let (bare, intake, paced, paced_rate) = result?;
    Ok(WebhookReport {
        args: args.clone(),
        body: target.body.len(),
        server,
        bare,
        intake,
        paced,
        paced_rate,
    })
}

async fn sides(
    target: &Arc<Target>,
    args: &WebhookArgs,
) -> Result<(Throughput, Throughput, Latency, f64), BenchError> {
    concurrent(target, Side::Bare, args.warmup, args.clients).await?;
    concurrent(target, Side::Intake, args.warmup, args.clients).await?;
    let mut bare = Throughput::default();
    let mut intake = Throughput::default();
    for (round, count) in split(args.requests, args.rounds).into_iter().enumerate() {
        if round % 2 == 0 {
            bare.add(concurrent(target, Side::Bare, count, args.clients).await?);
            intake.add(concurrent(target, Side::Intake, count, args.clients).await?);
        } else {
            intake.add(concurrent(target, Side::Intake, count, args.clients).await?);
            bare.add(concurrent(target, Side::Bare, count, args.clients).await?);
        }
    }
    let (paced, rate) = paced(target, args.rate, args.paced).await?;
    Ok((bare, intake, paced, rate))
}

/// Sends `count` deliveries from `clients` senders, each awaiting its answer before the next.
async fn concurrent(
    target: &Arc<Target>,
    side: Side,
    count: usize,
    clients: usize,
) -> Result<Throughput, BenchError> {
    let cpu_before = cpu::process_time();
    let started = Instant::now();
    let mut senders = JoinSet::new();
    for share in split(count, clients) {
        let target = Arc::clone(target);
        senders.spawn(async move {
            for _ in 0..share {
                target.send(side).await?;
            }
            Ok::<_, BenchError>(())
        });
    }
    while let Some(done) = senders.join_next().await {
        done.map_err(|e| BenchError::setup("a sender task", e))??;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_before
        .zip(cpu::process_time())
        .map(|(before, after)| after.saturating_sub(before));
    Ok(Throughput {
        messages: count,
        elapsed,
        cpu,
    })
}

/// Starts `count` deliveries at `rate` a second, each timed from when it was due.
async fn paced(
    target: &Arc<Target>,
    rate: u32,
    count: usize,
) -> Result<(Latency, f64), BenchError> {
    let interval = Duration::from_secs(1) / rate;
    let start = tokio::time::Instant::now();
    let mut deliveries = JoinSet::new();
    for i in 0..count {
        let due = start + interval * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due).await;
        let target = Arc::clone(target);
        deliveries.spawn(async move {
            target.send(Side::Intake).await?;
            Ok::<_, BenchError>(due.elapsed())
        });
    }
    let mut samples = Vec::with_capacity(count);
    while let Some(done) = deliveries.join_next().await {
        samples.push(done.map_err(|e| BenchError::setup("a paced delivery", e))??);
    }
    let rate = count as f64 / start.elapsed().as_secs_f64().max(f64::EPSILON);
    let latency = Latency::from_samples(samples)
        .ok_or_else(|| BenchError::Args("--paced must be at least 1".into()))?;
    Ok((latency, rate))
}

/// A GitHub push body of exactly `size` bytes (for any `size` the base body fits in): the
/// commit message takes up the rest, as a long message or many commits' worth of text would.
fn push_body(size: usize) -> Vec<u8> {
    let with = |message: &str| {
        json!({
            "ref": "refs/heads/main",
            "before": "1111111111111111111111111111111111111111",
            "after": "2222222222222222222222222222222222222222",
            "repository": {"full_name": "acme/ping", "default_branch": "main",
                           "clone_url": "https://github.example/acme/ping.git"},
            "pusher": {"name": "dev"},
            "head_commit": {"id": "2222222222222222222222222222222222222222"},
            "commits": [{"id": "2222222222222222222222222222222222222222",
                         "message": message, "added": [], "removed": [],
                         "modified": ["src/main.rs"]}]
        })
        .to_string()
        .into_bytes()
    };
    let base = with("").len();
    with(&"x".repeat(size.saturating_sub(base)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_push_body_has_the_size_asked_for_and_is_a_push() {
        for size in [1024, 8 * 1024, 100_000] {
            let body = push_body(size);
            assert_eq!(body.len(), size);
            let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            assert_eq!(value["repository"]["full_name"], "acme/ping");
        }
    }
}
