//! The command backend's face to the handler: which command a run is, where its log goes,
//! and its end as an [`Outcome`].

use std::path::PathBuf;
use std::sync::Arc;

use super::{CommandSpec, Job, Status, run_with};
use crate::run::{self, Cancel, Kind, Outcome, Run};

/// The `command` backend's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The build, run with `sh -c`.
    pub build: String,
    /// The test run; `None`: tests pass at once.
    pub test: Option<String>,
    /// The shell given `-c <command>`: `sh` from `PATH`.
    pub shell: PathBuf,
    /// Each run's whole output goes to `<dir>/<run id>.log` as well as to the process log.
    pub log_dir: Option<PathBuf>,
    /// Variables of the worker's environment commands get besides the basics
    /// (`FLOTILLA_COMMAND_ENV`).
    pub pass_env: Vec<String>,
}

impl Settings {
    pub fn new(build: impl Into<String>) -> Settings {
        Settings {
            build: build.into(),
            test: None,
            shell: PathBuf::from("sh"),
            log_dir: None,
            pass_env: Vec::new(),
        }
    }
}

/// Runs builds and tests as shell commands on this machine. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Backend {
    settings: Arc<Settings>,
}

impl Backend {
    pub fn new(settings: Settings) -> Backend {
        Backend {
            settings: Arc::new(settings),
        }
    }

    pub fn runs_tests(&self) -> bool {
        self.settings.test.is_some()
    }

    /// The shell command a run of `kind` is, `None` for tests when none is configured.
    pub fn command(&self, kind: Kind) -> Option<&str> {
        match kind {
            Kind::Build => Some(&self.settings.build),
            Kind::Test => self.settings.test.as_deref(),
        }
    }

    pub async fn run(&self, run: &Run, cancel: &Cancel) -> Outcome {
        let command = match run.kind {
            Kind::Build => &self.settings.build,
            Kind::Test => match &self.settings.test {
                Some(command) => command,
                None => return Outcome::new(run::Status::Succeeded),
            },
        };
        let spec = CommandSpec {
            command: command.clone(),
            timeout: run.timeout,
            shell: self.settings.shell.clone(),
            pass_env: self.settings.pass_env.clone(),
        };
        let job = Job {
            kind: run.kind.as_str(),
            change_id: run.change_id.clone(),
            env: run.env.clone(),
            vars: run.vars.clone(),
        };
        let log_file = self
            .settings
            .log_dir
            .as_ref()
            .map(|dir| dir.join(format!("{}.log", run.id)));
        let finished = run_with(&spec, &job, cancel, log_file.as_deref()).await;
        let status = match &finished.status {
            _ if finished.succeeded() => run::Status::Succeeded,
            Status::TimedOut(after) => run::Status::TimedOut(*after),
            Status::Cancelled(why) => run::Status::Cancelled(why.clone()),
            _ => run::Status::Failed(finished.summary()),
        };
        Outcome {
            status,
            excerpt: finished.tail,
            log_url: log_file
                .map(|path| path.display().to_string())
                .unwrap_or_default(),
            images: Vec::new(),
        }
    }
}
