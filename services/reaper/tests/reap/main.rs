//! The reaper's component tests, against a real nats-server (the bus and the registry), a real
//! GitOps repository in a temp dir with env-manager running on it, and the fake Kubernetes API
//! server playing Argo CD and the cluster's Namespaces.
//!
//! One test crate with a module per topic, so the suite links once and its tests run in
//! parallel.

mod hibernate;
mod orphans;
mod support;
mod timers;
mod verify;
