//! A worker killed (-9) in the middle of a provision hook: the real `builder-trigger` binary,
//! killed while the hook's command runs, then a second one started. The hook is followed, not
//! run twice, while it still runs; it is run again, as attempt 2, only when it died too.

use crate::binary::{binary, ready, stop};
use crate::support;

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use flotilla_env::hooks::RunStatus;
use support::*;
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

/// A hook that says it started (with its attempt), waits for the test's `go` file (at most 15 s,
/// so a failed test leaves nothing running), and says it is done.
fn slow_hook(marker: &std::path::Path, go: &std::path::Path) -> String {
    format!(
        r#"
hooks:
  - name: database
    timeout: 60s
    provision:
      command: 'echo "start $FLOTILLA_HOOK_ATTEMPT $FLOTILLA_HOOK_RERUN" >> {m}; i=0; while [ ! -e {go} ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done; echo done >> {m}'
"#,
        m = marker.display(),
        go = go.display()
    )
}

/// The binary with the test's hooks, its hook logs and state in the scratch directory, and a
/// 1 s ack wait, so the event of a killed worker is redelivered within a second.
fn worker(fx: &Fixture, port: u16) -> Command {
    let mut command = binary(fx, port);
    command
        .env("FLOTILLA_BUILD_COMMAND", "true")
        .env("FLOTILLA_HOOKS", fx.file("hooks.yaml"))
        .env("FLOTILLA_LOG_DIR", fx.file("hook-logs"))
        .env("FLOTILLA_HOOKS_STATE_DIR", fx.file("hook-state"))
        .env("FLOTILLA_ACK_WAIT", "1s")
        .env("FLOTILLA_BACKOFF", "100ms");
    command
}

/// Waits until `marker` holds `line`.
async fn marked(marker: &std::path::Path, line: &str) -> Result<()> {
    let found =
        flotilla_testing::eventually(WITHIN, || lines(marker).iter().any(|l| l == line)).await;
    anyhow::ensure!(
        found,
        "{} never held {line:?}: {:?}",
        marker.display(),
        lines(marker)
    );
    Ok(())
}

#[tokio::test]
async fn a_hook_still_running_when_its_worker_is_killed_is_followed_not_run_again() -> Result<()> {
    let fx = Fixture::start().await?;
    let (marker, go) = (fx.file("marker"), fx.file("go"));
    let config = fx.hook_config(&slow_hook(&marker, &go))?;
    let first_port = flotilla_testing::free_port();
    let mut first = worker(&fx, first_port).spawn()?;
    ready(first_port).await?;

    fx.request_env(&config, CHANGE).await?;
    marked(&marker, "start 1 false").await?;
    first.kill().await?;

    let second_port = flotilla_testing::free_port();
    let mut second = worker(&fx, second_port)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let output = Arc::new(Mutex::new(String::new()));
    for pipe in [
        Box::new(second.stdout.take().context("stdout")?)
            as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
        Box::new(second.stderr.take().context("stderr")?),
    ] {
        let output = output.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut output = output.lock().unwrap_or_else(|e| e.into_inner());
                output.push_str(&line);
                output.push('\n');
            }
        });
    }
    ready(second_port).await?;
    let following = flotilla_testing::eventually(WITHIN, || {
        output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains("the hook still runs: following it")
    })
    .await;
    assert!(
        following,
        "the second worker follows the running hook:\n{}",
        output.lock().unwrap_or_else(|e| e.into_inner())
    );
    std::fs::write(&go, "")?;

    let succeeded = fx
        .stored("flotilla.env.hook.succeeded.>", 1, WITHIN)
        .await?;
    let (_, run) = hook_run(succeeded.first().context("env.hook.succeeded")?)?;
    assert_eq!(
        (run.attempt, run.rerun),
        (1, false),
        "the first attempt, followed"
    );
    assert_eq!(
        lines(&marker),
        ["start 1 false", "done"],
        "the hook ran once"
    );
    fx.stored_exactly("flotilla.env.hook.>", 2).await?;
    let database = fx.hook_state("database", CHANGE).await?;
    assert_eq!(database.provision.state, RunStatus::Succeeded);
    assert_eq!(database.provision.attempt, 1);
    assert!(stop(second).await?.success(), "SIGTERM exits 0");
    Ok(())
}

#[tokio::test]
async fn a_hook_killed_with_its_worker_is_run_again_as_a_visible_second_attempt() -> Result<()> {
    let fx = Fixture::start().await?;
    let (marker, go) = (fx.file("marker"), fx.file("go"));
    let config = fx.hook_config(&slow_hook(&marker, &go))?;
    let first_port = flotilla_testing::free_port();
    let mut first = worker(&fx, first_port).spawn()?;
    ready(first_port).await?;

    fx.request_env(&config, CHANGE).await?;
    marked(&marker, "start 1 false").await?;
    let deadline = tokio::time::Instant::now() + WITHIN;
    let pid = loop {
        if let Some(pid) = fx.hook_state("database", CHANGE).await?.provision.pid {
            break pid;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the hook's process was never recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // The worker first, so it cannot record the hook's death as a failure; then the hook.
    first.kill().await?;
    let group = rustix::process::Pid::from_raw(i32::try_from(pid)?).context("a pid")?;
    rustix::process::kill_process_group(group, rustix::process::Signal::KILL)?;
    std::fs::write(&go, "")?;

    let second_port = flotilla_testing::free_port();
    let second = worker(&fx, second_port).spawn()?;
    ready(second_port).await?;

    let succeeded = fx
        .stored("flotilla.env.hook.succeeded.>", 1, WITHIN)
        .await?;
    let (_, run) = hook_run(succeeded.first().context("env.hook.succeeded")?)?;
    assert_eq!(
        (run.attempt, run.rerun),
        (2, true),
        "a second attempt, said to be one"
    );
    let started = fx.stored_exactly("flotilla.env.hook.started.>", 2).await?;
    let (_, rerun) = hook_run(&started[1])?;
    assert_eq!((rerun.attempt, rerun.rerun), (2, true));
    assert!(
        rerun.reason.contains("attempt 1") && rerun.reason.contains("ended without a result"),
        "{}",
        rerun.reason
    );
    assert_eq!(lines(&marker), ["start 1 false", "start 2 true", "done"]);
    let database = fx.hook_state("database", CHANGE).await?;
    assert_eq!(database.provision.attempt, 2);
    assert_eq!(database.provision.state, RunStatus::Succeeded);
    let log = std::fs::read_to_string(&database.provision.log_url)?;
    assert!(
        log.contains("running it again as attempt 2"),
        "the log says why:\n{log}"
    );
    assert!(stop(second).await?.success(), "SIGTERM exits 0");
    Ok(())
}
