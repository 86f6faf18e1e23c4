//! An event as the demo sees it on the bus, and the one line that says what it means.
//!
//! A pure function of the event's data (its proto3 JSON), so every line of the timeline is
//! tested without a bus.

use serde_json::Value;

use crate::events::Stored;
use crate::render::EventView;

/// One stored event, read once.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `build.succeeded`, from the CloudEvents type.
    pub event_type: String,
    /// The subject's last token: the repo, change, env or release the event is about.
    pub key: String,
    /// The worker that published it (`ce-source` without `flotilla/`).
    pub worker: String,
    pub change_id: Option<String>,
    /// The data, as proto3 JSON (lowerCamelCase; fields at their default are absent).
    pub data: Value,
}

impl Seen {
    pub fn of(stored: &Stored) -> Seen {
        let view = EventView::of(stored);
        let event_type = view
            .event_type
            .as_deref()
            .and_then(|t| t.strip_prefix("dev.flotilla."))
            .and_then(|t| t.strip_suffix(".v1"))
            .unwrap_or("?")
            .to_owned();
        let worker = stored
            .header("ce-source")
            .map(|s| s.strip_prefix("flotilla/").unwrap_or(s))
            .unwrap_or("-")
            .to_owned();
        Seen {
            event_type,
            key: stored
                .subject
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_owned(),
            worker,
            change_id: view.change_id,
            data: view.data,
        }
    }

    /// A text field of the data, empty when absent.
    pub fn text(&self, field: &str) -> &str {
        self.data[field].as_str().unwrap_or_default()
    }

    /// What the event says, in one line.
    pub fn summary(&self) -> String {
        let text = |field| self.text(field);
        let sha7 = |field| short(text(field), 7);
        match self.event_type.as_str() {
            "source.push" => format!("push to {} at {}", text("branch"), sha7("sha")),
            "source.pull_request" => format!(
                "pull request #{} {} ({} at {})",
                number(&self.data["number"]),
                text("action"),
                text("headRef"),
                sha7("headSha")
            ),
            "build.started" => {
                let pr = match number(&self.data["pr"]) {
                    0 => String::new(),
                    n => format!(" of pull request #{n}"),
                };
                format!("building {} {}{pr}", text("app"), text("version"))
            }
            "build.succeeded" => {
                let image = self.data["images"][0]["ref"].as_str().unwrap_or_default();
                format!("built {image}")
            }
            "env.requested" => format!(
                "{} env written to git (commit {}): {}",
                text("kind"),
                sha7("revision"),
                apps(&self.data["apps"])
            ),
            "env.ready" => format!(
                "ready in {} at {}",
                millis(&self.data["durationMs"]),
                text("url")
            ),
            "env.teardown.requested" => format!("teardown asked: {}", text("reason")),
            "env.deleted" => format!("deleted ({}): its file is gone from git", text("reason")),
            "tests.passed" => format!("tests passed in {}", millis(&self.data["durationMs"])),
            "release.requested" => {
                let templates: Vec<&str> = self.data["analysis"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a["template"].as_str())
                    .collect();
                format!(
                    "production's manifest: {} {} (was {}); canary analysis: {}",
                    text("app"),
                    text("version"),
                    text("previousVersion"),
                    if templates.is_empty() {
                        "none".to_owned()
                    } else {
                        templates.join(", ")
                    }
                )
            }
            "release.rolled_back" => format!(
                "production's manifest back to {} (commit {})",
                text("restoredVersion"),
                sha7("revision")
            ),
            "canary.step" => format!(
                "step {}: weight {}%",
                number(&self.data["step"]),
                number(&self.data["weight"])
            ),
            "canary.measurement" => {
                // The reason is the raw value (`success-rate = [0.75]`), or why there is none.
                let metric = text("metric");
                match text("reason") {
                    why if !why.is_empty() && !why.starts_with(&format!("{metric} = ")) => {
                        format!("{metric} {}: {}", text("phase"), first_line(why))
                    }
                    _ => format!(
                        "{metric} = {} {}",
                        value(&self.data["value"]),
                        text("phase")
                    ),
                }
            }
            "canary.promoted" => match text("reason") {
                "" => "promoted: every analysis Successful".to_owned(),
                reason => format!("promoted: {}", first_line(reason)),
            },
            "canary.aborted" => {
                // `analysis success-rate Failed: metric success-rate = [..] (..)`: its first part.
                let reason = text("reason");
                let why = reason.split(": ").next().unwrap_or(reason);
                format!(
                    "aborted: {why}, {} = {}",
                    text("metric"),
                    value(&self.data["value"])
                )
            }
            _ => match text("reason") {
                "" => self.event_type.clone(),
                reason => format!("{}: {}", self.event_type, first_line(reason)),
            },
        }
    }
}

/// The first `n` characters.
fn short(text: &str, n: usize) -> &str {
    text.get(..n).unwrap_or(text)
}

/// A proto3 JSON integer: a number, or (64-bit) a string.
fn number(value: &Value) -> u64 {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

fn millis(value: &Value) -> String {
    format!("{}ms", number(value))
}

fn value(value: &Value) -> String {
    match value.as_f64() {
        Some(x) if x.fract() == 0.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.3}"),
        None => "0".to_owned(),
    }
}

fn apps(apps: &Value) -> String {
    let apps: Vec<String> = apps
        .as_array()
        .into_iter()
        .flatten()
        .map(|app| {
            format!(
                "{} {}",
                app["name"].as_str().unwrap_or("?"),
                app["version"].as_str().unwrap_or("?")
            )
        })
        .collect();
    apps.join(", ")
}

/// A reason's first line, at most 160 characters.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(160) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn seen(event_type: &str, data: Value) -> Seen {
        Seen {
            event_type: event_type.into(),
            key: "k".into(),
            worker: "w".into(),
            change_id: None,
            data,
        }
    }

    #[test]
    fn each_stage_says_what_happened_in_one_line() {
        let cases = [
            (
                seen(
                    "source.push",
                    json!({"branch": "main", "sha": "1a2b3c4d5e6f"}),
                ),
                "push to main at 1a2b3c4",
            ),
            (
                seen(
                    "build.started",
                    json!({"app": "ping", "version": "v1", "pr": "7"}),
                ),
                "building ping v1 of pull request #7",
            ),
            (
                seen(
                    "env.requested",
                    json!({"kind": "staging", "revision": "abcdef0123",
                           "apps": [{"name": "ping", "version": "v1"}]}),
                ),
                "staging env written to git (commit abcdef0): ping v1",
            ),
            (
                seen(
                    "env.ready",
                    json!({"durationMs": "12", "url": "http://x/envs/e"}),
                ),
                "ready in 12ms at http://x/envs/e",
            ),
            (
                seen(
                    "canary.measurement",
                    json!({"metric": "success-rate", "value": 0.75, "phase": "Failed",
                           "reason": "success-rate = [0.75]"}),
                ),
                "success-rate = 0.750 Failed",
            ),
            (
                seen(
                    "canary.measurement",
                    json!({"metric": "success-rate", "phase": "Error",
                           "reason": "server_error: server error: 502"}),
                ),
                "success-rate Error: server_error: server error: 502",
            ),
            (
                seen(
                    "canary.aborted",
                    json!({"metric": "success-rate", "value": 0.75,
                           "reason": "analysis success-rate Failed: metric success-rate = [0.75] (1 measured)"}),
                ),
                "aborted: analysis success-rate Failed, success-rate = 0.750",
            ),
            (
                seen(
                    "release.requested",
                    json!({"app": "ping", "version": "v2", "previousVersion": "v1",
                           "analysis": [{"template": "success-rate"}]}),
                ),
                "production's manifest: ping v2 (was v1); canary analysis: success-rate",
            ),
        ];
        for (event, line) in cases {
            assert_eq!(event.summary(), line, "{}", event.event_type);
        }
    }

    #[test]
    fn an_unknown_event_is_named_with_its_reason() {
        let event = seen("env.suspended", json!({"reason": "hibernate"}));
        assert_eq!(event.summary(), "env.suspended: hibernate");
    }
}
