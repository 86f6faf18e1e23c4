//! Runs found `running` in the record: this step's own (an earlier worker's, followed where it
//! runs or run again when it died without a result), and the env's other runs, which a new run
//! waits for unless they are over in fact.

use std::time::Duration;

use flotilla_bus::EventType;
use flotilla_env::EnvRecord;
use flotilla_env::hooks::{HookState, Phase, RunState, RunStatus};

use super::facts::{self, Attempt};
use super::step::{End, GRACE, Step};
use super::{Hooks, Target};
use crate::backend::{Found, Kind, Run};
use crate::error::Error;

impl Hooks<'_> {
    /// A run the record says is going: its end when it ended, followed when it still runs,
    /// run again when it died without a result; `None` while another host's run is waited on.
    pub(crate) async fn resume(
        &self,
        step: &Step<'_>,
        run: &RunState,
    ) -> Result<Option<End>, Error> {
        let attempt = Attempt {
            run_id: if run.run_id.is_empty() {
                step.attempt(run.attempt, false).run_id
            } else {
                run.run_id.clone()
            },
            ..step.attempt(run.attempt, run.attempt > 1)
        };
        let backend_run = self.run_of(step, &attempt, self.state_dir(&step.target.env).as_deref());
        let took = || facts::since(&run.started_at);
        let why = match self.runner.probe_hook(&backend_run, run).await {
            Found::Ended(outcome) => {
                self.restate_start(&attempt).await?;
                tracing::info!(env = %step.target.env, hook = %step.hook.name, attempt = run.attempt, "the hook ended while no worker followed it: its outcome is recorded");
                return self
                    .finish(step, &attempt, &outcome, took())
                    .await
                    .map(Some);
            }
            Found::Running(pid) => {
                self.restate_start(&attempt).await?;
                tracing::info!(env = %step.target.env, hook = %step.hook.name, attempt = run.attempt, pid, "the hook still runs: following it");
                let remaining = facts::until(&run.deadline).unwrap_or(Duration::ZERO);
                match self.runner.adopt_hook(&backend_run, pid, remaining).await {
                    Some(outcome) => {
                        return self
                            .finish(step, &attempt, &outcome, took())
                            .await
                            .map(Some);
                    }
                    None => {
                        "its process ended without an exit status while it was followed".to_owned()
                    }
                }
            }
            Found::Dead(why) => why,
            Found::Starting => {
                tracing::debug!(env = %step.target.env, hook = %step.hook.name, "the hook was recorded as started moments ago: looking again shortly");
                return Ok(None);
            }
            Found::Elsewhere(why) if facts::before(&run.deadline, GRACE) => {
                tracing::debug!(env = %step.target.env, hook = %step.hook.name, why = %why, "the hook runs where this worker cannot follow it: waiting for its end or its deadline");
                return Ok(None);
            }
            Found::Elsewhere(why) => format!("{why}, and it is past its deadline"),
            Found::Unknown(why) => return Err(Error::Registry(why)),
        };
        let note = format!(
            "attempt {} (run {}) ended without a result: {why}; running it again as attempt {}",
            run.attempt,
            attempt.run_id,
            run.attempt + 1
        );
        tracing::warn!(env = %step.target.env, hook = %step.hook.name, reason = %note, "hook run again");
        self.fresh(step, run, Some(note)).await
    }

    /// `env.hook.started` of a run this worker takes over, said again in case the worker that
    /// started it died before saying so (a duplicate, by its id, when it did not).
    async fn restate_start(&self, attempt: &Attempt<'_>) -> Result<(), Error> {
        self.publish(facts::event(
            EventType::EnvHookStarted,
            attempt,
            Duration::ZERO,
            "",
            "",
        )?)
        .await
    }

    /// Whether another run of the env still goes (before its deadline): this one waits for it.
    /// A run found over in fact (it ended, or died, with nobody following it: its change was
    /// superseded or torn down) is recorded as such and not waited for.
    pub(crate) async fn others_running(
        &self,
        record: &EnvRecord,
        step: &Step<'_>,
    ) -> Result<bool, Error> {
        let mut wait = false;
        for entry in &record.hooks {
            for phase in [Phase::Provision, Phase::Deprovision] {
                let run = entry.run(phase);
                let this = entry.name == step.hook.name
                    && entry.change_id == step.entry_change
                    && phase == step.phase;
                if this || run.state != RunStatus::Running || !facts::before(&run.deadline, GRACE) {
                    continue;
                }
                if self.settle_other(step.target, entry, phase, run).await? {
                    continue;
                }
                tracing::debug!(env = %step.target.env, hook = %step.hook.name, waits_for = %entry.name, of = %entry.change_id, phase = %phase, "waiting for another run of the env");
                wait = true;
            }
        }
        Ok(wait)
    }

    /// Records the end of another run that ended or died with nobody following it; `true`
    /// when it is over.
    async fn settle_other(
        &self,
        target: &Target,
        entry: &HookState,
        phase: Phase,
        run: &RunState,
    ) -> Result<bool, Error> {
        let timeout = self
            .settings
            .hooks
            .get(&entry.name)
            .map_or(flotilla_env::hooks::config::DEFAULT_TIMEOUT, |h| h.timeout);
        let probe = Run {
            kind: Kind::Hook,
            id: run.run_id.clone(),
            change_id: entry.change_id.clone(),
            env: Some(target.env.clone()),
            vars: Vec::new(),
            timeout,
            exec: None,
        };
        let (state, reason, log_url) = match self.runner.probe_hook(&probe, run).await {
            Found::Ended(outcome) if outcome.succeeded() => {
                (RunStatus::Succeeded, String::new(), outcome.log_url)
            }
            Found::Ended(outcome) => (RunStatus::Failed, outcome.reason(), outcome.log_url),
            Found::Dead(why) => (
                RunStatus::Failed,
                format!("ended without a result ({why}); not run again: the env moved on"),
                String::new(),
            ),
            _ => return Ok(false),
        };
        let (name, change, attempt) = (entry.name.clone(), entry.change_id.clone(), run.attempt);
        self.registry
            .update(&target.env, |current| {
                let mut record = current?;
                let other = record
                    .hooks
                    .iter_mut()
                    .find(|h| h.name == name && h.change_id == change)?;
                let run = other.run_mut(phase);
                if run.state != RunStatus::Running || run.attempt != attempt {
                    return None;
                }
                run.state = state;
                run.reason = reason.clone();
                run.log_url = log_url.clone();
                run.finished_at = facts::now();
                Some(record)
            })
            .await
            .map_err(|e| Error::Registry(e.to_string()))?;
        tracing::info!(env = %target.env, hook = %name, of = %change, phase = %phase, state = %state, "another run of the env ended with nobody following it: recorded");
        Ok(true)
    }
}
