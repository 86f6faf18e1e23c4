//! `env.deleted` → the deprovision of every hook whose provision started (even one that
//! failed: it may have created something), in reverse file order (the data, then the
//! infrastructure), once per env and change. Each runs whatever the others did: a teardown is
//! best effort. The command backend's state directory of the env goes once every deprovision
//! succeeded.

use std::time::{Duration, Instant};

use flotilla_bus::EventType;
use flotilla_env::hooks::{HookState, Hooks as HookFile, Phase, RunStatus, run_id};
use flotilla_proto::v1::Environment;

use super::facts::{self, Attempt};
use super::step::{End, Step};
use super::{Hooks, Target};
use crate::error::Error;

impl Hooks<'_> {
    /// Runs the deprovision of the env's created hooks, recorded on its record.
    pub async fn deprovision(&self, deleted: &Environment) -> Result<(), Error> {
        let env = deleted.env.as_str();
        if let Some(bad) = self.bad_env(env) {
            return Err(bad);
        }
        let Some(record) = self.record(env).await? else {
            return self.deprovision_unrecorded(deleted).await;
        };
        if !record.state.is_going_away() || record.change_id != deleted.change_id {
            tracing::info!(env, deleted = %deleted.change_id, holds = %record.change_id, state = %record.state, "the env is not this change's teardown any more: nothing deprovisioned");
            return Ok(());
        }
        let target = Target::of(env, &record, deleted);
        let mut clean = true;
        for (name, entry_change) in created(&record.hooks, &record.change_id, &self.settings.hooks)
        {
            let end = match self.settings.hooks.get(&name) {
                Some(hook) if hook.deprovision.is_some() => {
                    let step = Step {
                        target: &target,
                        hook,
                        phase: Phase::Deprovision,
                        entry_change: &entry_change,
                    };
                    self.step(&step).await?
                }
                Some(_) => {
                    self.nothing_to_remove(&target, &name).await?;
                    End::Skipped
                }
                None => {
                    self.unknown(&target, &name, Phase::Deprovision, &entry_change)
                        .await?
                }
            };
            match end {
                End::Succeeded => self.removed(&target, &name).await?,
                End::Skipped => {}
                End::Failed | End::Gone => clean = false,
            }
        }
        if clean {
            self.remove_state_dir(env);
        }
        Ok(())
    }

    /// No record of the env (removed by hand, say): every hook with a deprovision step that
    /// applies to the event's kind and apps runs, unrecorded, so nothing created is left behind
    /// for want of a record. A redelivery runs them again: deprovision steps must be idempotent.
    async fn deprovision_unrecorded(&self, deleted: &Environment) -> Result<(), Error> {
        let apps: Vec<&str> = deleted.apps.iter().map(|a| a.name.as_str()).collect();
        let hooks: Vec<_> = self
            .settings
            .hooks
            .applicable(&deleted.kind, apps.iter().copied())
            .into_iter()
            .filter(|h| h.deprovision.is_some())
            .rev()
            .collect();
        if hooks.is_empty() {
            return Ok(());
        }
        tracing::warn!(env = %deleted.env, change_id = %deleted.change_id, hooks = ?hooks.iter().map(|h| &h.name).collect::<Vec<_>>(), "no record of the env: running the deprovision of every hook for its kind and apps, unrecorded");
        let target = Target::unrecorded(deleted);
        let mut clean = true;
        for hook in hooks {
            let step = Step {
                target: &target,
                hook,
                phase: Phase::Deprovision,
                entry_change: &target.change_id,
            };
            let attempt = Attempt {
                target: &target,
                hook: &hook.name,
                phase: Phase::Deprovision,
                run_id: run_id(
                    &target.env,
                    &target.change_id,
                    &hook.name,
                    Phase::Deprovision,
                ),
                number: 1,
                rerun: false,
            };
            self.publish(facts::event(
                EventType::EnvHookStarted,
                &attempt,
                Duration::ZERO,
                "",
                "",
            )?)
            .await?;
            let started = Instant::now();
            let outcome = self.execute(&step, &attempt, None).await;
            let (kind, reason) = if outcome.succeeded() {
                (EventType::EnvHookSucceeded, String::new())
            } else {
                clean = false;
                (EventType::EnvHookFailed, outcome.reason())
            };
            self.publish(facts::event(
                kind,
                &attempt,
                started.elapsed(),
                &reason,
                &outcome.log_url,
            )?)
            .await?;
        }
        if clean {
            self.remove_state_dir(&deleted.env);
        }
        Ok(())
    }

    /// A hook without a deprovision step: nothing to remove, nothing created any more.
    async fn nothing_to_remove(&self, target: &Target, name: &str) -> Result<(), Error> {
        self.registry
            .update(&target.env, |current| {
                let mut record = current?;
                for entry in record.hooks.iter_mut().filter(|h| h.name == name) {
                    entry.created = false;
                    if entry.deprovision.state == RunStatus::Pending {
                        entry.deprovision.state = RunStatus::Skipped;
                        entry.deprovision.reason = "the hook has no deprovision step".into();
                    }
                }
                Some(record)
            })
            .await
            .map_err(|e| Error::Registry(e.to_string()))
    }

    /// What the hook created is gone: no entry of it is `created` any more, so a later change
    /// of the env starts afresh and a redelivered teardown has nothing to do.
    async fn removed(&self, target: &Target, name: &str) -> Result<(), Error> {
        self.registry
            .update(&target.env, |current| {
                let mut record = current?;
                let mut changed = false;
                for entry in record
                    .hooks
                    .iter_mut()
                    .filter(|h| h.name == name && h.created)
                {
                    entry.created = false;
                    changed = true;
                }
                changed.then_some(record)
            })
            .await
            .map_err(|e| Error::Registry(e.to_string()))
    }

    fn remove_state_dir(&self, env: &str) {
        let Some(dir) = self.state_dir(env) else {
            return;
        };
        if self.dry_run || !dir.exists() {
            return;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                tracing::info!(env, dir = %dir.display(), "every deprovision succeeded: the env's hook state is removed")
            }
            Err(e) => {
                tracing::warn!(env, dir = %dir.display(), error = %e, "could not remove the env's hook state")
            }
        }
    }
}

/// The hooks whose provision started, once each, with the entry their deprovision is recorded
/// on (the torn-down change's, else the latest), in reverse file order (hooks the file no longer
/// has first: they fail at once).
fn created(hooks: &[HookState], change_id: &str, file: &HookFile) -> Vec<(String, String)> {
    let mut names: Vec<(String, String)> = Vec::new();
    for entry in hooks.iter().filter(|h| h.created) {
        match names.iter_mut().find(|(name, _)| *name == entry.name) {
            Some((_, change)) if *change != change_id => change.clone_from(&entry.change_id),
            Some(_) => {}
            None => names.push((entry.name.clone(), entry.change_id.clone())),
        }
    }
    names.sort_by_key(|(name, _)| std::cmp::Reverse(file.position(name).unwrap_or(usize::MAX)));
    names
}

#[cfg(test)]
mod tests {
    use flotilla_env::hooks::{Action, Hook};

    use super::*;

    fn file(names: &[&str]) -> HookFile {
        HookFile::new(
            names
                .iter()
                .map(|name| Hook {
                    provision: Some(Action {
                        command: Some("true".into()),
                        ..Action::default()
                    }),
                    ..Hook::new(*name)
                })
                .collect(),
        )
    }

    fn entry(name: &str, change: &str, created: bool) -> HookState {
        HookState {
            name: name.into(),
            change_id: change.into(),
            created,
            provision: Default::default(),
            deprovision: Default::default(),
        }
    }

    #[test]
    fn created_hooks_are_torn_down_once_each_in_reverse_file_order() {
        let file = file(&["database", "dataset", "cache"]);
        let hooks = [
            entry("dataset", "ping-v1", true),
            entry("database", "ping-v2", true),
            entry("dataset", "ping-v2", true),
            entry("cache", "ping-v2", false),
            entry("gone", "ping-v1", true),
        ];
        assert_eq!(
            created(&hooks, "ping-v2", &file),
            [
                ("gone".to_owned(), "ping-v1".to_owned()),
                ("dataset".to_owned(), "ping-v2".to_owned()),
                ("database".to_owned(), "ping-v2".to_owned()),
            ]
        );
    }
}
