//! Commit statuses: what env-manager tells the change's commit on GitHub as it moves along
//! (`flotilla/env` pending → success/failure, `flotilla/tests`, `flotilla/canary`).
//!
//! Reporting is best effort: a status that cannot be posted is logged, and never
//! holds up or fails the event it reports on (GitHub being down must not stop deployments).

use crate::github::{Github, GithubRepo, State, Status};

/// The context of the environment's status.
pub const ENV: &str = "flotilla/env";
/// The context of the tests' status.
pub const TESTS: &str = "flotilla/tests";
/// The context of the canary's status.
pub const CANARY: &str = "flotilla/canary";

/// Posts commit statuses when a GitHub token is configured; does nothing otherwise.
#[derive(Debug, Clone, Default)]
pub struct Reporter {
    github: Option<Github>,
}

impl Reporter {
    pub fn new(github: Option<Github>) -> Reporter {
        Reporter { github }
    }

    /// Sets `state` with `description` in `context` on commit `sha` of `repo` (`owner/name`).
    /// Without a token, a repository or a commit, there is nothing to report on.
    pub async fn status(
        &self,
        repo: &str,
        sha: &str,
        context: &str,
        state: State,
        description: String,
        target_url: Option<String>,
    ) {
        let Some(github) = &self.github else {
            return;
        };
        let Some(repository) = GithubRepo::parse(repo).filter(|_| !sha.is_empty()) else {
            tracing::debug!(repo, sha, context, "no repository or commit to report on");
            return;
        };
        let status = Status {
            state,
            context: context.to_owned(),
            description,
            target_url: target_url.filter(|u| !u.is_empty()),
        };
        match github.post_status(&repository, sha, &status).await {
            Ok(()) => {
                tracing::debug!(
                    repo,
                    sha,
                    context,
                    state = state.as_str(),
                    "commit status set"
                );
            }
            Err(e) => {
                tracing::warn!(repo, sha, context, state = state.as_str(), error = %e, "commit status not set");
            }
        }
    }
}
