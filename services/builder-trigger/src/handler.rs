//! The handler: source events in, builds and their outcome out; ready environments in, test
//! results out.

use std::sync::Arc;

use flotilla_bus::{Ctx, Event, Handler, HandlerError, Outgoing};
use flotilla_proto::v1::{Build, Environment, Image, PullRequest, Push, TestResult};

use crate::command::{self, Finished, Job};
use crate::config::Config;
use crate::decide::{self, Change, Decision, Invalid};
use crate::error::Error;

/// builder-trigger's [`Handler`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BuilderTrigger {
    config: Arc<Config>,
}

impl Handler for BuilderTrigger {
    async fn handle(&self, event: Event, ctx: Ctx) -> Result<Vec<Outgoing>, HandlerError> {
        Ok(self.on_event(&event, &ctx).await?)
    }
}

impl BuilderTrigger {
    pub fn new(config: Config) -> BuilderTrigger {
        BuilderTrigger {
            config: Arc::new(config),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    async fn on_event(&self, event: &Event, ctx: &Ctx) -> Result<Vec<Outgoing>, Error> {
        let rules = &self.config.rules;
        let time = event.time.as_deref();
        let decision = match event.event_type() {
            "source.push" => decide::push(&event.decode::<Push>()?, time, rules),
            "source.pull_request" => {
                decide::pull_request(&event.decode::<PullRequest>()?, time, rules)
            }
            "env.ready" => return self.test(event.decode()?, event, ctx).await,
            other => {
                tracing::debug!(event_type = other, "not an event builder-trigger acts on");
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

    /// Announces the build, runs it, and returns its outcome.
    ///
    /// A redelivered event runs the command again (build commands must be idempotent per
    /// version), but decides the same change, so both events it emits are duplicates.
    async fn build(
        &self,
        change: Change,
        cause: &Event,
        ctx: &Ctx,
    ) -> Result<Vec<Outgoing>, Error> {
        let image = Image {
            name: change.app.clone(),
            r#ref: format!(
                "{}/{}:{}",
                self.config.image_prefix, change.app, change.version
            ),
            digest: String::new(),
        };
        // Published now rather than returned: whoever follows the change learns a build is
        // running while it runs, not when it is over.
        let started = build_event("build.started", &change, Vec::new(), String::new())?;
        ctx.publisher
            .publish_all(vec![started], Some(cause))
            .await?;
        tracing::info!(change_id = %change.change_id, version = %change.version, sha = %change.sha, "build started");

        let finished = command::run(&self.config.build, &build_job(&change, &image.r#ref)).await;
        let outcome = if finished.succeeded() {
            let note = format!("built in {}", elapsed(&finished));
            tracing::info!(change_id = %change.change_id, image = %image.r#ref, "build succeeded");
            build_event("build.succeeded", &change, vec![image], note)?
        } else {
            let reason = finished.reason();
            tracing::warn!(change_id = %change.change_id, reason = %finished.summary(), "build failed");
            build_event("build.failed", &change, Vec::new(), reason)?
        };
        // Succeeded and failed share one id: should a retried build end differently, the
        // second outcome is the duplicate JetStream drops, not a contradiction.
        let id = ctx
            .publisher
            .derive_id(&cause.id, "build.finished", &change.change_id, 0);
        Ok(vec![outcome.with_id(id)])
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
        let (app, version) = decide::app_and_version(&env.change_id, &env.apps).unwrap_or_default();
        let (passed, reason, duration_ms) = match &self.config.test {
            None => {
                tracing::info!(env = %env.env, change_id = %env.change_id, "no test command configured: tests pass");
                (true, "no test command configured".to_owned(), 0)
            }
            Some(spec) => {
                tracing::info!(env = %env.env, change_id = %env.change_id, "tests started");
                let finished = command::run(spec, &test_job(&env, &app, &version)).await;
                let reason = if finished.succeeded() {
                    format!("passed in {}", elapsed(&finished))
                } else {
                    finished.reason()
                };
                let millis = u64::try_from(finished.elapsed.as_millis()).unwrap_or(u64::MAX);
                (finished.succeeded(), reason, millis)
            }
        };
        let kind = if passed {
            "tests.passed"
        } else {
            "tests.failed"
        };
        tracing::info!(env = %env.env, change_id = %env.change_id, outcome = kind, "tests finished");
        let result = TestResult {
            env: env.env.clone(),
            change_id: env.change_id.clone(),
            reason,
            app,
            version,
            duration_ms,
            log_url: String::new(),
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

fn build_event(
    kind: &str,
    change: &Change,
    images: Vec<Image>,
    reason: String,
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
        log_url: String::new(),
    };
    Ok(Outgoing::new(kind, &change.change_id, &build)?.with_change_id(&change.change_id))
}

/// The variables a build command gets.
fn build_job(change: &Change, image: &str) -> Job {
    Job {
        kind: "build",
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
            ("FLOTILLA_IMAGE", image.to_owned()),
        ],
    }
}

/// The variables a test command gets.
fn test_job(env: &Environment, app: &str, version: &str) -> Job {
    Job {
        kind: "test",
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
        ],
    }
}

fn bad_event(event: &Event, invalid: Invalid) -> Error {
    Error::BadEvent {
        event_type: event.event_type().to_owned(),
        event_id: event.id.clone(),
        reason: invalid.to_string(),
    }
}

fn elapsed(finished: &Finished) -> String {
    // Whole milliseconds: nobody reads nanoseconds of a build.
    let millis = finished.elapsed.as_millis().min(u128::from(u64::MAX)) as u64;
    humantime::format_duration(std::time::Duration::from_millis(millis)).to_string()
}
