//! Smoke tests of the benchmarks against a private nats-server.
//!
//! One test crate with a module per benchmark, so the suite links once and its tests run in
//! parallel.

mod env;
mod hop;
mod webhook;
