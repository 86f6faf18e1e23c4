//! What a hook run is told (its variables) and what its events say, and the times its record
//! keeps: pure functions of the env, the hook and the attempt.

use std::path::Path;
use std::time::Duration;

use flotilla_bus::{EventType, Outgoing};
use flotilla_env::hooks::{Phase, hook_key};
use flotilla_proto::v1::HookRun;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Target;
use crate::error::Error;

/// One attempt of one hook's phase for an env.
#[derive(Debug, Clone)]
pub(crate) struct Attempt<'a> {
    pub target: &'a Target,
    pub hook: &'a str,
    pub phase: Phase,
    pub run_id: String,
    /// 1 for the first.
    pub number: u32,
    /// Runs again a hook whose earlier attempt died without a result.
    pub rerun: bool,
}

/// The variables of `attempt`: the env's facts, the hook's, and for the command backend the
/// env's state directory.
pub(crate) fn vars(attempt: &Attempt<'_>, state_dir: Option<&Path>) -> Vec<(&'static str, String)> {
    let target = attempt.target;
    let apps = target
        .apps
        .iter()
        .map(|a| format!("{}={}", a.name, a.version))
        .collect::<Vec<_>>()
        .join(",");
    let mut vars = vec![
        ("FLOTILLA_ENV", target.env.clone()),
        ("FLOTILLA_ENV_KIND", target.kind.clone()),
        ("FLOTILLA_ENV_URL", target.url.clone()),
        // Each env is a namespace of its own name (deploy/argocd's env chart).
        ("FLOTILLA_NAMESPACE", target.env.clone()),
        ("FLOTILLA_CHANGE_ID", target.change_id.clone()),
        ("FLOTILLA_REPO", target.repo.clone()),
        ("FLOTILLA_PR", target.pr.to_string()),
        ("FLOTILLA_SHA", target.sha.clone()),
        ("FLOTILLA_APPS", apps),
        ("FLOTILLA_HOOK", attempt.hook.to_owned()),
        ("FLOTILLA_HOOK_PHASE", attempt.phase.as_str().to_owned()),
        (
            "FLOTILLA_HOOK_KEY",
            hook_key(&target.env, &target.change_id),
        ),
        ("FLOTILLA_HOOK_ATTEMPT", attempt.number.to_string()),
        ("FLOTILLA_HOOK_RERUN", attempt.rerun.to_string()),
        ("FLOTILLA_HOOK_RUN", attempt.run_id.clone()),
    ];
    if let Some(dir) = state_dir {
        vars.push(("FLOTILLA_HOOK_STATE_DIR", dir.display().to_string()));
    }
    vars
}

/// The event of `attempt`: `started`, `succeeded` or `failed`. Its id derives from the env,
/// change, hook, phase and attempt (succeeded and failed share one), so a redelivered event's
/// outputs are duplicates JetStream drops, and a second ending of one attempt is never stored.
pub(crate) fn event(
    kind: EventType,
    attempt: &Attempt<'_>,
    duration: Duration,
    reason: &str,
    log_url: &str,
) -> Result<Outgoing, Error> {
    let target = attempt.target;
    let run = HookRun {
        env: target.env.clone(),
        kind: target.kind.clone(),
        change_id: target.change_id.clone(),
        hook: attempt.hook.to_owned(),
        phase: attempt.phase.as_str().to_owned(),
        attempt: attempt.number,
        rerun: attempt.rerun,
        run_id: attempt.run_id.clone(),
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        reason: reason.to_owned(),
        log_url: log_url.to_owned(),
        repo: target.repo.clone(),
        pr: target.pr,
        apps: target.apps.clone(),
    };
    let stage = match kind {
        EventType::EnvHookStarted => "started",
        _ => "finished",
    };
    let id = format!(
        "builder-trigger:env.hook.{stage}:{}:{}:{}:{}:{}",
        target.env,
        target.change_id,
        attempt.hook,
        attempt.phase.as_str(),
        attempt.number
    );
    Ok(Outgoing::new(kind, &target.env, &run)?
        .with_change_id(&target.change_id)
        .with_id(id))
}

/// Now, as the record keeps times.
pub(crate) fn now() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

pub(crate) fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// `timeout` from now, as the record keeps times.
pub(crate) fn deadline_in(timeout: Duration) -> String {
    rfc3339(OffsetDateTime::now_utc() + timeout)
}

/// How long until `deadline` (zero once past it); `None` when it does not parse.
pub(crate) fn until(deadline: &str) -> Option<Duration> {
    let at = OffsetDateTime::parse(deadline, &Rfc3339).ok()?;
    Some(Duration::try_from(at - OffsetDateTime::now_utc()).unwrap_or(Duration::ZERO))
}

/// Whether `deadline`, plus `grace`, is still ahead; a deadline that does not parse is past.
pub(crate) fn before(deadline: &str, grace: Duration) -> bool {
    OffsetDateTime::parse(deadline, &Rfc3339).is_ok_and(|at| OffsetDateTime::now_utc() < at + grace)
}

/// How long since `started_at` (zero when it does not parse).
pub(crate) fn since(started_at: &str) -> Duration {
    between(started_at, &now())
}

pub(crate) fn between(from: &str, to: &str) -> Duration {
    match (
        OffsetDateTime::parse(from, &Rfc3339),
        OffsetDateTime::parse(to, &Rfc3339),
    ) {
        (Ok(from), Ok(to)) => Duration::try_from(to - from).unwrap_or(Duration::ZERO),
        _ => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            env: "pr-acme-ping-7".into(),
            kind: "preview".into(),
            change_id: "ping-v1".into(),
            repo: "acme/ping".into(),
            pr: 7,
            sha: "1a2b3c4".into(),
            apps: vec![
                flotilla_proto::v1::AppVersion {
                    name: "ping".into(),
                    version: "v1".into(),
                    ..Default::default()
                },
                flotilla_proto::v1::AppVersion {
                    name: "api".into(),
                    version: "v2".into(),
                    ..Default::default()
                },
            ],
            url: String::new(),
        }
    }

    #[test]
    fn a_hook_run_gets_the_envs_facts_its_key_and_its_attempt() {
        let target = target();
        let attempt = Attempt {
            target: &target,
            hook: "database",
            phase: Phase::Provision,
            run_id: "hook-x".into(),
            number: 2,
            rerun: true,
        };
        let vars = vars(&attempt, Some(Path::new("/state/pr-acme-ping-7")));
        let get = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("{name} is missing"))
        };
        assert_eq!(get("FLOTILLA_APPS"), "ping=v1,api=v2");
        assert_eq!(get("FLOTILLA_NAMESPACE"), "pr-acme-ping-7");
        assert_eq!(get("FLOTILLA_HOOK_KEY"), "pr-acme-ping-7/ping-v1");
        assert_eq!(get("FLOTILLA_HOOK_ATTEMPT"), "2");
        assert_eq!(get("FLOTILLA_HOOK_RERUN"), "true");
        assert_eq!(get("FLOTILLA_HOOK_RUN"), "hook-x");
        assert_eq!(get("FLOTILLA_HOOK_PHASE"), "provision");
        assert_eq!(get("FLOTILLA_HOOK_STATE_DIR"), "/state/pr-acme-ping-7");
        assert!(
            self::vars(&attempt, None)
                .iter()
                .all(|(k, _)| *k != "FLOTILLA_HOOK_STATE_DIR"),
            "only the command backend has a state directory"
        );
    }

    #[test]
    fn an_attempts_ending_shares_its_id_whatever_the_outcome() {
        let target = target();
        let attempt = Attempt {
            target: &target,
            hook: "database",
            phase: Phase::Provision,
            run_id: "hook-x".into(),
            number: 1,
            rerun: false,
        };
        let id = |kind| {
            event(kind, &attempt, Duration::ZERO, "", "")
                .expect("encodes")
                .id
                .expect("an id")
        };
        assert_eq!(
            id(EventType::EnvHookSucceeded),
            id(EventType::EnvHookFailed)
        );
        assert_ne!(id(EventType::EnvHookStarted), id(EventType::EnvHookFailed));
        let second = Attempt {
            number: 2,
            ..attempt.clone()
        };
        let second_id = event(EventType::EnvHookFailed, &second, Duration::ZERO, "", "")
            .expect("encodes")
            .id;
        assert_ne!(second_id, Some(id(EventType::EnvHookFailed)));
    }

    #[test]
    fn deadlines_read_back_as_time_left() {
        let ahead = deadline_in(Duration::from_secs(60));
        assert!(until(&ahead).is_some_and(|left| left > Duration::from_secs(50)));
        assert!(before(&ahead, Duration::ZERO));
        let past = rfc3339(OffsetDateTime::now_utc() - Duration::from_secs(60));
        assert_eq!(until(&past), Some(Duration::ZERO));
        assert!(!before(&past, Duration::from_secs(30)));
        assert!(before(&past, Duration::from_secs(120)));
        assert!(!before("not a time", Duration::from_secs(3600)));
    }
}
