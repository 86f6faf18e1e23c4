//! What every backend is given and what it reports: a [`Run`] in, an [`Outcome`] out.
//!
//! The handler describes a build or test run once, the same way for every backend (the
//! `FLOTILLA_*` variables of the change, a stable id, a timeout, a way to cancel it), and turns
//! whatever the backend reports into `build.*` or `tests.*` events. A backend never fails the
//! handler: a run that cannot even start is a failed outcome with the reason.

use std::time::Duration;

use flotilla_bus::dry_run::Recorder;
use flotilla_env::hooks::RunState;

mod record;

use crate::command;
use crate::http;
use crate::job;
// The run and its outcome live in a leaf module the backends import without importing this one.
pub use crate::run::{Cancel, EXCERPT_LINES, Exec, Found, Kind, Outcome, Run, Status, last_lines};

/// The backend builds and tests run on.
// One per process, moved rather than copied around: the size of the kube client is no cost.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Runner {
    Command(command::Backend),
    Http(http::Backend),
    Job(job::Backend),
    /// A dry run on the backend inside: each run is recorded and succeeds at once
    /// ([`Runner::recording`]).
    Recording(Box<Runner>, Recorder),
}

/// A hook run started by [`Runner::start_hook`].
#[derive(Debug)]
pub enum HookHandle {
    /// The command backend's process, detached from this worker (boxed: the handle is moved
    /// around, the process is not).
    Process(Box<crate::command::detached::Started>),
    /// The other backends start and follow their run in one go.
    Backend,
}

impl HookHandle {
    /// The process running the hook, for the record.
    pub fn pid(&self) -> Option<u32> {
        match self {
            HookHandle::Process(started) => Some(started.pid),
            HookHandle::Backend => None,
        }
    }
}

impl Runner {
    /// Runs `run` to its end, its timeout or its cancellation.
    pub async fn run(&self, run: &Run, cancel: &Cancel) -> Outcome {
        match self {
            Runner::Command(backend) => backend.run(run, cancel).await,
            Runner::Http(backend) => backend.run(run, cancel).await,
            Runner::Job(backend) => backend.run(run, cancel).await,
            Runner::Recording(backend, recorder) => record::record(backend, recorder, run),
        }
    }

    /// This backend in a dry run: nothing is run, created or requested; each run is recorded
    /// in `recorder` (`would run build of <change> with <backend>: <command or request>`) and
    /// succeeds, so the handler takes the path a successful run leads to.
    pub fn recording(self, recorder: Recorder) -> Runner {
        match self {
            Runner::Recording(backend, _) => Runner::Recording(backend, recorder),
            backend => Runner::Recording(Box::new(backend), recorder),
        }
    }

    /// Lets the backend use the NATS connection: the http backend hands callbacks that reach
    /// this replica for runs waiting in another to that one, over core NATS.
    pub async fn attach(&self, client: &async_nats::Client, tasks: &flotilla_bus::Tasks) {
        if let Runner::Http(backend) = self {
            backend.attach(client, tasks).await;
        }
    }

    /// Whether this backend has a test run configured; without one tests pass at once.
    pub fn runs_tests(&self) -> bool {
        match self {
            Runner::Command(backend) => backend.runs_tests(),
            Runner::Http(backend) => backend.runs_tests(),
            Runner::Job(_) => true,
            Runner::Recording(backend, _) => backend.runs_tests(),
        }
    }

    /// Starts a hook run. The command backend starts its process (whose pid the caller records
    /// before waiting); the others start it in [`Runner::finish_hook`]. `note` says in the log
    /// why this attempt runs. `Err` is the failed outcome of a run that could not start.
    pub fn start_hook(&self, run: &Run, note: Option<&str>) -> Result<HookHandle, Outcome> {
        match self {
            Runner::Command(backend) => backend
                .start_hook(run, note)
                .map(|started| HookHandle::Process(Box::new(started))),
            _ => Ok(HookHandle::Backend),
        }
    }

    /// Runs a started hook to its end or its timeout; it is never cancelled.
    pub async fn finish_hook(&self, run: &Run, handle: HookHandle) -> Outcome {
        match (self, handle) {
            (Runner::Command(backend), HookHandle::Process(started)) => {
                backend.wait_hook(run, *started).await
            }
            _ => self.run(run, &Cancel::new()).await,
        }
    }

    /// How a hook run an earlier worker recorded as running (`state`) stands.
    pub async fn probe_hook(&self, run: &Run, state: &RunState) -> Found {
        match self {
            Runner::Command(backend) => backend.probe_hook(run, state),
            Runner::Job(backend) => match backend.exists(&run.id).await {
                Ok(true) => Found::Running(None),
                Ok(false) => Found::Dead(format!(
                    "its Job {} is gone without a recorded result",
                    run.id
                )),
                Err(e) => Found::Unknown(e),
            },
            Runner::Http(_) => Found::Dead(
                "the http backend cannot follow a CI run an earlier worker started".into(),
            ),
            Runner::Recording(..) => Found::Dead("a dry run follows no earlier run".into()),
        }
    }

    /// Waits for a hook run found still running (`pid` for the command backend), at most
    /// `remaining`; `None` when it vanished without a result.
    pub async fn adopt_hook(
        &self,
        run: &Run,
        pid: Option<u32>,
        remaining: Duration,
    ) -> Option<Outcome> {
        match (self, pid) {
            (Runner::Command(backend), Some(pid)) => backend.adopt_hook(run, pid, remaining).await,
            // The Job of the run exists: creating it again finds it and waits for it.
            (Runner::Job(_), _) => {
                let run = Run {
                    timeout: remaining,
                    ..run.clone()
                };
                Some(self.run(&run, &Cancel::new()).await)
            }
            _ => None,
        }
    }

    /// The backend itself, seen through a dry run's recording.
    pub fn base(&self) -> &Runner {
        match self {
            Runner::Recording(inner, _) => inner.base(),
            other => other,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Runner::Command(_) => "command",
            Runner::Http(_) => "http",
            Runner::Job(_) => "job",
            Runner::Recording(backend, _) => backend.name(),
        }
    }
}
