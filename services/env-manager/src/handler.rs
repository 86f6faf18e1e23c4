//! The handler: builds in, environments requested; passed staging tests in, a release and a
//! teardown requested; failed tests, closed pull requests and teardown requests in, the
//! environment marked or removed; an aborted canary in, production rolled back. Along the way,
//! the change's commit gets statuses on GitHub when a token is configured.

use std::sync::Arc;

use flotilla_bus::{Ctx, Event, EventType, Handler, HandlerError, Outgoing};
use flotilla_proto::v1::{Build, Environment, PullRequest, TeardownRequest};

use crate::config::Config;
use crate::error::Error;
use crate::github::State;
use crate::gitops::{FileChange, GitOps, Snapshot};
use crate::manifest::{self, EnvSpec, ManifestError};
use flotilla_env::envid::{self, Kind};
use flotilla_env::{EnvRecord, Registry, State as EnvState};

use input::Input;
use report::Reporter;

pub mod input;
mod promote;
pub mod report;
mod verdict;

/// Commits searched for the version a promotion replaced, when it was already promoted.
const HISTORY_DEPTH: usize = 200;

/// env-manager's [`Handler`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EnvManager {
    config: Arc<Config>,
    gitops: GitOps,
    registry: Registry,
    reporter: Reporter,
}

impl Handler for EnvManager {
    async fn handle(&self, event: Event, _ctx: Ctx) -> Result<Vec<Outgoing>, HandlerError> {
        let Some(input) = Input::from_event(&event)? else {
            return Err(HandlerError::unhandled(event.event_type()));
        };
        Ok(self.on_input(input, &event).await?)
    }
}

impl EnvManager {
    /// `gitops` must be opened on `config.gitops`.
    pub fn new(config: Config, gitops: GitOps, registry: Registry) -> EnvManager {
        let reporter = Reporter::new(config.github.clone());
        EnvManager {
            config: Arc::new(config),
            gitops,
            registry,
            reporter,
        }
    }

    async fn on_input(&self, input: Input, event: &Event) -> Result<Vec<Outgoing>, Error> {
        match input {
            Input::BuildSucceeded(build) => self.request(build, event).await,
            Input::TestsPassed(result) => self.tests_passed(result, event).await,
            Input::TestsFailed(result) => self.tests_failed(result, event).await,
            Input::PullRequest(pr) => {
                pull_request(&pr, event, self.config.preview_label.as_deref())
            }
            Input::TeardownRequested(request) => self.teardown(request, event).await,
            Input::EnvReady(env) => self.env_verdict(env, true, event).await,
            Input::EnvFailed(env) => self.env_verdict(env, false, event).await,
            Input::CanaryPromoted(canary) => self.canary_promoted(canary).await,
            Input::CanaryAborted(canary) => self.canary_aborted(canary, event).await,
        }
    }

    /// Writes the env of a build into the GitOps repository and records it.
    ///
    /// Everything written derives from the event (its time included), so a redelivery finds
    /// the file as it would write it: no commit, the same revision, the same event (a
    /// duplicate, by its derived id).
    async fn request(&self, build: Build, event: &Event) -> Result<Vec<Outgoing>, Error> {
        let spec = self.env_spec(&build, event)?;
        let env = spec.env.clone();
        let path = self.config.env_manifest(&env);
        let production = self.config.production_manifest.clone();
        let message = format!(
            "env-manager: {} env {env} for {}",
            spec.kind.as_str(),
            spec.change_id
        );
        let render = spec.clone();
        let (pushed, apps) = self
            .gitops
            .commit(message, move |tree: &Snapshot<'_>| {
                let current = read_manifest(tree, &production)?;
                let rendered = manifest::render_env(&current, &render)
                    .map_err(|source| manifest_error(&production, source))?;
                let write = FileChange::Write {
                    path: path.clone(),
                    contents: rendered.contents,
                };
                Ok::<_, Error>((vec![write], rendered.apps))
            })
            .await?;
        let revision = pushed.revision.unwrap_or_default();
        tracing::info!(env = %env, change_id = %spec.change_id, revision = %revision, committed = pushed.committed, "environment written");

        let record = EnvRecord {
            state: EnvState::Requested,
            kind: spec.kind.as_str().into(),
            change_id: spec.change_id.clone(),
            repo: spec.repo.clone(),
            pr: spec.pr,
            sha: build.sha.clone(),
            apps: apps.iter().map(Into::into).collect(),
            revision: revision.clone(),
            created_at: spec.created_at.clone(),
            expires_at: spec.expires_at.clone(),
            owner: String::new(),
            reason: String::new(),
            other: Default::default(),
        };
        self.registry
            .update(&env, |current| match current {
                // Already recorded at this revision: sync-watcher may have moved it on since.
                Some(c) if c.change_id == record.change_id && c.revision == record.revision => None,
                Some(c) => Some(EnvRecord {
                    other: c.other,
                    ..record.clone()
                }),
                None => Some(record.clone()),
            })
            .await?;

        let requested = Environment {
            env: env.clone(),
            kind: spec.kind.as_str().into(),
            change_id: spec.change_id.clone(),
            apps,
            revision,
            repo: spec.repo,
            pr: spec.pr,
            created_at: spec.created_at,
            expires_at: spec.expires_at,
            ..Default::default()
        };
        let out = Outgoing::new(EventType::EnvRequested, &env, &requested)?
            .with_change_id(&spec.change_id);
        let short = requested.revision.get(..7).unwrap_or(&requested.revision);
        self.reporter
            .status(
                &build.repo,
                &build.sha,
                report::ENV,
                State::Pending,
                format!("environment {env} requested (GitOps {short})"),
                None,
            )
            .await;
        Ok(vec![out])
    }

    /// What the env of `build` is: its id, kind, times and the new version of its app.
    fn env_spec(&self, build: &Build, event: &Event) -> Result<EnvSpec, Error> {
        let bad = |reason: &str| bad_event(event, reason);
        if build.app.is_empty() || build.version.is_empty() {
            return Err(bad("the build carries no app or version"));
        }
        let created_at = event.time.clone().ok_or_else(|| bad("no ce-time"))?;
        let expires_at = manifest::expires_at(&created_at, self.config.env_ttl)
            .map_err(|e| bad(&e.to_string()))?;
        let (kind, env) = if build.pr > 0 {
            if build.repo.is_empty() {
                return Err(bad("a pull request build carries no repo"));
            }
            (Kind::Preview, envid::preview(&build.repo, build.pr))
        } else {
            (Kind::Staging, envid::staging(&build.app, &build.version))
        };
        let image = build
            .images
            .iter()
            .find(|i| i.name == build.app)
            .or(build.images.first())
            .map(|i| manifest::image_repository(&i.r#ref).to_owned())
            .filter(|i| !i.is_empty());
        let change_id = if build.change_id.is_empty() {
            format!("{}-{}", build.app, build.version)
        } else {
            build.change_id.clone()
        };
        Ok(EnvSpec {
            env,
            kind,
            change_id,
            repo: build.repo.clone(),
            pr: build.pr,
            app: build.app.clone(),
            version: build.version.clone(),
            image,
            created_at,
            expires_at,
        })
    }

    /// Removes the env's manifest from the GitOps repository and marks it deleting; the reaper
    /// checks it is gone and reports `env.deleted`.
    async fn teardown(
        &self,
        request: TeardownRequest,
        event: &Event,
    ) -> Result<Vec<Outgoing>, Error> {
        let env = request.env;
        if !envid::is_dns_label(&env) {
            return Err(bad_event(
                event,
                &format!("env id {env:?} is not a DNS-1123 label"),
            ));
        }
        let path = self.config.env_manifest(&env);
        let message = format!("env-manager: remove env {env} ({})", request.reason);
        let (pushed, ()) = self
            .gitops
            .commit(message, move |_: &Snapshot<'_>| {
                Ok::<_, Error>((vec![FileChange::Remove { path: path.clone() }], ()))
            })
            .await?;
        tracing::info!(env = %env, reason = %request.reason, committed = pushed.committed, "environment removed");
        self.registry
            .update(&env, |current| {
                let record = current.filter(|c| c.state != EnvState::Deleting)?;
                Some(EnvRecord {
                    state: EnvState::Deleting,
                    ..record
                })
            })
            .await?;
        Ok(Vec::new())
    }
}

/// A pull request's preview env is torn down when the pull request is closed, or when the
/// label that gave it its preview (`preview_label`) is removed.
fn pull_request(
    pr: &PullRequest,
    event: &Event,
    preview_label: Option<&str>,
) -> Result<Vec<Outgoing>, Error> {
    let unlabeled = pr.action == "unlabeled"
        && preview_label.is_some_and(|label| pr.label.eq_ignore_ascii_case(label));
    if pr.action != "closed" && !unlabeled {
        return Ok(Vec::new());
    }
    if pr.repo.is_empty() || pr.number == 0 {
        return Err(bad_event(
            event,
            "the pull request carries no repo or number",
        ));
    }
    let env = envid::preview(&pr.repo, pr.number);
    let (reason, message) = if unlabeled {
        (
            "pr_unlabeled",
            format!("{}#{} lost the label {}", pr.repo, pr.number, pr.label),
        )
    } else {
        let how = if pr.merged { "merged" } else { "closed" };
        ("pr_closed", format!("{}#{} was {how}", pr.repo, pr.number))
    };
    let teardown = TeardownRequest {
        env: env.clone(),
        reason: reason.into(),
        change_id: String::new(),
        message,
    };
    tracing::info!(env = %env, reason, "tearing a pull request's preview down");
    Ok(vec![Outgoing::new(
        EventType::EnvTeardownRequested,
        &env,
        &teardown,
    )?])
}

pub(crate) fn read_manifest(tree: &Snapshot<'_>, path: &str) -> Result<Vec<u8>, Error> {
    tree.read(path)?
        .ok_or_else(|| manifest_error(path, ManifestError::Malformed("no such file".into())))
}

pub(crate) fn manifest_error(path: &str, source: ManifestError) -> Error {
    Error::Manifest {
        path: path.to_owned(),
        source,
    }
}

pub(crate) fn bad_event(event: &Event, reason: &str) -> Error {
    Error::BadEvent {
        event_type: event.event_type().to_owned(),
        event_id: event.id.clone(),
        reason: reason.to_owned(),
    }
}
