//! What every backend is given and what it reports: a [`Run`] in, an [`Outcome`] out.
//!
//! The handler describes a build or test run once, the same way for every backend (the
//! `FLOTILLA_*` variables of the change, a stable id, a timeout, a way to cancel it), and turns
//! whatever the backend reports into `build.*` or `tests.*` events. A backend never fails the
//! handler: a run that cannot even start is a failed outcome with the reason.

use flotilla_bus::dry_run::Recorder;

mod record;

use crate::command;
use crate::http;
use crate::job;
// The run and its outcome live in a leaf module the backends import without importing this one.
pub use crate::run::{Cancel, EXCERPT_LINES, Kind, Outcome, Run, Status, last_lines};

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

    pub fn name(&self) -> &'static str {
        match self {
            Runner::Command(_) => "command",
            Runner::Http(_) => "http",
            Runner::Job(_) => "job",
            Runner::Recording(backend, _) => backend.name(),
        }
    }
}
