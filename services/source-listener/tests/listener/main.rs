//! source-listener's tests: real HTTP to the listener, real payloads of each forge, and
//! properties of the intake.
//!
//! One test crate with a module per topic, so the suite links once and its tests run in
//! parallel.

mod conformance;
mod form;
mod http;
mod properties;
mod slow_senders;
mod support;
mod tokens;
