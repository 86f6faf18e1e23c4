//! sync-watcher's component tests, against a real nats-server (the bus and the registry) and
//! the fake Kubernetes API server playing Argo CD: the tests create the env's child
//! Applications and move them through OutOfSync → Progressing → Healthy as Argo CD would.
//!
//! One test crate with a module per topic, so the suite links once and its tests run in
//! parallel.

mod ancestry;
mod hooks;
mod ready;
mod reports;
mod support;
mod trace;
