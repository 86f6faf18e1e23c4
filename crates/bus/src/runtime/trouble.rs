//! What keeps a worker from doing its work right now, for `/readyz`: dead letters it cannot
//! store, handlers that keep running past their deadline, a handler stuck past it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Handler timeouts in a row (no attempt finishing in time between them) that make a worker
/// not ready: one is a slow remote, several are a worker that cannot make progress.
pub(super) const TIMEOUTS_IN_A_ROW: u32 = 3;

/// One worker's troubles. Shared by its delivery tasks and its readiness check.
#[derive(Debug)]
pub(super) struct Trouble {
    deadline: Duration,
    /// Why the last dead-letter attempt failed; `None` once one succeeds.
    dead_letter: Mutex<Option<String>>,
    timeouts_in_a_row: AtomicU32,
    /// Handlers running now: id, start, subject.
    running: Mutex<Vec<(u64, Instant, String)>>,
    next_id: AtomicU64,
}

impl Trouble {
    pub(super) fn new(deadline: Duration) -> Trouble {
        Trouble {
            deadline,
            dead_letter: Mutex::new(None),
            timeouts_in_a_row: AtomicU32::new(0),
            running: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
        }
    }

    pub(super) fn dead_letter_failed(&self, error: &str) {
        *lock(&self.dead_letter) = Some(error.to_owned());
    }

    pub(super) fn dead_letter_stored(&self) {
        *lock(&self.dead_letter) = None;
    }

    /// A handler ran past its deadline and was cancelled.
    pub(super) fn timed_out(&self) {
        self.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed);
    }

    /// A handler finished (well or not) within its deadline.
    pub(super) fn finished_in_time(&self) {
        self.timeouts_in_a_row.store(0, Ordering::Relaxed);
    }

    /// Notes a running handler until the guard drops. A
    /// handler that blocks its thread cannot be cancelled; this is how it still shows.
    pub(super) fn running(&self, subject: &str) -> Running<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.running).push((id, Instant::now(), subject.to_owned()));
        Running { trouble: self, id }
    }

    /// `Some(why)` while the worker cannot do its work.
    pub(super) fn why(&self) -> Option<String> {
        let mut why = Vec::new();
        if let Some(error) = lock(&self.dead_letter).as_ref() {
            why.push(format!("cannot store dead letters: {error}"));
        }
        let timeouts = self.timeouts_in_a_row.load(Ordering::Relaxed);
        let deadline = humantime::format_duration(self.deadline);
        if timeouts >= TIMEOUTS_IN_A_ROW {
            why.push(format!(
                "{timeouts} handler attempts in a row ran past the deadline of {deadline}"
            ));
        }
        // The grace beyond the deadline lets the runtime cancel a handler that yields.
        let stuck_after = self.deadline + Duration::from_secs(1).min(self.deadline);
        if let Some((_, started, subject)) = lock(&self.running)
            .iter()
            .find(|(_, started, _)| started.elapsed() > stuck_after)
        {
            let ran = Duration::from_millis(started.elapsed().as_millis() as u64 / 100 * 100);
            why.push(format!(
                "a handler of {subject} has run for {}, past the deadline of {deadline}",
                humantime::format_duration(ran)
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }
}

/// A running handler, noted until dropped.
pub(super) struct Running<'a> {
    trouble: &'a Trouble,
    id: u64,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        lock(&self.trouble.running).retain(|(id, _, _)| *id != self.id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
