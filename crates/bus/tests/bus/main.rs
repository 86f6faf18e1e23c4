//! The bus against a real nats-server: the envelope on the wire, CloudEvents conformance, the
//! worker runtime, probes and reconnection.
//!
//! One test crate with a module per topic, so the suite links once and its tests run in
//! parallel.

mod cloudevents_conformance;
mod common;
mod deadline;
mod envelope;
mod health;
mod last_delivery;
mod outcomes;
mod process;
mod reconnect;
mod runtime;
