//! Fixtures of builder-trigger's component tests: a private nats-server with Flotilla's
//! streams, the worker running in-process, source events to feed it, and what it stored.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use builder_trigger::{BuilderTrigger, Config, worker_config};
use flotilla_bus::{Bus, Event, EventType, Handler, Outgoing, Published, WorkerConfig};
use flotilla_proto::v1::{AppVersion, Build, Commit, Environment, PullRequest, Push, TestResult};
use flotilla_testing::NatsServer;

pub const SHA: &str = "1a2b3c4d5e6f77889900aabbccddeeff00112233";
/// A later head of the same pull request.
pub const SHA2: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432";
/// Long enough for a slow machine, short enough that a missing event fails the test quickly.
pub const WITHIN: Duration = Duration::from_secs(15);

/// A private server with the streams, and a scratch directory commands write into.
pub struct Fixture {
    pub server: NatsServer,
    pub bus: Bus,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub async fn start() -> Result<Fixture> {
        let (server, bus) = flotilla_testing::bus().await?;
        Ok(Fixture {
            server,
            bus,
            dir: tempfile::tempdir().context("scratch dir")?,
        })
    }

    /// A file in the scratch directory, for commands to leave evidence in.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs builder-trigger with `config` until the returned worker is shut down.
    pub async fn run(&self, config: Config) -> Result<Running> {
        self.run_handler(self.trigger(config).await?).await
    }

    /// The handler for `config`, its backend connected, on this bus's registry.
    pub async fn trigger(&self, config: Config) -> Result<BuilderTrigger> {
        let (runner, _) = builder_trigger::runner(&config).await?;
        Ok(BuilderTrigger::new(config, runner, self.registry().await?))
    }

    /// The env registry on this bus.
    pub async fn registry(&self) -> Result<flotilla_env::Registry> {
        Ok(flotilla_env::Registry::new(self.bus.envs().await?))
    }

    /// `env.ready` of `ready`, after its record, as sync-watcher publishes it.
    pub async fn publish_ready(&self, ready: &Environment) -> Result<Published> {
        self.register_ready(ready).await?;
        self.publish(EventType::EnvReady, &ready.env, ready).await
    }

    /// What env-manager and sync-watcher leave before an `env.ready`: the env's record, ready
    /// at the change `ready` names.
    pub async fn register_ready(&self, ready: &Environment) -> Result<()> {
        let record = flotilla_env::EnvRecord {
            state: flotilla_env::State::Ready,
            kind: ready.kind.clone(),
            change_id: ready.change_id.clone(),
            apps: ready.apps.iter().map(Into::into).collect(),
            revision: "0".repeat(40),
            ..Default::default()
        };
        self.registry()
            .await?
            .update(&ready.env, |_| Some(record.clone()))
            .await?;
        Ok(())
    }

    /// Runs any handler as builder-trigger (same consumer and subjects), with fast retries.
    pub async fn run_handler(&self, handler: impl Handler) -> Result<Running> {
        self.run_handler_with(handler, |_| {}).await
    }

    /// Runs `handler` as builder-trigger with runtime settings adjusted by `adjust`.
    pub async fn run_handler_with(
        &self,
        handler: impl Handler,
        adjust: impl FnOnce(&mut WorkerConfig),
    ) -> Result<Running> {
        let mut config = flotilla_testing::quick(worker_config());
        adjust(&mut config);
        flotilla_testing::run_worker(&self.bus, config, handler).await
    }

    /// Publishes a source or env event as its producer would.
    pub async fn publish(
        &self,
        event_type: EventType,
        key: &str,
        message: &impl MessageOf,
    ) -> Result<Published> {
        let event = message.outgoing(event_type, key)?;
        Ok(self.bus.publisher("test").publish(event).await?)
    }

    /// Publishes as [`Fixture::publish`] with `ce-time` set to `time`: a delivery at that time
    /// (a webhook redelivered later, say).
    pub async fn publish_at(
        &self,
        event_type: EventType,
        key: &str,
        message: &impl MessageOf,
        time: &str,
    ) -> Result<Published> {
        let event = message
            .outgoing(event_type, key)?
            .with_header("ce-time", time);
        Ok(self.bus.publisher("test").publish(event).await?)
    }

    /// The events stored under `filter`, waiting up to `within` for `want` of them.
    pub async fn stored(&self, filter: &str, want: usize, within: Duration) -> Result<Vec<Event>> {
        flotilla_testing::stored_events(&self.bus, filter, want, within)
            .await
            .map_err(|e| anyhow!(e))
    }

    /// The first `build.failed` stored, decoded.
    pub async fn build_failed(&self) -> Result<Build> {
        let failed = self.stored("flotilla.build.failed.>", 1, WITHIN).await?;
        build(failed.first().context("no build.failed was stored")?)
    }

    /// Exactly `want` events under `filter` (see [`flotilla_testing::stored_exactly`]).
    pub async fn stored_exactly(&self, filter: &str, want: usize) -> Result<Vec<Event>> {
        flotilla_testing::stored_exactly(&self.bus, filter, want, WITHIN)
            .await
            .map_err(|e| anyhow!(e))
    }
}

pub use flotilla_testing::Served as Running;

/// Messages a test publishes.
pub trait MessageOf {
    fn outgoing(&self, event_type: EventType, key: &str) -> Result<Outgoing>;
}

impl<M: prost::Message + prost::Name> MessageOf for M {
    fn outgoing(&self, event_type: EventType, key: &str) -> Result<Outgoing> {
        Ok(Outgoing::new(event_type, key, self)?)
    }
}

/// A push to acme/ping's default branch.
pub fn push_to_main() -> Push {
    Push {
        provider: "github".into(),
        repo: "acme/ping".into(),
        r#ref: "refs/heads/main".into(),
        branch: "main".into(),
        default_branch: "main".into(),
        sha: SHA.into(),
        ..Default::default()
    }
}

/// A push of `sha` to acme/ping's default branch, its head commit made at `timestamp`.
pub fn push_of(sha: &str, timestamp: &str) -> Push {
    Push {
        sha: sha.into(),
        commits: vec![Commit {
            id: sha.into(),
            timestamp: timestamp.into(),
            ..Default::default()
        }],
        ..push_to_main()
    }
}

pub fn pull_request(action: &str, number: u64) -> PullRequest {
    PullRequest {
        provider: "github".into(),
        repo: "acme/ping".into(),
        number,
        action: action.into(),
        head_sha: SHA.into(),
        head_ref: "feature".into(),
        base_ref: "main".into(),
        ..Default::default()
    }
}

/// `env.ready` of the staging env of ping at `version`.
pub fn env_ready(env: &str, version: &str) -> Environment {
    Environment {
        env: env.into(),
        kind: "staging".into(),
        change_id: format!("ping-{version}"),
        apps: vec![AppVersion {
            name: "ping".into(),
            version: version.into(),
            image: "registry/apps/ping".into(),
        }],
        ..Default::default()
    }
}

/// A config whose build command is `command` and whose timeouts suit a test.
pub fn config(build_command: &str) -> Config {
    let mut config = Config::new(build_command);
    config.build_timeout = Duration::from_secs(10);
    config.test_timeout = Duration::from_secs(10);
    config
}

/// The same config with a test command.
pub fn with_test_command(mut config: Config, command: &str) -> Config {
    config.command_mut().expect("a command backend config").test = Some(command.to_owned());
    config
}

pub fn build(event: &Event) -> Result<Build> {
    Ok(event.decode()?)
}

pub fn test_result(event: &Event) -> Result<TestResult> {
    Ok(event.decode()?)
}

/// Lines a command appended to `path`.
pub fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The preview env the hook tests use, and its change.
pub const ENV: &str = "pr-acme-ping-7";
pub const CHANGE: &str = "ping-v20240101120000-1a2b3c4";

impl Fixture {
    /// The hooks file `yaml`, written in the scratch directory.
    pub fn hooks(&self, yaml: &str) -> Result<flotilla_env::Hooks> {
        let path = self.file("hooks.yaml");
        std::fs::write(&path, yaml)?;
        Ok(flotilla_env::Hooks::load(&path)?)
    }

    /// The command backend with `yaml`'s hooks, their logs and state in the scratch directory,
    /// looking again at waiting runs often.
    pub fn hook_config(&self, yaml: &str) -> Result<Config> {
        let mut config = config("true");
        if let Some(command) = config.command_mut() {
            command.hook_dir = Some(self.file("hook-logs"));
        }
        config.hooks.state_dir = self.file("hook-state");
        config.hooks.poll = Duration::from_millis(50);
        Ok(config.with_hooks(self.hooks(yaml)?)?)
    }

    /// What env-manager does when it requests the preview [`ENV`] at `change`: the record, with
    /// the hooks of `config` that apply recorded `pending`, then `env.requested`.
    pub async fn request_env(&self, config: &Config, change: &str) -> Result<Published> {
        let apps = [AppVersion {
            name: "ping".into(),
            version: change.trim_start_matches("ping-").into(),
            image: "registry/apps/ping".into(),
        }];
        let applicable = config.hooks.hooks.applicable("preview", ["ping"]);
        let registry = self.registry().await?;
        let change_id = change.to_owned();
        registry
            .update(ENV, |current| {
                let earlier = current.map(|r| r.hooks).unwrap_or_default();
                Some(flotilla_env::EnvRecord {
                    state: flotilla_env::State::Requested,
                    kind: "preview".into(),
                    change_id: change_id.clone(),
                    repo: "acme/ping".into(),
                    pr: 7,
                    sha: SHA.into(),
                    apps: apps.iter().map(Into::into).collect(),
                    revision: "0".repeat(40),
                    hooks: flotilla_env::hooks::requested(&earlier, &applicable, &change_id),
                    ..Default::default()
                })
            })
            .await?;
        self.publish_requested(change).await
    }

    /// `env.requested` of [`ENV`] at `change`, as env-manager publishes it.
    pub async fn publish_requested(&self, change: &str) -> Result<Published> {
        let requested = Environment {
            env: ENV.into(),
            kind: "preview".into(),
            change_id: change.into(),
            apps: vec![AppVersion {
                name: "ping".into(),
                version: change.trim_start_matches("ping-").into(),
                image: "registry/apps/ping".into(),
            }],
            repo: "acme/ping".into(),
            pr: 7,
            ..Default::default()
        };
        let event = Outgoing::new(EventType::EnvRequested, ENV, &requested)?.with_change_id(change);
        Ok(self.bus.publisher("env-manager").publish(event).await?)
    }

    /// What the reaper does once the env's teardown is confirmed: the record `deleted`, then
    /// `env.deleted` (with `id`, so a test can publish it twice as two deliveries would).
    pub async fn delete_env(&self, id: &str) -> Result<Published> {
        let registry = self.registry().await?;
        registry
            .update(ENV, |current| {
                current.map(|r| flotilla_env::EnvRecord {
                    state: flotilla_env::State::Deleted,
                    ..r
                })
            })
            .await?;
        let record = self.record(ENV).await?;
        let deleted = record.to_environment(ENV);
        let event = Outgoing::new(EventType::EnvDeleted, ENV, &deleted)?
            .with_change_id(&record.change_id)
            .with_id(id);
        Ok(self.bus.publisher("reaper").publish(event).await?)
    }

    /// The record of `env`.
    pub async fn record(&self, env: &str) -> Result<flotilla_env::EnvRecord> {
        self.registry()
            .await?
            .get(env)
            .await?
            .with_context(|| format!("no record of {env}"))
    }

    /// The hook state `name` of `change` in [`ENV`]'s record.
    pub async fn hook_state(&self, name: &str, change: &str) -> Result<flotilla_env::HookState> {
        self.record(ENV)
            .await?
            .hooks
            .into_iter()
            .find(|h| h.name == name && h.change_id == change)
            .with_context(|| format!("no hook {name} of {change} in the record"))
    }
}

/// A stored `env.hook.*` event: its type, and its run.
pub fn hook_run(event: &Event) -> Result<(String, flotilla_proto::v1::HookRun)> {
    let kind = event.kind().context("a known type")?.as_str().to_owned();
    Ok((kind, event.decode()?))
}

/// `(type, hook, phase, attempt)` of each stored hook event, for comparing timelines.
pub fn hook_timeline(events: &[Event]) -> Result<Vec<(String, String, String, u32)>> {
    events
        .iter()
        .map(|e| {
            let (kind, run) = hook_run(e)?;
            Ok((kind, run.hook, run.phase, run.attempt))
        })
        .collect()
}
