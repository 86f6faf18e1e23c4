//! Background tasks of a process: watches, timers, sweeps, control-subject listeners.
//!
//! Every task belongs to the process that spawned it: it gets a token cancelled when the process
//! stops, the process awaits it before exiting, and a task that fails or panics marks the process
//! not ready (`/readyz` names it) instead of vanishing into a detached `JoinHandle`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::health::Health;

/// Spawns and tracks the background tasks of one process. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
    health: Health,
}

impl Tasks {
    pub(crate) fn new(health: Health) -> Tasks {
        Tasks {
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            health,
        }
    }

    /// Runs `task` until it returns or the process stops. `task` is handed a token that is
    /// cancelled when it should stop; it should return soon after. An `Err` or a panic is logged
    /// and reported by `/readyz` as `<name> failed: <error>` from then on.
    pub fn spawn<F, Fut, E>(&self, name: &str, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let name = name.to_owned();
        let health = self.health.clone();
        let work = AssertUnwindSafe(task(self.stop.child_token())).catch_unwind();
        self.tracker.spawn(async move {
            let failure = match work.await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e.to_string(),
                Err(panic) => format!("panicked: {}", panic_text(panic.as_ref())),
            };
            tracing::error!(task = %name, error = %failure, "background task failed");
            health.fail(&name, &failure);
        });
    }

    /// A token cancelled when background tasks are told to stop.
    pub fn token(&self) -> CancellationToken {
        self.stop.child_token()
    }

    /// Tells every task to stop, without waiting.
    pub(crate) fn cancel(&self) {
        self.stop.cancel();
    }

    /// Tells every task to stop and waits up to `grace` for them; returns how many were still
    /// running then (they are dropped with the runtime).
    pub(crate) async fn stop(&self, grace: Duration) -> usize {
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            return self.tracker.len();
        }
        0
    }

    /// Waits until every task spawned so far has finished, without stopping them.
    #[cfg(test)]
    async fn finished(&self) {
        self.tracker.close();
        self.tracker.wait().await;
        self.tracker.reopen();
    }
}

pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_task_makes_the_process_not_ready() {
        let health = Health::new();
        let tasks = Tasks::new(health.clone());
        tasks.spawn("sweep", |_| async { Err::<(), _>("store unreachable") });
        tasks.finished().await;
        let why = health.not_ready().unwrap_or_default();
        assert!(why.contains("sweep failed: store unreachable"), "{why}");
    }

    #[tokio::test]
    async fn a_panicking_task_is_reported_not_lost() {
        let health = Health::new();
        let tasks = Tasks::new(health.clone());
        tasks.spawn("watch", |_| async {
            if health_is_fine() {
                panic!("boom");
            }
            Ok::<(), String>(())
        });
        tasks.finished().await;
        let why = health.not_ready().unwrap_or_default();
        assert!(why.contains("watch failed: panicked: boom"), "{why}");
    }

    fn health_is_fine() -> bool {
        true
    }

    #[tokio::test]
    async fn stopping_cancels_and_awaits_every_task() {
        let tasks = Tasks::new(Health::new());
        let (tx, rx) = tokio::sync::oneshot::channel();
        tasks.spawn("timer", |stop| async move {
            stop.cancelled().await;
            let _ = tx.send("stopped cleanly");
            Ok::<(), String>(())
        });
        assert_eq!(tasks.stop(Duration::from_secs(5)).await, 0);
        assert_eq!(rx.await.ok(), Some("stopped cleanly"));
    }

    #[tokio::test]
    async fn a_task_that_ignores_its_token_is_counted_after_the_grace() {
        let tasks = Tasks::new(Health::new());
        tasks.spawn("stubborn", |_| async {
            std::future::pending::<()>().await;
            Ok::<(), String>(())
        });
        assert_eq!(tasks.stop(Duration::from_millis(50)).await, 1);
    }
}
