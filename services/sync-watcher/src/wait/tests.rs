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
