//! One build or test run and how it ended: what every backend takes and reports, shared by the
//! backends and the dispatch over them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_proto::v1::Image;
use tokio_util::sync::CancellationToken;

use crate::http::template::Template;

/// Lines of a run's output quoted in its event.
pub const EXCERPT_LINES: usize = 20;
/// Most output quoted in a failure reason.
const EXCERPT_BYTES: usize = 4096;

/// What a run is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Build,
    Test,
    /// An environment hook's provision or deprovision: what it runs comes with the run
    /// ([`Run::exec`]), not from the backend's build or test settings.
    Hook,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Build => "build",
            Kind::Test => "test",
            Kind::Hook => "hook",
        }
    }
}

/// What a run executes when it brings its own (a hook's step), for whichever backend runs it.
#[derive(Debug, Clone, Default)]
pub struct Exec {
    /// `sh -c` (command backend; in the Job's image for the job backend).
    pub command: Option<String>,
    /// The CI request (http backend).
    pub request: Option<Template>,
    /// The Job's image (job backend).
    pub image: Option<String>,
}

/// One build or test run of a change.
#[derive(Debug, Clone)]
pub struct Run {
    pub kind: Kind,
    /// Stable across redeliveries of the same event and unique per change and kind: names the
    /// CI run, the Kubernetes Job and the log file. A DNS-1123 label.
    pub id: String,
    pub change_id: String,
    pub env: Option<String>,
    /// The change as `FLOTILLA_*` variables, as the command backend exports them.
    pub vars: Vec<(&'static str, String)>,
    pub timeout: Duration,
    /// What to execute, for runs that bring their own (hooks); `None`: the backend's build or
    /// test settings.
    pub exec: Option<Exec>,
}

impl Run {
    /// The value of one of the run's variables, empty when unset.
    pub fn var(&self, name: &str) -> &str {
        self.vars
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Succeeded,
    /// Failed, with a one-line summary (`exit status 3`, `the CI run reported: ...`).
    Failed(String),
    TimedOut(Duration),
    /// Stopped on purpose, e.g. superseded by a newer push.
    Cancelled(String),
}

/// What a backend reports about a finished run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    /// The last lines of output, oldest first.
    pub excerpt: Vec<String>,
    /// Where the full log is, when the backend keeps it (a file path, a CI run's page).
    pub log_url: String,
    /// Images the backend reports having built; empty means "the ones asked for".
    pub images: Vec<Image>,
}

impl Outcome {
    pub fn new(status: Status) -> Outcome {
        Outcome {
            status,
            excerpt: Vec::new(),
            log_url: String::new(),
            images: Vec::new(),
        }
    }

    pub fn failed(summary: impl Into<String>) -> Outcome {
        Outcome::new(Status::Failed(summary.into()))
    }

    pub fn succeeded(&self) -> bool {
        self.status == Status::Succeeded
    }

    /// One line: `exit status 3`, `timed out after 1s`, ...
    pub fn summary(&self) -> String {
        match &self.status {
            Status::Succeeded => "succeeded".to_owned(),
            Status::Failed(why) | Status::Cancelled(why) => why.clone(),
            Status::TimedOut(after) => {
                format!("timed out after {}", humantime::format_duration(*after))
            }
        }
    }

    /// The summary, the last lines of output and where the full log is: what a person needs
    /// to see why it failed.
    pub fn reason(&self) -> String {
        let mut reason = self.summary();
        let mut quoted = Vec::new();
        let mut bytes = 0;
        for line in self.excerpt.iter().rev() {
            bytes += line.len() + 1;
            if bytes > EXCERPT_BYTES && !quoted.is_empty() {
                break;
            }
            quoted.push(line.as_str());
        }
        if !quoted.is_empty() {
            quoted.reverse();
            reason = format!("{reason}; last output:\n{}", quoted.join("\n"));
        }
        if !self.log_url.is_empty() {
            reason = format!("{reason}\nfull log: {}", self.log_url);
        }
        reason
    }
}

/// How a hook run recorded as running by an earlier worker stands, as its backend sees it.
#[derive(Debug, Clone)]
pub enum Found {
    /// It ended: its outcome.
    Ended(Outcome),
    /// It still runs (the process, when the backend knows it): waited on, not run again.
    Running(Option<u32>),
    /// It died without a result (why): run again as the next attempt.
    Dead(String),
    /// This worker cannot see it (another host's process): waited on until its deadline.
    Elsewhere(String),
    /// Recorded as started moments ago, with no process known yet: the worker that recorded it
    /// may be starting it right now (a concurrent delivery). Looked at again shortly.
    Starting,
    /// The backend could not be asked (why): retried later.
    Unknown(String),
}

/// Cancels a run with a reason; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    token: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Stops the run; the first reason given wins.
    pub fn cancel(&self, reason: impl Into<String>) {
        let mut slot = self
            .reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(reason.into());
        }
        drop(slot);
        self.token.cancel();
    }

    /// Resolves with the reason once cancelled.
    pub async fn cancelled(&self) -> String {
        self.token.cancelled().await;
        self.reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "cancelled".to_owned())
    }

    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
}

/// The last [`EXCERPT_LINES`] lines of `text`.
pub fn last_lines(text: &str) -> Vec<String> {
    let mut tail = VecDeque::with_capacity(EXCERPT_LINES);
    for line in text.lines() {
        if tail.len() == EXCERPT_LINES {
            tail.pop_front();
        }
        tail.push_back(line.to_owned());
    }
    tail.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_cancel_reason_wins() {
        let cancel = Cancel::new();
        cancel.cancel("superseded by abc");
        cancel.cancel("shutdown");
        assert!(cancel.is_cancelled());
        let reason = futures::executor::block_on(cancel.cancelled());
        assert_eq!(reason, "superseded by abc");
    }

    #[test]
    fn a_failure_reason_quotes_the_output_and_says_where_the_log_is() {
        let mut outcome = Outcome::failed("exit status 2");
        outcome.excerpt = vec!["one".into(), "two".into()];
        outcome.log_url = "/var/log/b.log".into();
        assert_eq!(
            outcome.reason(),
            "exit status 2; last output:\none\ntwo\nfull log: /var/log/b.log"
        );
    }
}
