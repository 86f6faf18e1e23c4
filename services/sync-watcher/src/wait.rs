//! One env's wait for readiness, as a pure state machine: what Argo CD and the PostSync reports
//! said of each app, and how the env's provision hooks stand, in; the verdict and when to look
//! again, out. Time is passed in, so every rule (the stable window, the timeout, a stale
//! Healthy, a hook still running at the timeout) is tested without sleeping.

use std::collections::BTreeMap;
use std::time::Duration;

use flotilla_env::hooks::RunStatus;
use tokio::time::Instant;

use crate::app::AppStatus;

/// How long past its own deadline a running provision hook still holds the env: its worker
/// kills it at the deadline and records the end a moment later.
pub const HOOK_GRACE: Duration = Duration::from_secs(30);

/// A provision hook of the env's change, as the registry record says it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookWait {
    pub name: String,
    pub state: RunStatus,
    /// A running hook's deadline.
    pub deadline: Option<Instant>,
    /// Why it failed, with its last lines of output.
    pub reason: String,
}

/// What the env of a change is waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub env: String,
    pub change_id: String,
    /// The GitOps commit env-manager pushed: apps count only at it or a later commit holding it.
    pub revision: String,
    /// When the wait began (the request), for the timeout and the reported duration.
    pub started: Instant,
    pub deadline: Instant,
    apps: BTreeMap<String, AppWait>,
    /// The change's provision hooks: the env is ready only once every one succeeded.
    hooks: Vec<HookWait>,
}

/// Where one app of the env stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct AppWait {
    /// Seen Synced and Healthy at the right revision since then, without a break.
    ready_since: Option<Instant>,
    /// A PostSync hook reported the app succeeded (for this change).
    reported: bool,
    /// Why the app failed, if it did.
    failed: Option<String>,
    /// The last thing Argo CD said of it, for a timeout's message.
    last: Option<String>,
}

/// The verdict on an env.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not yet; look again at `next` (the end of a stable window or the deadline).
    Waiting {
        next: Instant,
    },
    Ready,
    Failed {
        reason: String,
    },
}

/// How an app's Argo CD status relates to the pushed revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// At the pushed revision or a later one that contains it.
    PushedOrLater,
    /// Anywhere else (an older revision, another branch, none yet).
    Elsewhere,
}

impl Wait {
    /// A wait for every app in `apps`, begun at `started`, failing at `started + timeout`.
    pub fn new(
        env: impl Into<String>,
        change_id: impl Into<String>,
        revision: impl Into<String>,
        apps: impl IntoIterator<Item = String>,
        started: Instant,
        timeout: Duration,
    ) -> Wait {
        Wait {
            env: env.into(),
            change_id: change_id.into(),
            revision: revision.into(),
            started,
            deadline: started + timeout,
            apps: apps
                .into_iter()
                .map(|app| (app, AppWait::default()))
                .collect(),
            hooks: Vec::new(),
        }
    }

    /// How the change's provision hooks stand now (from the env's record).
    pub fn hooks(&mut self, hooks: Vec<HookWait>) {
        self.hooks = hooks;
    }

    /// The apps the env waits for.
    pub fn apps(&self) -> impl Iterator<Item = &str> {
        self.apps.keys().map(String::as_str)
    }

    /// Argo CD's status of one of the env's apps, `at` the revision it names (for a failure:
    /// the failed operation's revision). A status about an older revision neither readies nor
    /// fails the app: after a push Argo CD still shows the previous sync for a moment, Healthy
    /// or Degraded.
    pub fn observe(&mut self, status: &AppStatus, at: At, now: Instant) {
        let Some(app) = self.apps.get_mut(&status.app) else {
            return;
        };
        app.last = Some(status.describe());
        if at == At::Elsewhere {
            app.ready_since = None;
            return;
        }
        if let Some(failure) = status.failure() {
            app.failed.get_or_insert(failure);
            app.ready_since = None;
            return;
        }
        if status.looks_ready() {
            app.ready_since.get_or_insert(now);
        } else {
            app.ready_since = None;
        }
    }

    /// The Application of an app is gone: it is no longer seen ready.
    pub fn forget(&mut self, app: &str) {
        if let Some(app) = self.apps.get_mut(app) {
            app.ready_since = None;
            app.last = Some("its Application was deleted".into());
        }
    }

    /// A PostSync hook's report for one of the env's apps.
    pub fn report(&mut self, app: &str, succeeded: bool, message: &str) {
        let Some(wait) = self.apps.get_mut(app) else {
            return;
        };
        if succeeded {
            wait.reported = true;
        } else {
            let reason = if message.is_empty() {
                format!("{app}: its PostSync hook reported a failure")
            } else {
                format!("{app}: {message}")
            };
            wait.failed.get_or_insert(reason);
        }
    }

    /// The verdict at `now`: failed at the first failure (an app's, or a provision hook's) or
    /// at the deadline, ready when every app was reported, or seen ready for the whole `stable`
    /// window, and every provision hook succeeded. A hook still running at the deadline holds
    /// the env until its own deadline (and [`HOOK_GRACE`]).
    pub fn verdict(&self, now: Instant, stable: Duration) -> Verdict {
        if let Some(reason) = self.apps.values().find_map(|a| a.failed.clone()) {
            return Verdict::Failed { reason };
        }
        if let Some(hook) = self.hooks.iter().find(|h| h.state == RunStatus::Failed) {
            return Verdict::Failed {
                reason: format!("provision hook `{}` failed: {}", hook.name, hook.reason),
            };
        }
        let settled = |app: &AppWait| {
            app.reported || app.ready_since.is_some_and(|since| now >= since + stable)
        };
        let provisioned = self
            .hooks
            .iter()
            .all(|h| matches!(h.state, RunStatus::Succeeded | RunStatus::Skipped));
        if self.apps.values().all(settled) && provisioned {
            return Verdict::Ready;
        }
        if now >= self.deadline {
            if let Some(verdict) = self.hooks_at_deadline(now) {
                return verdict;
            }
            let pending = self
                .apps
                .iter()
                .filter(|(_, app)| !settled(app))
                .map(|(name, app)| {
                    let last = app
                        .last
                        .as_deref()
                        .unwrap_or("no Application seen, no report");
                    format!("{name} ({last})")
                })
                .collect::<Vec<_>>()
                .join(", ");
            return Verdict::Failed {
                reason: format!(
                    "not ready after {}: {pending}",
                    humantime::format_duration(round(self.deadline - self.started))
                ),
            };
        }
        // Look again when the first stable window ends, or at the deadline.
        let next = self
            .apps
            .values()
            .filter(|app| !settled(app))
            .filter_map(|app| app.ready_since.map(|since| since + stable))
            .fold(self.deadline, Instant::min);
        Verdict::Waiting { next }
    }
}

impl Wait {
    /// At the deadline: waiting while a hook still runs within its own deadline; failed when a
    /// hook never started or overran; `None` when the hooks are not what holds the env.
    fn hooks_at_deadline(&self, now: Instant) -> Option<Verdict> {
        let running = || self.hooks.iter().filter(|h| h.state == RunStatus::Running);
        if let Some(until) = running()
            .filter_map(|h| h.deadline.map(|d| d + HOOK_GRACE))
            .filter(|until| *until > now)
            .min()
        {
            return Some(Verdict::Waiting { next: until });
        }
        let waited = humantime::format_duration(round(self.deadline - self.started));
        if let Some(hook) = self
            .hooks
            .iter()
            .find(|h| matches!(h.state, RunStatus::Pending | RunStatus::Unknown))
        {
            return Some(Verdict::Failed {
                reason: format!(
                    "provision hook `{}` never started: builder-trigger did not run it within {waited} (is it running, with the same FLOTILLA_HOOKS as env-manager?)",
                    hook.name
                ),
            });
        }
        running().next().map(|hook| Verdict::Failed {
            reason: format!(
                "provision hook `{}` still running past its deadline (waited {waited})",
                hook.name
            ),
        })
    }
}

/// A duration to the second, for messages.
fn round(duration: Duration) -> Duration {
    Duration::from_secs(duration.as_secs())
}

#[cfg(test)]
mod tests;
