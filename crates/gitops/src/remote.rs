//! Where the GitOps repository is and how to reach it.

use std::time::Duration;

use crate::auth::Credentials;
use crate::redact_url;

/// libgit2's network timeout unless `FLOTILLA_GIT_TIMEOUT` says otherwise.
pub const DEFAULT_GIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The GitOps remote: its URL, the branch Argo CD follows, the credentials and the network
/// timeout.
#[derive(Clone)]
pub struct Remote {
    /// A path, `file://`, `ssh://`, `git@host:path` or `https://` URL.
    pub url: String,
    pub branch: String,
    pub credentials: Credentials,
    /// How long connecting, and each read or write on the connection, may take.
    pub network_timeout: Duration,
}

impl Remote {
    /// `url`'s `branch`, without credentials, with the default timeout.
    pub fn new(url: impl Into<String>, branch: impl Into<String>) -> Remote {
        Remote {
            url: url.into(),
            branch: branch.into(),
            credentials: Credentials::default(),
            network_timeout: DEFAULT_GIT_TIMEOUT,
        }
    }
}

/// The URL is shown without its credentials: a token often rides in it.
impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &redact_url(&self.url))
            .field("branch", &self.branch)
            .field("credentials", &self.credentials)
            .field("network_timeout", &self.network_timeout)
            .finish()
    }
}
