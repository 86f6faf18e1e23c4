//! Flotilla's event bus on NATS JetStream.
//!
//! Workers never call each other: each consumes events from the `FLOTILLA` stream through one
//! durable pull consumer named after it, and publishes what happened. This crate is everything
//! they share:
//!
//! - [`envelope`]: the CloudEvents NATS binding (binary mode) every event travels in;
//! - [`publish`]: publishing that waits for the JetStream ack, with `Nats-Msg-Id`s derived from
//!   the input so a redelivered input yields duplicates JetStream drops;
//! - [`runtime`]: the worker loop: bounded concurrency, ack after outputs are stored, nak with
//!   backoff, dead letters after `max_deliver`, progress for long handlers, drain on shutdown;
//! - [`topology`]: stream, consumer and KV definitions, created idempotently;
//! - [`process`]: the process runtime a worker's `main` hands its parts to: one connection,
//!   health and metrics, background tasks, HTTP routes, shutdown in order;
//! - [`health`]: `/healthz`, `/readyz` and `/metrics`, served the same way by every worker;
//! - [`dry_run`]: the recorder that stands in for every side effect in a dry run;
//! - [`connect`]: NATS connection options from the environment with errors that say what to do.
//!
//! Log fields follow one convention everywhere: `subject`, `event_id`, `event_type`,
//! `change_id`, `worker`, `stream_seq`, `delivered`, `env`.

pub mod connect;
pub mod dry_run;
pub mod envelope;
pub mod error;
mod handler_error;
pub mod health;
pub mod kv;
pub mod process;
pub mod publish;
pub mod runtime;
pub mod service;
mod settings;
pub mod subject;
mod tasks;
pub mod topology;
pub mod trace;

pub use connect::NatsArgs;
pub use envelope::{Encoding, Event, Outgoing};
pub use error::{BusError, HandlerError, HandlerErrorKind, Labelled};
pub use flotilla_proto::EventType;
pub use health::Health;
pub use process::{Process, Running, Tasks};
pub use publish::{Published, Publisher};
pub use runtime::{Ctx, Handler, Start, Worker, WorkerArgs, WorkerConfig};
pub use topology::{Bus, Names};
