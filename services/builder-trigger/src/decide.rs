//! Which source events become builds, and the version a build gets. Pure functions of the
//! event and the rules: no I/O, no clock.
//!
//! The version is `v<UTC yyyyMMddHHmmss>-<sha7>`, with the time taken from what the source
//! says, never from the clock or the delivery: a push's head commit timestamp, a pull request's
//! `updated_at`. Only when the source gives none is the event's `ce-time` (when the webhook
//! arrived) used. So a redelivered event decides the same version (its outputs carry the same
//! change id and are deduplicated), and an old push redelivered after a newer one is not
//! versioned as the newest.

use flotilla_proto::v1::{AppVersion, PullRequest, Push};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::config::Rules;

/// What to build: one change of one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `<app>-<version>`.
    pub change_id: String,
    pub app: String,
    pub version: String,
    /// `owner/name`.
    pub repo: String,
    /// The full commit id.
    pub sha: String,
    /// The ref built: the pushed ref, or the pull request's head branch.
    pub git_ref: String,
    /// The pull request number, 0 for a push.
    pub pr: u64,
    /// The time of the version: when the change was made, as its source says.
    pub at: OffsetDateTime,
    /// Where [`Change::at`] comes from: `commit`, `pull request` or `ce-time`.
    pub time_from: &'static str,
}

/// What a source event asks of builder-trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Build(Change),
    /// Nothing to do, and why (logged).
    Skip(String),
}

/// Why an event cannot be decided on, however often it is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("the event has no ce-time, so no version can be decided deterministically")]
    MissingTime,
    #[error("`{0}` is not an RFC 3339 time")]
    BadTime(String),
    #[error("`{0}` is not a commit id (at least 7 hex digits)")]
    BadSha(String),
    #[error("repo `{0}` names no app")]
    NoApp(String),
}

/// `v<UTC yyyyMMddHHmmss>-<sha7>` for a commit seen at `time` (RFC 3339, any offset).
pub fn version(time: &str, sha: &str) -> Result<String, Invalid> {
    let at =
        OffsetDateTime::parse(time, &Rfc3339).map_err(|_| Invalid::BadTime(time.to_owned()))?;
    version_at(at, sha)
}

/// `v<UTC yyyyMMddHHmmss>-<sha7>` for a commit seen at `at`.
pub fn version_at(at: OffsetDateTime, sha: &str) -> Result<String, Invalid> {
    let stamp = at
        .to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year][month][day][hour][minute][second]"
        ))
        .map_err(|_| Invalid::BadTime(at.to_string()))?;
    Ok(format!("v{stamp}-{}", sha7(sha)?))
}

/// The time a version is made from: the source's own (`given`, with what it is, when it is
/// an RFC 3339 time), else the event's `ce-time`.
fn version_time(
    given: Option<(&str, &'static str)>,
    ce_time: Option<&str>,
) -> Result<(OffsetDateTime, &'static str), Invalid> {
    // A source time that is not a time is as good as none: the delivery's time is the fallback.
    if let Some((at, from)) = given.and_then(|(t, from)| Some((event_time(t)?, from))) {
        return Ok((at, from));
    }
    let ce_time = ce_time.ok_or(Invalid::MissingTime)?;
    let at = event_time(ce_time).ok_or_else(|| Invalid::BadTime(ce_time.to_owned()))?;
    Ok((at, "ce-time"))
}

/// The time of an event (its RFC 3339 `ce-time`), `None` when it is not one.
pub fn event_time(time: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(time, &Rfc3339).ok()
}

/// The first seven hex digits of a commit id, lowercased.
pub fn sha7(sha: &str) -> Result<String, Invalid> {
    if sha.len() < 7 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Invalid::BadSha(sha.to_owned()));
    }
    Ok(sha[..7].to_ascii_lowercase())
}

/// A push builds when it moves the default branch (or a branch the rules add); tags and
/// deleted refs do not.
pub fn push(push: &Push, time: Option<&str>, rules: &Rules) -> Result<Decision, Invalid> {
    if push.deleted {
        return Ok(Decision::Skip(format!("{} was deleted", push.r#ref)));
    }
    if !push.tag.is_empty() || push.branch.is_empty() {
        return Ok(Decision::Skip(format!("{} is not a branch", push.r#ref)));
    }
    let built = push.branch == push.default_branch || rules.extra_branches.contains(&push.branch);
    if !built {
        return Ok(Decision::Skip(format!(
            "branch {} is not the default branch ({})",
            push.branch,
            if push.default_branch.is_empty() {
                "unknown"
            } else {
                &push.default_branch
            }
        )));
    }
    let git_ref = if push.r#ref.is_empty() {
        format!("refs/heads/{}", push.branch)
    } else {
        push.r#ref.clone()
    };
    // The pushed commit's own time (GitHub's head_commit), not when the webhook arrived.
    let head = push
        .commits
        .iter()
        .find(|c| c.id.eq_ignore_ascii_case(&push.sha) && !c.timestamp.is_empty())
        .map(|c| (c.timestamp.as_str(), "commit"));
    let at = version_time(head, time)?;
    change(&push.repo, &push.sha, git_ref, 0, at, rules).map(Decision::Build)
}

/// A pull request builds when opened, reopened or pushed to, and when labelled with the rules'
/// label; with a label rule, only while it carries the label. Closing builds nothing: the
/// reaper tears the preview down.
pub fn pull_request(
    pr: &PullRequest,
    time: Option<&str>,
    rules: &Rules,
) -> Result<Decision, Invalid> {
    let labelled = |label: &str| pr.labels.iter().any(|l| l == label);
    let builds = match (pr.action.as_str(), rules.pr_label.as_deref()) {
        ("opened" | "synchronize" | "reopened", None) => true,
        ("opened" | "synchronize" | "reopened", Some(rule)) => labelled(rule),
        ("labeled", Some(rule)) => pr.label == rule,
        _ => false,
    };
    if !builds {
        let why = match rules.pr_label.as_deref() {
            Some(rule) if !labelled(rule) => format!(
                "pull request #{} ({}) does not carry label {rule}",
                pr.number, pr.action
            ),
            _ => format!("pull request action {} builds nothing", pr.action),
        };
        return Ok(Decision::Skip(why));
    }
    if pr.fork && !rules.build_forks {
        let from = if pr.head_repo.is_empty() {
            "a fork".to_owned()
        } else {
            format!("the fork {}", pr.head_repo)
        };
        return Ok(Decision::Skip(format!(
            "pull request #{} comes from {from}, and forks are not built \
             (FLOTILLA_BUILD_FORKS=true builds them): a fork can change the build's inputs and reach its credentials",
            pr.number
        )));
    }
    let git_ref = format!("refs/heads/{}", pr.head_ref);
    let updated = (!pr.updated_at.is_empty()).then_some((pr.updated_at.as_str(), "pull request"));
    let at = version_time(updated, time)?;
    change(&pr.repo, &pr.head_sha, git_ref, pr.number, at, rules).map(Decision::Build)
}

fn change(
    repo: &str,
    sha: &str,
    git_ref: String,
    pr: u64,
    (at, time_from): (OffsetDateTime, &'static str),
    rules: &Rules,
) -> Result<Change, Invalid> {
    let version = version_at(at, sha)?;
    let app = rules.apps.app_for(repo);
    if app.is_empty() {
        return Err(Invalid::NoApp(repo.to_owned()));
    }
    Ok(Change {
        change_id: format!("{app}-{version}"),
        app,
        version,
        repo: repo.to_owned(),
        sha: sha.to_ascii_lowercase(),
        git_ref,
        pr,
        at,
        time_from,
    })
}

/// The app and version a change id names: the entry of `apps` that makes it up, else the id
/// split as `<app>-v<14 digits>-<sha7>`.
pub fn app_and_version(change_id: &str, apps: &[AppVersion]) -> Option<(String, String)> {
    if let Some(app) = apps
        .iter()
        .find(|a| change_id.strip_prefix(a.name.as_str()) == Some(&format!("-{}", a.version)))
    {
        return Some((app.name.clone(), app.version.clone()));
    }
    let mut parts = change_id.rsplitn(3, '-');
    let (sha, stamp, app) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = stamp.strip_prefix('v')?;
    (digits.len() == 14 && digits.bytes().all(|b| b.is_ascii_digit()) && !app.is_empty())
        .then(|| (app.to_owned(), format!("{stamp}-{sha}")))
}

#[cfg(test)]
mod tests;
