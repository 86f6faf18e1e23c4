//! What an event may do, judged against what the registry says an env holds. Events are claims:
//! anyone with a token can publish one, and a redelivery can arrive days late. These are pure
//! functions of the record and the claim, so every rule has a unit test; the handler reads the
//! record, asks here, and refuses (dead letter, reason, nothing changed) on `Err`.

use flotilla_env::envid::Kind;
use flotilla_env::{EnvRecord, State};
use flotilla_proto::v1::{TeardownRequest, TestResult};

use crate::manifest::{self, EnvSpec};

/// What a build finds in its env's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prior {
    /// Nothing of this change is there: write the env.
    Fresh,
    /// This change was written already (a redelivery, a rebuild, a duplicate callback); nothing
    /// is written again. `republish` when the env is still `requested`: the first handling may
    /// have stopped before its `env.requested` was published, so it is published again (with
    /// the same id, which the bus deduplicates).
    Written { republish: bool },
}

/// `Some` when `record` holds the change `change_id` already: its record is kept as it is.
///
/// Asked before the env is written and again when its record is written after: two handlings
/// of one build (a redelivery while the first still ran, or one whose first read of the
/// registry missed the record) both reach git, where the second finds the file written and
/// takes the branch's head as the change's revision. Recording that over the first handling's
/// record would move an env sync-watcher found ready back to `requested`, at a revision no
/// `env.requested` announces.
pub fn recorded(record: Option<&EnvRecord>, change_id: &str) -> Option<Prior> {
    let record = record.filter(|r| r.change_id == change_id)?;
    let republish = record.state == State::Requested && !record.revision.is_empty();
    Some(Prior::Written { republish })
}

/// Whether the build of `spec` may write its env, given the env's `record`.
pub fn build(record: Option<&EnvRecord>, spec: &EnvSpec) -> Result<Prior, String> {
    let Some(record) = record else {
        return Ok(Prior::Fresh);
    };
    if let Some(prior) = recorded(Some(record), &spec.change_id) {
        return Ok(prior);
    }
    if record.state.is_going_away() {
        // A pull request's build that finished after its preview was torn down must not bring
        // it back; a build from after the teardown (the pull request reopened) may.
        let built = manifest::version_stamp(&spec.version);
        let torn_down = manifest::time_stamp(&record.deleted_at);
        if let (Some(built), Some(torn_down)) = (built, torn_down.as_deref())
            && built <= torn_down
        {
            return Err(format!(
                "{} was torn down at {} ({}); {} was built before that and does not bring it back",
                spec.env,
                record.deleted_at,
                if record.reason.is_empty() {
                    "no reason given"
                } else {
                    &record.reason
                },
                spec.change_id
            ));
        }
        return Ok(Prior::Fresh);
    }
    let running = version_of(record, &spec.app);
    if manifest::is_older(&spec.version, running) {
        return Err(format!(
            "{} runs {} {running} ({}), newer than {}: an older change is not written over it",
            spec.env, spec.app, record.change_id, spec.change_id
        ));
    }
    Ok(Prior::Fresh)
}

/// How a staging env's passed tests may promote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promotion {
    /// The env holds the tested change: promote it.
    Promote,
    /// The env is being torn down after its promotion: a redelivered result may only find the
    /// promotion done (production at that version) and answer as before.
    ReplayOnly,
    /// The registry does not show the env ready yet: the result is retried, and refused only
    /// if it still does not after every delivery. Tests run once builder-trigger read the env
    /// ready, so this is a registry that has not caught up (sync-watcher's write lost with a
    /// cluster node and made again by its next sweep), not a claim to refuse at once.
    AwaitReady,
}

/// Whether passed tests in staging env `env` may promote `result`'s app and version: only when
/// the registry says the env exists, is staging, was written by env-manager, holds the change
/// that was tested, runs that app at that version, and is ready (tests run in a ready env).
pub fn promotion(record: Option<&EnvRecord>, result: &TestResult) -> Result<Promotion, String> {
    let env = &result.env;
    let Some(record) = record else {
        return Err(format!(
            "no env {env} in the registry: nothing built by Flotilla is there to promote"
        ));
    };
    if record.kind != Kind::Staging.as_str() {
        return Err(format!(
            "{env} is a {} env, not staging: only staging envs are promoted",
            kind_name(record)
        ));
    }
    if record.revision.is_empty() {
        return Err(format!(
            "{env} was never written to the GitOps repository by env-manager"
        ));
    }
    if result.change_id.is_empty() {
        return Err("the test result names no change".into());
    }
    if result.change_id != record.change_id {
        return Err(format!(
            "{env} holds {}, not the tested {}",
            record.change_id, result.change_id
        ));
    }
    let running = version_of(record, &result.app);
    if running != result.version {
        return Err(format!(
            "{env} runs {} {}, not {}",
            result.app,
            if running.is_empty() {
                "not at all"
            } else {
                running
            },
            result.version
        ));
    }
    match &record.state {
        State::Ready => Ok(Promotion::Promote),
        State::Requested => Ok(Promotion::AwaitReady),
        State::Deleting | State::Deleted => Ok(Promotion::ReplayOnly),
        State::Failed => Err(format!(
            "{env} failed ({}): a failed env is not promoted",
            record.reason
        )),
        other => Err(format!("{env} is {other}: not promoted")),
    }
}

/// Whether `request` may tear down its env. `in_git` says whether the env's file is in the
/// GitOps repository; it is only asked when the registry has no record.
pub fn teardown(
    record: Option<&EnvRecord>,
    request: &TeardownRequest,
    in_git: impl FnOnce() -> bool,
) -> Result<(), String> {
    let env = &request.env;
    match record {
        None if !in_git() => Err(format!(
            "no env {env}, in the registry or the GitOps repository: nothing to tear down"
        )),
        None => Ok(()),
        // A teardown for an earlier change of a preview that has moved on to a newer one.
        Some(record)
            if !request.change_id.is_empty()
                && !record.state.is_going_away()
                && request.change_id != record.change_id =>
        {
            Err(format!(
                "{env} holds {} now, not {}: the teardown is for a change it no longer runs",
                record.change_id, request.change_id
            ))
        }
        Some(_) => Ok(()),
    }
}

/// The version of `app` the env's record says it runs; empty when it does not run it.
fn version_of<'a>(record: &'a EnvRecord, app: &str) -> &'a str {
    record
        .apps
        .iter()
        .find(|a| a.name == app)
        .map(|a| a.version.as_str())
        .unwrap_or_default()
}

fn kind_name(record: &EnvRecord) -> &str {
    if record.kind.is_empty() {
        "unknown"
    } else {
        &record.kind
    }
}

#[cfg(test)]
mod tests;
