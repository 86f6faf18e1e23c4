//! The `command` backend: a build or test job is a shell command run on this machine.
//!
//! The command runs as `sh -c <command>` in its own process group, with the change described in
//! `FLOTILLA_*` variables and, of the worker's own environment, only the basics ([`BASE_ENV`])
//! and the names listed in `FLOTILLA_COMMAND_ENV`. Each line it writes goes to
//! the log (with the change id) as it comes, and the last lines are kept for the failure
//! reason. When the command exits, times out or its handler is abandoned, the whole group is
//! killed, so nothing it started in the background outlives it.
//!
//! A command that exits non-zero, is killed, times out or cannot be started is an outcome
//! ([`Finished`]), never an error: the caller reports it as a failed build or test run.
//!
//! Environment hooks run differently ([`detached`]): a hook is never killed with its worker
//! (interrupting a Terraform apply leaves it locked), so it writes to its log file rather than
//! a pipe and leaves its exit status in a file for whichever worker follows it.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::task::JoinSet;

use crate::run::Cancel;

/// Output lines kept for a failure reason.
const TAIL_LINES: usize = 20;
/// Longest line logged as one; longer output is split.
const MAX_LINE: usize = 4096;
/// Most output quoted in a failure reason.
const REASON_TAIL_BYTES: usize = 4096;
/// How long output may still be read once the command is gone.
const DRAIN_OUTPUT: Duration = Duration::from_secs(2);

/// A command and how long it may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub command: String,
    pub timeout: Duration,
    /// The shell given `-c <command>`: `sh` from `PATH`.
    pub shell: PathBuf,
    /// Variables of the worker's environment passed on besides [`BASE_ENV`].
    pub pass_env: Vec<String>,
}

impl CommandSpec {
    pub fn new(command: impl Into<String>, timeout: Duration) -> CommandSpec {
        CommandSpec {
            command: command.into(),
            timeout,
            shell: PathBuf::from("sh"),
            pass_env: Vec::new(),
        }
    }
}

/// One run of a command: what it is for (logged with each line) and its variables.
#[derive(Debug, Clone, Default)]
pub struct Job {
    /// `build` or `test`.
    pub kind: &'static str,
    pub change_id: String,
    pub env: Option<String>,
    pub vars: Vec<(&'static str, String)>,
}

/// How a command ended.
#[derive(Debug)]
pub enum Status {
    Exited(ExitStatus),
    TimedOut(Duration),
    /// Cancelled, with the reason; its process group was killed.
    Cancelled(String),
    /// It could not be started, or the worker lost track of it.
    Error(String),
}

/// A finished run.
#[derive(Debug)]
pub struct Finished {
    pub status: Status,
    /// The last lines of output, oldest first.
    pub tail: Vec<String>,
    pub elapsed: Duration,
}

impl Finished {
    pub fn succeeded(&self) -> bool {
        matches!(&self.status, Status::Exited(s) if s.success())
    }

    /// One line: `exit status 3`, `timed out after 1s`, ...
    pub fn summary(&self) -> String {
        match &self.status {
            Status::Exited(status) => match (status.code(), status.signal()) {
                (Some(code), _) => format!("exit status {code}"),
                (None, Some(signal)) => format!("killed by signal {signal}"),
                (None, None) => status.to_string(),
            },
            Status::TimedOut(after) => format!(
                "timed out after {}; its process group was killed",
                humantime::format_duration(*after)
            ),
            Status::Cancelled(why) => format!("{why}; its process group was killed"),
            Status::Error(e) => e.clone(),
        }
    }

    /// The summary and the last lines of output: what a person needs to see why it failed.
    pub fn reason(&self) -> String {
        let mut quoted = Vec::new();
        let mut bytes = 0;
        for line in self.tail.iter().rev() {
            bytes += line.len() + 1;
            if bytes > REASON_TAIL_BYTES && !quoted.is_empty() {
                break;
            }
            quoted.push(line.as_str());
        }
        if quoted.is_empty() {
            return self.summary();
        }
        quoted.reverse();
        format!("{}; last output:\n{}", self.summary(), quoted.join("\n"))
    }
}

/// What a command gets of the worker's environment besides the names listed in
/// `FLOTILLA_COMMAND_ENV` (and every `LC_*`): enough for a shell and the usual tools to work.
pub const BASE_ENV: &[&str] = &[
    "PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL", "TERM",
];

/// Whether the worker's variable `name` reaches commands, `listed` being the names the user
/// passes on.
pub fn passed(name: &str, listed: &[String]) -> bool {
    BASE_ENV.contains(&name) || name.starts_with("LC_") || listed.iter().any(|l| l == name)
}

/// Names that `FLOTILLA_COMMAND_ENV` may not pass on: Flotilla's own settings and credentials
/// (the change's `FLOTILLA_*` variables are set for each run anyway).
fn refused(name: &str) -> bool {
    name.starts_with("FLOTILLA_")
        || name.starts_with("NATS_")
        || matches!(
            name,
            "GITHUB_WEBHOOK_SECRET" | "GITLAB_WEBHOOK_TOKEN" | "GENERIC_WEBHOOK_TOKEN"
        )
}

/// The names of a comma-separated `FLOTILLA_COMMAND_ENV`; why one cannot be passed on.
pub fn parse_env_list(spec: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for name in spec.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("`{name}` is not a variable name"));
        }
        if refused(name) {
            return Err(format!(
                "`{name}` is one of Flotilla's own settings or credentials, never passed to commands"
            ));
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// `sh -c <command>` with the job's variables and, of the worker's environment (`inherited`),
/// only the allowed names: a build script (or whatever it downloads) must not see Flotilla's
/// credentials (bus, forge, CI and GitOps tokens, webhook secrets, the files holding them).
/// An allow-list, because a deny-list misses each credential added later.
fn command(
    spec: &CommandSpec,
    job: &Job,
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(&spec.shell);
    command.env_clear();
    for (name, value) in inherited {
        if name.to_str().is_some_and(|n| passed(n, &spec.pass_env)) {
            command.env(name, value);
        }
    }
    command
        .arg("-c")
        .arg(&spec.command)
        .envs(job.vars.iter().map(|(k, v)| (*k, v.as_str())));
    command
}

/// Runs `job` with `spec` to the end (or the timeout).
pub async fn run(spec: &CommandSpec, job: &Job) -> Finished {
    run_with(spec, job, &Cancel::new(), None).await
}

/// Runs `job` with `spec` to the end, the timeout or `cancel`, appending its output to
/// `log_file` when given.
pub async fn run_with(
    spec: &CommandSpec,
    job: &Job,
    cancel: &Cancel,
    log_file: Option<&Path>,
) -> Finished {
    let started = Instant::now();
    let finished = |status, tail| Finished {
        status,
        tail,
        elapsed: started.elapsed(),
    };
    let mut child = match command(spec, job, std::env::vars_os())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            let error = format!("could not start `{} -c`: {e}", spec.shell.display());
            return finished(Status::Error(error), Vec::new());
        }
    };
    // The shell leads its own group (`process_group(0)`), so the group id is its pid.
    let mut group = ProcessGroup(child.id().and_then(|id| Pid::from_raw(id as i32)));
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
    let file = match log_file.map(open_log).transpose() {
        Ok(file) => file.map(|f| Arc::new(Mutex::new(f))),
        Err(e) => {
            // The output still goes to the process log line by line; only the file is missing.
            tracing::warn!(error = %e, change_id = %job.change_id, "cannot write the run's log file");
            None
        }
    };
    let log = Arc::new(Log {
        job: job.clone(),
        file,
    });
    let mut pumps = JoinSet::new();
    if let Some(stdout) = child.stdout.take() {
        pumps.spawn(pump(stdout, "stdout", log.clone(), tail.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        pumps.spawn(pump(stderr, "stderr", log.clone(), tail.clone()));
    }
    let status = tokio::select! {
        waited = tokio::time::timeout(spec.timeout, child.wait()) => match waited {
            Ok(Ok(status)) => Status::Exited(status),
            Ok(Err(e)) => Status::Error(format!("lost track of the command: {e}")),
            Err(_) => Status::TimedOut(spec.timeout),
        },
        why = cancel.cancelled() => Status::Cancelled(why),
    };
    if matches!(status, Status::TimedOut(_) | Status::Cancelled(_)) {
        group.kill();
        // Reaps the shell; the pipes close once the rest of the group is gone too.
        let _ = child.wait().await;
    }
    // Whatever the command left running in the background goes with it.
    drop(group);
    // A process that left the group (setsid) may hold the pipes open: stop reading after a bit.
    let _ = tokio::time::timeout(DRAIN_OUTPUT, async {
        while pumps.join_next().await.is_some() {}
    })
    .await;
    if let Some(file) = &log.file {
        let _ = lock(file).flush();
    }
    let tail = std::mem::take(&mut *lock(&tail)).into();
    finished(status, tail)
}

/// The job a line belongs to, and the file it is also written to.
struct Log {
    job: Job,
    file: Option<Arc<Mutex<BufWriter<File>>>>,
}

fn open_log(path: &Path) -> std::io::Result<BufWriter<File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Appended: a redelivered run keeps the earlier attempt's output above its own.
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    Ok(BufWriter::new(file))
}

/// A process group, killed (SIGKILL) when dropped: a handler abandoned mid-build leaves nothing
/// running.
struct ProcessGroup(Option<Pid>);

impl ProcessGroup {
    fn kill(&mut self) {
        let Some(pid) = self.0 else { return };
        match kill_process_group(pid, Signal::KILL) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => {}
            Err(e) => {
                tracing::warn!(error = %e, pgid = pid.as_raw_nonzero().get(), "could not kill the command's process group")
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Logs each line of `output` and keeps the last [`TAIL_LINES`].
async fn pump(
    output: impl AsyncRead + Unpin,
    stream: &'static str,
    log: Arc<Log>,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut reader = BufReader::new(output);
    let mut line = Vec::with_capacity(256);
    loop {
        match read_line(&mut reader, &mut line).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::debug!(error = %e, stream, "reading command output failed");
                return;
            }
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        tracing::info!(
            target: "builder_trigger::output",
            job = log.job.kind,
            change_id = %log.job.change_id,
            env = log.job.env.as_deref(),
            stream,
            "{text}"
        );
        if let Some(file) = &log.file {
            // Written from a runtime thread: a line to a local file does not block for long.
            let _ = writeln!(lock(file), "{text}");
        }
        let mut tail = lock(&tail);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text.to_owned());
    }
}

/// Reads through the next newline, or [`MAX_LINE`] bytes; `false` at the end of the output.
async fn read_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
) -> std::io::Result<bool> {
    line.clear();
    while line.len() < MAX_LINE {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            break;
        }
        let room = MAX_LINE - line.len();
        let (take, end) = match buf.iter().take(room).position(|&b| b == b'\n') {
            Some(newline) => (newline + 1, true),
            None => (buf.len().min(room), false),
        };
        line.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if end {
            return Ok(true);
        }
    }
    Ok(!line.is_empty())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The tail is only ever pushed to: a panic mid-push leaves it usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

mod backend;
pub mod detached;

pub use backend::{Backend, Settings};

#[cfg(test)]
mod tests;
