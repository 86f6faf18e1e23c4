//! The GitOps repository's settings as flags and environment variables, one clap struct every
//! worker that reaches the repository flattens (and `flotilla up` once, through env-manager's
//! flags: clap refuses two flags of the same name in one command).

use std::path::PathBuf;
use std::time::Duration;

use flotilla_env::SecretFile;

use crate::auth::{Credentials, Secret};
use crate::remote::Remote;

/// The environment variables of the GitOps repository's settings.
pub mod env {
    pub const GITOPS_URL: &str = "FLOTILLA_GITOPS_URL";
    pub const GITOPS_BRANCH: &str = "FLOTILLA_GITOPS_BRANCH";
    pub const GITOPS_DIR: &str = "FLOTILLA_GITOPS_DIR";
    pub const GITOPS_SSH_KEY: &str = "FLOTILLA_GITOPS_SSH_KEY";
    pub const GITOPS_TOKEN: &str = "FLOTILLA_GITOPS_TOKEN";
    pub const GITOPS_TOKEN_FILE: &str = "FLOTILLA_GITOPS_TOKEN_FILE";
    pub const GITOPS_USERNAME: &str = "FLOTILLA_GITOPS_USERNAME";
    pub const GITOPS_SSH_PASSPHRASE_FILE: &str = "FLOTILLA_GITOPS_SSH_PASSPHRASE_FILE";
    pub const GITOPS_KNOWN_HOSTS: &str = "FLOTILLA_GITOPS_KNOWN_HOSTS";
    pub const GIT_TIMEOUT: &str = "FLOTILLA_GIT_TIMEOUT";
}

/// Where env-manager's working copy lives unless `FLOTILLA_GITOPS_DIR` says otherwise.
pub const DEFAULT_GITOPS_DIR: &str = "/var/lib/flotilla/gitops";

/// A setting of the GitOps repository that cannot be used; the message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidArgs(pub String);

/// The GitOps repository's flags; each also reads the environment variable it names.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "gitops")]
pub struct GitopsArgs {
    /// The GitOps repository: a path, or an ssh:// or https:// URL (required).
    #[arg(long, env = env::GITOPS_URL)]
    pub gitops_url: Option<String>,
    /// The branch Argo CD follows.
    #[arg(long, env = env::GITOPS_BRANCH, default_value = "main")]
    pub gitops_branch: String,
    /// Where env-manager's working copy lives (cloned there when absent); read-only mirrors of
    /// other workers live beside it. One process per directory: a second one is refused, and
    /// git lock files a killed predecessor left are removed [default: /var/lib/flotilla/gitops].
    #[arg(long, env = env::GITOPS_DIR)]
    pub gitops_dir: Option<PathBuf>,
    /// Private key for SSH URLs.
    #[arg(long, env = env::GITOPS_SSH_KEY)]
    pub gitops_ssh_key: Option<PathBuf>,
    /// Token for HTTPS URLs.
    #[arg(long, env = env::GITOPS_TOKEN, hide_env_values = true)]
    pub gitops_token: Option<String>,
    /// A file holding the token for HTTPS URLs, read at each authentication.
    #[arg(long, env = env::GITOPS_TOKEN_FILE, conflicts_with = "gitops_token")]
    pub gitops_token_file: Option<PathBuf>,
    /// The user sent with the token when the URL names none [default: x-access-token].
    #[arg(long, env = env::GITOPS_USERNAME)]
    pub gitops_username: Option<String>,
    /// A file holding the SSH key's passphrase.
    #[arg(long, env = env::GITOPS_SSH_PASSPHRASE_FILE)]
    pub gitops_ssh_passphrase_file: Option<PathBuf>,
    /// An OpenSSH known_hosts file the SSH remote's host key must be in (e.g. from
    /// `ssh-keyscan`), read at each connection [default: ~/.ssh/known_hosts, as libgit2 reads it].
    #[arg(long, env = env::GITOPS_KNOWN_HOSTS, value_name = "FILE")]
    pub gitops_known_hosts: Option<PathBuf>,
    /// How long connecting to the GitOps remote, and each read or write on the connection, may
    /// take before the git operation fails (and the event is retried later).
    #[arg(long, env = env::GIT_TIMEOUT, default_value = "30s", value_parser = humantime::parse_duration)]
    pub git_timeout: Duration,
}

impl GitopsArgs {
    /// The remote these settings name, or which setting is missing or unusable.
    pub fn remote(&self) -> Result<Remote, InvalidArgs> {
        let url = self
            .gitops_url
            .as_deref()
            .map(str::trim)
            .unwrap_or_default();
        if url.is_empty() {
            return Err(InvalidArgs(format!(
                "{} is not set: the GitOps repository, a path or an ssh:// or https:// URL",
                env::GITOPS_URL
            )));
        }
        let branch = self.gitops_branch.trim();
        if branch.is_empty() {
            return Err(InvalidArgs(format!("{} is empty", env::GITOPS_BRANCH)));
        }
        if !git2::Reference::is_valid_name(&format!("refs/heads/{branch}")) {
            return Err(InvalidArgs(format!(
                "{} is not a valid branch name: {branch:?}",
                env::GITOPS_BRANCH
            )));
        }
        if self.git_timeout.is_zero() {
            return Err(InvalidArgs(format!(
                "{} must be more than 0",
                env::GIT_TIMEOUT
            )));
        }
        Ok(Remote {
            url: url.to_owned(),
            branch: branch.to_owned(),
            credentials: self.credentials(),
            network_timeout: self.git_timeout,
        })
    }

    /// env-manager's working copy: `FLOTILLA_GITOPS_DIR`, or [`DEFAULT_GITOPS_DIR`].
    pub fn dir(&self) -> PathBuf {
        self.gitops_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_GITOPS_DIR))
    }

    /// A directory for `worker`'s [`Mirror`](crate::Mirror), beside the working copy (never
    /// inside it: env-manager removes what its branch does not track):
    /// `/var/lib/flotilla/gitops` gives `/var/lib/flotilla/gitops-sync-watcher.git`.
    pub fn mirror_dir(&self, worker: &str) -> PathBuf {
        let dir = self.dir();
        match dir.file_name() {
            Some(name) => dir.with_file_name(format!("{}-{worker}.git", name.to_string_lossy())),
            None => dir.join(format!("{worker}.git")),
        }
    }

    fn credentials(&self) -> Credentials {
        let token = match (
            self.gitops_token.as_deref().filter(|t| !t.is_empty()),
            &self.gitops_token_file,
        ) {
            (Some(token), _) => Some(Secret::Value(token.to_owned())),
            (None, Some(file)) => Some(Secret::File(SecretFile::new(
                env::GITOPS_TOKEN_FILE,
                file.clone(),
            ))),
            (None, None) => None,
        };
        Credentials {
            ssh_key: self.gitops_ssh_key.clone(),
            ssh_passphrase: self
                .gitops_ssh_passphrase_file
                .clone()
                .map(|file| Secret::File(SecretFile::new(env::GITOPS_SSH_PASSPHRASE_FILE, file))),
            username: self.gitops_username.clone().filter(|u| !u.is_empty()),
            token,
            known_hosts: self.gitops_known_hosts.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
