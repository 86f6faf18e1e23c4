//! The hooks' runs as an env's registry record holds them (`hooks` in the record), and the pure
//! rules that move them: which hooks a newly requested change gets, and the names runs go by.
//!
//! Each entry is one hook for one change of the env: its provision run, its deprovision run,
//! and whether its provision ever started (`created`: something may exist that deprovision must
//! remove, even when the run failed). The field names are what `flotilla envs --json` shows.

use serde::{Deserialize, Serialize};

use super::config::{Hook, Phase};
use crate::envid::{dns_label, hash};

/// One hook of one change of an env.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookState {
    /// The hook's name in the hooks file.
    pub name: String,
    /// The change the env was requested for when the hook was recorded.
    pub change_id: String,
    /// Its provision started at least once (so something may exist to deprovision).
    #[serde(default)]
    pub created: bool,
    #[serde(default)]
    pub provision: RunState,
    #[serde(default)]
    pub deprovision: RunState,
}

/// One phase's run of a hook.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    #[serde(default)]
    pub state: RunStatus,
    /// 1 for the first run; a run that died without a result is run again as the next attempt.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
    /// The run's id: the name of its log file, Job or CI run (see [`run_id`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    /// RFC 3339 times.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub started_at: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub finished_at: String,
    /// When a running run times out: past it (and a grace), nobody waits for it any more.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub deadline: String,
    /// Why it failed or was skipped, with its last lines of output.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Where its whole log is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log_url: String,
    /// Command backend: the process (group) running it, on `host` since boot `boot_id`, so a
    /// worker that takes over after a crash can tell whether it still runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Recorded, not started.
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    /// Not run: an earlier hook failed, the hook has no such phase, or nothing was created.
    Skipped,
    /// A state a newer worker wrote: read, kept as not done.
    #[serde(other)]
    Unknown,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
            RunStatus::Unknown => "unknown",
        }
    }

    /// Over, one way or another.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Skipped
        )
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl HookState {
    /// `hook` recorded for `change_id`, not run yet. A hook without a provision step has
    /// nothing to wait for (skipped) and its deprovision runs at the teardown (created).
    pub fn pending(hook: &Hook, change_id: &str, created: bool) -> HookState {
        let provision = match hook.provision {
            Some(_) => RunState::default(),
            None => RunState {
                state: RunStatus::Skipped,
                reason: "the hook has no provision step".into(),
                ..RunState::default()
            },
        };
        HookState {
            name: hook.name.clone(),
            change_id: change_id.to_owned(),
            created: created || hook.provision.is_none(),
            provision,
            deprovision: RunState::default(),
        }
    }

    pub fn run(&self, phase: Phase) -> &RunState {
        match phase {
            Phase::Provision => &self.provision,
            Phase::Deprovision => &self.deprovision,
        }
    }

    pub fn run_mut(&mut self, phase: Phase) -> &mut RunState {
        match phase {
            Phase::Provision => &mut self.provision,
            Phase::Deprovision => &mut self.deprovision,
        }
    }

    /// One of its runs is going.
    pub fn is_running(&self) -> bool {
        self.provision.state == RunStatus::Running || self.deprovision.state == RunStatus::Running
    }
}

/// The hooks of an env newly requested at `change_id`, from what its record held (`earlier`)
/// and the hooks that apply to it now, in file order:
///
/// - a run of an earlier change still going is kept, so the new change's runs wait for it and
///   its outcome is recorded;
/// - each applicable hook is `pending` for the change, keeping `created` from earlier changes
///   (their deprovision covers what those created); the same change requested again keeps its
///   runs as they are;
/// - a hook that created something and no longer applies (or left the file) is kept, so the
///   teardown still runs its deprovision.
pub fn requested(earlier: &[HookState], applicable: &[&Hook], change_id: &str) -> Vec<HookState> {
    let mut hooks: Vec<HookState> = earlier
        .iter()
        .filter(|h| h.change_id != change_id && h.is_running())
        .cloned()
        .collect();
    for hook in applicable {
        if let Some(same) = earlier
            .iter()
            .find(|h| h.name == hook.name && h.change_id == change_id)
        {
            hooks.push(same.clone());
            continue;
        }
        let created = earlier.iter().any(|h| h.name == hook.name && h.created);
        hooks.push(HookState::pending(hook, change_id, created));
    }
    for left in earlier {
        if left.created && !hooks.iter().any(|h| h.name == left.name) {
            hooks.push(left.clone());
        }
    }
    hooks
}

/// The provision runs an env waits for: its hooks recorded for `change_id`.
pub fn of_change<'a>(
    hooks: &'a [HookState],
    change_id: &'a str,
) -> impl Iterator<Item = &'a HookState> {
    hooks.iter().filter(move |h| h.change_id == change_id)
}

/// The id of a hook's run: `hook-<env>-<hook>-<phase>-<hash of the change>`, a DNS label
/// stable for the env, change, hook and phase, so a redelivered event finds the same log
/// file, Job or CI run.
pub fn run_id(env: &str, change_id: &str, hook: &str, phase: Phase) -> String {
    dns_label(&["hook", env, hook, phase.as_str(), &hash(change_id)])
}

/// A hook's idempotency key, given to it as `FLOTILLA_HOOK_KEY`: `<env>/<change id>`.
pub fn hook_key(env: &str, change_id: &str) -> String {
    format!("{env}/{change_id}")
}
