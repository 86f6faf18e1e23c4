use super::*;

const STABLE: Duration = Duration::from_secs(5);
const TIMEOUT: Duration = Duration::from_secs(600);

fn wait(apps: &[&str], t0: Instant) -> Wait {
    Wait::new(
        "pr-acme-ping-7",
        "ping-v1",
        "pushed",
        apps.iter().map(|a| a.to_string()),
        t0,
        TIMEOUT,
    )
}

fn status(app: &str, sync: &str, health: &str) -> AppStatus {
    AppStatus {
        env: "pr-acme-ping-7".into(),
        app: app.into(),
        name: format!("pr-acme-ping-7-{app}"),
        sync: sync.into(),
        revision: "pushed".into(),
        health: health.into(),
        ..Default::default()
    }
}

#[test]
fn every_app_synced_and_healthy_for_the_stable_window_is_ready() {
    let t0 = Instant::now();
    let mut w = wait(&["ping", "maindb"], t0);
    w.observe(&status("ping", "Synced", "Healthy"), At::PushedOrLater, t0);
    w.observe(
        &status("maindb", "Synced", "Healthy"),
        At::PushedOrLater,
        t0 + Duration::from_secs(1),
    );
    assert_eq!(
        w.verdict(t0 + Duration::from_secs(5), STABLE),
        Verdict::Waiting {
            next: t0 + Duration::from_secs(6)
        },
        "maindb's window ends a second later"
    );
    assert_eq!(
        w.verdict(t0 + Duration::from_secs(6), STABLE),
        Verdict::Ready
    );
}

#[test]
fn a_healthy_that_breaks_within_the_window_starts_it_again() {
    let t0 = Instant::now();
    let mut w = wait(&["ping"], t0);
    w.observe(&status("ping", "Synced", "Healthy"), At::PushedOrLater, t0);
    w.observe(
        &status("ping", "Synced", "Progressing"),
        At::PushedOrLater,
        t0 + Duration::from_secs(2),
    );
    w.observe(
        &status("ping", "Synced", "Healthy"),
        At::PushedOrLater,
        t0 + Duration::from_secs(3),
    );
    assert!(matches!(
        w.verdict(t0 + Duration::from_secs(6), STABLE),
        Verdict::Waiting { .. }
    ));
    assert_eq!(
        w.verdict(t0 + Duration::from_secs(8), STABLE),
        Verdict::Ready
    );
}

#[test]
fn healthy_at_an_older_revision_does_not_count_and_degraded_there_does_not_fail() {
    let t0 = Instant::now();
    let mut w = wait(&["ping"], t0);
    w.observe(&status("ping", "Synced", "Healthy"), At::Elsewhere, t0);
    assert!(matches!(
        w.verdict(t0 + Duration::from_secs(60), STABLE),
        Verdict::Waiting { .. }
    ));
    w.observe(&status("ping", "Synced", "Degraded"), At::Elsewhere, t0);
    assert!(matches!(
        w.verdict(t0 + Duration::from_secs(60), STABLE),
        Verdict::Waiting { .. }
    ));
}

#[test]
fn degraded_at_the_pushed_revision_fails_with_argo_cds_message() {
    let t0 = Instant::now();
    let mut w = wait(&["ping"], t0);
    let mut degraded = status("ping", "Synced", "Degraded");
    degraded.health_message = "Back-off pulling image".into();
    w.observe(&degraded, At::PushedOrLater, t0);
    let Verdict::Failed { reason } = w.verdict(t0, STABLE) else {
        panic!("failed");
    };
    assert!(
        reason.contains("pr-acme-ping-7-ping") && reason.contains("Back-off pulling image"),
        "{reason}"
    );
}

#[test]
fn a_running_sync_operation_is_not_ready() {
    let t0 = Instant::now();
    let mut w = wait(&["ping"], t0);
    let mut running = status("ping", "Synced", "Healthy");
    running.operation = "Running".into();
    w.observe(&running, At::PushedOrLater, t0);
    assert!(matches!(
        w.verdict(t0 + Duration::from_secs(60), STABLE),
        Verdict::Waiting { .. }
    ));
}

#[test]
fn a_report_readies_an_app_at_once_and_a_failed_report_fails_the_env() {
    let t0 = Instant::now();
    let mut w = wait(&["ping", "maindb"], t0);
    w.report("ping", true, "");
    w.observe(
        &status("maindb", "Synced", "Healthy"),
        At::PushedOrLater,
        t0,
    );
    assert_eq!(
        w.verdict(t0 + STABLE, STABLE),
        Verdict::Ready,
        "reports and the watch mix"
    );

    let mut w = wait(&["ping"], t0);
    w.report("ping", false, "smoke test: GET /ping answered 500");
    assert_eq!(
        w.verdict(t0, STABLE),
        Verdict::Failed {
            reason: "ping: smoke test: GET /ping answered 500".into()
        }
    );
}

#[test]
fn the_deadline_fails_the_env_naming_what_each_app_last_showed() {
    let t0 = Instant::now();
    let mut w = wait(&["ping", "maindb"], t0);
    w.observe(
        &status("ping", "OutOfSync", "Progressing"),
        At::PushedOrLater,
        t0,
    );
    assert_eq!(
        w.verdict(t0, STABLE),
        Verdict::Waiting { next: t0 + TIMEOUT }
    );
    let Verdict::Failed { reason } = w.verdict(t0 + TIMEOUT, STABLE) else {
        panic!("failed at the deadline");
    };
    assert!(reason.starts_with("not ready after 10m"), "{reason}");
    assert!(reason.contains("ping (OutOfSync/Progressing"), "{reason}");
    assert!(reason.contains("maindb (no Application seen"), "{reason}");
}

#[test]
fn statuses_of_apps_the_env_does_not_hold_are_ignored() {
    let t0 = Instant::now();
    let mut w = wait(&["ping"], t0);
    w.observe(
        &status("other", "Synced", "Degraded"),
        At::PushedOrLater,
        t0,
    );
    w.report("other", false, "x");
    assert!(matches!(w.verdict(t0, STABLE), Verdict::Waiting { .. }));
}

fn hook(name: &str, state: RunStatus) -> HookWait {
    HookWait {
        name: name.into(),
        state,
        deadline: None,
        reason: String::new(),
    }
}

/// Every app reported ready at `t0`.
fn apps_ready(t0: Instant) -> Wait {
    let mut w = wait(&["ping"], t0);
    w.report("ping", true, "");
    w
}

#[test]
fn ready_apps_wait_for_every_provision_hook_to_succeed() {
    let t0 = Instant::now();
    let mut w = apps_ready(t0);
    w.hooks(vec![
        hook("database", RunStatus::Succeeded),
        hook("dataset", RunStatus::Running),
    ]);
    assert!(matches!(w.verdict(t0, STABLE), Verdict::Waiting { .. }));
    w.hooks(vec![
        hook("database", RunStatus::Succeeded),
        hook("dataset", RunStatus::Succeeded),
    ]);
    assert_eq!(w.verdict(t0, STABLE), Verdict::Ready);
}

#[test]
fn provisioned_hooks_do_not_make_unready_apps_ready() {
    let t0 = Instant::now();
    let mut w = wait(&["ping"], t0);
    w.hooks(vec![hook("database", RunStatus::Succeeded)]);
    assert!(matches!(w.verdict(t0, STABLE), Verdict::Waiting { .. }));
}

#[test]
fn a_failed_hook_fails_the_env_with_its_reason_even_with_ready_apps() {
    let t0 = Instant::now();
    let mut w = apps_ready(t0);
    w.hooks(vec![
        HookWait {
            reason: "exit status 3; last output:\nrestore: no such snapshot".into(),
            ..hook("dataset", RunStatus::Failed)
        },
        hook("cache", RunStatus::Skipped),
    ]);
    assert_eq!(
        w.verdict(t0, STABLE),
        Verdict::Failed {
            reason: "provision hook `dataset` failed: exit status 3; last output:\nrestore: no such snapshot"
                .into()
        }
    );
}

#[test]
fn a_hook_running_at_the_timeout_holds_the_env_until_its_own_deadline() {
    let t0 = Instant::now();
    let mut w = apps_ready(t0);
    let hook_deadline = t0 + TIMEOUT + Duration::from_secs(300);
    w.hooks(vec![HookWait {
        deadline: Some(hook_deadline),
        ..hook("database", RunStatus::Running)
    }]);
    assert_eq!(
        w.verdict(t0 + TIMEOUT, STABLE),
        Verdict::Waiting {
            next: hook_deadline + HOOK_GRACE
        },
        "not failed at the env's timeout"
    );
    let Verdict::Failed { reason } = w.verdict(hook_deadline + HOOK_GRACE, STABLE) else {
        panic!("failed once the hook overran its own deadline");
    };
    assert!(
        reason.contains("`database` still running past its deadline"),
        "{reason}"
    );
    w.hooks(vec![hook("database", RunStatus::Succeeded)]);
    assert_eq!(
        w.verdict(hook_deadline, STABLE),
        Verdict::Ready,
        "a hook that ends within its deadline readies the env after the env's timeout"
    );
}

#[test]
fn a_hook_never_started_fails_the_env_at_the_timeout_saying_so() {
    let t0 = Instant::now();
    let mut w = apps_ready(t0);
    w.hooks(vec![
        hook("database", RunStatus::Succeeded),
        hook("dataset", RunStatus::Pending),
    ]);
    assert_eq!(
        w.verdict(t0 + TIMEOUT - Duration::from_secs(1), STABLE),
        Verdict::Waiting { next: t0 + TIMEOUT }
    );
    let Verdict::Failed { reason } = w.verdict(t0 + TIMEOUT, STABLE) else {
        panic!("failed at the timeout");
    };
    assert!(
        reason.contains("`dataset` never started") && reason.contains("builder-trigger"),
        "{reason}"
    );
}

#[test]
fn an_app_failure_is_reported_before_a_hook_failure() {
    let t0 = Instant::now();
    let mut w = wait(&["ping"], t0);
    w.report("ping", false, "smoke test failed");
    w.hooks(vec![hook("database", RunStatus::Failed)]);
    assert_eq!(
        w.verdict(t0, STABLE),
        Verdict::Failed {
            reason: "ping: smoke test failed".into()
        }
    );
}
