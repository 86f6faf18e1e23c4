//! Access to the GitOps repository, shared by the workers that reach it: the settings (one
//! clap struct, [`GitopsArgs`], so every worker reads the same `FLOTILLA_GITOPS_*` variables),
//! the credentials and libgit2's callbacks that present them, SSH host-key checking, URLs
//! shown without their secrets, libgit2's network timeouts, [`Mirror`], a read-only bare
//! clone for questions about the branch's history ("is this revision a descendant of that
//! one?"), and [`locks`]: repositories kept writable after a process killed while holding one
//! of git's lock files.
//!
//! env-manager writes the repository through its own working copy on top of these pieces;
//! readers open a [`Mirror`] in a directory of their own.

pub mod args;
pub mod auth;
mod error;
pub mod locks;
mod mirror;
mod remote;
mod timeout;

pub use args::{GitopsArgs, InvalidArgs, env};
pub use auth::{Answer, Credentials, HostKey, Secret, TOKEN_USER};
pub use error::GitError;
/// GitOps URLs as they may be logged: one redaction for every URL Flotilla shows.
pub use flotilla_env::redact::url as redact_url;
pub use mirror::Mirror;
pub use remote::{DEFAULT_GIT_TIMEOUT, Remote};
pub use timeout::set_network_timeout;
