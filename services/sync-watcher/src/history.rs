//! Whether one GitOps commit holds another. Argo CD's child Applications follow the branch, so
//! soon after env-manager's push an app reports a later revision than the one pushed; it counts
//! when that revision has the pushed one in its history, which only the repository can say.

use futures::future::BoxFuture;

/// Answers ancestry questions about the GitOps repository.
pub trait History: Send + Sync + 'static {
    /// Whether `later` is `earlier` or has it in its history.
    fn contains<'a>(
        &'a self,
        later: &'a str,
        earlier: &'a str,
    ) -> BoxFuture<'a, Result<bool, String>>;
}

/// Without the GitOps repository: only the pushed revision itself counts. Correct but slower to
/// see readiness when the branch moves on meanwhile (a report still readies the app).
#[derive(Debug, Clone, Copy, Default)]
pub struct SameRevisionOnly;

impl History for SameRevisionOnly {
    fn contains<'a>(
        &'a self,
        later: &'a str,
        earlier: &'a str,
    ) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move { Ok(later == earlier) })
    }
}

/// The GitOps repository, through a read-only mirror: a revision counts when the pushed one is
/// in its history (fetched when either is not known yet).
impl History for flotilla_gitops::Mirror {
    fn contains<'a>(
        &'a self,
        later: &'a str,
        earlier: &'a str,
    ) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            flotilla_gitops::Mirror::contains(self, later, earlier)
                .await
                .map_err(|e| e.to_string())
        })
    }
}
