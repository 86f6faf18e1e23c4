use std::time::{Duration, Instant};

use super::*;

fn spec(command: &str) -> CommandSpec {
    CommandSpec::new(command, Duration::from_secs(10))
}

fn job() -> Job {
    Job {
        kind: "build",
        change_id: "ping-v20240305070809-1a2b3c4".into(),
        env: None,
        vars: vec![("FLOTILLA_VERSION", "v20240305070809-1a2b3c4".into())],
    }
}

#[tokio::test]
async fn a_command_that_exits_zero_succeeds_and_sees_its_variables() {
    let done = run(&spec("echo \"building $FLOTILLA_VERSION\"; exit 0"), &job()).await;
    assert!(done.succeeded(), "{}", done.reason());
    assert_eq!(done.tail, vec!["building v20240305070809-1a2b3c4"]);
}

#[tokio::test]
async fn a_failing_command_reports_its_exit_status_and_last_output() {
    let done = run(
        &spec("echo compiling; echo 'error: boom' >&2; exit 3"),
        &job(),
    )
    .await;
    assert!(!done.succeeded());
    let reason = done.reason();
    assert!(
        reason.starts_with("exit status 3; last output:"),
        "{reason}"
    );
    assert!(
        reason.contains("compiling") && reason.contains("error: boom"),
        "{reason}"
    );
}

#[tokio::test]
async fn only_the_last_lines_of_long_output_are_kept() {
    let done = run(&spec("seq 1 500; exit 1"), &job()).await;
    assert_eq!(done.tail.len(), TAIL_LINES);
    assert_eq!(done.tail.last().map(String::as_str), Some("500"));
    assert!(!done.reason().contains("\n480\n"));
}

#[tokio::test]
async fn an_overlong_line_is_split_rather_than_buffered_whole() {
    let done = run(
        &spec("head -c 10000 /dev/zero | tr '\\0' x; exit 1"),
        &job(),
    )
    .await;
    assert_eq!(
        done.tail.len(),
        3,
        "10000 bytes in lines of at most {MAX_LINE}"
    );
    assert!(done.tail.iter().all(|l| l.len() <= MAX_LINE));
}

#[tokio::test]
async fn a_command_past_its_timeout_is_killed_with_everything_it_started() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("pid");
    let command = format!(
        "sleep 30 & echo $! > {}; echo waiting; wait",
        pid_file.display()
    );
    let spec = CommandSpec::new(command, Duration::from_millis(500));
    let started = Instant::now();
    let done = run(&spec, &job()).await;
    assert!(
        matches!(done.status, Status::TimedOut(_)),
        "{:?}",
        done.status
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        done.reason().starts_with("timed out after 500ms"),
        "{}",
        done.reason()
    );
    assert!(done.reason().contains("waiting"));
    let pid = std::fs::read_to_string(&pid_file).expect("the command wrote its child's pid");
    // A killed process takes a moment to be gone; it must be, long before its `sleep 30` ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_running(pid.trim()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !is_running(pid.trim()),
        "background child {pid} outlived the timeout"
    );
}

#[tokio::test]
async fn a_command_that_cannot_be_started_is_a_failure_not_a_crash() {
    let mut spec = spec("true");
    spec.shell = "/nonexistent/sh".into();
    let done = run(&spec, &job()).await;
    assert!(!done.succeeded());
    assert!(
        done.reason().contains("could not start"),
        "{}",
        done.reason()
    );
}

/// Alive and not a zombie waiting for a reaper (PID 1 in a container may never reap it).
fn is_running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or_default().trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

/// What the shell itself sets, whatever environment it is given.
const SHELL_OWN: &[&str] = &["PWD", "OLDPWD", "SHLVL", "_"];

fn printed_names(done: &Finished) -> Vec<String> {
    done.tail
        .iter()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name.to_owned()))
        .collect()
}

#[tokio::test]
async fn a_command_sees_only_the_basics_and_its_change_of_the_workers_environment() {
    // The test process has plenty besides the basics (cargo's CARGO_*, RUST_*, ...).
    let extra: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| !passed(name, &[]))
        .collect();
    assert!(!extra.is_empty(), "the test process has only the basics");
    let done = run(&spec("env"), &job()).await;
    assert!(done.succeeded(), "{}", done.reason());
    let names = printed_names(&done);
    assert!(names.iter().any(|n| n == "FLOTILLA_VERSION"), "{names:?}");
    for name in &names {
        assert!(
            passed(name, &[]) || name == "FLOTILLA_VERSION" || SHELL_OWN.contains(&name.as_str()),
            "{name} reached the command"
        );
    }
}

#[tokio::test]
async fn a_listed_variable_of_the_workers_environment_reaches_the_command() {
    let listed = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .find(|name| !passed(name, &[]) && !refused(name))
        .expect("the test process has a variable besides the basics");
    let mut spec = spec("env");
    spec.pass_env = vec![listed.clone()];
    let done = run(&spec, &job()).await;
    assert!(printed_names(&done).contains(&listed), "{listed} missing");
}

#[test]
fn the_inherited_environment_is_filtered_by_name() {
    let inherited = [
        ("PATH", "/usr/bin"),
        ("LC_ALL", "C.UTF-8"),
        ("FLOTILLA_GITHUB_TOKEN", "ghp_secret"),
        ("FLOTILLA_HTTP_TOKEN_FILE", "/run/secrets/ci"),
        ("NATS_PASSWORD", "bus"),
        ("DOCKER_HOST", "unix:///run/docker.sock"),
        ("AWS_SECRET_ACCESS_KEY", "aws"),
    ]
    .map(|(k, v)| (OsString::from(k), OsString::from(v)));
    let mut spec = spec("true");
    spec.pass_env = vec!["DOCKER_HOST".into()];
    let command = command(&spec, &job(), inherited);
    let mut set: Vec<_> = command
        .as_std()
        .get_envs()
        .filter(|(_, value)| value.is_some())
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .collect();
    set.sort();
    assert_eq!(set, ["DOCKER_HOST", "FLOTILLA_VERSION", "LC_ALL", "PATH"]);
}

#[test]
fn flotillas_own_settings_and_credentials_cannot_be_listed() {
    assert_eq!(
        parse_env_list(" DOCKER_HOST, REGISTRY_AUTH_FILE,,DOCKER_HOST "),
        Ok(vec![
            "DOCKER_HOST".to_owned(),
            "REGISTRY_AUTH_FILE".to_owned()
        ])
    );
    for bad in [
        "FLOTILLA_GITHUB_TOKEN",
        "NATS_CREDS",
        "GITHUB_WEBHOOK_SECRET",
        "A=B",
        "1X",
    ] {
        let err = parse_env_list(&format!("DOCKER_HOST,{bad}")).expect_err(bad);
        assert!(err.contains(bad.split('=').next().unwrap_or(bad)), "{err}");
    }
}
