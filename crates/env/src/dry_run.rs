//! How a registry update that a dry run does not write is shown.

use flotilla_bus::dry_run::{EffectKind, Recorder};

use crate::state::State;

/// Records `env X: <old state> -> <new state>` with the record that would be written.
pub(crate) fn record_update(
    recorder: &Recorder,
    env: &str,
    old: Option<&State>,
    new: &State,
    encoded: &[u8],
) {
    let old = old.map_or("(none)", State::as_str);
    recorder.record_with(
        EffectKind::Registry,
        format!("env {env}: {old} -> {}", new.as_str()),
        String::from_utf8_lossy(encoded).into_owned(),
    );
}
