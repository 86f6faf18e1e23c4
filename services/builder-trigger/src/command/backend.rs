//! The command backend's face to the handler: which command a run is, where its log goes,
//! and its end as an [`Outcome`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flotilla_env::hooks::RunState;

use super::detached::{self, Ended, Paths, Started};
use super::{CommandSpec, Finished, Job, Status, run_with};
use crate::run::{self, Cancel, Found, Kind, Outcome, Run};

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
    /// Where hook runs keep their log, exit and pid files without `log_dir`; unset: a
    /// `flotilla-hooks` directory under the system's temporary directory.
    pub hook_dir: Option<PathBuf>,
}

impl Settings {
    pub fn new(build: impl Into<String>) -> Settings {
        Settings {
            build: build.into(),
            test: None,
            shell: PathBuf::from("sh"),
            log_dir: None,
            pass_env: Vec::new(),
            hook_dir: None,
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

    /// The shell command `run` is: the build, the test run (`None` when none is configured),
    /// or the hook's own.
    pub fn command<'a>(&'a self, run: &'a Run) -> Option<&'a str> {
        match run.kind {
            Kind::Build => Some(&self.settings.build),
            Kind::Test => self.settings.test.as_deref(),
            Kind::Hook => run.exec.as_ref().and_then(|e| e.command.as_deref()),
        }
    }

    pub async fn run(&self, run: &Run, cancel: &Cancel) -> Outcome {
        if run.kind == Kind::Hook {
            // Hooks are not cancelled: they outlive the handler (see `detached`).
            return match self.start_hook(run, None) {
                Ok(started) => self.wait_hook(run, started).await,
                Err(outcome) => outcome,
            };
        }
        let Some(command) = self.command(run) else {
            return Outcome::new(run::Status::Succeeded);
        };
        let spec = self.spec(command, run.timeout);
        let job = job(run);
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

    fn spec(&self, command: &str, timeout: Duration) -> CommandSpec {
        CommandSpec {
            command: command.to_owned(),
            timeout,
            shell: self.settings.shell.clone(),
            pass_env: self.settings.pass_env.clone(),
        }
    }

    /// Where hook runs keep their log, exit and pid files: `FLOTILLA_LOG_DIR`, else the hook
    /// directory.
    pub fn hook_dir(&self) -> PathBuf {
        self.settings
            .log_dir
            .clone()
            .or_else(|| self.settings.hook_dir.clone())
            .unwrap_or_else(|| std::env::temp_dir().join("flotilla-hooks"))
    }

    /// Starts a hook's command detached from this worker; `note` is written to its log first
    /// (why this attempt runs). `Err` is the failed outcome of a command that could not start.
    pub fn start_hook(&self, run: &Run, note: Option<&str>) -> Result<Started, Outcome> {
        let paths = Paths::new(&self.hook_dir(), &run.id);
        let Some(command) = self.command(run) else {
            return Err(Outcome::failed(
                "the hook has no command for the command backend",
            ));
        };
        detached::start(&self.spec(command, run.timeout), &job(run), &paths, note).map_err(|why| {
            Outcome {
                log_url: paths.log.display().to_string(),
                ..Outcome::failed(why)
            }
        })
    }

    /// Waits for a hook this worker started, up to its timeout.
    pub async fn wait_hook(&self, run: &Run, started: Started) -> Outcome {
        let paths = Paths::new(&self.hook_dir(), &run.id);
        let offset = started.offset();
        let ended = detached::wait(started, &paths, &job(run), run.timeout).await;
        hook_outcome(ended, &paths, offset, run.timeout)
    }

    /// How a hook run an earlier worker recorded as `state` stands: ended (its exit file),
    /// running here (its process), gone without a result, or on another host.
    pub fn probe_hook(&self, run: &Run, state: &RunState) -> Found {
        let paths = Paths::new(&self.hook_dir(), &run.id);
        if let Some(code) = paths.exit_code() {
            let ended = Ended::Exited(detached::exit_status(code));
            return Found::Ended(hook_outcome(ended, &paths, 0, run.timeout));
        }
        let (host, boot) = (detached::host(), detached::boot_id());
        let here = host.is_some() && state.host == host && boot.is_some() && state.boot_id == boot;
        if !here {
            return Found::Elsewhere(format!(
                "it was started on host {} (boot {}), whose processes this worker cannot see",
                state.host.as_deref().unwrap_or("(unknown)"),
                state.boot_id.as_deref().unwrap_or("(unknown)")
            ));
        }
        match state.pid.or_else(|| paths.recorded_pid()) {
            Some(pid) if detached::runs(pid, &run.id) => Found::Running(Some(pid)),
            Some(pid) => Found::Dead(format!("its process {pid} is gone and left no exit status")),
            // Between recording a run and its process writing its pid there are a few
            // milliseconds in which another delivery of the same event would see no process.
            None if started_within(&state.started_at, STARTING) => Found::Starting,
            None => Found::Dead("it left no process and no exit status".into()),
        }
    }

    /// Follows a hook process an earlier worker started until it ends or `remaining` passes;
    /// `None` when it vanishes without an exit status.
    pub async fn adopt_hook(&self, run: &Run, pid: u32, remaining: Duration) -> Option<Outcome> {
        let paths = Paths::new(&self.hook_dir(), &run.id);
        let deadline = tokio::time::Instant::now() + remaining;
        match detached::adopt(pid, &run.id, &paths, &job(run), deadline).await {
            Ended::Vanished => None,
            ended => Some(hook_outcome(ended, &paths, 0, run.timeout)),
        }
    }
}

/// How long a run recorded as started may show no process before it counts as dead.
const STARTING: Duration = Duration::from_secs(30);

/// Whether `started_at` (RFC 3339) is less than `within` ago; false when it does not parse.
fn started_within(started_at: &str, within: Duration) -> bool {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(started_at, &Rfc3339)
        .is_ok_and(|at| time::OffsetDateTime::now_utc() < at + within)
}

/// What a command run of `run` is told about itself, for its log lines.
fn job(run: &Run) -> Job {
    Job {
        kind: run.kind.as_str(),
        change_id: run.change_id.clone(),
        env: run.env.clone(),
        vars: run.vars.clone(),
    }
}

/// The outcome of a hook process: its status, the last lines of its log from `offset`, and
/// the log's path.
fn hook_outcome(ended: Ended, paths: &Paths, offset: u64, timeout: Duration) -> Outcome {
    let status = match ended {
        Ended::Exited(status) if status.success() => run::Status::Succeeded,
        Ended::Exited(status) => run::Status::Failed(
            Finished {
                status: Status::Exited(status),
                tail: Vec::new(),
                elapsed: Duration::ZERO,
            }
            .summary(),
        ),
        Ended::TimedOut => run::Status::TimedOut(timeout),
        Ended::Vanished => {
            run::Status::Failed("the hook's process ended without an exit status".into())
        }
        Ended::Error(why) => run::Status::Failed(why),
    };
    Outcome {
        status,
        excerpt: detached::tail(&paths.log, offset),
        log_url: paths.log.display().to_string(),
        images: Vec::new(),
    }
}
