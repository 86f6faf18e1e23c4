use std::time::Duration;

use anyhow::{Context, Result, bail};
use flotilla_testing::{NatsServer, free_port};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use crate::support::{Cli, build};

/// A running `flotilla up`.
pub(crate) struct Up {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    /// What it printed up to "ready".
    banner: Vec<String>,
    pub(crate) http: u16,
}

impl Up {
    pub(crate) async fn start(
        cli: &Cli,
        data_dir: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Result<Up> {
        Up::start_with(cli, data_dir, env, &[]).await
    }

    /// `up` with more flags, run from the workspace's root (as the README's examples are).
    async fn start_with(
        cli: &Cli,
        data_dir: &std::path::Path,
        env: &[(&str, &str)],
        flags: &[&str],
    ) -> Result<Up> {
        let http = free_port();
        let data = data_dir.display().to_string();
        let addr = format!("127.0.0.1:{http}");
        let mut args = vec!["up", "--data-dir", &data, "--http-addr", &addr];
        args.extend_from_slice(flags);
        let mut command = cli.command(&args);
        command.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        let mut child = command
            .env("GENERIC_WEBHOOK_TOKEN", "s3cret")
            .envs(env.iter().copied())
            .spawn()
            .context("start flotilla up")?;
        let mut stdout = BufReader::new(child.stdout.take().context("piped stdout")?).lines();
        let mut banner = Vec::new();
        let ready = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = stdout.next_line().await? {
                let done = line.starts_with("ready");
                banner.push(line);
                if done {
                    return Ok(());
                }
            }
            bail!("up ended before it was ready")
        });
        ready.await.context("up never said it was ready")??;
        Ok(Up {
            child,
            stdout,
            banner,
            http,
        })
    }

    pub(crate) async fn line_containing(&mut self, text: &str) -> Result<String> {
        let found = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(line) = self.stdout.next_line().await? {
                if line.contains(text) {
                    return Ok(line);
                }
            }
            bail!("up closed stdout")
        });
        found
            .await
            .with_context(|| format!("up never printed {text:?}"))?
    }

    /// Reads what up prints until a line contains each of `texts` (in any order); fails at
    /// once on a line containing one of `never`.
    pub(crate) async fn lines_containing(
        &mut self,
        texts: &[&str],
        never: &[&str],
    ) -> Result<Vec<String>> {
        let mut found: Vec<Option<String>> = vec![None; texts.len()];
        let read = tokio::time::timeout(Duration::from_secs(20), async {
            while found.iter().any(Option::is_none) {
                let Some(line) = self.stdout.next_line().await? else {
                    bail!("up closed stdout");
                };
                if let Some(bad) = never.iter().find(|bad| line.contains(*bad)) {
                    bail!("up printed {bad:?}: {line}");
                }
                for (text, slot) in texts.iter().zip(found.iter_mut()) {
                    if slot.is_none() && line.contains(text) {
                        *slot = Some(line.clone());
                    }
                }
            }
            Ok(())
        });
        read.await
            .with_context(|| format!("up never printed all of {texts:?}"))??;
        Ok(found.into_iter().flatten().collect())
    }

    /// Stops up with SIGTERM; its exit code.
    pub(crate) async fn terminate(self) -> Result<Option<i32>> {
        self.stop("TERM").await
    }

    /// Stops up with SIGINT, as Ctrl-C does; its exit code.
    pub(crate) async fn interrupt(self) -> Result<Option<i32>> {
        self.stop("INT").await
    }

    async fn stop(mut self, signal: &str) -> Result<Option<i32>> {
        let pid = self.child.id().context("up is running")?;
        let kill = tokio::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .await?;
        anyhow::ensure!(kill.success(), "kill -{signal} {pid} failed");
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .with_context(|| format!("up did not stop on SIG{signal}"))??;
        Ok(status.code())
    }
}

#[tokio::test]
async fn up_starts_nats_when_none_answers_sets_the_bus_up_follows_events_and_stops_it() -> Result<()>
{
    let url = format!("nats://127.0.0.1:{}", free_port());
    let data = tempfile::tempdir()?;
    let cli = Cli::at(&url);
    let mut up = Up::start(
        &cli,
        data.path(),
        &[("FLOTILLA_BUILD_COMMAND", "echo built $FLOTILLA_VERSION")],
    )
    .await?;
    let banner = up.banner.join("\n");
    assert!(banner.contains("created   stream FLOTILLA"), "{banner}");
    assert!(
        banner.contains("created   consumer env-manager"),
        "{banner}"
    );
    assert!(banner.contains(&format!("{url} (started here")), "{banner}");
    assert!(banner.contains("builder-trigger  building"), "{banner}");
    assert!(
        banner.contains("canary-analyzer  analysis-only, no Rollout followed"),
        "without a cluster the canary analyzer says it runs analysis-only: {banner}"
    );
    assert!(
        banner.contains(&format!(
            "env-manager      writing environments to {}",
            data.path().join("gitops.git").display()
        )),
        "a local GitOps repository when none is configured: {banner}"
    );
    assert!(
        banner.contains("reaper           TTL 3days, idle off; teardowns verified in git"),
        "the reaper on env-manager's TTL and repository: {banner}"
    );
    let report = reqwest::get(format!("http://127.0.0.1:{}/reaper", up.http)).await?;
    assert_eq!(
        report.status().as_u16(),
        200,
        "the reaper's report is served"
    );
    assert!(
        data.path().join("nats").is_dir(),
        "store under the data dir"
    );

    let ready = reqwest::get(format!("http://127.0.0.1:{}/readyz", up.http)).await?;
    assert_eq!(ready.status().as_u16(), 200);

    // A GitHub secret was generated into the data dir, and the printed command sends a first
    // signed push with it.
    let secret = data.path().join("secrets/github-webhook-secret");
    assert!(
        banner.contains(&format!("secret generated in {}", secret.display())),
        "{banner}"
    );
    assert!(
        banner.contains("refusing every delivery until set: GITLAB_WEBHOOK_TOKEN")
            && !banner.contains("until set: GITHUB_WEBHOOK_SECRET"),
        "a generated GitHub secret counts as set: {banner}"
    );
    let send = banner
        .lines()
        .find_map(|l| l.strip_prefix("send      "))
        .context("a send line")?;
    assert!(
        send.starts_with(&format!("GITHUB_WEBHOOK_SECRET_FILE={} ", secret.display())),
        "{send}"
    );
    let url = format!("http://127.0.0.1:{}", up.http);
    let sent = cli
        .run_with_env(
            &[
                "webhook",
                "send",
                "github",
                "push",
                "--url",
                &url,
                "--repo",
                "acme/ping",
                "--branch",
                "main",
            ],
            &[("GITHUB_WEBHOOK_SECRET_FILE", &secret.display().to_string())],
        )
        .await?
        .success()?;
    assert!(sent.stdout.starts_with("202 "), "{}", sent.stdout);
    up.line_containing("flotilla.source.push.acme_ping").await?;

    cli.publish("build.started", "ping-v1", &build("ping-v1"))
        .await?;
    let line = up.line_containing("flotilla.build.started.ping-v1").await?;
    assert!(line.contains("change=ping-v1"), "{line}");
    // A release naming no analysis: judged by the hosted canary-analyzer at once.
    let release = serde_json::json!({"changeId": "ping-v1", "app": "ping", "version": "v1"});
    cli.publish("release.requested", "ping", &release).await?;
    up.line_containing("flotilla.canary.promoted.ping-v1")
        .await?;

    assert_eq!(up.terminate().await?, Some(0));
    let gone = async_nats::connect(url.as_str()).await;
    assert!(
        gone.is_err(),
        "the nats-server started by up was stopped with it"
    );
    Ok(())
}

#[tokio::test]
async fn up_uses_a_server_that_already_answers_and_leaves_it_running() -> Result<()> {
    let server = NatsServer::start();
    let data = tempfile::tempdir()?;
    let cli = Cli::new(&server);
    let up = Up::start(&cli, data.path(), &[]).await?;
    let banner = up.banner.join("\n");
    assert!(banner.contains("(already running)"), "{banner}");
    assert!(!data.path().join("nats").exists(), "no second server");
    assert_eq!(up.terminate().await?, Some(0));
    server.connect().await;
    Ok(())
}

#[tokio::test]
async fn a_fresh_local_gitops_repo_holds_ping_so_the_readme_build_becomes_an_env() -> Result<()> {
    let server = NatsServer::start();
    let data = tempfile::tempdir()?;
    let cli = Cli::new(&server);
    let mut up = Up::start(&cli, data.path(), &[]).await?;
    let manifest = production_manifest(&data.path().join("gitops.git"))?;
    assert_eq!(
        manifest["apps"]["ping"]["image"], "registry/apps/ping",
        "{manifest}"
    );
    assert!(
        manifest["apps"]["ping"]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with('v')),
        "{manifest}"
    );

    // The README's example, as written there.
    let change = "ping-v20240101120000-1a2b3c4";
    let readme = serde_json::json!({
        "changeId": change,
        "app": "ping",
        "version": "v20240101120000-1a2b3c4",
    });
    cli.publish("build.succeeded", change, &readme).await?;
    let line = up
        .line_containing("flotilla.env.requested.stg-ping-v20240101120000-1a2b3c4")
        .await?;
    assert!(line.contains(&format!("change={change}")), "{line}");

    assert_eq!(up.terminate().await?, Some(0));
    Ok(())
}

#[tokio::test]
async fn the_readmes_hooks_example_gates_the_env_and_says_what_it_did() -> Result<()> {
    let server = NatsServer::start();
    let data = tempfile::tempdir()?;
    let cli = Cli::new(&server);
    let mut up = Up::start_with(
        &cli,
        data.path(),
        &[("FLOTILLA_BUILD_COMMAND", "true")],
        &["--hooks", "examples/hooks/hooks.yaml"],
    )
    .await?;
    let banner = up.banner.join("\n");
    assert!(
        banner.contains("2 environment hooks from examples/hooks/hooks.yaml (database, dataset)"),
        "{banner}"
    );

    // The README's example build: its staging env is requested, then provisioned.
    let change = "ping-v20240101120000-1a2b3c4";
    let env = "stg-ping-v20240101120000-1a2b3c4";
    let readme = serde_json::json!({
        "changeId": change,
        "app": "ping",
        "version": "v20240101120000-1a2b3c4",
    });
    cli.publish("build.succeeded", change, &readme).await?;
    up.line_containing(&format!("flotilla.env.hook.succeeded.{env}"))
        .await?;
    let line = up
        .line_containing(&format!("flotilla.env.hook.succeeded.{env}"))
        .await?;
    assert!(line.contains("dataset"), "the dataset last: {line}");
    let state = data.path().join("hooks/state").join(env);
    let infra = std::fs::read_to_string(state.join("infra.state"))?;
    assert!(
        infra.contains(&format!("created_by={env}/{change}")),
        "{infra}"
    );
    let log = std::fs::read_dir(data.path().join("hooks/logs"))?
        .filter_map(|e| e.ok())
        .find(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.contains("dataset") && name.ends_with(".log")
        })
        .context("the dataset's log")?;
    let log = std::fs::read_to_string(log.path())?;
    assert!(log.contains("restoring 3 statements"), "{log}");

    // Its app reports in: only now, both hooks done, is it ready.
    let report = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/report/{env}/ping", up.http))
        .json(&serde_json::json!({"status": "succeeded"}))
        .send()
        .await?;
    assert_eq!(report.status().as_u16(), 202);
    up.line_containing(&format!("flotilla.env.ready.{env}"))
        .await?;
    assert_eq!(up.terminate().await?, Some(0));
    Ok(())
}

/// `apps/production.json` at the head of a bare repository.
fn production_manifest(repo: &std::path::Path) -> Result<serde_json::Value> {
    let repo = git2::Repository::open_bare(repo).context("open the local GitOps repo")?;
    let head = repo.head()?.peel_to_commit()?;
    let entry = head
        .tree()?
        .get_path(std::path::Path::new("apps/production.json"))
        .context("apps/production.json")?;
    let blob = repo.find_blob(entry.id())?;
    serde_json::from_slice(blob.content()).context("the production manifest is JSON")
}

#[tokio::test]
async fn up_serves_every_hosted_workers_routes_and_applies_the_runtime_settings() -> Result<()> {
    let server = NatsServer::start();
    let data = tempfile::tempdir()?;
    let cli = Cli::new(&server);
    // builder-trigger on its http backend: its CI callback route must be served by `up` itself.
    let template = r#"{"url": "http://127.0.0.1:9/dispatch", "body": {"sha": "{{sha}}"}}"#;
    let up = Up::start(
        &cli,
        data.path(),
        &[
            ("FLOTILLA_BUILD_BACKEND", "http"),
            ("FLOTILLA_HTTP_BUILD_REQUEST", template),
            ("FLOTILLA_CALLBACK_URL", "http://127.0.0.1:9"),
            ("FLOTILLA_CONCURRENCY", "3"),
            ("FLOTILLA_MAX_DELIVER", "7"),
        ],
    )
    .await?;
    let banner = up.banner.join("\n");
    assert!(
        banner.contains("builder-trigger  building with the http backend"),
        "{banner}"
    );

    let answer = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/callbacks/builds/no-such-run",
            up.http
        ))
        .bearer_auth("any")
        .json(&serde_json::json!({"status": "succeeded"}))
        .send()
        .await?;
    let status = answer.status().as_u16();
    let text = answer.text().await?;
    assert_eq!(status, 404);
    assert!(
        text.contains("no run is waiting for a callback as no-such-run"),
        "builder-trigger's own answer, not a missing route: {text:?}"
    );

    // FLOTILLA_MAX_DELIVER reached the consumer up bound (one more delivery than attempts).
    let js = async_nats::jetstream::new(server.connect().await);
    let mut consumer = js
        .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
            "builder-trigger",
            "FLOTILLA",
        )
        .await?;
    assert_eq!(consumer.info().await?.config.max_deliver, 8);

    assert_eq!(up.terminate().await?, Some(0));
    Ok(())
}

#[tokio::test]
async fn with_no_configuration_the_printed_first_change_becomes_a_ready_env_through_reports()
-> Result<()> {
    let url = format!("nats://127.0.0.1:{}", free_port());
    let data = tempfile::tempdir()?;
    let cli = Cli::at(&url);
    // Nothing set: no build command, no GitOps URL, no secret, no cluster.
    let mut up = Up::start(&cli, data.path(), &[]).await?;
    let banner = up.banner.join("\n");
    assert!(
        banner.contains("builder-trigger  with no FLOTILLA_BUILD_COMMAND: builds make nothing"),
        "{banner}"
    );
    assert!(
        banner.contains("sync-watcher     on reports alone"),
        "{banner}"
    );

    // The send line, run exactly as printed: `NAME=value flotilla webhook send ...`.
    let send = banner
        .lines()
        .find_map(|l| l.strip_prefix("send      "))
        .context("a send line")?;
    let mut words = send.split_whitespace();
    let (name, value) = words
        .next()
        .and_then(|w| w.split_once('='))
        .context("the send line starts with the secret's variable")?;
    anyhow::ensure!(words.next() == Some("flotilla"), "{send}");
    let args: Vec<&str> = words.collect();
    let sent = cli.run_with_env(&args, &[(name, value)]).await?.success()?;
    assert!(sent.stdout.starts_with("202 "), "{}", sent.stdout);

    let requested = up.line_containing("flotilla.env.requested.").await?;
    let env = requested
        .split_whitespace()
        .find_map(|t| t.strip_prefix("flotilla.env.requested."))
        .context("the env of env.requested")?
        .to_owned();
    assert!(env.starts_with("stg-ping-"), "{requested}");
    // What an Argo CD PostSync hook would report once ping synced.
    let answer = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/report/{env}/ping", up.http))
        .json(&serde_json::json!({"status": "succeeded"}))
        .send()
        .await?;
    assert_eq!(answer.status().as_u16(), 202);
    up.lines_containing(
        &[&format!("flotilla.env.ready.{env}")],
        &["flotilla.env.failed.", "flotilla.build.failed."],
    )
    .await?;

    assert_eq!(up.interrupt().await?, Some(0), "Ctrl-C stops up cleanly");
    Ok(())
}
