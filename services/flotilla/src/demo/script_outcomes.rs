//! What the demo promises, judged from what the script saw: each outcome with what happened, or
//! what is missing.

use super::{Outcome, Script, Track};

impl Script {
    /// The three outcomes, each with what happened or what is missing.
    pub fn outcomes(&self) -> [Outcome; 3] {
        let good = &self.good;
        let staging = |track: &Track| track.env.clone().unwrap_or_else(|| "staging env".into());
        let good_outcome = Outcome {
            name: "good change promoted",
            ok: good.promoted.is_some() && good.env_deleted,
            detail: match (&good.promoted, good.env_deleted) {
                (Some(_), true) => format!(
                    "promoted by its canary ({}); {} deleted",
                    measured(good),
                    staging(good)
                ),
                _ => missing(&[
                    (good.change_id.is_some(), "its build"),
                    (good.tested, "its tests passed"),
                    (good.promoted.is_some(), "canary.promoted"),
                    (good.env_deleted, "env.deleted of its staging env"),
                ]),
            },
            change_id: good.change_id.clone(),
        };
        let bad = &self.bad;
        let restored = matches!(
            (&self.production, &good.version),
            (Some(Ok(version)), Some(good)) if version == good
        );
        let bad_outcome = Outcome {
            name: "bad change rolled back",
            ok: bad.aborted.is_some() && restored,
            detail: match (&bad.aborted, restored) {
                (Some(_), true) => format!(
                    "aborted by its canary ({}); production's manifest in git back at {}",
                    measured(bad),
                    good.version.as_deref().unwrap_or("?")
                ),
                _ => missing(&[
                    (bad.change_id.is_some(), "its build"),
                    (bad.tested, "its tests passed"),
                    (bad.aborted.is_some(), "canary.aborted"),
                    (bad.rolled_back, "release.rolled_back"),
                    (restored, "production's manifest back at the good version"),
                ]),
            },
            change_id: bad.change_id.clone(),
        };
        let preview = &self.preview;
        let preview_outcome = Outcome {
            name: "pull request preview",
            ok: preview.env_created && preview.env_deleted,
            detail: if preview.env_created && preview.env_deleted {
                format!(
                    "{} created on opened, deleted on closed",
                    preview.env.as_deref().unwrap_or("preview")
                )
            } else {
                missing(&[
                    (preview.env_created, "env.requested on opened"),
                    (preview.tested, "its tests passed"),
                    (self.closed, "the pull request closed"),
                    (preview.env_deleted, "env.deleted on closed"),
                ])
            },
            change_id: preview.change_id.clone(),
        };
        [good_outcome, bad_outcome, preview_outcome]
    }
}

/// The canary's last measurement, or what decided without one.
fn measured(track: &Track) -> String {
    track
        .measured
        .clone()
        .or_else(|| track.promoted.clone())
        .or_else(|| track.aborted.clone())
        .unwrap_or_default()
}

/// `missing: a, b` for the steps not done.
fn missing(steps: &[(bool, &str)]) -> String {
    let missing: Vec<&str> = steps
        .iter()
        .filter(|(done, _)| !done)
        .map(|(_, step)| *step)
        .collect();
    format!("missing: {}", missing.join(", "))
}
