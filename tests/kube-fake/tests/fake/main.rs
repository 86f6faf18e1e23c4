//! Tests of the fake Kubernetes API server.
//!
//! One test crate with a module per topic, so the suite links once.

mod kube_client;
