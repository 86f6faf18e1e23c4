//! builder-trigger's component tests: the worker, its http and job backends, and the binary,
//! against a real nats-server.
//!
//! One test crate with a module per topic, so the suite links once and its tests run in
//! parallel.

mod binary;
mod hook_crash;
mod hooks;
mod http;
mod job;
mod support;
mod worker;
