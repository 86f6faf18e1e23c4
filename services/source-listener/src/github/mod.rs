//! `POST /webhooks/github`: GitHub deliveries, and Gitea's, which use the same headers and
//! payload shapes.
//!
//! - Authentication: `X-Hub-Signature-256` (`sha256=<hex HMAC-SHA256 of the raw body>`) keyed
//!   with `GITHUB_WEBHOOK_SECRET`; Gitea versions that send only `X-Gitea-Signature` (bare hex)
//!   are accepted with the same secret. The legacy SHA-1 `X-Hub-Signature` is not.
//! - `X-GitHub-Event` selects `push`, `pull_request` or `ping`; anything else is ignored.
//! - `X-GitHub-Delivery` is the event id, so a redelivery is a JetStream duplicate.

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

pub const EVENT_HEADER: &str = "x-github-event";
pub const DELIVERY_HEADER: &str = "x-github-delivery";
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// Gitea sends its own event header beside GitHub's; its presence tells the two apart.
pub const GITEA_EVENT_HEADER: &str = "x-gitea-event";
pub const GITEA_SIGNATURE_HEADER: &str = "x-gitea-signature";

/// Pull request actions that change what a preview environment should be. The rest (assigned,
/// review_requested, edited, ...) carry no pipeline meaning and are ignored.
const HANDLED_ACTIONS: &[&str] = &[
    "opened",
    "reopened",
    "synchronize",
    "closed",
    "labeled",
    "unlabeled",
    "ready_for_review",
    "converted_to_draft",
    "edited",
];

/// Who sent a delivery to this endpoint.
pub fn provider(headers: &HeaderMap) -> Provider {
    if header(headers, GITEA_EVENT_HEADER).is_some() {
        Provider::Gitea
    } else {
        Provider::GitHub
    }
}

/// The metrics label of the delivery's event, from a fixed set.
pub fn event_label(headers: &HeaderMap) -> &'static str {
    match header(headers, EVENT_HEADER) {
        Some("push") => "push",
        Some("pull_request") => "pull_request",
        Some("ping") => "ping",
        _ => "other",
    }
}

/// Checks the body's signature against `keys`.
pub fn authenticate(keys: &Keys, headers: &HeaderMap, body: &[u8]) -> Result<(), WebhookError> {
    if keys.is_empty() {
        return Err(WebhookError::NotConfigured {
            endpoint: "/webhooks/github",
            variable: "GITHUB_WEBHOOK_SECRET",
        });
    }
    if let Some(signature) = header(headers, SIGNATURE_HEADER) {
        auth::verify_hmac(keys, "X-Hub-Signature-256", signature, true, body)
    } else if let Some(signature) = header(headers, GITEA_SIGNATURE_HEADER) {
        auth::verify_hmac(keys, "X-Gitea-Signature", signature, false, body)
    } else {
        Err(WebhookError::unauthorized(
            "missing X-Hub-Signature-256 header (set the webhook's secret to GITHUB_WEBHOOK_SECRET)",
        ))
    }
}

/// Reads an authenticated delivery into the events it means, or why it means none.
pub fn parse(headers: &HeaderMap, body: &[u8], repos: &Repos) -> Result<Delivery, WebhookError> {
    let provider = provider(headers);
    let event = header(headers, EVENT_HEADER)
        .ok_or_else(|| WebhookError::bad_request("missing X-GitHub-Event header"))?;
    // Both providers can be set to send `payload=<urlencoded JSON>`: say what to change.
    if body.starts_with(b"payload=") {
        return Err(WebhookError::bad_request(
            "form-encoded deliveries are not supported; set the webhook's content type to application/json",
        ));
    }
    let id = header(headers, DELIVERY_HEADER)
        .map(str::to_owned)
        .unwrap_or_else(|| content_id(provider, body));
    match event {
        "ping" => Ok(Delivery::ignore(
            provider,
            "ping",
            id,
            "ping: the webhook reaches Flotilla".into(),
        )),
        "push" => push(provider, id, body, repos),
        "pull_request" => pull_request(provider, id, body, repos),
        other => Ok(Delivery::ignore(
            provider,
            "other",
            id,
            format!("{provider} event `{other}` is not handled"),
        )),
    }
}

fn push(
    provider: Provider,
    id: String,
    body: &[u8],
    repos: &Repos,
) -> Result<Delivery, WebhookError> {
    let push: payload::Push = decode("push", body)?;
    let repo = require("push", "repository.full_name", &push.repository.full_name)?;
    let git_ref = require("push", "ref", &push.git_ref)?;
    let ignore = |why: String| Ok(Delivery::ignore(provider, "push", id.clone(), why));
    let (branch, tag) = match RefName::parse(git_ref) {
        RefName::Branch(branch) => (branch, ""),
        RefName::Tag(tag) => ("", tag),
        RefName::Other(other) => return ignore(format!("ref `{other}` is not a branch or tag")),
    };
    if push.deleted || delivery::is_zero_sha(&push.after) {
        let (what, name) = if tag.is_empty() {
            ("branch", branch)
        } else {
            ("tag", tag)
        };
        return ignore(format!("{what} `{name}` of {repo} was deleted"));
    }
    // For an annotated tag `after` is the tag object; the build needs the commit it points at.
    let sha = push
        .head_commit
        .as_ref()
        .map(|commit| commit.id.as_str())
        .filter(|id| !id.is_empty())
        .unwrap_or(&push.after);
    let sha = require("push", "after", sha)?;
    let mut message = v1::Push {
        provider: provider.as_str().to_owned(),
        repo: repo.to_owned(),
        r#ref: git_ref.to_owned(),
        branch: branch.to_owned(),
        tag: tag.to_owned(),
        sha: sha.to_owned(),
        pusher: push.pusher.handle().to_owned(),
        compare_url: first_non_empty(&push.compare, &push.compare_url).to_owned(),
        delivery_id: id.clone(),
        deleted: false,
        commits_truncated: false,
        // Moved rather than copied: commit messages are most of a push's bytes.
        default_branch: push.repository.default_branch,
        before: push.before,
        clone_url: push.repository.clone_url,
        commits: push.commits.into_iter().map(commit).collect(),
    };
    if let Some(why) = repos.push(&mut message) {
        return ignore(why);
    }
    let out = delivery::event(EventType::SourcePush, &message.repo, &message, &id)?;
    Ok(Delivery::publish(provider, "push", id, out))
}

fn commit(commit: payload::Commit) -> v1::Commit {
    v1::Commit {
        author: commit.author.handle().to_owned(),
        id: commit.id,
        message: commit.message,
        url: commit.url,
        timestamp: commit.timestamp,
        added: commit.added,
        modified: commit.modified,
        removed: commit.removed,
    }
}

fn pull_request(
    provider: Provider,
    id: String,
    body: &[u8],
    repos: &Repos,
) -> Result<Delivery, WebhookError> {
    let event: payload::PullRequestEvent = decode("pull_request", body)?;
    let repo = require(
        "pull_request",
        "repository.full_name",
        &event.repository.full_name,
    )?;
    let raw_action = require("pull_request", "action", &event.action)?;
    let action = normalize_action(raw_action);
    if !HANDLED_ACTIONS.contains(&action) {
        return Ok(Delivery::ignore(
            provider,
            "pull_request",
            id,
            format!("pull_request action `{raw_action}` carries no pipeline meaning"),
        ));
    }
    let pr = &event.pull_request;
    let number = if event.number != 0 {
        event.number
    } else {
        pr.number
    };
    if number == 0 {
        return Err(WebhookError::bad_request(
            "pull_request payload has no `number`",
        ));
    }
    let head_sha = require("pull_request", "pull_request.head.sha", &pr.head.sha)?;
    let head_repo = &pr.head.repo.full_name;
    // A head repository that is gone (`null`: a deleted fork) is not the base either.
    let fork = !head_repo.eq_ignore_ascii_case(first_non_empty(
        &pr.base.repo.full_name,
        &event.repository.full_name,
    ));
    let message = v1::PullRequest {
        provider: provider.as_str().to_owned(),
        repo: repo.to_owned(),
        number,
        action: action.to_owned(),
        head_sha: head_sha.to_owned(),
        head_ref: pr.head.git_ref.clone(),
        base_ref: pr.base.git_ref.clone(),
        labels: pr.labels.iter().map(|label| label.name.clone()).collect(),
        merged: pr.merged,
        author: pr.user.handle().to_owned(),
        title: pr.title.clone(),
        url: pr.html_url.clone(),
        label: event.label.name.clone(),
        delivery_id: id.clone(),
        // A pull request from a fork is built from the fork.
        clone_url: first_non_empty(&pr.head.repo.clone_url, &event.repository.clone_url).to_owned(),
        fork,
        head_repo: head_repo.clone(),
        updated_at: delivery::utc_time(&pr.updated_at),
    };
    if let Some(why) = repos.pull_request(&message) {
        return Ok(Delivery::ignore(provider, "pull_request", id, why));
    }
    let out = delivery::event(EventType::SourcePullRequest, repo, &message, &id)?;
    Ok(Delivery::publish(provider, "pull_request", id, out))
}

/// GitHub's action names for Gitea's spellings of the same thing.
fn normalize_action(action: &str) -> &str {
    match action {
        "synchronized" => "synchronize",
        "label_updated" => "labeled",
        "label_cleared" => "unlabeled",
        other => other,
    }
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() { b } else { a }
}
