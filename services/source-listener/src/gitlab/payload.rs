//! The parts of GitLab's push, tag push and merge request payloads Flotilla reads.

use serde::Deserialize;

use crate::delivery::nullable;

/// A `Push Hook` or `Tag Push Hook` body.
#[derive(Debug, Deserialize)]
pub struct Push {
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default, deserialize_with = "nullable")]
    pub before: String,
    pub after: String,
    /// The commit the ref points at (for an annotated tag, the commit rather than the tag).
    #[serde(default, deserialize_with = "nullable")]
    pub checkout_sha: String,
    #[serde(default, deserialize_with = "nullable")]
    pub user_username: String,
    #[serde(default, deserialize_with = "nullable")]
    pub user_name: String,
    pub project: Project,
    #[serde(default, deserialize_with = "nullable")]
    pub commits: Vec<Commit>,
    /// How many commits were pushed; `commits` lists at most 20 of them.
    #[serde(default, deserialize_with = "nullable")]
    pub total_commits_count: usize,
}

#[derive(Debug, Deserialize)]
pub struct Project {
    pub path_with_namespace: String,
    #[serde(default, deserialize_with = "nullable")]
    pub default_branch: String,
    #[serde(default, deserialize_with = "nullable")]
    pub git_http_url: String,
    #[serde(default, deserialize_with = "nullable")]
    pub web_url: String,
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
    pub author: Person,
    #[serde(default, deserialize_with = "nullable")]
    pub added: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub modified: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub removed: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Person {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub username: String,
}

/// A `Merge Request Hook` body.
#[derive(Debug, Deserialize)]
pub struct MergeRequestEvent {
    /// Who did what the event reports.
    #[serde(default, deserialize_with = "nullable")]
    pub user: Person,
    pub project: Project,
    pub object_attributes: MergeRequest,
    #[serde(default, deserialize_with = "nullable")]
    pub labels: Vec<Label>,
    #[serde(default, deserialize_with = "nullable")]
    pub changes: Changes,
}

#[derive(Debug, Deserialize)]
pub struct MergeRequest {
    pub iid: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub action: String,
    #[serde(default, deserialize_with = "nullable")]
    pub state: String,
    #[serde(default, deserialize_with = "nullable")]
    pub source_branch: String,
    #[serde(default, deserialize_with = "nullable")]
    pub target_branch: String,
    #[serde(default, deserialize_with = "nullable")]
    pub last_commit: Commit,
    #[serde(default, deserialize_with = "nullable")]
    pub url: String,
    #[serde(default, deserialize_with = "nullable")]
    pub title: String,
    #[serde(default, deserialize_with = "nullable")]
    pub labels: Vec<Label>,
    /// The previous head, present only when an update brought new commits.
    #[serde(default, deserialize_with = "nullable")]
    pub oldrev: String,
    /// The source project, which differs from `project` for a merge request from a fork.
    #[serde(default, deserialize_with = "nullable")]
    pub source: SourceProject,
    #[serde(default, deserialize_with = "nullable")]
    pub source_project_id: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub target_project_id: u64,
    /// `2013-12-03T17:23:34Z`, or `2017-12-10 17:01:11 UTC` in older GitLab versions.
    #[serde(default, deserialize_with = "nullable")]
    pub updated_at: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct SourceProject {
    #[serde(default, deserialize_with = "nullable")]
    pub git_http_url: String,
    #[serde(default, deserialize_with = "nullable")]
    pub path_with_namespace: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct Changes {
    #[serde(default, deserialize_with = "nullable")]
    pub labels: Option<LabelChange>,
    /// Present when the title changed; only its presence matters here.
    #[serde(default)]
    pub title: Option<serde_json::Value>,
    #[serde(default)]
    pub description: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct LabelChange {
    #[serde(default, deserialize_with = "nullable")]
    pub previous: Vec<Label>,
    #[serde(default, deserialize_with = "nullable")]
    pub current: Vec<Label>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Label {
    #[serde(default, deserialize_with = "nullable")]
    pub title: String,
}
