//! The environment contract shared by the workers that create, watch and remove environments
//! (env-manager, builder-trigger, sync-watcher, the reaper):
//!
//! - [`registry`]: one JSON record per env in the KV bucket `flotilla-envs`, with a typed
//!   [`State`], written with compare-and-set on the key's revision;
//! - [`envid`]: env ids and every other DNS-1123 label, made by one function;
//! - [`preview`]: the pull-request label that gives a preview, one setting for every worker;
//! - [`secret`]: secrets read from the files that `*_FILE` variables name;
//! - [`hooks`]: environment hooks (provision / deprovision): their file and their runs as the
//!   registry records them.
//!
//! [`Error`] says which of these failed, keeping the cause.

mod dry_run;
pub mod envid;
pub mod error;
pub mod hooks;
pub mod preview;
pub mod redact;
pub mod registry;
pub mod secret;
pub mod state;

pub use envid::{Kind, dns_label, is_dns_label};
pub use error::Error;
pub use hooks::{HookState, Hooks, HooksArgs};
pub use preview::PreviewArgs;
pub use registry::{App, EnvRecord, Registry};
pub use secret::SecretFile;
pub use state::State;
