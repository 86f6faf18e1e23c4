//! Cross-binary end-to-end tests of Flotilla live in `tests/`; `src/bin/` holds the fixture
//! binaries they start as separate processes.
//!
//! The library is the reliability suite's harness, shared by its CI tests (`tests/e2e/`) and
//! its full run: private NATS servers (one node or a JetStream cluster, [`nats`]), the six
//! workers as separate processes ([`fleet`], [`process`], [`binaries`]) on a real GitOps
//! repository ([`gitops`]), a PostSync hook ([`hook`]), signed webhooks ([`webhook`]), and
//! reading back what a run stored ([`events`]).

pub mod benches;
pub mod binaries;
pub mod chaos;
pub mod check;
pub mod corpus;
pub mod document;
pub mod events;
pub mod fleet;
pub mod gitops;
pub mod hook;
pub mod hostile;
pub mod load;
pub mod machine;
pub mod nats;
pub mod plan;
pub mod poison;
pub mod process;
pub mod report;
pub mod scenario;
pub mod tracker;
pub mod webhook;
