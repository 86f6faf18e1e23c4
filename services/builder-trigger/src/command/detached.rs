//! Hook commands that outlive their worker. Interrupting a Terraform apply leaves its state
//! locked, so a hook is never killed because its worker stops or crashes (only at its
//! timeout): it runs in its own process group, writes straight to its log file (no pipe to
//! break), and a small `sh` wrapper records its exit status in `<run id>.exit` (written to a
//! temporary name, then renamed) and its pid in `<run id>.pid`. A worker that takes over after a
//! crash reads the exit file, or finds the process still running (its pid, on this host since
//! this boot, whose environment holds `FLOTILLA_HOOK_RUN=<run id>`) and waits for it.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::time::Instant;

use super::{CommandSpec, Job, command};

/// How often a running hook's log and exit file are looked at.
const POLL: Duration = Duration::from_millis(100);
/// Most of the log's end read for the excerpt.
const TAIL_BYTES: u64 = 64 * 1024;
/// The variable naming the run in the hook's environment: how a later worker recognises the
/// process as this run's, and not another that got its pid.
pub const RUN_VAR: &str = "FLOTILLA_HOOK_RUN";

/// `$0` the shell, `$1` the hook's command, `$2` the exit file, `$3` the pid file. The status
/// is written to a temporary name and renamed, so a reader never sees half of it.
const WRAPPER: &str = r#"printf '%s\n' "$$" > "$3"; "$0" -c "$1"; s=$?; printf '%s\n' "$s" > "$2.tmp" && mv -f "$2.tmp" "$2"; exit "$s""#;

/// Where a run keeps its log, exit status and pid: `<dir>/<run id>.{log,exit,pid}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub log: PathBuf,
    pub exit: PathBuf,
    pub pid: PathBuf,
}

impl Paths {
    pub fn new(dir: &Path, run_id: &str) -> Paths {
        Paths {
            log: dir.join(format!("{run_id}.log")),
            exit: dir.join(format!("{run_id}.exit")),
            pid: dir.join(format!("{run_id}.pid")),
        }
    }

    /// The exit status the wrapper recorded, once the command ended.
    pub fn exit_code(&self) -> Option<i32> {
        std::fs::read_to_string(&self.exit)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The pid the wrapper recorded when it began.
    pub fn recorded_pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pid).ok()?.trim().parse().ok()
    }
}

/// A hook process this worker started.
#[derive(Debug)]
pub struct Started {
    pub pid: u32,
    child: tokio::process::Child,
    /// Where this attempt's output begins in the log.
    offset: u64,
}

/// How a hook process ended.
#[derive(Debug)]
pub enum Ended {
    Exited(ExitStatus),
    /// Killed (its group) at its deadline.
    TimedOut,
    /// Gone without an exit status: killed with its wrapper, or the machine restarted.
    Vanished,
    /// It could not be followed.
    Error(String),
}

/// Starts `spec` for `job` detached from this worker, appending to its log (after `note`, a
/// line saying why this attempt runs, when given).
pub fn start(
    spec: &CommandSpec,
    job: &Job,
    paths: &Paths,
    note: Option<&str>,
) -> Result<Started, String> {
    if let Some(dir) = paths.log.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the log directory {}: {e}", dir.display()))?;
    }
    // What an earlier attempt left must not be taken for this one's.
    for stale in [&paths.exit, &paths.pid] {
        match std::fs::remove_file(stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", stale.display())),
        }
    }
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.log)
        .map_err(|e| format!("cannot open the log {}: {e}", paths.log.display()))?;
    if let Some(note) = note {
        let _ = writeln!(log, "flotilla: {note}");
    }
    let offset = log.metadata().map(|m| m.len()).unwrap_or(0);
    let output = |log: &std::fs::File| {
        log.try_clone()
            .map(Stdio::from)
            .map_err(|e| format!("cannot share the log {}: {e}", paths.log.display()))
    };
    let wrapper = CommandSpec {
        command: WRAPPER.to_owned(),
        ..spec.clone()
    };
    let child = command(&wrapper, job, std::env::vars_os())
        .arg(&spec.shell)
        .arg(&spec.command)
        .arg(&paths.exit)
        .arg(&paths.pid)
        .stdin(Stdio::null())
        .stdout(output(&log)?)
        .stderr(output(&log)?)
        .process_group(0)
        // Left running when the worker stops: the next delivery adopts it.
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| format!("could not start `{} -c`: {e}", spec.shell.display()))?;
    let pid = child
        .id()
        .ok_or_else(|| "the hook process ended before its pid was read".to_owned())?;
    Ok(Started { pid, child, offset })
}

/// Follows a process this worker started until it exits or `timeout` passes (then its group is
/// killed). Each line of its log is logged as it comes.
pub async fn wait(mut started: Started, paths: &Paths, job: &Job, timeout: Duration) -> Ended {
    let deadline = Instant::now() + timeout;
    let mut follow = Follow::new(paths.log.clone(), started.offset);
    loop {
        follow.log_new_lines(job);
        match started.child.try_wait() {
            Ok(Some(status)) => {
                follow.log_new_lines(job);
                return Ended::Exited(status);
            }
            Ok(None) => {}
            Err(e) => return Ended::Error(format!("lost track of the hook: {e}")),
        }
        if Instant::now() >= deadline {
            kill_group(started.pid);
            let _ = started.child.wait().await;
            follow.log_new_lines(job);
            return Ended::TimedOut;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Follows a process an earlier worker started (`pid`, running `run_id`) until its exit file
/// appears, it vanishes, or `deadline` passes (then its group is killed).
pub async fn adopt(pid: u32, run_id: &str, paths: &Paths, job: &Job, deadline: Instant) -> Ended {
    let start = std::fs::metadata(&paths.log).map(|m| m.len()).unwrap_or(0);
    let mut follow = Follow::new(paths.log.clone(), start);
    loop {
        follow.log_new_lines(job);
        if let Some(code) = paths.exit_code() {
            follow.log_new_lines(job);
            return Ended::Exited(exit_status(code));
        }
        if !runs(pid, run_id) {
            // It may have written its status between the two looks.
            return match paths.exit_code() {
                Some(code) => Ended::Exited(exit_status(code)),
                None => Ended::Vanished,
            };
        }
        if Instant::now() >= deadline {
            kill_group(pid);
            return Ended::TimedOut;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The status `sh` gives for exit code `code` (128 + n for a signal n).
pub fn exit_status(code: i32) -> ExitStatus {
    ExitStatus::from_raw((code & 0xff) << 8)
}

/// Whether `pid` is a live process of run `run_id` (its environment says so): a process that
/// ended, a zombie (whose environment reads empty), or another process that got the pid is not.
pub fn runs(pid: u32, run_id: &str) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let want = format!("{RUN_VAR}={run_id}");
    environ.split(|b| *b == 0).any(|v| v == want.as_bytes())
}

/// This machine's boot: a pid means something only within the boot that gave it.
pub fn boot_id() -> Option<String> {
    proc_text("/proc/sys/kernel/random/boot_id")
}

/// This host (its UTS namespace, so a container's own): pids of another are not ours to read.
pub fn host() -> Option<String> {
    proc_text("/proc/sys/kernel/hostname")
}

fn proc_text(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn kill_group(pid: u32) {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    match kill_process_group(pid, Signal::KILL) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
        Err(e) => {
            tracing::warn!(error = %e, pgid = pid.as_raw_nonzero().get(), "could not kill the hook's process group")
        }
    }
}

/// The last lines of the log from `offset` on (this attempt's output).
pub fn tail(path: &Path, offset: u64) -> Vec<String> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let from = offset.max(len.saturating_sub(TAIL_BYTES));
    if file.seek(SeekFrom::Start(from)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    crate::run::last_lines(&String::from_utf8_lossy(&bytes))
}

/// Reads what a log file gains and logs it line by line.
struct Follow {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Follow {
    fn new(path: PathBuf, offset: u64) -> Follow {
        Follow {
            path,
            offset,
            partial: Vec::new(),
        }
    }

    fn log_new_lines(&mut self, job: &Job) {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut bytes = Vec::new();
        let Ok(read) = file.read_to_end(&mut bytes) else {
            return;
        };
        self.offset += read as u64;
        self.partial.extend_from_slice(&bytes);
        while let Some(newline) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=newline).collect();
            let text = String::from_utf8_lossy(&line);
            tracing::info!(
                target: "builder_trigger::output",
                job = job.kind,
                change_id = %job.change_id,
                env = job.env.as_deref(),
                stream = "log",
                "{}",
                text.trim_end_matches(['\n', '\r'])
            );
        }
    }
}

impl Started {
    /// Where this attempt's output begins in the log.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}
