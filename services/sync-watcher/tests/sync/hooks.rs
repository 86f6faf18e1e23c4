//! Environment hooks end to end across the workers: env-manager (on a real git repository),
//! builder-trigger (the command backend, running the README's example scripts) and
//! sync-watcher (PostSync reports over HTTP) in one process on a real nats-server. A build
//! becomes an env whose provision hooks gate its readiness; a failed hook fails it; its
//! teardown runs the deprovision.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use flotilla_bus::{Bus, Event, EventType, Outgoing, Process};
use flotilla_env::hooks::RunStatus;
use flotilla_env::{Hooks, Registry, State};
use flotilla_proto::v1::{Build, Environment, HookRun, Image, PullRequest};
use flotilla_testing::{NatsServer, Served};
use git2::{Repository, Signature};
use sync_watcher::history::SameRevisionOnly;

use crate::support::WITHIN;

const VERSION: &str = "v20240101120000-bbbbbbb";
const ENV: &str = "pr-acme-ping-7";

/// The workspace's examples/hooks, whose scripts the hooks run.
fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hooks")
}

struct Fleet {
    _server: NatsServer,
    bus: Bus,
    registry: Registry,
    dir: tempfile::TempDir,
    served: Served,
}

impl Fleet {
    /// The three workers with `hooks` (YAML), on a GitOps remote holding ping in production.
    async fn start(hooks: &str) -> Result<Fleet> {
        let (server, bus) = flotilla_testing::bus().await?;
        let dir = tempfile::tempdir()?;
        let remote = dir.path().join("gitops.git");
        seed(&remote)?;
        let hooks_file = dir.path().join("hooks.yaml");
        std::fs::write(&hooks_file, hooks)?;
        let hooks = Hooks::load(&hooks_file)?;
        let registry = Registry::new(bus.envs().await?);

        let envs = env_manager::Config::new(remote.display().to_string(), dir.path().join("work"))
            .with_hooks(hooks.clone());
        let gitops = env_manager::gitops::GitOps::open(envs.gitops.clone()).await?;
        let env_manager = env_manager::EnvManager::new(envs, gitops, registry.clone());

        let mut builds = builder_trigger::Config::new("true");
        if let Some(command) = builds.command_mut() {
            command.hook_dir = Some(dir.path().join("hook-logs"));
        }
        builds.hooks.state_dir = dir.path().join("hook-state");
        builds.hooks.poll = Duration::from_millis(50);
        let builds = builds.with_hooks(hooks)?;
        let (runner, _) = builder_trigger::runner(&builds).await?;
        let builder = builder_trigger::BuilderTrigger::new(builds, runner, registry.clone());

        let mut ready = sync_watcher::Config::new();
        ready.kube = sync_watcher::Kube::Off;
        ready.tracker.stable = Duration::from_millis(300);
        ready.tracker.timeout = Duration::from_secs(30);
        ready.tracker.sweep = Duration::from_millis(500);

        let mut process = Process::new(bus.clone());
        process
            .worker(
                flotilla_testing::quick(env_manager::worker_config()),
                env_manager,
            )
            .worker(
                flotilla_testing::quick(builder_trigger::worker_config()),
                builder,
            );
        sync_watcher::install(
            &mut process,
            &ready,
            registry.clone(),
            None,
            Arc::new(SameRevisionOnly),
        );
        let served = flotilla_testing::serve(process).await?;
        Ok(Fleet {
            _server: server,
            bus,
            registry,
            dir,
            served,
        })
    }

    /// A pull request's build of ping succeeded, as builder-trigger reports it.
    async fn build(&self) -> Result<()> {
        let build = Build {
            change_id: format!("ping-{VERSION}"),
            app: "ping".into(),
            repo: "acme/ping".into(),
            sha: "bbbbbbbccccccccccccccccccccccccccccccccc".into(),
            version: VERSION.into(),
            pr: 7,
            images: vec![Image {
                name: "ping".into(),
                r#ref: format!("registry/apps/ping:{VERSION}"),
                digest: String::new(),
            }],
            ..Default::default()
        };
        let event = Outgoing::new(EventType::BuildSucceeded, &build.change_id, &build)?
            .with_change_id(&build.change_id);
        self.bus.publisher("builder-trigger").publish(event).await?;
        Ok(())
    }

    /// ping's PostSync hook reports it succeeded.
    async fn report(&self) -> Result<()> {
        let url = format!("http://{}/report/{ENV}/ping", self.served.addr());
        let answer = reqwest::Client::new()
            .post(url)
            .json(&serde_json::json!({"status": "succeeded"}))
            .send()
            .await?;
        anyhow::ensure!(answer.status() == 202, "report: {}", answer.status());
        Ok(())
    }

    async fn stored(&self, filter: &str, want: usize) -> Result<Vec<Event>> {
        flotilla_testing::stored_events(&self.bus, filter, want, WITHIN)
            .await
            .map_err(|e| anyhow::anyhow!(e))
    }

    async fn record(&self) -> Result<flotilla_env::EnvRecord> {
        self.registry.get(ENV).await?.context("the env's record")
    }

    async fn state_eventually(&self, want: State) -> Result<()> {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            let state = self.record().await?.state;
            if state == want {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{ENV} is {state}, not {want}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("hook-state").join(ENV)
    }
}

/// A bare repository whose `main` holds `apps/production.json` with ping.
fn seed(remote: &Path) -> Result<()> {
    let repo = Repository::init_bare(remote)?;
    let production = br#"{"apps": {"ping": {"image": "registry/apps/ping", "version": "v20230121117084-1a2b3c4"}}}
"#;
    let mut index = git2::Index::new()?;
    index.add(&git2::IndexEntry {
        ctime: git2::IndexTime::new(0, 0),
        mtime: git2::IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode: 0o100644,
        uid: 0,
        gid: 0,
        file_size: 0,
        id: repo.blob(production)?,
        flags: 0,
        flags_extended: 0,
        path: b"apps/production.json".to_vec(),
    })?;
    let tree = repo.find_tree(index.write_tree_to(&repo)?)?;
    let someone = Signature::now("someone", "someone@example.com")?;
    repo.commit(
        Some("refs/heads/main"),
        &someone,
        &someone,
        "production",
        &tree,
        &[],
    )?;
    repo.set_head("refs/heads/main")?;
    Ok(())
}

fn hook_run(event: &Event) -> Result<HookRun> {
    Ok(event.decode()?)
}

#[tokio::test]
async fn an_env_is_ready_only_after_its_provision_hooks_succeeded() -> Result<()> {
    let examples = examples();
    let dir = tempfile::tempdir()?;
    let go = dir.path().join("go");
    // The README's hooks, the dataset's restore held until the test lets it go.
    let fleet = Fleet::start(&format!(
        r#"
hooks:
  - name: database
    provision:
      command: {e}/infra.sh create
    deprovision:
      command: {e}/infra.sh destroy
  - name: dataset
    provision:
      command: 'i=0; while [ ! -e {go} ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done; {e}/restore.sh {e}/seed.sql'
"#,
        e = examples.display(),
        go = go.display()
    ))
    .await?;

    fleet.build().await?;
    fleet.stored("flotilla.env.hook.started.>", 2).await?;
    let waiting = fleet.record().await?;
    assert_eq!(waiting.state, State::Requested);
    assert_eq!(
        waiting
            .hooks
            .iter()
            .map(|h| (h.name.as_str(), h.provision.state))
            .collect::<Vec<_>>(),
        [
            ("database", RunStatus::Succeeded),
            ("dataset", RunStatus::Running)
        ]
    );
    // Every app is ready; the env still waits for its dataset.
    fleet.report().await?;
    std::fs::write(&go, "")?;

    let events = fleet.stored("flotilla.env.>", 6).await?;
    let ready = events
        .iter()
        .position(|e| e.kind() == Some(EventType::EnvReady))
        .context("env.ready")?;
    let restored = events
        .iter()
        .position(|e| {
            e.kind() == Some(EventType::EnvHookSucceeded)
                && hook_run(e).is_ok_and(|run| run.hook == "dataset")
        })
        .context("the dataset's env.hook.succeeded")?;
    assert!(
        restored < ready,
        "env.ready came after the last hook succeeded: {:?}",
        events.iter().map(|e| e.event_type()).collect::<Vec<_>>()
    );
    fleet.state_eventually(State::Ready).await?;
    let state = std::fs::read_to_string(fleet.state_dir().join("infra.state"))?;
    assert!(state.contains(&format!("database=db-{ENV}")), "{state}");
    let log = &fleet.record().await?.hooks[1].provision.log_url;
    let log = std::fs::read_to_string(log)?;
    assert!(log.contains("restoring 3 statements"), "{log}");
    fleet.served.shutdown().await
}

#[tokio::test]
async fn a_failed_hook_fails_the_env_with_its_lines_and_the_teardown_deprovisions() -> Result<()> {
    let examples = examples();
    let fleet = Fleet::start(&format!(
        r#"
hooks:
  - name: database
    provision:
      command: {e}/infra.sh create
    deprovision:
      command: {e}/infra.sh destroy
  - name: dataset
    provision:
      command: {e}/restore.sh {e}/no-such-dataset.sql
"#,
        e = examples.display()
    ))
    .await?;

    fleet.build().await?;

    let failed = fleet.stored("flotilla.env.failed.>", 1).await?;
    let failed: Environment = failed.first().context("env.failed")?.decode()?;
    assert!(
        failed
            .reason
            .starts_with("provision hook `dataset` failed: exit status 2"),
        "{}",
        failed.reason
    );
    assert!(
        failed.reason.contains("restore: no dataset")
            && failed.reason.contains("no-such-dataset.sql"),
        "the hook's last lines: {}",
        failed.reason
    );
    fleet.state_eventually(State::Failed).await?;
    assert!(fleet.state_dir().join("infra.state").is_file());

    // The pull request is closed: env-manager tears the env down; the reaper confirms it.
    let closed = PullRequest {
        provider: "github".into(),
        repo: "acme/ping".into(),
        number: 7,
        action: "closed".into(),
        ..Default::default()
    };
    let event = Outgoing::new(EventType::SourcePullRequest, "acme/ping", &closed)?;
    fleet
        .bus
        .publisher("source-listener")
        .publish(event)
        .await?;
    fleet.state_eventually(State::Deleting).await?;
    let record = fleet.record().await?;
    fleet
        .registry
        .update(ENV, |current| {
            current.map(|r| flotilla_env::EnvRecord {
                state: State::Deleted,
                ..r
            })
        })
        .await?;
    let deleted = Environment {
        env: ENV.into(),
        kind: record.kind.clone(),
        change_id: record.change_id.clone(),
        ..Default::default()
    };
    let event = Outgoing::new(EventType::EnvDeleted, ENV, &deleted)?
        .with_change_id(&record.change_id)
        .with_id(format!("reaper:env.deleted:{ENV}:{}", record.change_id));
    fleet.bus.publisher("reaper").publish(event).await?;

    let events = fleet.stored("flotilla.env.hook.succeeded.>", 2).await?;
    let destroyed = hook_run(events.last().context("the deprovision")?)?;
    assert_eq!(
        (destroyed.hook.as_str(), destroyed.phase.as_str()),
        ("database", "deprovision")
    );
    let gone = flotilla_testing::eventually(WITHIN, || !fleet.state_dir().exists()).await;
    assert!(gone, "the env's hook state went with its deprovision");
    let record = fleet.record().await?;
    assert!(
        record.hooks.iter().all(|h| !h.created),
        "{:?}",
        record.hooks
    );
    fleet.served.shutdown().await
}
