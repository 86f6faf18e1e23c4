//! Hibernation: a preview env is suspended (its file stays in git, marked `suspended`, so the
//! env chart renders its workloads at zero replicas; the registry says `suspended`) and resumed
//! exactly as it was. The reaper decides when; env-manager, the one GitOps writer, writes it.
//! Never a teardown: nothing is removed.

use flotilla_bus::{Event, EventType, Outgoing};
use flotilla_proto::v1::{Environment, TeardownRequest};
use serde_json::Value;

use super::{EnvManager, bad_event, manifest_error, refusal, refused};
use crate::error::Error;
use crate::gitops::{FileChange, Snapshot};
use crate::manifest;
use flotilla_env::envid::Kind;
use flotilla_env::{EnvRecord, State as EnvState};

/// Where the state an env was suspended from is kept in its record, to come back to it.
const SUSPENDED_FROM: &str = "suspended_from";
/// Why it was suspended (`hibernate` when the reaper asked): the reaper wakes only its own.
const SUSPENDED_BY: &str = "suspended_by";

impl EnvManager {
    /// Suspends a live preview env; a repeated request finds it suspended and changes nothing.
    pub(super) async fn suspend(
        &self,
        request: TeardownRequest,
        event: &Event,
    ) -> Result<Vec<Outgoing>, Error> {
        let env = request.env.clone();
        let record = self.hibernation_record(&request, event).await?;
        match &record.state {
            EnvState::Suspended => {
                tracing::debug!(env = %env, "suspended already");
                return Ok(Vec::new());
            }
            EnvState::Requested | EnvState::Ready | EnvState::Failed => {}
            other => return Err(refused(event, &format!("{env} is {other}: not suspended"))),
        }
        if Kind::of(&env) != Some(Kind::Preview) {
            return Err(refused(
                event,
                &format!("{env} is not a preview env: only previews hibernate"),
            ));
        }
        self.mark(&env, true, &request.reason, event).await?;
        let from = record.state.as_str().to_owned();
        self.registry
            .update(&env, |current| {
                let mut record = current.filter(|r| r.change_id == record.change_id)?;
                if record.state == EnvState::Suspended {
                    return None;
                }
                record
                    .other
                    .insert(SUSPENDED_FROM.into(), Value::from(from.clone()));
                record
                    .other
                    .insert(SUSPENDED_BY.into(), Value::from(request.reason.clone()));
                Some(EnvRecord {
                    state: EnvState::Suspended,
                    ..record
                })
            })
            .await?;
        tracing::info!(env = %env, reason = %request.reason, "environment suspended");
        Ok(vec![outcome(
            EventType::EnvSuspended,
            &env,
            &record,
            &request.reason,
        )?])
    }

    /// Resumes a suspended env to the state it was suspended from; a repeated request finds it
    /// live and changes nothing.
    pub(super) async fn resume(
        &self,
        request: TeardownRequest,
        event: &Event,
    ) -> Result<Vec<Outgoing>, Error> {
        let env = request.env.clone();
        let record = self.hibernation_record(&request, event).await?;
        if record.state != EnvState::Suspended {
            tracing::debug!(env = %env, state = %record.state, "not suspended: nothing to resume");
            return Ok(Vec::new());
        }
        self.mark(&env, false, &request.reason, event).await?;
        self.registry
            .update(&env, |current| {
                let mut record = current.filter(|r| {
                    r.change_id == record.change_id && r.state == EnvState::Suspended
                })?;
                record.other.remove(SUSPENDED_BY);
                let from = record
                    .other
                    .remove(SUSPENDED_FROM)
                    .and_then(|v| v.as_str().map(EnvState::from))
                    .unwrap_or(EnvState::Ready);
                Some(EnvRecord {
                    state: from,
                    ..record
                })
            })
            .await?;
        tracing::info!(env = %env, reason = %request.reason, "environment resumed");
        Ok(vec![outcome(
            EventType::EnvResumed,
            &env,
            &record,
            &request.reason,
        )?])
    }

    /// The env's record, when the request may act on it: the env exists, and the request names
    /// its current change (or none).
    async fn hibernation_record(
        &self,
        request: &TeardownRequest,
        event: &Event,
    ) -> Result<EnvRecord, Error> {
        let env = &request.env;
        if !flotilla_env::is_dns_label(env) {
            return Err(bad_event(
                event,
                &format!("env id {env:?} is not a DNS-1123 label"),
            ));
        }
        let Some(record) = self.registry.get(env).await? else {
            return Err(refused(event, &format!("no env {env} in the registry")));
        };
        if !request.change_id.is_empty() && request.change_id != record.change_id {
            return Err(refused(
                event,
                &format!(
                    "{env} holds {}, not {}",
                    record.change_id, request.change_id
                ),
            ));
        }
        Ok(record)
    }

    /// Marks the env's file suspended, or clears the mark; the file must be in git.
    async fn mark(
        &self,
        env: &str,
        suspended: bool,
        reason: &str,
        event: &Event,
    ) -> Result<(), Error> {
        let path = self.config.env_manifest(env);
        let verb = if suspended { "suspend" } else { "resume" };
        let message = format!("env-manager: {verb} env {env} ({reason})");
        let refuse = refusal(event);
        let (pushed, ()) = self
            .gitops
            .commit(message, move |tree: &Snapshot<'_>| {
                let Some(current) = tree.read(&path)? else {
                    return Err(refuse(format!("{path} is not in the GitOps repository")));
                };
                let contents = manifest::set_suspended(&current, suspended)
                    .map_err(|source| manifest_error(&path, source))?;
                Ok((
                    vec![FileChange::Write {
                        path: path.clone(),
                        contents,
                    }],
                    (),
                ))
            })
            .await?;
        tracing::debug!(
            env,
            verb,
            committed = pushed.committed,
            "hibernation written"
        );
        Ok(())
    }
}

fn outcome(
    event_type: EventType,
    env: &str,
    record: &EnvRecord,
    reason: &str,
) -> Result<Outgoing, Error> {
    let environment = Environment {
        reason: reason.to_owned(),
        ..record.to_environment(env)
    };
    Ok(Outgoing::new(event_type, env, &environment)?.with_change_id(&record.change_id))
}
