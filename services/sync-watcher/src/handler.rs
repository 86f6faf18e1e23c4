//! The handler: `env.requested` in, a wait handed to the tracker. The request is a claim: the
//! registry must hold the env at that change, still `requested`; a late request for a change
//! the env no longer holds starts nothing. `env.hook.succeeded` / `env.hook.failed` of a
//! provision are claims too: the tracker takes the hooks' states from the record they name, not
//! from the event, and sooner than its next sweep.

use flotilla_bus::{Ctx, Event, EventType, Handler, HandlerError, Outgoing};
use flotilla_env::{Registry, State};
use flotilla_proto::v1::{Environment, HookRun};

use crate::tracker::{Input, Tracker};

/// sync-watcher's [`Handler`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SyncWatcher {
    registry: Registry,
    tracker: Tracker,
}

impl SyncWatcher {
    pub fn new(registry: Registry, tracker: Tracker) -> SyncWatcher {
        SyncWatcher { registry, tracker }
    }
}

impl Handler for SyncWatcher {
    async fn handle(&self, event: Event, _ctx: Ctx) -> Result<Vec<Outgoing>, HandlerError> {
        match event.kind() {
            Some(EventType::EnvRequested) => self.requested(&event).await,
            Some(EventType::EnvHookSucceeded | EventType::EnvHookFailed) => {
                self.hook_ended(&event).await
            }
            _ => Err(HandlerError::unhandled(event.event_type())),
        }
    }
}

impl SyncWatcher {
    /// A hook's run ended: the tracker hears the record's hook states, when the record holds
    /// the env requested at that change.
    async fn hook_ended(&self, event: &Event) -> Result<Vec<Outgoing>, HandlerError> {
        let run: HookRun = event.decode().map_err(HandlerError::permanent)?;
        if run.phase != flotilla_env::hooks::Phase::Provision.as_str() {
            return Ok(Vec::new());
        }
        if !flotilla_env::is_dns_label(&run.env) {
            return Err(HandlerError::permanent(format!(
                "env id {:?} is not a DNS-1123 label",
                run.env
            )));
        }
        let record = self
            .registry
            .get(&run.env)
            .await
            .map_err(HandlerError::retryable)?;
        let Some(record) =
            record.filter(|r| r.change_id == run.change_id && r.state == State::Requested)
        else {
            tracing::debug!(env = %run.env, change_id = %run.change_id, hook = %run.hook, "the env is not waiting on this change's hooks");
            return Ok(Vec::new());
        };
        self.tracker
            .send(Input::Hooks {
                env: run.env,
                record,
            })
            .await
            .map_err(HandlerError::retryable)?;
        Ok(Vec::new())
    }

    async fn requested(&self, event: &Event) -> Result<Vec<Outgoing>, HandlerError> {
        let requested: Environment = event.decode().map_err(HandlerError::permanent)?;
        let env = requested.env;
        if !flotilla_env::is_dns_label(&env) {
            return Err(HandlerError::permanent(format!(
                "env id {env:?} is not a DNS-1123 label"
            )));
        }
        let record = self
            .registry
            .get(&env)
            .await
            .map_err(HandlerError::retryable)?;
        let Some(record) = record else {
            return Err(HandlerError::permanent(format!(
                "refused: no env {env} in the registry (env-manager records an env before requesting it)"
            ))
            .with_label("refused"));
        };
        if record.change_id != requested.change_id {
            tracing::info!(env = %env, requested = %requested.change_id, holds = %record.change_id, "the env holds another change now: not waited on");
            return Ok(Vec::new());
        }
        if record.state != State::Requested {
            tracing::debug!(env = %env, state = %record.state, "the env was judged already");
            return Ok(Vec::new());
        }
        // env.ready, published later by the tracker, continues the trace from this handling.
        let traceparent = flotilla_bus::trace::traceparent(Some(&event.headers));
        self.tracker
            .send(Input::Requested {
                env,
                record,
                traceparent,
            })
            .await
            .map_err(HandlerError::retryable)?;
        Ok(Vec::new())
    }
}
