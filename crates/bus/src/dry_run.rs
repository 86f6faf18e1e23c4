//! Dry runs: the side effects a handler would have, recorded instead of performed.
//!
//! Every interface through which a worker changes the world (git, the registry, builds, GitHub,
//! Kubernetes, publishing) has a mode in which it reads real state, writes nothing and adds an
//! [`Effect`] to a [`Recorder`]. `flotilla replay --dry-run WORKER` builds the worker's handler
//! that way and prints, per event, what the recorder holds.

use std::sync::{Arc, Mutex, PoisonError};

use flotilla_proto::json;
use serde::Serialize;

use crate::envelope::{CONTENT_TYPE_JSON, Outgoing};

/// What part of the world an effect would have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EffectKind {
    Git,
    Registry,
    Build,
    Github,
    Kubernetes,
    Publish,
}

impl EffectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EffectKind::Git => "git",
            EffectKind::Registry => "registry",
            EffectKind::Build => "build",
            EffectKind::Github => "github",
            EffectKind::Kubernetes => "kubernetes",
            EffectKind::Publish => "publish",
        }
    }
}

impl std::fmt::Display for EffectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, not `write_str`: callers align columns with `{:<10}`.
        f.pad(self.as_str())
    }
}

/// One side effect that was not performed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Effect {
    pub kind: EffectKind,
    /// One line: what would have happened.
    pub summary: String,
    /// What a person checks it against: a file's new contents or diff, a record as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The effects recorded so far, in order. Cheap to clone; clones share the list, so every
/// interface of one dry run records into the same place.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    effects: Arc<Mutex<Vec<Effect>>>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// Records an effect described in one line.
    pub fn record(&self, kind: EffectKind, summary: impl Into<String>) {
        self.push(Effect {
            kind,
            summary: summary.into(),
            detail: None,
        });
    }

    /// Records an effect with what it would have written.
    pub fn record_with(&self, kind: EffectKind, summary: impl Into<String>, detail: String) {
        self.push(Effect {
            kind,
            summary: summary.into(),
            detail: Some(detail),
        });
    }

    fn push(&self, effect: Effect) {
        tracing::debug!(kind = %effect.kind, summary = %effect.summary, "dry run: not performed");
        self.lock().push(effect);
    }

    /// Takes every effect recorded so far, leaving none: what one event would have done.
    pub fn take(&self) -> Vec<Effect> {
        std::mem::take(&mut *self.lock())
    }

    /// A copy of the effects recorded so far.
    pub fn effects(&self) -> Vec<Effect> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Effect>> {
        // A panic while pushing leaves a whole list behind: it is still worth showing.
        self.effects.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The data of `event` as proto3 JSON (`null` when it cannot be read), to show what it carries.
pub fn data_json(event: &Outgoing) -> serde_json::Value {
    let decoded = if event.content_type.starts_with(CONTENT_TYPE_JSON) {
        serde_json::from_slice(&event.payload).ok()
    } else {
        json::protobuf_to_json(event.spec.message, &event.payload).ok()
    };
    decoded.unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_record_into_one_list_and_take_empties_it() {
        let recorder = Recorder::new();
        let clone = recorder.clone();
        clone.record(EffectKind::Git, "write envs/a.json");
        recorder.record_with(EffectKind::Registry, "env a: - -> requested", "{}".into());
        let effects = recorder.take();
        assert_eq!(effects.len(), 2);
        assert_eq!(effects[0].kind, EffectKind::Git);
        assert_eq!(effects[1].detail.as_deref(), Some("{}"));
        assert!(clone.effects().is_empty());
    }

    #[test]
    fn kinds_are_written_in_lowercase() {
        let effect = Effect {
            kind: EffectKind::Kubernetes,
            summary: "create job".into(),
            detail: None,
        };
        let json = serde_json::to_value(&effect).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"kind": "kubernetes", "summary": "create job"})
        );
    }
}
