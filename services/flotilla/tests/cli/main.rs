//! End-to-end tests of the `flotilla` binary: each test starts its own nats-server, runs the
//! real binary against it and checks what JetStream stored.
//!
//! One test crate with a module per command, so the suite links once and its tests run in
//! parallel.

mod analysis;
mod demo;
mod deploy;
mod dlq;
mod envs;
mod init;
mod publish;
mod replay;
mod replay_dry_run;
mod runs;
mod support;
mod tail;
mod trace;
mod up;
mod usage;
mod webhook;
