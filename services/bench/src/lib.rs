//! Benchmarks of Flotilla's bus against bare JetStream, measured in one run on one server.
//!
//! Two benchmarks live here: the two-hop bus benchmark ([`run_hop`], below) and the webhook
//! intake benchmark ([`run_webhook`]: signed GitHub pushes through source-listener against bare
//! JetStream publishing of the same bytes).
//!
//! DESIGN.md states the bus's performance targets as ratios to bare async-nats doing the same
//! work, so every figure here is measured twice, side by side:
//!
//! - **bare**: JetStream publish (ack awaited) → durable pull consumer → JetStream publish of
//!   the same bytes (ack awaited), then ack → durable pull consumer at the end;
//! - **bus**: [`flotilla_bus::Publisher`] publishes a `build.started` event → a
//!   [`flotilla_bus::runtime::Worker`] whose handler answers `build.succeeded` → the same kind of
//!   pull consumer at the end.
//!
//! [`run_hop`] measures latency (one message in flight) and pipelined throughput (a bounded
//! window of unacknowledged publishes) for both, the two pipelines taking turns (message by
//! message for latency, round by round for throughput) so that drift (page cache, stream
//! growth, a noisy neighbour) hits both alike. It works on streams of its own
//! ([`flotilla_bus::Names::isolated`]), never on `FLOTILLA`, and deletes them before returning.
//!
//! Last measured (release build, defaults, nats-server 2.9.10 on loopback, 2 cores shared with
//! other builds, 16 runs taking turns with the previous build): bus/bare p50 latency 1.22-1.25x
//! (median 1.23), pipelined throughput 53-64% of bare (median 57%), CPU per message 2.5-3.6x
//! (median 2.9); before: 1.27x, 53%, 3.3x (medians). Most of what is left is the envelope's
//! headers in async-nats: `docs/bus.md` ("Cost") has the instruction counts.
//!
//! [`run_env`] measures env-manager itself: `build.succeeded` in, env file pushed to a local
//! bare repository and `env.requested` out, one at a time (latency) and in bursts with grouped
//! commits on and off (env writes/s).

mod args;
mod bare;
mod baseline;
mod cpu;
mod env;
mod env_report;
mod error;
mod fixture;
mod hop;
mod lane;
mod payload;
mod pipeline;
mod report;
mod sink;
mod stats;
mod via_bus;
mod webhook;

pub use args::{EnvArgs, HopArgs};
pub use baseline::bare_hop_latency;
pub use env::run_env;
pub use env_report::{ENV_LATENCY_TARGET, EnvReport, ModeReport};
pub use error::BenchError;
pub use hop::run_hop;
pub use pipeline::{Phase, Pipeline};
pub use report::{HopReport, LATENCY_TARGET, SideReport, THROUGHPUT_TARGET};
pub use stats::{Latency, Throughput};
pub use webhook::{INTAKE_TARGET, PACED_P99_TARGET, WebhookArgs, WebhookReport, run_webhook};
