//! A process once serving: waiting for its stop, and stopping it in order.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::BusError;
use crate::health::{Health, Ready};
use crate::tasks::Tasks;
use crate::topology::Bus;

/// A process serving: wait for it with [`Running::stopped`] or end it with [`Running::stop`].
#[derive(Debug)]
pub struct Running {
    pub(super) addr: SocketAddr,
    pub(super) bus: Bus,
    pub(super) health: Health,
    pub(super) shutdown: CancellationToken,
    pub(super) tasks: Tasks,
    pub(super) http: tokio::task::JoinHandle<()>,
    pub(super) workers: JoinSet<(String, Result<(), BusError>)>,
    pub(super) grace: Duration,
    pub(super) _serving: Ready,
}

impl Running {
    /// Where the HTTP server listens (the real port when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Cancelled when the process is asked to stop.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Waits until `/readyz` would answer 200; `Err` says what still was not ready at `within`.
    pub async fn ready(&self, within: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let Some(why) = self.health.not_ready() else {
                return Ok(());
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(why);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Asks the process to stop and waits until it has.
    pub async fn stop(self) -> Result<(), BusError> {
        self.shutdown.cancel();
        self.stopped().await
    }

    /// Runs until the process is asked to stop (or a worker cannot start), then drains: workers
    /// finish in-flight events within their grace, background tasks are stopped and awaited,
    /// the HTTP server finishes its requests, buffered acks are flushed. `Err` is the first
    /// worker's failure.
    pub async fn stopped(mut self) -> Result<(), BusError> {
        let mut failure = None;
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                joined = self.workers.join_next() => match joined {
                    Some(result) => {
                        if let Some(e) = worker_failure(result) {
                            // A worker that cannot run takes its process down: restarting it
                            // is the orchestrator's job, and it sees the exit code.
                            failure.get_or_insert(e);
                            self.shutdown.cancel();
                        }
                    }
                    // No workers, or all returned: serve routes and tasks until stopped.
                    None => self.shutdown.cancelled().await,
                },
            }
        }
        while let Some(result) = self.workers.join_next().await {
            if let Some(e) = worker_failure(result) {
                failure.get_or_insert(e);
            }
        }
        let abandoned = self.tasks.stop(self.grace).await;
        if abandoned > 0 {
            tracing::warn!(abandoned, grace = ?self.grace, "background tasks did not stop in time");
        }
        if tokio::time::timeout(self.grace, &mut self.http)
            .await
            .is_err()
        {
            tracing::warn!(grace = ?self.grace, "in-flight HTTP requests did not finish in time");
            self.http.abort();
        }
        // Bounded: with the server gone a flush waits for a reconnect.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.bus.client().flush()).await;
        failure.map_or(Ok(()), Err)
    }
}

/// A process dropped without [`Running::stop`] (an early return, a failed test) still stops:
/// its HTTP server and tasks are told to, without waiting for them.
impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.tasks.cancel();
    }
}

fn worker_failure(
    joined: Result<(String, Result<(), BusError>), tokio::task::JoinError>,
) -> Option<BusError> {
    match joined {
        Ok((_, Ok(()))) => None,
        Ok((name, Err(e))) => {
            tracing::error!(worker = %name, error = %e, "worker stopped");
            Some(e)
        }
        Err(e) => {
            tracing::error!(error = %e, "worker task ended abnormally");
            Some(BusError::Task(e.to_string()))
        }
    }
}
