//! Cross-binary end-to-end tests: Flotilla's binaries as separate processes against a real
//! nats-server.
//!
//! One test crate with a module per topic, so the suite links once.

mod lease_cluster;
mod registry_cluster;
mod reliability;
mod runtime_process;
