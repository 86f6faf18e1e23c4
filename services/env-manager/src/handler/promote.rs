//! Passed tests: a staging env's version goes to production (a commit on the GitOps branch, or
//! a pull request through the GitHub API), a release is requested and the env torn down.

use flotilla_bus::{Event, EventType, Outgoing};
use flotilla_proto::v1::{Release, TeardownRequest, TestResult};

use super::{
    EnvManager, HISTORY_DEPTH, manifest_error, read_manifest, refusal, refused, report, trust,
};
use crate::config::Promote;
use crate::error::Error;
use crate::github::{FileUpdate, GithubRepo, State};
use crate::gitops::{FileChange, Snapshot};
use crate::manifest::{self, Promotion};
use flotilla_env::EnvRecord;
use flotilla_env::envid::{self, Kind};

/// How production took the tested version.
struct Promoted {
    previous_version: String,
    /// The GitOps commit holding it (a direct promotion).
    revision: String,
    /// The pull request carrying it (a pull-request promotion).
    pull_request_url: String,
}

impl EnvManager {
    /// Tests passed: the commit hears of it; a staging env's version is promoted, when the
    /// registry and the GitOps repository agree that the env holds the tested change.
    pub(super) async fn tests_passed(
        &self,
        result: TestResult,
        event: &Event,
    ) -> Result<Vec<Outgoing>, Error> {
        let record = self.registry.get(&result.env).await?;
        if Kind::of(&result.env) != Some(Kind::Staging) {
            // A preview's result is only reported, on the commit of the change it tested.
            match record {
                Some(record)
                    if result.change_id.is_empty() || result.change_id == record.change_id =>
                {
                    self.report_passed(&result, &record).await;
                }
                _ => {
                    tracing::debug!(env = %result.env, change_id = %result.change_id, "tests passed for a change the env does not hold: not reported");
                }
            }
            return Ok(Vec::new());
        }
        let how =
            trust::promotion(record.as_ref(), &result).map_err(|reason| refused(event, &reason))?;
        if how == trust::Promotion::AwaitReady {
            return Err(Error::Unsettled {
                event_type: event.event_type().to_owned(),
                event_id: event.id.clone(),
                reason: format!(
                    "{} is not ready in the registry (sync-watcher has not recorded it ready): \
                     its tests cannot have run against it",
                    result.env
                ),
            });
        }
        let record = record.unwrap_or_default();
        if how == trust::Promotion::Promote {
            self.check_env_file(&result, event).await?;
        }
        self.report_passed(&result, &record).await;
        self.promote(result, &record, how, event).await
    }

    async fn report_passed(&self, result: &TestResult, record: &EnvRecord) {
        self.reporter
            .status(
                &record.repo,
                &record.sha,
                report::TESTS,
                State::Success,
                format!("tests passed in {}", result.env),
                None,
            )
            .await;
    }

    /// The env's file in git must hold the tested change at the tested version: git, not the
    /// event, says what was deployed there.
    ///
    /// A missing file is retried rather than refused: the registry says the env is ready, and a
    /// teardown removes the file before it marks the record, so a result redelivered in between
    /// (its first delivery promoted the env and asked for the teardown) would otherwise be
    /// dead-lettered. Once the record says the env is going, the retry is answered as a replay.
    async fn check_env_file(&self, result: &TestResult, event: &Event) -> Result<(), Error> {
        let path = self.config.env_manifest(&result.env);
        let Some(bytes) = self.gitops.read(path.clone()).await? else {
            return Err(Error::Unsettled {
                event_type: event.event_type().to_owned(),
                event_id: event.id.clone(),
                reason: format!(
                    "{path} is not in the GitOps repository while the registry says {} is ready: \
                     nothing to promote unless a teardown is under way",
                    result.env
                ),
            });
        };
        let holding = manifest::holding(&bytes, &result.app)
            .map_err(|source| manifest_error(&path, source))?;
        if holding.change_id != result.change_id || holding.version != result.version {
            return Err(refused(
                event,
                &format!(
                    "{path} holds {} ({} {}), not the tested {} ({} {})",
                    holding.change_id,
                    result.app,
                    holding.version,
                    result.change_id,
                    result.app,
                    result.version
                ),
            ));
        }
        Ok(())
    }

    /// A staging env passed its tests: production gets its version, and the env can go.
    async fn promote(
        &self,
        result: TestResult,
        record: &EnvRecord,
        how: trust::Promotion,
        event: &Event,
    ) -> Result<Vec<Outgoing>, Error> {
        let env = result.env.clone();
        let (app, version) = (result.app.clone(), result.version.clone());
        let promoted = match &self.config.promote {
            Promote::Commit => {
                let replay_only = how == trust::Promotion::ReplayOnly;
                self.promote_by_commit(&result, replay_only, event).await?
            }
            Promote::PullRequest(repo) => self.promote_by_pull_request(repo, &result).await?,
        };
        let promoted = match promoted {
            Ok(promoted) => promoted,
            Err(current) => {
                tracing::warn!(env = %env, change_id = %result.change_id, app = %app, version = %version, production = %current, "a newer build is already in production; not promoting");
                let teardown = TeardownRequest {
                    env: env.clone(),
                    reason: "superseded".into(),
                    change_id: result.change_id.clone(),
                    message: format!(
                        "{} passed its tests after {current} reached production; not promoted",
                        result.change_id
                    ),
                };
                return Ok(vec![
                    Outgoing::new(EventType::EnvTeardownRequested, &env, &teardown)?
                        .with_change_id(&result.change_id),
                ]);
            }
        };
        tracing::info!(env = %env, change_id = %result.change_id, app = %app, version = %version, previous_version = %promoted.previous_version, revision = %promoted.revision, pull_request = %promoted.pull_request_url, "production manifest updated");

        let release = Release {
            change_id: result.change_id.clone(),
            app: app.clone(),
            version,
            previous_version: promoted.previous_version,
            analysis: self.config.analysis.for_app(&app),
            repo: record.repo.clone(),
            sha: record.sha.clone(),
            revision: promoted.revision,
            pull_request_url: promoted.pull_request_url,
            ..Default::default()
        };
        let teardown = TeardownRequest {
            env: env.clone(),
            reason: "promoted".into(),
            change_id: result.change_id.clone(),
            message: format!("{} promoted to production", result.change_id),
        };
        self.reporter
            .status(
                &record.repo,
                &record.sha,
                report::CANARY,
                State::Pending,
                format!("{app} {} released; canary starting", release.version),
                None,
            )
            .await;
        Ok(vec![
            Outgoing::new(EventType::ReleaseRequested, &app, &release)?
                .with_change_id(&result.change_id),
            Outgoing::new(EventType::EnvTeardownRequested, &env, &teardown)?
                .with_change_id(&result.change_id),
        ])
    }

    /// Commits the promotion to the GitOps branch. `Err(current)` when production runs a
    /// newer build already.
    ///
    /// `replay_only` (the env is being torn down): production must hold the version already (a
    /// redelivered result of a promotion that happened); anything else is refused.
    async fn promote_by_commit(
        &self,
        result: &TestResult,
        replay_only: bool,
        event: &Event,
    ) -> Result<Result<Promoted, String>, Error> {
        let (app, version) = (result.app.clone(), result.version.clone());
        let production = self.config.production_manifest.clone();
        let message = format!(
            "env-manager: promote {app} to {version} ({})",
            result.change_id
        );
        let (target, name, env_id) = (version.clone(), app.clone(), result.env.clone());
        let refuse = refusal(event);
        let (pushed, promotion) = self
            .gitops
            .commit(message, move |tree: &Snapshot<'_>| {
                let current = read_manifest(tree, &production)?;
                let promotion = manifest::promote(&current, &name, &target)
                    .map_err(|source| manifest_error(&production, source))?;
                if let (true, Promotion::Updated { previous, .. }) = (replay_only, &promotion)
                    && previous != &target
                {
                    return Err(refuse(format!(
                        "{} is being torn down and production runs {name} {previous}, not \
                         {target}: a late result promotes nothing",
                        env_id
                    )));
                }
                let writes = match &promotion {
                    Promotion::Updated { contents, .. } => vec![FileChange::Write {
                        path: production.clone(),
                        contents: contents.clone(),
                    }],
                    Promotion::Superseded { .. } => Vec::new(),
                };
                Ok::<_, Error>((writes, promotion))
            })
            .await?;
        let previous_version = match promotion {
            Promotion::Updated { previous, .. } if previous != version => previous,
            // Promoted already (a redelivery, or a person was faster): production's version
            // before this one is in the history.
            Promotion::Updated { .. } => self.version_before(&app, &version).await?,
            // A newer build runs now; but if production's history holds this version, an
            // earlier attempt of this result promoted it and its events were not published
            // (the stream was electing a leader, then the worker was killed). Production ran
            // the version: the retry requests its release as that attempt would have.
            Promotion::Superseded { current } => match self.promoted_from(&app, &version).await? {
                Some(previous) => previous,
                None => return Ok(Err(current)),
            },
        };
        Ok(Ok(Promoted {
            previous_version,
            revision: pushed.revision.unwrap_or_default(),
            pull_request_url: String::new(),
        }))
    }

    /// Proposes the promotion as a pull request on GitHub: a branch from the GitOps branch,
    /// the manifest updated on it, a pull request into the GitOps branch. Each step finds what
    /// an earlier delivery of the same event made.
    async fn promote_by_pull_request(
        &self,
        repo: &GithubRepo,
        result: &TestResult,
    ) -> Result<Result<Promoted, String>, Error> {
        let github =
            self.config.github.as_ref().ok_or_else(|| {
                Error::Config("pull-request promotions need a GitHub token".into())
            })?;
        let (app, version) = (result.app.as_str(), result.version.as_str());
        let base = self.config.gitops.branch.as_str();
        let path = self.config.production_manifest.as_str();
        let (production, _) = github.file(repo, path, base).await?;
        let previous = match manifest::promote(&production, app, version)
            .map_err(|source| manifest_error(path, source))?
        {
            // Merged already: the version it replaced is in the history.
            Promotion::Updated { previous, .. } if previous == version => {
                self.version_before(app, version).await?
            }
            Promotion::Updated { previous, .. } => previous,
            Promotion::Superseded { current } => return Ok(Err(current)),
        };
        let branch = format!("flotilla/promote-{}", envid::staging(app, version));
        let head = github.branch_head(repo, base).await?;
        github.create_branch(repo, &branch, &head).await?;
        let (on_branch, blob) = github.file(repo, path, &branch).await?;
        let message = format!(
            "env-manager: promote {app} to {version} ({})",
            result.change_id
        );
        if let Promotion::Updated { contents, .. } = manifest::promote(&on_branch, app, version)
            .map_err(|source| manifest_error(path, source))?
            && contents != on_branch
        {
            let update = FileUpdate {
                message: &message,
                contents: &contents,
                sha: &blob,
            };
            github.update_file(repo, path, &branch, update).await?;
        }
        let body = format!(
            "{} passed its tests in {}.\n\nMerging sets {app} to {version} in `{path}` \
             (from {previous}).",
            result.change_id, result.env
        );
        let pull = github
            .open_pull_request(repo, &branch, base, &message, &body)
            .await?;
        tracing::info!(app, version, pull_request = %pull.url, "promotion proposed");
        Ok(Ok(Promoted {
            previous_version: previous,
            revision: String::new(),
            pull_request_url: pull.url,
        }))
    }

    /// When production's recent history holds `version` of `app`: the version it replaced
    /// (empty when none before it is in the history). `None` when production never ran it.
    async fn promoted_from(&self, app: &str, version: &str) -> Result<Option<String>, Error> {
        let versions = self.production_versions(app).await?;
        let Some(at) = versions.iter().position(|v| v == version) else {
            return Ok(None);
        };
        Ok(Some(
            versions[at..]
                .iter()
                .find(|v| *v != version)
                .cloned()
                .unwrap_or_default(),
        ))
    }

    /// The version `app` had in production before `version`, from the production manifest's
    /// recent history; empty when it is not there.
    pub(super) async fn version_before(&self, app: &str, version: &str) -> Result<String, Error> {
        let versions = self.production_versions(app).await?;
        Ok(versions
            .into_iter()
            .find(|v| v != version)
            .unwrap_or_default())
    }

    /// The versions of `app` in the production manifest's recent history, newest first.
    async fn production_versions(&self, app: &str) -> Result<Vec<String>, Error> {
        let path = self.config.production_manifest.clone();
        let history = self.gitops.file_history(path, HISTORY_DEPTH).await?;
        Ok(history
            .iter()
            .flatten()
            .filter_map(|bytes| manifest::parse(bytes).ok())
            .filter_map(|m| manifest::apps_of(&m).ok())
            .filter_map(|apps| apps.into_iter().find(|a| a.name == app))
            .map(|a| a.version)
            .collect())
    }
}
