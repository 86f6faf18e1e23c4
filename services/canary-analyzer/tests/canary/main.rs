//! canary-analyzer's component tests, against a real nats-server (the bus and the lease
//! bucket) and real HTTP on loopback (examples/ping, measured by the web provider).
//!
//! One test crate with a module per topic, so the suite links once and its tests run in
//! parallel.

mod analysis_only;
mod cluster;
mod leases;
mod support;
