//! The `builder-trigger` binary itself, configured only through environment variables: the
//! job backend finding its cluster through KUBECONFIG (the fake API server), and the http
//! backend's callbacks served on FLOTILLA_HTTP_ADDR beside the probes.

use crate::support;

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use flotilla_bus::EventType;
use flotilla_kube_fake::FakeKube;
use flotilla_kube_fake::jobs::{Script, run_jobs};
use support::*;
use tokio::process::{Child, Command};

/// The binary with the test's NATS server and a free HTTP address; output inherited so a
/// failing test shows it.
pub(crate) fn binary(fx: &Fixture, http_port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_builder-trigger"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NATS_URL", fx.server.url())
        .env("FLOTILLA_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Waits for /readyz, so events published afterwards are consumed.
pub(crate) async fn ready(port: u16) -> Result<()> {
    let url = format!("http://127.0.0.1:{port}/readyz");
    let client = reqwest::Client::new();
    for _ in 0..150 {
        if let Ok(answer) = client.get(&url).send().await
            && answer.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the binary never became ready at {url}")
}

/// SIGTERM, then the exit status.
pub(crate) async fn stop(mut child: Child) -> Result<std::process::ExitStatus> {
    let pid = child.id().context("the binary is running")?;
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid)?).context("a pid")?;
    rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
    Ok(tokio::time::timeout(WITHIN, child.wait()).await??)
}

#[tokio::test]
async fn the_binary_runs_build_jobs_on_the_cluster_its_kubeconfig_names() -> Result<()> {
    let fx = Fixture::start().await?;
    let fake = FakeKube::batch().await;
    run_jobs(&fake, |_| Script::succeed_after(Duration::from_millis(200)));
    let kubeconfig = fx.file("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    namespace: builds\ncurrent-context: fake\n",
            fake.url()
        ),
    )?;
    let port = flotilla_testing::free_port();
    let child = binary(&fx, port)
        .env("KUBECONFIG", &kubeconfig)
        .env("FLOTILLA_BUILD_BACKEND", "job")
        .env(
            "FLOTILLA_JOB_BUILD_IMAGE",
            "gcr.io/kaniko-project/executor:debug",
        )
        .spawn()?;
    ready(port).await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let succeeded = fx.stored("flotilla.build.succeeded.>", 1, WITHIN).await?;
    let built = build(succeeded.first().context("build.succeeded")?)?;
    let created = fake
        .requests()
        .into_iter()
        .find(|r| r.starts_with("POST "))
        .context("a Job was created")?;
    assert!(
        created.starts_with("POST /apis/batch/v1/namespaces/builds/jobs"),
        "in the kubeconfig context's namespace: {created}"
    );
    assert!(built.version.ends_with("-1a2b3c4"));
    assert!(stop(child).await?.success(), "SIGTERM exits 0");
    Ok(())
}

#[tokio::test]
async fn the_binary_serves_http_backend_callbacks_beside_its_probes() -> Result<()> {
    let fx = Fixture::start().await?;
    let port = flotilla_testing::free_port();
    // The "CI system": takes the dispatch and calls back at once.
    let ci = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let ci_url = format!("http://{}", ci.local_addr()?);
    let router = axum::Router::new().route(
        "/dispatch",
        axum::routing::post(
            |axum::Json(body): axum::Json<serde_json::Value>| async move {
                let url = body["callback_url"].as_str().unwrap_or_default().to_owned();
                let token = body["callback_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                tokio::spawn(async move {
                    let report = serde_json::json!({"status": "succeeded", "message": "ok"});
                    let _ = reqwest::Client::new()
                        .post(url)
                        .bearer_auth(token)
                        .json(&report)
                        .send()
                        .await;
                });
                axum::http::StatusCode::NO_CONTENT
            },
        ),
    );
    tokio::spawn(async move { axum::serve(ci, router).await });
    let request = serde_json::json!({
        "url": format!("{ci_url}/dispatch"),
        "body": {"sha": "{{sha}}", "callback_url": "{{callback_url}}", "callback_token": "{{callback_token}}"},
    });
    let child = binary(&fx, port)
        .env("FLOTILLA_BUILD_BACKEND", "http")
        .env("FLOTILLA_HTTP_BUILD_REQUEST", request.to_string())
        .env("FLOTILLA_CALLBACK_URL", format!("http://127.0.0.1:{port}"))
        .spawn()?;
    ready(port).await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let events = fx.stored_exactly("flotilla.build.>", 2).await?;
    assert!(
        events[1].subject.starts_with("flotilla.build.succeeded."),
        "{}",
        events[1].subject
    );
    assert!(stop(child).await?.success(), "SIGTERM exits 0");
    Ok(())
}

#[tokio::test]
async fn build_commands_get_none_of_the_workers_secrets_and_the_variables_listed_for_them()
-> Result<()> {
    let fx = Fixture::start().await?;
    let port = flotilla_testing::free_port();
    let printed = fx.file("env");
    let token_file = fx.file("ci-token");
    std::fs::write(&token_file, "file-secret")?;
    let secrets = [
        ("FLOTILLA_GITHUB_TOKEN", "ghp-secret"),
        ("FLOTILLA_HTTP_TOKEN", "ci-secret"),
        ("FLOTILLA_CALLBACK_SECRET", "callback-secret"),
        ("FLOTILLA_GITOPS_TOKEN", "gitops-secret"),
        ("GITHUB_WEBHOOK_SECRET", "webhook-secret"),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
    ];
    let mut command = binary(&fx, port);
    for (name, value) in secrets {
        command.env(name, value);
    }
    let child = command
        .env("FLOTILLA_HTTP_TOKEN_FILE", &token_file)
        .env("REGISTRY_PASSWORD_FILE", &token_file)
        .env("DOCKER_HOST", "tcp://127.0.0.1:2375")
        .env("FLOTILLA_COMMAND_ENV", "DOCKER_HOST")
        .env(
            "FLOTILLA_BUILD_COMMAND",
            format!("env > {}", printed.display()),
        )
        .spawn()?;
    ready(port).await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    fx.stored("flotilla.build.succeeded.>", 1, WITHIN).await?;
    let env = std::fs::read_to_string(&printed)?;
    for (name, value) in secrets {
        assert!(
            !env.contains(name) && !env.contains(value),
            "{name} reached the build:\n{env}"
        );
    }
    for name in [
        "FLOTILLA_HTTP_TOKEN_FILE",
        "REGISTRY_PASSWORD_FILE",
        "NATS_URL",
    ] {
        assert!(!env.contains(name), "{name} reached the build:\n{env}");
    }
    assert!(
        env.lines().any(|l| l == "DOCKER_HOST=tcp://127.0.0.1:2375"),
        "the listed variable is missing:\n{env}"
    );
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
    assert!(
        env.lines().any(|l| l.starts_with("FLOTILLA_SHA=")),
        "the change's variables are missing:\n{env}"
    );
    assert!(stop(child).await?.success(), "SIGTERM exits 0");
    Ok(())
}

#[tokio::test]
async fn the_binary_logs_ci_request_urls_without_the_api_token() -> Result<()> {
    let fx = Fixture::start().await?;
    let port = flotilla_testing::free_port();
    // The "CI system": busy at first, then refuses the run, echoing the request it got.
    let ci = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let ci_url = format!("http://{}", ci.local_addr()?);
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let router = axum::Router::new().route(
        "/dispatch",
        axum::routing::post(move |uri: axum::http::Uri| {
            let asked = asked.clone();
            async move {
                if asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    return (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new());
                }
                (
                    axum::http::StatusCode::FORBIDDEN,
                    format!("no run for {uri}"),
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(ci, router).await });
    let request = serde_json::json!({
        "url": format!("{ci_url}/dispatch?sha={{{{sha}}}}&token={{{{token}}}}"),
        "result": {"poll": {"url": format!("{ci_url}/status"), "status": "/phase"}},
    });
    let mut child = binary(&fx, port)
        .env("FLOTILLA_BUILD_BACKEND", "http")
        .env("FLOTILLA_HTTP_BUILD_REQUEST", request.to_string())
        .env("FLOTILLA_HTTP_TOKEN", "ci-secret-token")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let stderr = child.stderr.take().context("stderr")?;
    let read = |mut pipe: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
        tokio::spawn(async move {
            let mut text = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut text).await;
            text
        })
    };
    let (stdout, stderr) = (read(Box::new(stdout)), read(Box::new(stderr)));
    ready(port).await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let failed = fx.build_failed().await?;
    assert!(stop(child).await?.success(), "SIGTERM exits 0");
    let log = format!("{}{}", stdout.await?, stderr.await?);
    assert!(
        log.contains("asking again") && log.contains("build failed"),
        "the requests were logged:\n{log}"
    );
    assert!(
        !log.contains("ci-secret-token"),
        "the token was logged:\n{log}"
    );
    assert!(log.contains("token=***"), "{log}");
    assert!(
        !failed.reason.contains("ci-secret-token"),
        "{}",
        failed.reason
    );
    assert!(failed.reason.contains("403"), "{}", failed.reason);
    Ok(())
}
