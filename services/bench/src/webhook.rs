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

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use flotilla_bus::Health;
use serde_json::json;
use source_listener::auth::{Keys, github_signature};
use source_listener::{Config, Secrets, SourceListener};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::args::split;
use crate::cpu;
use crate::error::BenchError;
use crate::fixture::{Fixture, after_cleanup};
use crate::report::{micros, verdict};
use crate::stats::{Latency, Throughput};

/// Intake throughput must be at least this fraction of bare JetStream publishing.
pub const INTAKE_TARGET: f64 = 0.25;
/// The paced run's p99 must stay under this.
pub const PACED_P99_TARGET: Duration = Duration::from_millis(10);

const SECRET: &str = "flotilla-bench-secret";
const HEADER_ROOM: usize = 4 * 1024;

/// Settings of the webhook intake benchmark.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct WebhookArgs {
    /// Concurrent senders on each side (HTTP clients, and bare publishers).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub clients: usize,
    /// Deliveries sent for throughput on each side.
    #[arg(long, value_name = "N", default_value_t = 8_000)]
    pub requests: usize,
    /// The throughput deliveries are sent in this many rounds, the sides taking turns.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub rounds: usize,
    /// Size of the signed push body in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 8 * 1024)]
    pub payload: usize,
    /// Deliveries a second in the paced run.
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub rate: u32,
    /// Deliveries in the paced run.
    #[arg(long, value_name = "N", default_value_t = 2_500)]
    pub paced: usize,
    /// Deliveries on each side before measuring, so connections and caches are warm.
    #[arg(long, value_name = "N", default_value_t = 400)]
    pub warmup: usize,
}

impl Default for WebhookArgs {
    fn default() -> Self {
        WebhookArgs {
            clients: 16,
            requests: 8_000,
            rounds: 4,
            payload: 8 * 1024,
            rate: 500,
            paced: 2_500,
            warmup: 400,
        }
    }
}

impl WebhookArgs {
    fn validate(&self, max_payload: usize) -> Result<(), BenchError> {
        let positive = [
            ("--clients", self.clients),
            ("--requests", self.requests),
            ("--rounds", self.rounds),
            ("--rate", self.rate as usize),
            ("--paced", self.paced),
        ];
        if let Some((flag, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(BenchError::Args(format!("{flag} must be at least 1")));
        }
        let largest = max_payload.saturating_sub(HEADER_ROOM);
        if !(1024..=largest).contains(&self.payload) {
            return Err(BenchError::Args(format!(
                "--payload must be between 1024 and {largest} bytes on this server"
            )));
        }
        Ok(())
    }
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookReport {
    pub args: WebhookArgs,
    /// The exact size of the body both sides sent.
    pub body: usize,
    /// `nats-server` version.
    pub server: String,
    pub bare: Throughput,
    pub intake: Throughput,
    /// Latency of the paced run, each delivery timed from when it was due.
    pub paced: Latency,
    /// The rate the paced run achieved (deliveries over the time from first due to last answer).
    pub paced_rate: f64,
}

impl WebhookReport {
    /// Intake deliveries a second over bare publishes a second.
    pub fn throughput_ratio(&self) -> f64 {
        let bare = self.bare.per_second();
        if bare > 0.0 {
            self.intake.per_second() / bare
        } else {
            0.0
        }
    }

    pub fn throughput_target_met(&self) -> bool {
        self.throughput_ratio() >= INTAKE_TARGET
    }

    pub fn paced_target_met(&self) -> bool {
        self.paced.p99 < PACED_P99_TARGET
    }
}

impl fmt::Display for WebhookReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "signed GitHub push intake on nats-server {}: body {} B, {} concurrent senders, \
             {} deliveries a side in {} round(s) taking turns (after {} warm-up)",
            self.server,
            self.body,
            self.args.clients,
            self.bare.messages,
            self.args.rounds,
            self.args.warmup
        )?;
        writeln!(f)?;
        writeln!(f, "{:<8} {:>10} {:>10}", "", "msgs/s", "cpu/msg")?;
        for (name, side) in [("bare", &self.bare), ("intake", &self.intake)] {
            let cpu = side.cpu_per_message().map_or("-".into(), micros);
            writeln!(f, "{name:<8} {:>10.0} {cpu:>10}", side.per_second())?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "paced: {} deliveries due at {}/s (achieved {:.0}/s): p50 {}  p99 {}  max {}",
            self.paced.samples,
            self.args.rate,
            self.paced_rate,
            micros(self.paced.p50),
            micros(self.paced.p99),
            micros(self.paced.max)
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "intake/bare throughput {:>6.1}%  target ≥ {:.0}%    {}",
            self.throughput_ratio() * 100.0,
            INTAKE_TARGET * 100.0,
            verdict(self.throughput_target_met())
        )?;
        write!(
            f,
            "paced p99 at {}/s     {:>8}  target < {} {}\n\
             cpu/msg: CPU time of this process (senders and listener) per delivery; the \
             server's is not counted",
            self.args.rate,
            micros(self.paced.p99),
            micros(PACED_P99_TARGET),
            verdict(self.paced_target_met())
        )
    }
}

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
    let health = Health::new();
    let listener = SourceListener::new(&bus, config, &health);
    let stop = CancellationToken::new();
    let served = listener
        .serve(([127, 0, 0, 1], 0).into(), &health, stop.clone())
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
    stop.cancel();
    served.finished(Duration::from_secs(5)).await;
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

    #[test]
    fn settings_that_cannot_measure_are_refused() {
        let args = WebhookArgs::default();
        assert!(args.validate(1 << 20).is_ok());
        let none = WebhookArgs {
            clients: 0,
            ..WebhookArgs::default()
        };
        let error = none.validate(1 << 20).expect_err("no clients");
        assert!(error.to_string().contains("--clients"), "{error}");
        let huge = WebhookArgs {
            payload: 1 << 20,
            ..WebhookArgs::default()
        };
        assert!(huge.validate(1 << 20).is_err());
    }

    fn report(bare: usize, intake: usize, p99_ms: u64) -> WebhookReport {
        let per_second = |messages| Throughput {
            messages,
            elapsed: Duration::from_secs(1),
            cpu: None,
        };
        let p99 = Duration::from_millis(p99_ms);
        WebhookReport {
            args: WebhookArgs::default(),
            body: 8192,
            server: "2.9.10".into(),
            bare: per_second(bare),
            intake: per_second(intake),
            paced: Latency {
                samples: 100,
                p50: p99 / 2,
                p99,
                max: p99,
            },
            paced_rate: 500.0,
        }
    }

    #[test]
    fn the_report_compares_intake_with_bare_against_the_targets() {
        let good = report(10_000, 3_000, 4);
        assert!((good.throughput_ratio() - 0.3).abs() < 1e-9);
        assert!(good.throughput_target_met() && good.paced_target_met());
        assert!(!good.to_string().contains("NOT MET"), "{good}");
        let bad = report(10_000, 2_000, 12);
        assert!(!bad.throughput_target_met() && !bad.paced_target_met());
        assert_eq!(bad.to_string().matches("NOT MET").count(), 2, "{bad}");
    }
}
