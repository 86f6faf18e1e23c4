//! `flotilla replay --dry-run WORKER`: stored events fed to a worker's handler that reads real
//! state and writes nothing; the GitOps remote, the registry and the stream stay as they were.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use async_nats::jetstream;
use flotilla_testing::NatsServer;
use git2::{Repository, Signature};
use serde_json::json;

use crate::support::{Cli, build, jetstream};

const PRODUCTION: &str = r#"{
  "apps": {
    "ping": {"image": "registry/apps/ping", "version": "v20240101000000-0000000"}
  }
}
"#;

/// A bare GitOps remote whose `main` holds a production manifest with `ping`.
fn gitops_remote(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("gitops.git");
    let repo = Repository::init_bare(&path)?;
    let blob = repo.blob(PRODUCTION.as_bytes())?;
    let mut apps = repo.treebuilder(None)?;
    apps.insert("production.json", blob, 0o100644)?;
    let apps = apps.write()?;
    let mut root = repo.treebuilder(None)?;
    root.insert("apps", apps, 0o040000)?;
    let tree = repo.find_tree(root.write()?)?;
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
    Ok(path)
}

/// Every ref of the repository at `path` with its target, and its object count.
fn git_state(path: &Path) -> Result<(Vec<(String, String)>, usize)> {
    let repo = Repository::open_bare(path)?;
    let mut refs = Vec::new();
    for reference in repo.references()? {
        let reference = reference?;
        let target = reference
            .target()
            .map(|t| t.to_string())
            .or_else(|| reference.symbolic_target().map(str::to_owned))
            .unwrap_or_default();
        refs.push((reference.name().unwrap_or_default().to_owned(), target));
    }
    let mut objects = 0;
    repo.odb()?.foreach(|_| {
        objects += 1;
        true
    })?;
    Ok((refs, objects))
}

/// A stream's last sequence and message count.
async fn stream_state(js: &jetstream::Context, name: &str) -> Result<(u64, u64)> {
    let mut stream = js.get_stream(name).await?;
    let state = stream.info().await?.state.clone();
    Ok((state.last_sequence, state.messages))
}

/// Everything a dry run must leave as it was.
async fn world(js: &jetstream::Context, remote: &Path) -> Result<impl PartialEq + std::fmt::Debug> {
    Ok((
        git_state(remote)?,
        stream_state(js, "KV_flotilla-envs").await?,
        stream_state(js, "FLOTILLA").await?,
    ))
}

#[tokio::test]
async fn a_dry_run_of_env_manager_shows_the_env_file_and_event_and_writes_nothing() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;
    let dir = tempfile::tempdir()?;
    let remote = gitops_remote(dir.path())?;
    let url = remote.display().to_string();
    let env = [
        ("FLOTILLA_GITOPS_URL", url.as_str()),
        (
            "FLOTILLA_DATA_DIR",
            dir.path().to_str().context("utf-8 path")?,
        ),
    ];
    cli.publish("build.started", "ping-v1", &build("ping-v1"))
        .await?;
    let succeeded = cli
        .publish("build.succeeded", "ping-v1", &build("ping-v1"))
        .await?;
    let js = jetstream(&server).await;
    let before = world(&js, &remote).await?;

    let text = cli
        .run_with_env(&["replay", "build.>", "--dry-run", "env-manager"], &env)
        .await?
        .success()?;
    let json = cli
        .run_with_env(
            &["replay", "build.>", "--dry-run", "env-manager", "--json"],
            &env,
        )
        .await?
        .success()?;

    assert_eq!(world(&js, &remote).await?, before, "nothing was written");
    let env_file = "envs/stg-ping-v20240501120000-1a2b3c4.json";
    assert!(
        text.stdout
            .contains(&format!("write {env_file} (new file)")),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("\"version\": \"v20240501120000-1a2b3c4\""),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("emit       env.requested stg-ping-v20240501120000-1a2b3c4"),
        "{}",
        text.stdout
    );
    assert!(
        text.stderr
            .contains("skipped 1 event env-manager does not consume: build.started (1)"),
        "{}",
        text.stderr
    );

    let lines = json.json_lines()?;
    assert_eq!(lines.len(), 1, "only the build.succeeded: {lines:?}");
    let report = &lines[0];
    assert_eq!(report["id"], succeeded["id"]);
    assert_eq!(report["type"], "build.succeeded");
    let effects = report["effects"].as_array().context("effects")?;
    let summaries: Vec<&str> = effects
        .iter()
        .filter_map(|e| e["summary"].as_str())
        .collect();
    assert!(
        summaries.contains(&format!("write {env_file} (new file)").as_str()),
        "{summaries:?}"
    );
    assert!(
        summaries.contains(&"env stg-ping-v20240501120000-1a2b3c4: (none) -> requested"),
        "{summaries:?}"
    );
    let written: serde_json::Value = serde_json::from_str(
        effects[0]["detail"]
            .as_str()
            .context("the file's contents")?,
    )?;
    assert_eq!(
        written["apps"]["ping"]["version"],
        "v20240501120000-1a2b3c4"
    );
    let emits = report["emits"].as_array().context("emits")?;
    assert_eq!(emits.len(), 1);
    assert_eq!(emits[0]["type"], "env.requested");
    assert_eq!(emits[0]["key"], "stg-ping-v20240501120000-1a2b3c4");
    assert_eq!(emits[0]["data"]["env"], "stg-ping-v20240501120000-1a2b3c4");
    assert_eq!(
        emits[0]["data"]["changeId"],
        json!("ping-v1"),
        "the change of the build"
    );
    Ok(())
}

#[tokio::test]
async fn a_dry_run_of_a_worker_this_binary_does_not_build_names_those_it_does() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;

    let run = cli
        .run(&["replay", "build.>", "--dry-run", "reaper"])
        .await?;

    assert_eq!(run.code(), Some(64), "{}", run.stderr);
    assert!(
        run.stderr.contains("env-manager, builder-trigger"),
        "{}",
        run.stderr
    );
    Ok(())
}

#[tokio::test]
async fn a_dry_run_of_builder_trigger_shows_the_build_it_would_run_and_runs_nothing() -> Result<()>
{
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;
    let dir = tempfile::tempdir()?;
    let marker = dir.path().join("built");
    let command = format!("touch {}", marker.display());
    let push = json!({
        "provider": "github",
        "repo": "acme/ping",
        "ref": "refs/heads/main",
        "branch": "main",
        "defaultBranch": "main",
        "sha": "1a2b3c4d5e6f",
    });
    cli.publish("source.push", "acme_ping", &push).await?;
    let js = jetstream(&server).await;
    let before = stream_state(&js, "FLOTILLA").await?;

    let run = cli
        .run_with_env(
            &[
                "replay",
                "source.>",
                "--dry-run",
                "builder-trigger",
                "--json",
            ],
            &[("FLOTILLA_BUILD_COMMAND", command.as_str())],
        )
        .await?
        .success()?;

    assert!(!marker.exists(), "the build command did not run");
    assert_eq!(
        stream_state(&js, "FLOTILLA").await?,
        before,
        "nothing was published"
    );
    let lines = run.json_lines()?;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let effects = lines[0]["effects"].as_array().context("effects")?;
    let kinds: Vec<&str> = effects.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["publish", "build"], "{effects:?}");
    let started = effects[0]["summary"].as_str().context("summary")?;
    assert!(
        started.starts_with("publish build.started on flotilla.build.started.ping-v"),
        "{started}"
    );
    let build = effects[1]["summary"].as_str().context("summary")?;
    assert!(build.starts_with("would run build of ping-v"), "{build}");
    assert!(
        build.ends_with(&format!("with command: sh -c {command:?}")),
        "{build}"
    );
    let emits = lines[0]["emits"].as_array().context("emits")?;
    assert_eq!(emits.len(), 1);
    assert_eq!(
        emits[0]["type"], "build.succeeded",
        "a dry run's build succeeds"
    );
    assert_eq!(emits[0]["data"]["app"], "ping");
    Ok(())
}
