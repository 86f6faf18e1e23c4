//! The parts of GitHub's (and Gitea's) `push` and `pull_request` payloads Flotilla reads.
//!
//! Fields without which an event means nothing have no default, so their absence is a 400 that
//! names them; everything else reads `null` or absence as empty.

use serde::Deserialize;

use crate::delivery::nullable;

#[derive(Debug, Deserialize)]
pub struct Push {
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default, deserialize_with = "nullable")]
    pub before: String,
    pub after: String,
    pub repository: Repository,
    #[serde(default, deserialize_with = "nullable")]
    pub pusher: User,
    #[serde(default, deserialize_with = "nullable")]
    pub commits: Vec<Commit>,
    #[serde(default, deserialize_with = "nullable")]
    pub head_commit: Option<Commit>,
    #[serde(default, deserialize_with = "nullable")]
    pub deleted: bool,
    /// GitHub's compare URL.
    #[serde(default, deserialize_with = "nullable")]
    pub compare: String,
    /// Gitea's name for it.
    #[serde(default, deserialize_with = "nullable")]
    pub compare_url: String,
}

#[derive(Debug, Deserialize)]
pub struct Repository {
    pub full_name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub default_branch: String,
    #[serde(default, deserialize_with = "nullable")]
    pub clone_url: String,
}

/// A repository that may be gone (the head of a pull request from a deleted fork).
#[derive(Debug, Default, Deserialize)]
pub struct RepoRef {
    #[serde(default, deserialize_with = "nullable")]
    pub clone_url: String,
    #[serde(default, deserialize_with = "nullable")]
    pub full_name: String,
}

/// A person as GitHub (`login`, or `name` for a pusher) or Gitea (`login`, `username`) names them.
#[derive(Debug, Default, Deserialize)]
pub struct User {
    #[serde(default, deserialize_with = "nullable")]
    pub login: String,
    #[serde(default, deserialize_with = "nullable")]
    pub username: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
}

impl User {
    /// The handle, falling back to the display name.
    pub fn handle(&self) -> &str {
        [&self.login, &self.username, &self.name]
            .into_iter()
            .find(|s| !s.is_empty())
            .map_or("", String::as_str)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Commit {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub message: String,
    #[serde(default, deserialize_with = "nullable")]
    pub timestamp: String,
    #[serde(default, deserialize_with = "nullable")]
    pub url: String,
    #[serde(default, deserialize_with = "nullable")]
    pub author: User,
    #[serde(default, deserialize_with = "nullable")]
    pub added: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub modified: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub removed: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct PullRequestEvent {
    pub action: String,
    #[serde(default, deserialize_with = "nullable")]
    pub number: u64,
    pub pull_request: PullRequest,
    pub repository: Repository,
    /// The label added or removed, on `labeled` / `unlabeled`.
    #[serde(default, deserialize_with = "nullable")]
    pub label: Label,
}

#[derive(Debug, Deserialize)]
pub struct PullRequest {
    #[serde(default, deserialize_with = "nullable")]
    pub number: u64,
    pub head: Branch,
    pub base: Branch,
    #[serde(default, deserialize_with = "nullable")]
    pub labels: Vec<Label>,
    #[serde(default, deserialize_with = "nullable")]
    pub merged: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub user: User,
    #[serde(default, deserialize_with = "nullable")]
    pub title: String,
    #[serde(default, deserialize_with = "nullable")]
    pub html_url: String,
    /// RFC 3339, e.g. `2019-11-13T01:28:51Z`.
    #[serde(default, deserialize_with = "nullable")]
    pub updated_at: String,
}

#[derive(Debug, Deserialize)]
pub struct Branch {
    #[serde(rename = "ref", default, deserialize_with = "nullable")]
    pub git_ref: String,
    #[serde(default, deserialize_with = "nullable")]
    pub sha: String,
    #[serde(default, deserialize_with = "nullable")]
    pub repo: RepoRef,
}

#[derive(Debug, Default, Deserialize)]
pub struct Label {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
}
