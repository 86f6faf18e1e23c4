//! The handler: builds in, environments requested; passed staging tests in, a release and a
//! teardown requested; failed tests, closed pull requests and teardown requests in, the
//! environment marked or removed; an aborted canary in, production rolled back. Along the way,
//! the change's commit gets statuses on GitHub when a token is configured.

use std::sync::Arc;

use flotilla_bus::{Ctx, Event, EventType, Handler, HandlerError, Outgoing};
use flotilla_proto::v1::{AppVersion, Build, Environment, PullRequest, TeardownRequest};

use crate::config::Config;
use crate::error::Error;
use crate::github::State;
use crate::gitops::{FileChange, GitOps, Snapshot};
use crate::manifest::{self, EnvSpec, ManifestError};
use flotilla_env::envid::{self, Kind};
use flotilla_env::{EnvRecord, Registry, State as EnvState};

use input::Input;
use report::Reporter;

mod hibernate;
pub mod input;
mod promote;
pub mod report;
mod trust;
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
            Input::PullRequest(pr) => self.pull_request(&pr, event).await,
            Input::TeardownRequested(request) => self.teardown(request, event).await,
            Input::SuspendRequested(request) => self.suspend(request, event).await,
            Input::ResumeRequested(request) => self.resume(request, event).await,
            Input::EnvReady(env) => self.env_verdict(env, true, event).await,
            Input::EnvFailed(env) => self.env_verdict(env, false, event).await,
            Input::CanaryPromoted(canary) => self.canary_promoted(canary).await,
            Input::CanaryAborted(canary) => self.canary_aborted(canary, event).await,
        }
    }

    /// Writes the env of a build into the GitOps repository and records it.
    ///
    /// A change is written once: a redelivered or repeated build of it (a rebuild, a CI
    /// system's duplicate callback) finds it in the registry or in git and writes nothing; a
    /// build older than what its env runs, or from before its env was torn down, is refused.
    /// Everything written derives from the event, so a redelivery that does get this far finds
    /// the file as it would write it: no commit, the same event (a duplicate, by its derived id).
    async fn request(&self, build: Build, event: &Event) -> Result<Vec<Outgoing>, Error> {
        let spec = self.env_spec(&build, event)?;
        let env = spec.env.clone();
        let current = self.registry.get(&env).await?;
        match trust::build(current.as_ref(), &spec).map_err(|reason| refused(event, &reason))? {
            trust::Prior::Written { republish } => {
                tracing::info!(env = %env, change_id = %spec.change_id, republish, "the change's env was written already: not written again");
                return match current.filter(|_| republish) {
                    Some(record) => Ok(vec![requested(&env, &record)?]),
                    None => Ok(Vec::new()),
                };
            }
            trust::Prior::Fresh => {}
        }
        let path = self.config.env_manifest(&env);
        let production = self.config.production_manifest.clone();
        let message = format!(
            "env-manager: {} env {env} for {}",
            spec.kind.as_str(),
            spec.change_id
        );
        let render = spec.clone();
        let refuse = refusal(event);
        let (pushed, apps) = self
            .gitops
            .commit(message, move |tree: &Snapshot<'_>| {
                // Git has the last word: the registry may lag behind another replica's write.
                if let Some(existing) = tree.read(&path)?
                    && let Some(apps) = written(&existing, &render).map_err(&refuse)?
                {
                    return Ok((Vec::new(), apps));
                }
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
            deleted_at: String::new(),
            hooks: Vec::new(),
            traceparent: flotilla_bus::trace::traceparent(Some(&event.headers)).unwrap_or_default(),
            other: Default::default(),
        };
        let applicable = self
            .config
            .hooks
            .applicable(&record.kind, record.apps.iter().map(|a| a.name.as_str()));
        let change_id = record.change_id.clone();
        // The hooks are recorded with the request, so sync-watcher knows what the env waits on
        // the moment it is requested, and builder-trigger runs what the record names.
        let with_hooks = |earlier: &[flotilla_env::HookState], record: &EnvRecord| EnvRecord {
            hooks: flotilla_env::hooks::requested(earlier, &applicable, &change_id),
            ..record.clone()
        };
        // Under compare-and-set, the change is recorded once: another handling of this build
        // may have recorded it since the read above (see `trust::recorded`).
        let mut earlier: Option<(trust::Prior, EnvRecord)> = None;
        self.registry
            .update(&env, |current| {
                earlier = None;
                if let Some(prior) = trust::recorded(current.as_ref(), &record.change_id) {
                    earlier = current.map(|c| (prior, c));
                    return None;
                }
                Some(match current {
                    Some(c) => EnvRecord {
                        other: c.other.clone(),
                        ..with_hooks(&c.hooks, &record)
                    },
                    None => with_hooks(&[], &record),
                })
            })
            .await?;
        let record = match earlier {
            None => record,
            Some((trust::Prior::Written { republish: true }, current)) => current,
            Some((_, current)) => {
                tracing::info!(env = %env, change_id = %spec.change_id, state = %current.state, "another handling of the change recorded it meanwhile: left as it is");
                return Ok(Vec::new());
            }
        };

        let out = requested(&env, &record)?;
        let short = record.revision.get(..7).unwrap_or(&record.revision);
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
    /// checks it is gone and reports `env.deleted`. Only an env that exists is torn down, and
    /// a teardown meant for an earlier change of a preview leaves its newer change alone.
    async fn teardown(
        &self,
        request: TeardownRequest,
        event: &Event,
    ) -> Result<Vec<Outgoing>, Error> {
        let env = request.env.clone();
        if !envid::is_dns_label(&env) {
            return Err(bad_event(
                event,
                &format!("env id {env:?} is not a DNS-1123 label"),
            ));
        }
        let path = self.config.env_manifest(&env);
        let record = self.registry.get(&env).await?;
        let in_git = match &record {
            Some(_) => true,
            None => self.gitops.read(path.clone()).await?.is_some(),
        };
        trust::teardown(record.as_ref(), &request, || in_git)
            .map_err(|reason| refused(event, &reason))?;
        let message = format!("env-manager: remove env {env} ({})", request.reason);
        let (pushed, ()) = self
            .gitops
            .commit(message, move |_: &Snapshot<'_>| {
                Ok::<_, Error>((vec![FileChange::Remove { path: path.clone() }], ()))
            })
            .await?;
        tracing::info!(env = %env, reason = %request.reason, committed = pushed.committed, "environment removed");
        let deleted_at = event.time.clone().unwrap_or_else(now);
        // The reaper's `env.deleted` continues the trace from this teardown.
        let traceparent = flotilla_bus::trace::traceparent(Some(&event.headers));
        self.registry
            .update(&env, |current| {
                let record = current.filter(|c| !c.state.is_going_away())?;
                Some(EnvRecord {
                    state: EnvState::Deleting,
                    reason: request.reason.clone(),
                    deleted_at: deleted_at.clone(),
                    traceparent: traceparent.clone().unwrap_or(record.traceparent.clone()),
                    ..record
                })
            })
            .await?;
        Ok(Vec::new())
    }

    /// A closed or unlabelled pull request tears its preview down; one that never had a
    /// preview, or whose preview is going already, asks for nothing.
    async fn pull_request(&self, pr: &PullRequest, event: &Event) -> Result<Vec<Outgoing>, Error> {
        let Some(teardown) = pull_request(pr, event, self.config.preview_label.as_deref())? else {
            return Ok(Vec::new());
        };
        let env = teardown.env.clone();
        match self.registry.get(&env).await? {
            Some(record) if !record.state.is_going_away() => {}
            Some(_) => {
                tracing::debug!(env = %env, "the preview is on its way out already");
                return Ok(Vec::new());
            }
            None => {
                tracing::debug!(env = %env, "the pull request has no preview env");
                return Ok(Vec::new());
            }
        }
        tracing::info!(env = %env, reason = %teardown.reason, "tearing a pull request's preview down");
        Ok(vec![Outgoing::new(
            EventType::EnvTeardownRequested,
            &env,
            &teardown,
        )?])
    }
}

/// The teardown a pull request event asks for, if any: its preview's, when the pull request
/// is closed or loses the label that gave it its preview (`preview_label`).
fn pull_request(
    pr: &PullRequest,
    event: &Event,
    preview_label: Option<&str>,
) -> Result<Option<TeardownRequest>, Error> {
    let unlabeled = pr.action == "unlabeled"
        && preview_label.is_some_and(|label| pr.label.eq_ignore_ascii_case(label));
    if pr.action != "closed" && !unlabeled {
        return Ok(None);
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
    Ok(Some(TeardownRequest {
        env,
        reason: reason.into(),
        change_id: String::new(),
        message,
    }))
}

/// The `env.requested` of `env` as its record says.
fn requested(env: &str, record: &EnvRecord) -> Result<Outgoing, Error> {
    let requested = Environment {
        // What the request is about; a reason or owner left from an earlier change is not.
        reason: String::new(),
        owner: String::new(),
        ..record.to_environment(env)
    };
    Ok(Outgoing::new(EventType::EnvRequested, env, &requested)?.with_change_id(&record.change_id))
}

/// What the env file in git says of the change `spec` would write: `Some(apps)` when it holds
/// that change already (written before, under another event id), `None` when the change may be
/// written over it, the reason when it holds a newer change. A file that does not parse is
/// written over (it is env-manager's own file).
fn written(existing: &[u8], spec: &EnvSpec) -> Result<Option<Vec<AppVersion>>, String> {
    let Ok(holding) = manifest::holding(existing, &spec.app) else {
        return Ok(None);
    };
    if holding.change_id == spec.change_id {
        let apps = manifest::parse(existing)
            .and_then(|m| manifest::apps_of(&m))
            .unwrap_or_default();
        return Ok(Some(apps));
    }
    if manifest::is_older(&spec.version, &holding.version) {
        return Err(format!(
            "{} in git runs {} {} ({}), newer than {}: an older change is not written over it",
            spec.env, spec.app, holding.version, holding.change_id, spec.change_id
        ));
    }
    Ok(None)
}

/// Now, in RFC 3339, for a teardown event without a `ce-time`.
fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
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

/// The event contradicts the registry or the repository: refused, nothing changed.
pub(crate) fn refused(event: &Event, reason: &str) -> Error {
    tracing::warn!(event_type = %event.event_type(), event_id = %event.id, reason, "event refused");
    refusal(event)(reason.to_owned())
}

/// Refuses `event` for a reason found later, inside a GitOps change (which runs on the writer
/// and cannot borrow the event).
pub(crate) fn refusal(event: &Event) -> impl Fn(String) -> Error + Send + Sync + 'static {
    let (event_type, event_id) = (event.event_type().to_owned(), event.id.clone());
    move |reason| Error::Refused {
        event_type: event_type.clone(),
        event_id: event_id.clone(),
        reason,
    }
}

pub(crate) fn bad_event(event: &Event, reason: &str) -> Error {
    Error::BadEvent {
        event_type: event.event_type().to_owned(),
        event_id: event.id.clone(),
        reason: reason.to_owned(),
    }
}
