//! The handler: source events in, builds and their outcome out; ready environments in, test
//! results out; requested and deleted environments in, their hooks run ([`crate::hook`]).

use std::sync::Arc;

use flotilla_env::{Registry, State as EnvState};
use std::time::{Duration, Instant};

use flotilla_bus::{Ctx, Event, EventType, Handler, HandlerError, Outgoing};
use flotilla_proto::v1::{Build, Environment, Image, TestResult};

use crate::backend::{Cancel, Kind, Run, Runner};
use crate::config::Config;
use crate::decide::{self, Change, Decision, Invalid};
use crate::error::Error;
use crate::hook::Hooks;
use crate::input::Input;
use crate::supersede::{self, Supersede};

/// builder-trigger's [`Handler`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BuilderTrigger {
    config: Arc<Config>,
    runner: Runner,
    supersede: Supersede,
    /// What env an `env.ready` may test: the registry, not the event, says it is ready.
    registry: Registry,
}

impl Handler for BuilderTrigger {
    async fn handle(&self, event: Event, ctx: Ctx) -> Result<Vec<Outgoing>, HandlerError> {
        let Some(input) = Input::from_event(&event)? else {
            return Err(HandlerError::unhandled(event.event_type()));
        };
        Ok(self.on_input(input, &event, &ctx).await?)
    }

    /// Hears other replicas from the start, not only from this one's first build: a replica
    /// may pick up an older head of a pull request before it builds anything.
    async fn start(&self, start: flotilla_bus::Start<'_>) {
        let client = start.bus.client();
        self.supersede.listen(client, start.tasks).await;
        self.runner.attach(client, start.tasks).await;
    }
}

impl BuilderTrigger {
    /// Builds and tests with `runner` (see [`crate::runner`]).
    pub fn new(config: Config, runner: Runner, registry: Registry) -> BuilderTrigger {
        BuilderTrigger::with_supersede(config, runner, Supersede::new(), registry)
    }

    pub(crate) fn with_supersede(
        config: Config,
        runner: Runner,
        supersede: Supersede,
        registry: Registry,
    ) -> BuilderTrigger {
        BuilderTrigger {
            config: Arc::new(config),
            runner,
            supersede,
            registry,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    async fn on_input(
        &self,
        input: Input,
        event: &Event,
        ctx: &Ctx,
    ) -> Result<Vec<Outgoing>, Error> {
        let rules = &self.config.rules;
        let time = event.time.as_deref();
        let decision = match input {
            Input::Push(push) => decide::push(&push, time, rules),
            Input::PullRequest(pr) => decide::pull_request(&pr, time, rules),
            Input::EnvReady(env) => return self.test(env, event, ctx).await,
            Input::EnvRequested(env) => {
                self.hooks(event, ctx).provision(&env).await?;
                return Ok(Vec::new());
            }
            Input::EnvDeleted(env) => {
                self.hooks(event, ctx).deprovision(&env).await?;
                return Ok(Vec::new());
            }
        };
        match decision.map_err(|e| bad_event(event, e))? {
            Decision::Build(change) => self.build(change, event, ctx).await,
            Decision::Skip(why) => {
                tracing::info!(reason = %why, "nothing to build");
                Ok(Vec::new())
            }
        }
    }

    /// The environment hooks, run for `cause`; their events are published as runs start and
    /// end.
    fn hooks<'a>(&'a self, cause: &'a Event, ctx: &'a Ctx) -> Hooks<'a> {
        Hooks {
            settings: &self.config.hooks,
            runner: &self.runner,
            registry: &self.registry,
            publisher: &ctx.publisher,
            cause,
            dry_run: ctx.is_dry_run(),
        }
    }

    /// Announces the build, runs it, and returns its outcome.
    ///
    /// A redelivered event runs the build again (builds must be idempotent per version), but
    /// decides the same change, so both events it emits are duplicates.
    async fn build(
        &self,
        change: Change,
        cause: &Event,
        ctx: &Ctx,
    ) -> Result<Vec<Outgoing>, Error> {
        // The source event carried no change: from here its handling is the change's, in logs
        // and in the trace.
        tracing::Span::current().record("change_id", change.change_id.as_str());
        // Succeeded and failed share one id: should a retried build end differently, the
        // second outcome is the duplicate JetStream drops, not a contradiction.
        let outcome_id = ctx
            .publisher
            .derive_id(&cause.id, "build.finished", &change.change_id, 0);
        let guard = match self.register(&change, ctx).await {
            Ok(guard) => guard,
            Err(newer) => {
                let reason = format!("superseded by {newer} before it started");
                tracing::info!(change_id = %change.change_id, %reason, "build skipped");
                let failed = build_event(EventType::BuildFailed, &change, Vec::new(), reason, "")?;
                return Ok(vec![failed.with_id(outcome_id)]);
            }
        };
        let images = images(&self.config.image_prefix, &change);
        // Published now rather than returned: whoever follows the change learns a build is
        // running while it runs, not when it is over.
        let started = build_event(
            EventType::BuildStarted,
            &change,
            Vec::new(),
            String::new(),
            "",
        )?;
        ctx.publisher
            .publish_all(vec![started], Some(cause))
            .await?;
        tracing::info!(change_id = %change.change_id, version = %change.version, version_time = change.time_from, sha = %change.sha, backend = self.runner.name(), "build started");

        let run = build_run(&change, &images, self.config.build_timeout);
        let cancel = guard.as_ref().map(|g| g.cancel.clone()).unwrap_or_default();
        let started_at = Instant::now();
        let outcome = self.runner.run(&run, &cancel).await;
        drop(guard);
        let event = if outcome.succeeded() {
            let note = format!("built in {}", elapsed(started_at));
            let images = if outcome.images.is_empty() {
                images
            } else {
                outcome.images.clone()
            };
            tracing::info!(change_id = %change.change_id, images = ?images.iter().map(|i| &i.r#ref).collect::<Vec<_>>(), "build succeeded");
            build_event(
                EventType::BuildSucceeded,
                &change,
                images,
                note,
                &outcome.log_url,
            )?
        } else {
            tracing::warn!(change_id = %change.change_id, reason = %outcome.summary(), log = %outcome.log_url, "build failed");
            build_event(
                EventType::BuildFailed,
                &change,
                Vec::new(),
                outcome.reason(),
                &outcome.log_url,
            )?
        };
        Ok(vec![event.with_id(outcome_id)])
    }

    /// A pull request's build registers so a newer push cancels it. `Err` names the newer head
    /// when this build is already superseded; pushes to branches are never superseded.
    async fn register(
        &self,
        change: &Change,
        ctx: &Ctx,
    ) -> Result<Option<supersede::Guard>, String> {
        if change.pr == 0 {
            return Ok(None);
        }
        // The change's own time, not the delivery's: a late redelivery of an older head is older.
        let at = change.at;
        let key = (change.repo.to_lowercase(), change.pr);
        let guard = self.supersede.begin(key.clone(), at, &change.sha)?;
        self.supersede
            .announce(ctx.publisher.bus().client(), &key, at, &change.sha)
            .await;
        Ok(Some(guard))
    }

    /// Whether the registry says `env` is ready at the change the event names. An `env.ready` is
    /// a claim (and passed tests promote): an env the registry does not hold is refused; one
    /// still `requested` at that change is retried (sync-watcher publishes before it moves the
    /// record); a change the env no longer holds, or an env that failed or is going, is not
    /// tested.
    async fn ready_in_registry(&self, env: &Environment, cause: &Event) -> Result<bool, Error> {
        let record = self
            .registry
            .get(&env.env)
            .await
            .map_err(|e| Error::Registry(e.to_string()))?;
        let Some(record) = record else {
            return Err(Error::Refused {
                event_type: cause.event_type().to_owned(),
                event_id: cause.id.clone(),
                reason: format!("no env {} in the registry: nothing to test", env.env),
            });
        };
        if record.change_id != env.change_id {
            tracing::info!(env = %env.env, ready = %env.change_id, holds = %record.change_id, "the env holds another change now: not tested");
            return Ok(false);
        }
        match record.state {
            EnvState::Ready => Ok(true),
            EnvState::Requested => Err(Error::Registry(format!(
                "{} is not ready in the registry yet",
                env.env
            ))),
            state => {
                tracing::info!(env = %env.env, state = %state, "the env is not ready: not tested");
                Ok(false)
            }
        }
    }

    /// Runs the change's tests against its ready environment.
    async fn test(
        &self,
        env: Environment,
        cause: &Event,
        ctx: &Ctx,
    ) -> Result<Vec<Outgoing>, Error> {
        if env.change_id.is_empty() {
            tracing::info!(env = %env.env, "the environment carries no change: nothing to test");
            return Ok(Vec::new());
        }
        if !self.ready_in_registry(&env, cause).await? {
            return Ok(Vec::new());
        }
        let (app, version) = decide::app_and_version(&env.change_id, &env.apps).unwrap_or_default();
        let started_at = Instant::now();
        let (passed, reason, log_url) = if self.runner.runs_tests() {
            tracing::info!(env = %env.env, change_id = %env.change_id, backend = self.runner.name(), "tests started");
            let pipeline = pipeline_image(&self.config.image_prefix, &app, &version);
            let run = test_run(&env, &app, &version, &pipeline, self.config.test_timeout);
            let outcome = self.runner.run(&run, &Cancel::new()).await;
            let reason = if outcome.succeeded() {
                format!("passed in {}", elapsed(started_at))
            } else {
                outcome.reason()
            };
            (outcome.succeeded(), reason, outcome.log_url)
        } else {
            tracing::info!(env = %env.env, change_id = %env.change_id, "no test run configured: tests pass");
            (true, "no test command configured".to_owned(), String::new())
        };
        let kind = if passed {
            EventType::TestsPassed
        } else {
            EventType::TestsFailed
        };
        tracing::info!(env = %env.env, change_id = %env.change_id, outcome = kind.as_str(), "tests finished");
        let result = TestResult {
            env: env.env.clone(),
            change_id: env.change_id.clone(),
            reason,
            app,
            version,
            duration_ms: u64::try_from(started_at.elapsed().as_millis()).unwrap_or(u64::MAX),
            log_url,
        };
        let id = ctx
            .publisher
            .derive_id(&cause.id, "tests.finished", &env.env, 0);
        let outcome = Outgoing::new(kind, &env.env, &result)?
            .with_change_id(&env.change_id)
            .with_id(id);
        Ok(vec![outcome])
    }
}

/// The images a build makes: the app's, and the pipeline image its test run uses (migrations
/// and functional tests).
fn images(prefix: &str, change: &Change) -> Vec<Image> {
    vec![
        Image {
            name: change.app.clone(),
            r#ref: format!("{prefix}/{}:{}", change.app, change.version),
            digest: String::new(),
        },
        Image {
            name: format!("{}-pipeline", change.app),
            r#ref: pipeline_image(prefix, &change.app, &change.version),
            digest: String::new(),
        },
    ]
}

/// `<prefix>/<app>-pipeline:<version>`.
pub fn pipeline_image(prefix: &str, app: &str, version: &str) -> String {
    format!("{prefix}/{app}-pipeline:{version}")
}

fn build_event(
    kind: EventType,
    change: &Change,
    images: Vec<Image>,
    reason: String,
    log_url: &str,
) -> Result<Outgoing, Error> {
    let build = Build {
        change_id: change.change_id.clone(),
        app: change.app.clone(),
        repo: change.repo.clone(),
        sha: change.sha.clone(),
        version: change.version.clone(),
        pr: change.pr,
        images,
        reason,
        r#ref: change.git_ref.clone(),
        log_url: log_url.to_owned(),
    };
    Ok(Outgoing::new(kind, &change.change_id, &build)?.with_change_id(&change.change_id))
}

/// A build run: the variables a build command gets.
fn build_run(change: &Change, images: &[Image], timeout: Duration) -> Run {
    let image = |i: usize| images.get(i).map(|i| i.r#ref.clone()).unwrap_or_default();
    Run {
        kind: Kind::Build,
        id: flotilla_env::dns_label(&["build", &change.change_id]),
        change_id: change.change_id.clone(),
        env: None,
        vars: vec![
            ("FLOTILLA_REPO", change.repo.clone()),
            ("FLOTILLA_SHA", change.sha.clone()),
            ("FLOTILLA_VERSION", change.version.clone()),
            ("FLOTILLA_APP", change.app.clone()),
            ("FLOTILLA_CHANGE_ID", change.change_id.clone()),
            ("FLOTILLA_PR", change.pr.to_string()),
            ("FLOTILLA_REF", change.git_ref.clone()),
            ("FLOTILLA_IMAGE", image(0)),
            ("FLOTILLA_PIPELINE_IMAGE", image(1)),
        ],
        timeout,
        exec: None,
    }
}

/// A test run: the variables a test command gets.
fn test_run(env: &Environment, app: &str, version: &str, pipeline: &str, timeout: Duration) -> Run {
    Run {
        kind: Kind::Test,
        id: flotilla_env::dns_label(&["test", &env.env, version]),
        change_id: env.change_id.clone(),
        env: Some(env.env.clone()),
        vars: vec![
            ("FLOTILLA_ENV", env.env.clone()),
            ("FLOTILLA_ENV_KIND", env.kind.clone()),
            ("FLOTILLA_ENV_URL", env.url.clone()),
            ("FLOTILLA_APP", app.to_owned()),
            ("FLOTILLA_VERSION", version.to_owned()),
            ("FLOTILLA_CHANGE_ID", env.change_id.clone()),
            ("FLOTILLA_REPO", env.repo.clone()),
            ("FLOTILLA_PR", env.pr.to_string()),
            ("FLOTILLA_PIPELINE_IMAGE", pipeline.to_owned()),
        ],
        timeout,
        exec: None,
    }
}

fn bad_event(event: &Event, invalid: Invalid) -> Error {
    Error::BadEvent {
        event_type: event.event_type().to_owned(),
        event_id: event.id.clone(),
        reason: invalid.to_string(),
    }
}

fn elapsed(since: Instant) -> String {
    // Whole milliseconds: nobody reads nanoseconds of a build.
    let millis = since.elapsed().as_millis().min(u128::from(u64::MAX)) as u64;
    humantime::format_duration(Duration::from_millis(millis)).to_string()
}
