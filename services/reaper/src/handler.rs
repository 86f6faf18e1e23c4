//! The handler: every event about an env is activity, stored in its registry record
//! (`last_activity`, compare-and-set, the latest time wins) where the idle timer reads it. A
//! teardown request wakes the sweep, to verify it sooner.
//!
//! Which env an event is about: `env.*` and `tests.*` name it; a build names its pull request's
//! preview or its staging env; a pull request event names its preview. An event about an env
//! the registry does not hold changes nothing (activity never creates a record).

use std::sync::Arc;

use flotilla_bus::{Ctx, Event, EventType, Handler, HandlerError, Outgoing};
use flotilla_env::{Registry, envid};
use flotilla_proto::v1::{Build, Environment, PullRequest, TestResult};
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::timer::{self, Clock};

/// The reaper's [`Handler`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Reaper {
    registry: Registry,
    nudge: Arc<Notify>,
    clock: Clock,
}

impl Reaper {
    pub fn new(registry: Registry, nudge: Arc<Notify>, clock: Clock) -> Reaper {
        Reaper {
            registry,
            nudge,
            clock,
        }
    }
}

impl Handler for Reaper {
    async fn handle(&self, event: Event, _ctx: Ctx) -> Result<Vec<Outgoing>, HandlerError> {
        let Some(kind) = event.kind() else {
            return Err(HandlerError::unhandled(event.event_type()));
        };
        if matches!(
            kind,
            EventType::EnvTeardownRequested | EventType::EnvDeleted
        ) {
            self.nudge.notify_one();
            return Ok(Vec::new());
        }
        let Some(env) = env_of(kind, &event)? else {
            return Err(HandlerError::unhandled(event.event_type()));
        };
        if env.is_empty() {
            return Ok(Vec::new());
        }
        if !envid::is_dns_label(&env) {
            return Err(HandlerError::permanent(format!(
                "env id {env:?} is not a DNS-1123 label"
            )));
        }
        let at = activity_time(&event, self.clock.now());
        self.registry
            .update(&env, |current| {
                let record = current.filter(|r| timer::applies(&env, r))?;
                timer::with_activity(record, at)
            })
            .await
            .map_err(HandlerError::retryable)?;
        tracing::debug!(env = %env, event_type = %event.event_type(), at = %timer::rfc3339(at), "activity");
        Ok(Vec::new())
    }
}

/// The env `event` is about; `Ok(None)` for a type the reaper does not read, an empty id when
/// it is about no env (a build of neither a pull request nor a versioned app).
fn env_of(kind: EventType, event: &Event) -> Result<Option<String>, HandlerError> {
    let env = match kind {
        EventType::EnvRequested | EventType::EnvReady | EventType::EnvFailed => {
            let env: Environment = event.decode().map_err(HandlerError::permanent)?;
            env.env
        }
        EventType::TestsPassed | EventType::TestsFailed => {
            let result: TestResult = event.decode().map_err(HandlerError::permanent)?;
            result.env
        }
        EventType::BuildStarted | EventType::BuildSucceeded | EventType::BuildFailed => {
            let build: Build = event.decode().map_err(HandlerError::permanent)?;
            if build.pr > 0 && !build.repo.is_empty() {
                envid::preview(&build.repo, build.pr)
            } else if !build.app.is_empty() && !build.version.is_empty() {
                envid::staging(&build.app, &build.version)
            } else {
                String::new()
            }
        }
        EventType::SourcePullRequest => {
            let pr: PullRequest = event.decode().map_err(HandlerError::permanent)?;
            if pr.repo.is_empty() || pr.number == 0 {
                String::new()
            } else {
                envid::preview(&pr.repo, pr.number)
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(env))
}

/// When the event happened: its `ce-time`, never later than now (a clock ahead, or a forged
/// time, must not keep an env alive past its idle time), now when it has none.
fn activity_time(event: &Event, now: OffsetDateTime) -> OffsetDateTime {
    event
        .time
        .as_deref()
        .and_then(timer::parse)
        .map_or(now, |at| at.min(now))
}
