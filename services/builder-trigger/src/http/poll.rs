//! Polling a CI run's status URL until it says the run is over.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{Backend, Redact, Template, text_of};
use crate::run::{self, Outcome, Status};

/// Reading a run's status.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Poll {
    /// The status URL; `{{id}}` is the value at [`Poll::id`] in the start request's answer.
    pub url: String,
    /// JSON pointer into the start request's answer naming the run, e.g. `/metadata/name`.
    #[serde(default)]
    pub id: Option<String>,
    /// JSON pointer to the status in the status URL's answer, e.g. `/status/phase`.
    pub status: String,
    /// JSON pointer to a message worth quoting, e.g. `/status/message`.
    #[serde(default)]
    pub message: Option<String>,
    /// JSON pointer to the run's log or page URL.
    #[serde(default)]
    pub log_url: Option<String>,
    #[serde(default = "default_interval", with = "humantime_serde_compat")]
    pub interval: Duration,
    /// Status values meaning success (compared ignoring case).
    #[serde(default = "default_succeeded")]
    pub succeeded: Vec<String>,
    /// Status values meaning failure (compared ignoring case); anything else is still running.
    #[serde(default = "default_failed")]
    pub failed: Vec<String>,
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_succeeded() -> Vec<String> {
    ["succeeded", "success", "successful", "completed", "passed"]
        .map(str::to_owned)
        .to_vec()
}

fn default_failed() -> Vec<String> {
    [
        "failed",
        "failure",
        "error",
        "errored",
        "cancelled",
        "canceled",
        "aborted",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Durations in templates are written like everywhere else: `500ms`, `5s`.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

impl Backend {
    /// Reads the status URL until the run is over (the caller bounds it with the timeout).
    pub(super) async fn poll(
        &self,
        template: &Template,
        poll: &Poll,
        values: &BTreeMap<String, String>,
        answer: &Value,
        redact: &Redact,
    ) -> Outcome {
        let mut values = values.clone();
        if let Some(pointer) = &poll.id {
            match answer.pointer(pointer).map(text_of) {
                Some(id) if !id.is_empty() => {
                    values.insert("id".into(), id);
                }
                _ => {
                    return Outcome::failed(format!(
                        "the start request's answer has nothing at {pointer}, so the run's status cannot be read"
                    ));
                }
            }
        }
        let request = match template.status_request(poll, &values) {
            Ok(request) => request,
            Err(e) => return Outcome::failed(format!("cannot make the status request: {e}")),
        };
        let redact = redact.with_url(&request.url);
        let url = redact.url(&request.url);
        let matches =
            |set: &[String], status: &str| set.iter().any(|s| s.eq_ignore_ascii_case(status));
        loop {
            match self.send(request.clone()).await {
                Ok(answer) => {
                    let status = answer
                        .pointer(&poll.status)
                        .map(text_of)
                        .unwrap_or_default();
                    let message = poll
                        .message
                        .as_deref()
                        .and_then(|p| answer.pointer(p))
                        .map(text_of);
                    let log_url = poll
                        .log_url
                        .as_deref()
                        .and_then(|p| answer.pointer(p))
                        .map(text_of);
                    let over = if matches(&poll.succeeded, &status) {
                        Some(Status::Succeeded)
                    } else if matches(&poll.failed, &status) {
                        Some(Status::Failed(format!("the CI run ended {status}")))
                    } else {
                        None
                    };
                    if let Some(status) = over {
                        let mut outcome = Outcome::new(status);
                        outcome.excerpt = run::last_lines(message.as_deref().unwrap_or(""));
                        outcome.log_url = log_url.unwrap_or_default();
                        return outcome;
                    }
                    tracing::debug!(%url, %status, "CI run still going");
                }
                // A status URL that fails once is asked again; the timeout bounds the wait.
                Err(e) => {
                    tracing::warn!(%url, error = %redact.text(&e.message), "could not read the CI run's status")
                }
            }
            tokio::time::sleep(poll.interval).await;
        }
    }
}
