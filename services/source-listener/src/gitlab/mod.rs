//! `POST /webhooks/gitlab`: GitLab deliveries.
//!
//! - Authentication: `X-Gitlab-Token` equals `GITLAB_WEBHOOK_TOKEN` (GitLab sends the token in
//!   plain text; it is compared in constant time).
//! - `X-Gitlab-Event`: `Push Hook` and `Tag Push Hook` become `source.push`, `Merge Request Hook`
//!   becomes `source.pull_request` with GitHub's action names; anything else is ignored.
//! - The event id is `Idempotency-Key` (GitLab keeps it across retries of a delivery), else
//!   `X-Gitlab-Event-UUID`, else derived from the body, so a retry is a JetStream duplicate.

mod payload;
#[cfg(test)]
mod tests;

use axum::http::HeaderMap;
use flotilla_bus::EventType;
use flotilla_proto::v1;

use crate::auth::{self, Keys};
use crate::delivery::{self, Delivery, Provider, RefName, content_id, decode, header, require};
use crate::error::WebhookError;
use crate::filter::Repos;

pub const EVENT_HEADER: &str = "x-gitlab-event";
pub const TOKEN_HEADER: &str = "x-gitlab-token";
pub const EVENT_UUID_HEADER: &str = "x-gitlab-event-uuid";
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// The metrics label of the delivery's event, from a fixed set.
pub fn event_label(headers: &HeaderMap) -> &'static str {
    match header(headers, EVENT_HEADER) {
        Some("Push Hook" | "Tag Push Hook") => "push",
        Some("Merge Request Hook") => "pull_request",
        _ => "other",
    }
}

/// Checks `X-Gitlab-Token` against `token`.
pub fn authenticate(keys: &Keys, headers: &HeaderMap) -> Result<(), WebhookError> {
    if keys.is_empty() {
        return Err(WebhookError::NotConfigured {
            endpoint: "/webhooks/gitlab",
            variable: "GITLAB_WEBHOOK_TOKEN",
        });
    }
    let given = header(headers, TOKEN_HEADER).ok_or_else(|| {
        WebhookError::unauthorized(
            "missing X-Gitlab-Token header (set the webhook's secret token to GITLAB_WEBHOOK_TOKEN)",
        )
    })?;
    auth::verify_token(keys, "X-Gitlab-Token", given)
}

/// Reads an authenticated delivery into the events it means, or why it means none.
pub fn parse(headers: &HeaderMap, body: &[u8], repos: &Repos) -> Result<Delivery, WebhookError> {
    let event = header(headers, EVENT_HEADER)
        .ok_or_else(|| WebhookError::bad_request("missing X-Gitlab-Event header"))?;
    let id = header(headers, IDEMPOTENCY_KEY_HEADER)
        .or_else(|| header(headers, EVENT_UUID_HEADER))
        .map(str::to_owned)
        .unwrap_or_else(|| content_id(Provider::GitLab, body));
    match event {
        "Push Hook" | "Tag Push Hook" => push(id, body, repos),
        "Merge Request Hook" => merge_request(id, body, repos),
        other => Ok(Delivery::ignore(
            Provider::GitLab,
            "other",
            id,
            format!("gitlab event `{other}` is not handled"),
        )),
    }
}

fn push(id: String, body: &[u8], repos: &Repos) -> Result<Delivery, WebhookError> {
    let push: payload::Push = decode("push", body)?;
    let repo = require(
        "push",
        "project.path_with_namespace",
        &push.project.path_with_namespace,
    )?;
    let git_ref = require("push", "ref", &push.git_ref)?;
    let ignore = |why: String| Ok(Delivery::ignore(Provider::GitLab, "push", id.clone(), why));
    let (branch, tag) = match RefName::parse(git_ref) {
        RefName::Branch(branch) => (branch, ""),
        RefName::Tag(tag) => ("", tag),
        RefName::Other(other) => return ignore(format!("ref `{other}` is not a branch or tag")),
    };
    if delivery::is_zero_sha(&push.after) {
        let (what, name) = if tag.is_empty() {
            ("branch", branch)
        } else {
            ("tag", tag)
        };
        return ignore(format!("{what} `{name}` of {repo} was deleted"));
    }
    let sha = if push.checkout_sha.is_empty() {
        require("push", "after", &push.after)?
    } else {
        &push.checkout_sha
    };
    let compare_url = if push.project.web_url.is_empty() || delivery::is_zero_sha(&push.before) {
        String::new()
    } else {
        format!(
            "{}/-/compare/{}...{}",
            push.project.web_url, push.before, push.after
        )
    };
    let pusher = if push.user_username.is_empty() {
        &push.user_name
    } else {
        &push.user_username
    };
    let mut message = v1::Push {
        provider: Provider::GitLab.as_str().to_owned(),
        repo: repo.to_owned(),
        r#ref: git_ref.to_owned(),
        branch: branch.to_owned(),
        tag: tag.to_owned(),
        default_branch: push.project.default_branch.clone(),
        before: push.before.clone(),
        sha: sha.to_owned(),
        pusher: pusher.clone(),
        commits: push.commits.iter().map(commit).collect(),
        deleted: false,
        clone_url: push.project.git_http_url.clone(),
        compare_url,
        delivery_id: id.clone(),
        commits_truncated: push.total_commits_count > push.commits.len(),
    };
    if let Some(why) = repos.push(&mut message) {
        return ignore(why);
    }
    let out = delivery::event(EventType::SourcePush, repo, &message, &id)?;
    Ok(Delivery::publish(Provider::GitLab, "push", id, out))
}

fn commit(commit: &payload::Commit) -> v1::Commit {
    v1::Commit {
        id: commit.id.clone(),
        message: commit.message.clone(),
        author: commit.author.name.clone(),
        url: commit.url.clone(),
        timestamp: commit.timestamp.clone(),
        added: commit.added.clone(),
        modified: commit.modified.clone(),
        removed: commit.removed.clone(),
    }
}

/// A merge request action in GitHub's words.
#[derive(Debug, PartialEq, Eq)]
struct Action {
    name: &'static str,
    /// The label added or removed.
    label: String,
    merged: bool,
}

impl Action {
    fn new(name: &'static str) -> Self {
        Action {
            name,
            label: String::new(),
            merged: false,
        }
    }
}

/// Maps GitLab's `object_attributes.action` to GitHub's pull request actions. An `update`
/// is `synchronize` when it brought commits (`oldrev` is set), `labeled` / `unlabeled` when
/// labels changed, `edited` when the title or description did, and otherwise carries nothing
/// for the pipeline (`None`).
fn action(event: &payload::MergeRequestEvent) -> Option<Action> {
    let mr = &event.object_attributes;
    match mr.action.as_str() {
        "open" => Some(Action::new("opened")),
        "reopen" => Some(Action::new("reopened")),
        "close" => Some(Action::new("closed")),
        "merge" => Some(Action {
            merged: true,
            ..Action::new("closed")
        }),
        "update" if !mr.oldrev.is_empty() => Some(Action::new("synchronize")),
        "update" if event.changes.labels.is_none() => {
            let edited = event.changes.title.is_some() || event.changes.description.is_some();
            edited.then(|| Action::new("edited"))
        }
        "update" => {
            let change = event.changes.labels.as_ref()?;
            let titles = |labels: &[payload::Label]| -> Vec<String> {
                labels.iter().map(|l| l.title.clone()).collect()
            };
            let (before, after) = (titles(&change.previous), titles(&change.current));
            if let Some(added) = after.iter().find(|l| !before.contains(l)) {
                Some(Action {
                    label: added.clone(),
                    ..Action::new("labeled")
                })
            } else {
                let removed = before.iter().find(|l| !after.contains(l))?;
                Some(Action {
                    label: removed.clone(),
                    ..Action::new("unlabeled")
                })
            }
        }
        _ => None,
    }
}

fn merge_request(id: String, body: &[u8], repos: &Repos) -> Result<Delivery, WebhookError> {
    let event: payload::MergeRequestEvent = decode("merge request", body)?;
    let what = "merge request";
    let repo = require(
        what,
        "project.path_with_namespace",
        &event.project.path_with_namespace,
    )?;
    let raw_action = require(
        what,
        "object_attributes.action",
        &event.object_attributes.action,
    )?;
    let Some(action) = action(&event) else {
        return Ok(Delivery::ignore(
            Provider::GitLab,
            "pull_request",
            id,
            format!("merge request action `{raw_action}` carries no pipeline meaning"),
        ));
    };
    let mr = &event.object_attributes;
    if mr.iid == 0 {
        return Err(WebhookError::bad_request(
            "merge request payload has no `object_attributes.iid`",
        ));
    }
    let head_sha = require(what, "object_attributes.last_commit.id", &mr.last_commit.id)?;
    let labels = if mr.labels.is_empty() {
        &event.labels
    } else {
        &mr.labels
    };
    let clone_url = if mr.source.git_http_url.is_empty() {
        &event.project.git_http_url
    } else {
        &mr.source.git_http_url
    };
    // The project ids decide; the source path is only named (older payloads lack it).
    let fork = match (mr.source_project_id, mr.target_project_id) {
        (0, _) | (_, 0) => {
            !mr.source.path_with_namespace.is_empty()
                && !mr.source.path_with_namespace.eq_ignore_ascii_case(repo)
        }
        (source, target) => source != target,
    };
    let message = v1::PullRequest {
        provider: Provider::GitLab.as_str().to_owned(),
        repo: repo.to_owned(),
        number: mr.iid,
        action: action.name.to_owned(),
        head_sha: head_sha.to_owned(),
        head_ref: mr.source_branch.clone(),
        base_ref: mr.target_branch.clone(),
        labels: labels.iter().map(|l| l.title.clone()).collect(),
        merged: action.merged || mr.state == "merged",
        // GitLab names only the author's numeric id; `user` is who acted, which is the author
        // for `open`, the event that creates a preview.
        author: event.user.username.clone(),
        title: mr.title.clone(),
        url: mr.url.clone(),
        label: action.label,
        delivery_id: id.clone(),
        clone_url: clone_url.clone(),
        fork,
        head_repo: mr.source.path_with_namespace.clone(),
        updated_at: delivery::utc_time(&mr.updated_at),
    };
    if let Some(why) = repos.pull_request(&message) {
        return Ok(Delivery::ignore(Provider::GitLab, "pull_request", id, why));
    }
    let out = delivery::event(EventType::SourcePullRequest, repo, &message, &id)?;
    Ok(Delivery::publish(Provider::GitLab, "pull_request", id, out))
}
