//! The GitHub REST API, for what env-manager tells GitHub: commit statuses on the changes it
//! deploys (`POST /repos/{owner}/{repo}/statuses/{sha}`), and promotions as pull requests to
//! the GitOps repository (create a ref, update the manifest's contents, open the pull request).
//!
//! The API base URL is configurable (GitHub Enterprise: `https://HOST/api/v3`; tests: a local
//! server). The token is read at each call when it comes from a file.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use flotilla_bus::dry_run::{EffectKind, Recorder};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::error::Error;
use crate::gitops::Secret;

pub mod error;
mod types;

pub use error::GithubError;
pub use types::{GithubRepo, PullRequestRef, State, Status};

/// The public GitHub API.
pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// The REST API version the requests are written for.
const API_VERSION: &str = "2022-11-28";
/// Bounds every call, so a hanging API cannot hold an event.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A GitHub API client. Cheap to clone.
#[derive(Clone)]
pub struct Github {
    api: String,
    token: Secret,
    http: reqwest::Client,
    /// Set in a dry run: reads are sent, writes recorded here instead.
    recorder: Option<Recorder>,
}

impl std::fmt::Debug for Github {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Github")
            .field("api", &self.api)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Github {
    /// A client of the API at `api_url` (`http://` or `https://`).
    pub fn new(api_url: &str, token: Secret) -> Result<Github, Error> {
        let api = api_url.trim_end_matches('/').to_owned();
        if !(api.starts_with("https://") || api.starts_with("http://")) {
            return Err(Error::Config(format!(
                "the GitHub API URL must be http(s)://..., not {api_url:?}"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("flotilla-env-manager/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("the GitHub client: {e}")))?;
        Ok(Github {
            api,
            token,
            http,
            recorder: None,
        })
    }

    /// This client in a dry run: `GET`s are sent as usual; every write (a commit status, a
    /// branch, a file, a pull request) is recorded in `recorder` and answered as if it worked.
    pub fn recording(mut self, recorder: Recorder) -> Github {
        self.recorder = Some(recorder);
        self
    }

    /// Sets `status` on commit `sha` of `repo`.
    pub async fn post_status(
        &self,
        repo: &GithubRepo,
        sha: &str,
        status: &Status,
    ) -> Result<(), GithubError> {
        let description: String = status.description.chars().take(140).collect();
        let mut body = json!({
            "state": status.state.as_str(),
            "context": status.context,
            "description": description,
        });
        if let Some(url) = &status.target_url {
            body["target_url"] = url.as_str().into();
        }
        let path = format!("/repos/{repo}/statuses/{}", commit_id(sha)?);
        self.call(Method::POST, &path, Some(body)).await?;
        Ok(())
    }

    /// The commit `branch` of `repo` points at.
    pub async fn branch_head(
        &self,
        repo: &GithubRepo,
        branch: &str,
    ) -> Result<String, GithubError> {
        let path = format!("/repos/{repo}/git/ref/heads/{}", encode_path(branch));
        let answer = self.call(Method::GET, &path, None).await?;
        text_at(&answer, "/object/sha", &path)
    }

    /// Creates `branch` at `sha`; a branch that exists already is left as it is (a redelivered
    /// promotion finds the branch it made).
    pub async fn create_branch(
        &self,
        repo: &GithubRepo,
        branch: &str,
        sha: &str,
    ) -> Result<(), GithubError> {
        let path = format!("/repos/{repo}/git/refs");
        let body = json!({"ref": format!("refs/heads/{branch}"), "sha": commit_id(sha)?});
        match self.call(Method::POST, &path, Some(body)).await {
            Ok(_) => Ok(()),
            Err(GithubError::Status { status, body, .. })
                if status == StatusCode::UNPROCESSABLE_ENTITY
                    && body.contains("already exists") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// A file's contents at `reference` and its blob sha (needed to update it).
    pub async fn file(
        &self,
        repo: &GithubRepo,
        file: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, String), GithubError> {
        let path = format!(
            "/repos/{repo}/contents/{}?ref={}",
            encode_path(file),
            encode(reference)
        );
        let answer = self.call(Method::GET, &path, None).await?;
        let encoded: String = text_at(&answer, "/content", &path)?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let contents = BASE64
            .decode(encoded)
            .map_err(|e| answer_error(&path, &format!("content is not base64: {e}")))?;
        Ok((contents, text_at(&answer, "/sha", &path)?))
    }

    /// Commits `contents` as `file` on `branch`, replacing the blob `sha`.
    pub async fn update_file(
        &self,
        repo: &GithubRepo,
        file: &str,
        branch: &str,
        update: FileUpdate<'_>,
    ) -> Result<(), GithubError> {
        let path = format!("/repos/{repo}/contents/{}", encode_path(file));
        let body = json!({
            "message": update.message,
            "content": BASE64.encode(update.contents),
            "sha": update.sha,
            "branch": branch,
        });
        self.call(Method::PUT, &path, Some(body)).await?;
        Ok(())
    }

    /// Opens a pull request of `head` into `base`, or finds the open one there already is.
    pub async fn open_pull_request(
        &self,
        repo: &GithubRepo,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<PullRequestRef, GithubError> {
        let path = format!("/repos/{repo}/pulls");
        let request = json!({"title": title, "head": head, "base": base, "body": body});
        match self.call(Method::POST, &path, Some(request)).await {
            Ok(answer) => pull_request_ref(&answer, &path),
            Err(GithubError::Status { status, .. })
                if status == StatusCode::UNPROCESSABLE_ENTITY =>
            {
                let open = format!(
                    "{path}?state=open&head={}",
                    encode(&format!("{}:{head}", repo.owner))
                );
                let answer = self.call(Method::GET, &open, None).await?;
                let first = answer
                    .get(0)
                    .ok_or_else(|| answer_error(&open, "no open pull request from the branch"))?;
                pull_request_ref(first, &open)
            }
            Err(e) => Err(e),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, GithubError> {
        if let Some(recorder) = &self.recorder
            && method != Method::GET
        {
            return Ok(record_write(recorder, &method, path, body));
        }
        let token = self.token.reveal().map_err(GithubError::Token)?;
        let http = |source| GithubError::Http {
            method: method.clone(),
            path: path.to_owned(),
            source,
        };
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.api))
            .bearer_auth(token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", API_VERSION);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(http)?;
        let status = response.status();
        let text = response.text().await.map_err(http)?;
        if !status.is_success() {
            return Err(GithubError::Status {
                method,
                path: path.to_owned(),
                status,
                body: text.chars().take(500).collect(),
            });
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| answer_error(path, &e.to_string()))
    }
}

/// What a URL path segment or query value keeps as it is (RFC 3986 unreserved); everything
/// else is percent-encoded, so a branch named `x?a=b` or `..` stays one segment of one path.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `value` as one path segment or query value.
fn encode(value: &str) -> String {
    utf8_percent_encode(value, UNRESERVED).to_string()
}

/// A repository path or branch name (`a/b/c`): each segment encoded, `.` and `..` segments
/// encoded too so that no client or proxy resolves them.
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "." => "%2E".to_owned(),
            ".." => "%2E%2E".to_owned(),
            other => encode(other),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `sha` when it is a full commit id (40 hex digits, or 64 in a SHA-256 repository), the only
/// thing the statuses and refs endpoints take; anything else never reaches a request path.
fn commit_id(sha: &str) -> Result<&str, GithubError> {
    let hex = sha.bytes().all(|b| b.is_ascii_hexdigit());
    if hex && matches!(sha.len(), 40 | 64) {
        Ok(sha)
    } else {
        Err(GithubError::Invalid(format!(
            "{:?} is not a full commit id (40 or 64 hex digits)",
            sha.chars().take(80).collect::<String>()
        )))
    }
}

/// A write not sent in a dry run, recorded; the answer is what callers read from a real one.
fn record_write(recorder: &Recorder, method: &Method, path: &str, body: Option<Value>) -> Value {
    let summary = format!("{method} {path}");
    match body {
        Some(body) => recorder.record_with(EffectKind::Github, summary, body.to_string()),
        None => recorder.record(EffectKind::Github, summary),
    }
    json!({"number": 0, "html_url": "(dry run: not opened)"})
}

/// A new version of a file, for [`Github::update_file`].
#[derive(Debug, Clone, Copy)]
pub struct FileUpdate<'a> {
    pub message: &'a str,
    pub contents: &'a [u8],
    /// The blob the update replaces.
    pub sha: &'a str,
}

fn pull_request_ref(answer: &Value, path: &str) -> Result<PullRequestRef, GithubError> {
    Ok(PullRequestRef {
        number: answer
            .get("number")
            .and_then(Value::as_u64)
            .ok_or_else(|| answer_error(path, "no pull request number"))?,
        url: text_at(answer, "/html_url", path)?,
    })
}

fn text_at(answer: &Value, pointer: &str, path: &str) -> Result<String, GithubError> {
    answer
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| answer_error(path, &format!("no {pointer}")))
}

fn answer_error(path: &str, reason: &str) -> GithubError {
    GithubError::Answer {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_id_must_be_a_full_hex_sha() {
        assert!(commit_id(&"a".repeat(40)).is_ok());
        assert!(commit_id(&"0".repeat(64)).is_ok());
        for bad in [
            "",
            "abc1234",
            "../../orgs/x",
            &format!("{}?x=1", "a".repeat(40)),
        ] {
            assert!(
                matches!(commit_id(bad), Err(GithubError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn path_segments_and_query_values_are_percent_encoded() {
        assert_eq!(encode("feature/x?a=b&c#d"), "feature%2Fx%3Fa%3Db%26c%23d");
        assert_eq!(encode_path("apps/production.json"), "apps/production.json");
        assert_eq!(encode_path("../x/./y z"), "%2E%2E/x/%2E/y%20z");
    }

    #[test]
    fn only_http_api_urls_are_accepted() {
        let token = || Secret::Value("t".into());
        assert!(Github::new("https://ghe.example.com/api/v3/", token()).is_ok());
        assert!(Github::new("ftp://x", token()).is_err());
    }
}
