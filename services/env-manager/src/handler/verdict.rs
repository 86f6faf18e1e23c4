//! Verdicts on a change: failed tests mark its env failed; env and canary verdicts go to its
//! commit as statuses; an aborted canary sets production back to the version it replaced.

use flotilla_bus::{Event, EventType, Outgoing};
use flotilla_proto::v1::{Canary, Environment, Rollback, TestResult};

use super::{EnvManager, bad_event, manifest_error, read_manifest, refused, report};
use crate::WORKER;
use crate::error::Error;
use crate::github::State;
use crate::gitops::{FileChange, Snapshot};
use crate::manifest::{self, Reverting};
use flotilla_env::{EnvRecord, State as EnvState};

impl EnvManager {
    /// Tests failed: the env is marked failed with the reason and stays until it is reaped
    /// (for people to look at); `env.failed` says so.
    pub(super) async fn tests_failed(
        &self,
        result: TestResult,
        event: &Event,
    ) -> Result<Vec<Outgoing>, Error> {
        let env = result.env.clone();
        if !flotilla_env::is_dns_label(&env) {
            return Err(bad_event(
                event,
                &format!("env id {env:?} is not a DNS-1123 label"),
            ));
        }
        let reason = if result.reason.is_empty() {
            "tests failed".to_owned()
        } else {
            format!("tests failed: {}", result.reason)
        };
        let mut seen = None;
        let traceparent = flotilla_bus::trace::traceparent(Some(&event.headers));
        self.registry
            .update(&env, |current| {
                seen.clone_from(&current);
                let record = current.filter(|c| c.state != EnvState::Deleting)?;
                (record.state != EnvState::Failed || record.reason != reason).then(|| EnvRecord {
                    state: EnvState::Failed,
                    reason: reason.clone(),
                    traceparent: traceparent.clone().unwrap_or(record.traceparent.clone()),
                    ..record
                })
            })
            .await?;
        let record = seen.unwrap_or_default();
        tracing::warn!(env = %env, change_id = %result.change_id, reason = %reason, "tests failed: env marked failed");
        self.reporter
            .status(
                &record.repo,
                &record.sha,
                report::TESTS,
                State::Failure,
                format!("{reason} in {env}"),
                result.log_url.clone().into(),
            )
            .await;
        let change_id = if result.change_id.is_empty() {
            record.change_id.clone()
        } else {
            result.change_id.clone()
        };
        let failed = Environment {
            change_id: change_id.clone(),
            reason,
            ..record.to_environment(&env)
        };
        Ok(vec![
            Outgoing::new(EventType::EnvFailed, &env, &failed)?.with_change_id(change_id),
        ])
    }

    /// An env became ready or failed: its commit hears of it.
    /// `ready` tells `env.ready` from `env.failed`.
    pub(super) async fn env_verdict(
        &self,
        environment: Environment,
        ready: bool,
        event: &Event,
    ) -> Result<Vec<Outgoing>, Error> {
        // env-manager's own env.failed (failed tests) was reported as a test failure already.
        if event.source == format!("flotilla/{WORKER}") {
            return Ok(Vec::new());
        }
        let Some(record) = self.registry.get(&environment.env).await? else {
            tracing::debug!(env = %environment.env, "no record of the env: nothing to report");
            return Ok(Vec::new());
        };
        let env = &environment.env;
        if ready {
            let url = Some(environment.url.clone());
            let statuses = [
                (
                    report::ENV,
                    State::Success,
                    format!("environment {env} ready"),
                ),
                (
                    report::TESTS,
                    State::Pending,
                    format!("tests running in {env}"),
                ),
            ];
            for (context, state, description) in statuses {
                self.reporter
                    .status(
                        &record.repo,
                        &record.sha,
                        context,
                        state,
                        description,
                        url.clone(),
                    )
                    .await;
            }
        } else {
            let description = format!("environment {env} failed: {}", environment.reason);
            self.reporter
                .status(
                    &record.repo,
                    &record.sha,
                    report::ENV,
                    State::Failure,
                    description,
                    None,
                )
                .await;
        }
        Ok(Vec::new())
    }

    /// The canary promoted the release: its commit hears of it.
    pub(super) async fn canary_promoted(&self, canary: Canary) -> Result<Vec<Outgoing>, Error> {
        let description = format!("{} {} promoted by its canary", canary.app, canary.version);
        self.reporter
            .status(
                &canary.repo,
                &canary.sha,
                report::CANARY,
                State::Success,
                description,
                None,
            )
            .await;
        Ok(Vec::new())
    }

    /// The canary aborted: production's manifest goes back to the version the release
    /// replaced, so that git says what runs (and Argo CD does not roll the release out again).
    pub(super) async fn canary_aborted(
        &self,
        canary: Canary,
        event: &Event,
    ) -> Result<Vec<Outgoing>, Error> {
        if canary.app.is_empty() || canary.version.is_empty() {
            return Err(bad_event(
                event,
                "the aborted canary carries no app or version",
            ));
        }
        let (app, version) = (canary.app.clone(), canary.version.clone());
        // The version to restore comes from production's history, never from the event: an
        // event naming an old version must not be able to put it back in production.
        let restored = self.version_before(&app, &version).await?;
        if restored.is_empty() {
            return Err(refused(
                event,
                &format!(
                    "production's history has no version of {app} before {version}: no release \
                     of {version} to roll back"
                ),
            ));
        }
        if !canary.previous_version.is_empty() && canary.previous_version != restored {
            return Err(refused(
                event,
                &format!(
                    "the canary says {version} replaced {}, production's history says {restored}",
                    canary.previous_version
                ),
            ));
        }
        let production = self.config.production_manifest.clone();
        let message = format!(
            "env-manager: roll {app} back from {version} to {restored} (canary {} aborted)",
            canary.release
        );
        let (from, to, name) = (version.clone(), restored.clone(), app.clone());
        let (pushed, reverting) = self
            .gitops
            .commit(message, move |tree: &Snapshot<'_>| {
                let current = read_manifest(tree, &production)?;
                let reverting = manifest::roll_back(&current, &name, &from, &to)
                    .map_err(|source| manifest_error(&production, source))?;
                let writes = match &reverting {
                    Reverting::Reverted { contents } => vec![FileChange::Write {
                        path: production.clone(),
                        contents: contents.clone(),
                    }],
                    Reverting::AlreadyThere | Reverting::Moved { .. } => Vec::new(),
                };
                Ok::<_, Error>((writes, reverting))
            })
            .await?;
        let verdict = format!("{app} {version} aborted by its canary: {}", canary.reason);
        if let Reverting::Moved { current } = reverting {
            tracing::warn!(app = %app, version = %version, production = %current, "production moved on since the release; not rolled back");
            self.reporter
                .status(
                    &canary.repo,
                    &canary.sha,
                    report::CANARY,
                    State::Failure,
                    verdict,
                    None,
                )
                .await;
            return Ok(Vec::new());
        }
        let revision = pushed.revision.unwrap_or_default();
        tracing::warn!(app = %app, version = %version, restored = %restored, revision = %revision, committed = pushed.committed, "production rolled back");
        self.reporter
            .status(
                &canary.repo,
                &canary.sha,
                report::CANARY,
                State::Failure,
                format!("{verdict}; rolled back to {restored}"),
                None,
            )
            .await;
        let rollback = Rollback {
            release: canary.release.clone(),
            change_id: canary.change_id.clone(),
            app: app.clone(),
            version,
            restored_version: restored,
            revision,
            reason: canary.reason,
        };
        let mut out = Outgoing::new(EventType::ReleaseRolledBack, &app, &rollback)?;
        if !canary.change_id.is_empty() {
            out = out.with_change_id(canary.change_id);
        }
        Ok(vec![out])
    }
}
