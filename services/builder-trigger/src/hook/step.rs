//! One hook's phase for one env: started once (compare-and-set `pending` → `running`),
//! followed to its end, finished once (`running` → `succeeded` / `failed`), its events
//! published as that happens. A run found `running` is followed where it runs, or run again as
//! the next attempt when it died without a result.

use std::time::{Duration, Instant};

use flotilla_bus::EventType;
use flotilla_env::hooks::{Hook, HookState, Phase, RunState, RunStatus, run_id};
use flotilla_env::{EnvRecord, State};

use super::facts::{self, Attempt};
use super::{Hooks, Target};
use crate::backend::{Kind, Outcome, Run};
use crate::command::detached;
use crate::error::Error;

/// How long past its deadline a run another worker holds is still waited for: that worker
/// kills it at the deadline and records the end a moment later.
pub(crate) const GRACE: Duration = Duration::from_secs(30);

/// How one hook's phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Succeeded,
    Failed,
    Skipped,
    /// The record moved on (another change, a teardown, the entry gone): nothing to do here.
    Gone,
}

/// A hook's phase to run: on the record's entry `(hook, entry_change)`, for `target`'s change.
pub(crate) struct Step<'a> {
    pub target: &'a Target,
    pub hook: &'a Hook,
    pub phase: Phase,
    pub entry_change: &'a str,
}

impl Step<'_> {
    fn entry<'r>(&self, record: &'r EnvRecord) -> Option<&'r HookState> {
        record
            .hooks
            .iter()
            .find(|h| h.name == self.hook.name && h.change_id == self.entry_change)
    }

    /// Whether the record still asks for this phase: provision while the env is requested at
    /// the change, deprovision while the change's env is going or gone.
    fn wanted(&self, record: &EnvRecord) -> bool {
        record.change_id == self.target.change_id
            && match self.phase {
                Phase::Provision => record.state == State::Requested,
                Phase::Deprovision => record.state.is_going_away(),
            }
    }

    pub(crate) fn attempt(&self, number: u32, rerun: bool) -> Attempt<'_> {
        Attempt {
            target: self.target,
            hook: &self.hook.name,
            phase: self.phase,
            run_id: run_id(
                &self.target.env,
                &self.target.change_id,
                &self.hook.name,
                self.phase,
            ),
            number,
            rerun,
        }
    }
}

impl Hooks<'_> {
    /// Runs `step` once: skips it when it ended already, follows it when it runs, starts it when
    /// it is pending (after any other run of the env still going).
    pub(crate) async fn step(&self, step: &Step<'_>) -> Result<End, Error> {
        loop {
            let Some(record) = self.record(&step.target.env).await? else {
                return Ok(End::Gone);
            };
            let Some(entry) = step.entry(&record) else {
                return Ok(End::Gone);
            };
            let run = entry.run(step.phase).clone();
            let end = match run.state {
                RunStatus::Succeeded | RunStatus::Failed => {
                    // Said again, in case a worker died between recording it and saying it: the
                    // event's id makes a second copy a duplicate.
                    self.announce_end(step, &run).await?;
                    return Ok(if run.state == RunStatus::Succeeded {
                        End::Succeeded
                    } else {
                        End::Failed
                    });
                }
                RunStatus::Skipped => return Ok(End::Skipped),
                RunStatus::Running => self.resume(step, &run).await?,
                RunStatus::Pending | RunStatus::Unknown => {
                    if !step.wanted(&record) {
                        return Ok(End::Gone);
                    }
                    if self.others_running(&record, step).await? {
                        None
                    } else {
                        self.fresh(step, &run, None).await?
                    }
                }
            };
            if let Some(end) = end {
                return Ok(end);
            }
            tokio::time::sleep(self.settings.poll).await;
        }
    }

    /// Starts attempt `previous.attempt + 1`, if the record still shows `previous` (another
    /// replica may have started it meanwhile: `None`, look again). `rerun` says why an earlier
    /// attempt is run again.
    pub(crate) async fn fresh(
        &self,
        step: &Step<'_>,
        previous: &RunState,
        rerun: Option<String>,
    ) -> Result<Option<End>, Error> {
        let attempt = step.attempt(previous.attempt + 1, rerun.is_some());
        let local = matches!(self.runner.base(), crate::backend::Runner::Command(_));
        let running = RunState {
            state: RunStatus::Running,
            attempt: attempt.number,
            run_id: attempt.run_id.clone(),
            started_at: facts::now(),
            deadline: facts::deadline_in(step.hook.timeout),
            host: local.then(detached::host).flatten(),
            boot_id: local.then(detached::boot_id).flatten(),
            ..RunState::default()
        };
        let began = self
            .update(step, true, |entry| {
                let run = entry.run(step.phase);
                if run.state != previous.state || run.attempt != previous.attempt {
                    return false;
                }
                *entry.run_mut(step.phase) = running.clone();
                if step.phase == Phase::Provision {
                    entry.created = true;
                }
                true
            })
            .await?;
        if !began {
            // Another worker moved it, or the record no longer asks for it.
            let record = self.record(&step.target.env).await?;
            return Ok(match record {
                Some(record) if step.wanted(&record) => None,
                _ => Some(End::Gone),
            });
        }
        let reason = rerun.unwrap_or_default();
        tracing::info!(env = %step.target.env, change_id = %step.target.change_id, hook = %step.hook.name, phase = %step.phase, attempt = attempt.number, rerun = attempt.rerun, reason = %reason, "hook started");
        self.publish(facts::event(
            EventType::EnvHookStarted,
            &attempt,
            Duration::ZERO,
            &reason,
            "",
        )?)
        .await?;
        let started = Instant::now();
        let note = (!reason.is_empty()).then_some(reason.as_str());
        let outcome = self.execute(step, &attempt, note).await;
        self.finish(step, &attempt, &outcome, started.elapsed())
            .await
            .map(Some)
    }

    /// Runs `attempt` through the backend to its end; the command backend's process is
    /// recorded as soon as it exists.
    pub(crate) async fn execute(
        &self,
        step: &Step<'_>,
        attempt: &Attempt<'_>,
        note: Option<&str>,
    ) -> Outcome {
        let state_dir = self.state_dir(&step.target.env);
        if let Some(dir) = &state_dir
            && !self.dry_run
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            return Outcome::failed(format!(
                "cannot create the hook state directory {}: {e}",
                dir.display()
            ));
        }
        let run = self.run_of(step, attempt, state_dir.as_deref());
        if run.exec.is_none() {
            return Outcome::failed(format!(
                "builder-trigger's FLOTILLA_HOOKS gives hook `{}` no {} step",
                step.hook.name, step.phase
            ));
        }
        let handle = match self.runner.start_hook(&run, note) {
            Ok(handle) => handle,
            Err(outcome) => return outcome,
        };
        if let Some(pid) = handle.pid() {
            let number = attempt.number;
            let recorded = self
                .update(step, false, |entry| {
                    let run = entry.run_mut(step.phase);
                    let ours = run.state == RunStatus::Running && run.attempt == number;
                    if ours {
                        run.pid = Some(pid);
                    }
                    ours
                })
                .await;
            if let Err(e) = recorded {
                // The wrapper's pid file says it too.
                tracing::warn!(env = %step.target.env, hook = %step.hook.name, error = %e, "could not record the hook's process");
            }
        }
        self.runner.finish_hook(&run, handle).await
    }

    /// The backend's run of `attempt`.
    pub(crate) fn run_of(
        &self,
        step: &Step<'_>,
        attempt: &Attempt<'_>,
        state_dir: Option<&std::path::Path>,
    ) -> Run {
        Run {
            kind: Kind::Hook,
            id: attempt.run_id.clone(),
            change_id: step.target.change_id.clone(),
            env: Some(step.target.env.clone()),
            vars: facts::vars(attempt, state_dir),
            timeout: step.hook.timeout,
            exec: self
                .settings
                .exec
                .get(&(step.hook.name.clone(), step.phase))
                .cloned(),
        }
    }

    /// Records how `attempt` ended (unless another worker recorded it already) and says so.
    pub(crate) async fn finish(
        &self,
        step: &Step<'_>,
        attempt: &Attempt<'_>,
        outcome: &Outcome,
        took: Duration,
    ) -> Result<End, Error> {
        let succeeded = outcome.succeeded();
        let reason = if succeeded {
            String::new()
        } else {
            outcome.reason()
        };
        let number = attempt.number;
        let recorded = self
            .update(step, false, |entry| {
                let run = entry.run_mut(step.phase);
                if run.state != RunStatus::Running || run.attempt != number {
                    return false;
                }
                run.state = if succeeded {
                    RunStatus::Succeeded
                } else {
                    RunStatus::Failed
                };
                run.finished_at = facts::now();
                run.reason = reason.clone();
                run.log_url = outcome.log_url.clone();
                true
            })
            .await?;
        if !recorded {
            tracing::info!(env = %step.target.env, hook = %step.hook.name, attempt = number, "the run's end was recorded already");
        }
        let kind = if succeeded {
            tracing::info!(env = %step.target.env, change_id = %step.target.change_id, hook = %step.hook.name, phase = %step.phase, attempt = number, log = %outcome.log_url, "hook succeeded");
            EventType::EnvHookSucceeded
        } else {
            tracing::warn!(env = %step.target.env, change_id = %step.target.change_id, hook = %step.hook.name, phase = %step.phase, attempt = number, reason = %outcome.summary(), log = %outcome.log_url, "hook failed");
            EventType::EnvHookFailed
        };
        self.publish(facts::event(
            kind,
            attempt,
            took,
            &reason,
            &outcome.log_url,
        )?)
        .await?;
        Ok(if succeeded {
            End::Succeeded
        } else {
            End::Failed
        })
    }

    /// The event of a run's recorded end, published again.
    async fn announce_end(&self, step: &Step<'_>, run: &RunState) -> Result<(), Error> {
        if run.attempt == 0 || run.run_id.is_empty() {
            return Ok(());
        }
        let attempt = Attempt {
            run_id: run.run_id.clone(),
            ..step.attempt(run.attempt, run.attempt > 1)
        };
        let kind = if run.state == RunStatus::Succeeded {
            EventType::EnvHookSucceeded
        } else {
            EventType::EnvHookFailed
        };
        let took = facts::between(&run.started_at, &run.finished_at);
        self.publish(facts::event(
            kind,
            &attempt,
            took,
            &run.reason,
            &run.log_url,
        )?)
        .await
    }

    /// Applies `change` to the step's entry; `false` when the entry is gone, `change` declined,
    /// or (with `claim`) the record no longer asks for the step.
    pub(crate) async fn update(
        &self,
        step: &Step<'_>,
        claim: bool,
        mut change: impl FnMut(&mut HookState) -> bool,
    ) -> Result<bool, Error> {
        let mut applied = false;
        self.registry
            .update(&step.target.env, |current| {
                applied = false;
                let mut record = current?;
                if claim && !step.wanted(&record) {
                    return None;
                }
                let entry = record
                    .hooks
                    .iter_mut()
                    .find(|h| h.name == step.hook.name && h.change_id == step.entry_change)?;
                if !change(entry) {
                    return None;
                }
                applied = true;
                Some(record)
            })
            .await
            .map_err(|e| Error::Registry(e.to_string()))?;
        Ok(applied)
    }

    pub(crate) async fn publish(&self, event: flotilla_bus::Outgoing) -> Result<(), Error> {
        self.publisher
            .publish_all(vec![event], Some(self.cause))
            .await?;
        Ok(())
    }
}
