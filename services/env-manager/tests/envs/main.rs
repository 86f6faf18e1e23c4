//! env-manager's component tests: the worker and its flows, the registry, the GitOps remote
//! over HTTP and SSH, and the Argo CD example, against real servers.
//!
//! One test crate with a module per topic, so the suite links once and its tests run in
//! parallel.

mod bare;
mod deploy;
mod flows;
mod hibernate;
mod http_remote;
mod registry;
mod ssh_remote;
mod support;
mod trust;
mod worker;
