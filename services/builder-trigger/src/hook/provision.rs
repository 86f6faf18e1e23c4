//! `env.requested` → the change's provision hooks, in file order (infrastructure, then the
//! data restored into it). The request is a claim: the registry must hold the env, still
//! `requested`, at that change. The first hook that fails stops the rest (skipped), and
//! sync-watcher fails the env with its reason.

use flotilla_bus::EventType;
use flotilla_env::State;
use flotilla_env::hooks::{Phase, RunStatus, of_change, run_id};
use flotilla_proto::v1::Environment;

use super::facts::{self, Attempt};
use super::step::{End, Step};
use super::{Hooks, Target};
use crate::error::Error;

impl Hooks<'_> {
    /// Runs the provision hooks the env's record names for the requested change.
    pub async fn provision(&self, requested: &Environment) -> Result<(), Error> {
        let env = requested.env.as_str();
        if let Some(bad) = self.bad_env(env) {
            return Err(bad);
        }
        let Some(record) = self.record(env).await? else {
            if self.settings.hooks.is_empty() {
                tracing::debug!(env, "no such env and no hooks: nothing to provision");
                return Ok(());
            }
            return Err(Error::Refused {
                event_type: self.cause.event_type().to_owned(),
                event_id: self.cause.id.clone(),
                reason: format!(
                    "no env {env} in the registry: hooks are not run on a claim alone (env-manager records an env before requesting it)"
                ),
            });
        };
        if record.change_id != requested.change_id || record.state != State::Requested {
            tracing::info!(env, requested = %requested.change_id, holds = %record.change_id, state = %record.state, "the env is elsewhere now: its hooks for this change are not run");
            return Ok(());
        }
        let names: Vec<String> = of_change(&record.hooks, &record.change_id)
            .map(|h| h.name.clone())
            .collect();
        let target = Target::of(env, &record, requested);
        for (i, name) in names.iter().enumerate() {
            let end = match self.settings.hooks.get(name) {
                Some(hook) => {
                    let step = Step {
                        target: &target,
                        hook,
                        phase: Phase::Provision,
                        entry_change: &target.change_id,
                    };
                    self.step(&step).await?
                }
                None => {
                    self.unknown(&target, name, Phase::Provision, &target.change_id)
                        .await?
                }
            };
            match end {
                End::Succeeded | End::Skipped => {}
                End::Failed => {
                    self.skip_rest(&target, name, &names[i + 1..]).await?;
                    return Ok(());
                }
                End::Gone => {
                    tracing::info!(env, change_id = %target.change_id, "the env moved on: its remaining hooks are not run");
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The hooks after a failed one are not run: recorded `skipped`.
    async fn skip_rest(&self, target: &Target, failed: &str, rest: &[String]) -> Result<(), Error> {
        if rest.is_empty() {
            return Ok(());
        }
        let reason = format!("not run: provision hook `{failed}` failed");
        self.registry
            .update(&target.env, |current| {
                let mut record = current?;
                let mut changed = false;
                for entry in record
                    .hooks
                    .iter_mut()
                    .filter(|h| h.change_id == target.change_id && rest.contains(&h.name))
                {
                    if entry.provision.state == RunStatus::Pending {
                        entry.provision.state = RunStatus::Skipped;
                        entry.provision.reason = reason.clone();
                        changed = true;
                    }
                }
                changed.then_some(record)
            })
            .await
            .map_err(|e| Error::Registry(e.to_string()))?;
        tracing::info!(env = %target.env, change_id = %target.change_id, skipped = ?rest, "hooks after a failed one skipped");
        Ok(())
    }

    /// A hook the record names that this worker's hooks file does not have: it fails (the
    /// workers' `FLOTILLA_HOOKS` differ), rather than the env waiting on it until its timeout.
    pub(crate) async fn unknown(
        &self,
        target: &Target,
        name: &str,
        phase: Phase,
        entry_change: &str,
    ) -> Result<End, Error> {
        let reason = format!("hook `{name}` is not in builder-trigger's FLOTILLA_HOOKS");
        let id = run_id(&target.env, &target.change_id, name, phase);
        let mut failed = false;
        self.registry
            .update(&target.env, |current| {
                failed = false;
                let mut record = current?;
                let entry = record
                    .hooks
                    .iter_mut()
                    .find(|h| h.name == name && h.change_id == entry_change)?;
                let run = entry.run_mut(phase);
                if run.state.is_done() || run.state == RunStatus::Running {
                    return None;
                }
                run.state = RunStatus::Failed;
                run.attempt = run.attempt.max(1);
                run.run_id = id.clone();
                run.reason = reason.clone();
                run.finished_at = facts::now();
                failed = true;
                Some(record)
            })
            .await
            .map_err(|e| Error::Registry(e.to_string()))?;
        if failed {
            tracing::warn!(env = %target.env, hook = name, phase = %phase, "{reason}");
            let attempt = Attempt {
                target,
                hook: name,
                phase,
                run_id: id,
                number: 1,
                rerun: false,
            };
            self.publish(facts::event(
                EventType::EnvHookFailed,
                &attempt,
                std::time::Duration::ZERO,
                &reason,
                "",
            )?)
            .await?;
        }
        Ok(End::Failed)
    }
}
