//! `flotilla webhook send github|gitlab push|pull_request ...`: a realistic delivery, signed (or
//! carrying its token) as the forge would send it, posted to a source-listener. For testing a
//! webhook set-up and its filters without pushing anything.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::CliError;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Builds a delivery as GitHub or GitLab sends it, signs it and posts it to a
    /// source-listener; prints its answer (the events it published, or why not).
    #[command(
        after_help = "Exit status: 0 when the listener accepted (202) or ignored (200) the \
delivery, 1 when it refused it (the answer is printed), 69 when it could not be reached.

Examples:
  flotilla webhook send github push --repo acme/ping --branch main
  flotilla webhook send github pull_request --repo acme/ping --number 7 --label preview
  flotilla webhook send gitlab pull_request --repo acme/ping --number 7 --action close
  GITHUB_WEBHOOK_SECRET=s3cret flotilla webhook send github push --url https://hooks.example.com"
    )]
    Send(SendArgs),
}

/// Which forge the delivery imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Forge {
    Github,
    Gitlab,
}

/// Which event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Push,
    #[value(name = "pull_request", alias = "merge_request")]
    PullRequest,
}

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    pub forge: Forge,
    pub kind: Kind,
    /// The source-listener (its base URL; the forge's path is added).
    #[arg(
        long,
        env = "FLOTILLA_WEBHOOK_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// The repository, `owner/name`.
    #[arg(long, default_value = "acme/ping")]
    pub repo: String,
    /// The branch pushed, or the pull request's head branch.
    #[arg(long)]
    pub branch: Option<String>,
    /// The commit (40 hex digits) [default: one derived from the repo, branch and time].
    #[arg(long)]
    pub sha: Option<String>,
    /// The pull request's number.
    #[arg(long, default_value_t = 1)]
    pub number: u64,
    /// The pull request's action: `opened`, `synchronize`, `labeled`, `closed`, ... (GitLab:
    /// `open`, `update`, `close`, `merge`, ...).
    #[arg(long)]
    pub action: Option<String>,
    /// A label of the pull request (repeat for more); with `labeled`, the first is the one added.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// The pull request was merged (with `closed`).
    #[arg(long)]
    pub merged: bool,
    /// GitHub's webhook secret (HMAC-SHA256 of the body).
    #[arg(long, env = "GITHUB_WEBHOOK_SECRET", hide_env_values = true)]
    pub github_secret: Option<String>,
    /// A file holding GitHub's webhook secret.
    #[arg(
        long,
        env = "GITHUB_WEBHOOK_SECRET_FILE",
        conflicts_with = "github_secret"
    )]
    pub github_secret_file: Option<PathBuf>,
    /// GitLab's webhook token (`X-Gitlab-Token`).
    #[arg(long, env = "GITLAB_WEBHOOK_TOKEN", hide_env_values = true)]
    pub gitlab_token: Option<String>,
    /// A file holding GitLab's webhook token.
    #[arg(
        long,
        env = "GITLAB_WEBHOOK_TOKEN_FILE",
        conflicts_with = "gitlab_token"
    )]
    pub gitlab_token_file: Option<PathBuf>,
    /// Print the delivery (headers and body) instead of sending it.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Send(args) => send(args).await,
    }
}

async fn send(args: SendArgs) -> Result<(), CliError> {
    let delivery = build(&args)?;
    if args.dry_run {
        println!("POST {}", delivery.url);
        for (name, value) in &delivery.headers {
            let shown = if matches!(*name, "x-gitlab-token") {
                "<redacted>"
            } else {
                value
            };
            println!("{name}: {shown}");
        }
        println!();
        println!("{}", String::from_utf8_lossy(&delivery.body));
        return Ok(());
    }
    let (status, answer) = delivery.post().await?;
    println!("{status} {}", answer.trim());
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(CliError::Verdict {
            code: 1,
            summary: format!("{} answered {status}", delivery.url),
        })
    }
}

/// A webhook delivery, built and signed, ready to post.
#[derive(Debug)]
pub struct Delivery {
    pub url: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Delivery {
    /// Posts the delivery; the listener's status code and answer.
    pub async fn post(&self) -> Result<(u16, String), CliError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| CliError::Usage(format!("the HTTP client: {e}")))?;
        let mut request = client.post(&self.url).body(self.body.clone());
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.map_err(|e| CliError::Unsent {
            url: self.url.clone(),
            reason: e.without_url().to_string(),
        })?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.unwrap_or_default()))
    }
}

/// The delivery `args` describe, as the forge would send it.
pub fn build(args: &SendArgs) -> Result<Delivery, CliError> {
    let (owner, name) = args
        .repo
        .split_once('/')
        .filter(|(o, n)| !o.is_empty() && !n.is_empty())
        .ok_or_else(|| CliError::Usage(format!("--repo {:?} is not owner/name", args.repo)))?;
    let now = time::OffsetDateTime::now_utc();
    let timestamp = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let branch = args.branch.clone().unwrap_or_else(|| match args.kind {
        Kind::Push => "main".into(),
        Kind::PullRequest => format!("feature-{}", args.number),
    });
    let sha = match &args.sha {
        Some(sha) if sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()) => sha.clone(),
        Some(sha) => {
            return Err(CliError::Usage(format!(
                "--sha {sha:?} is not 40 hex digits"
            )));
        }
        None => hex::encode(Sha256::digest(format!(
            "{}:{branch}:{timestamp}",
            args.repo
        )))[..40]
            .to_owned(),
    };
    let fact = Fact {
        owner,
        name,
        branch: &branch,
        sha: &sha,
        timestamp: &timestamp,
        args,
    };
    let (path, event, body) = match (args.forge, args.kind) {
        (Forge::Github, Kind::Push) => ("/webhooks/github", "push", github_push(&fact)),
        (Forge::Github, Kind::PullRequest) => (
            "/webhooks/github",
            "pull_request",
            github_pull_request(&fact),
        ),
        (Forge::Gitlab, Kind::Push) => ("/webhooks/gitlab", "Push Hook", gitlab_push(&fact)),
        (Forge::Gitlab, Kind::PullRequest) => (
            "/webhooks/gitlab",
            "Merge Request Hook",
            gitlab_merge_request(&fact),
        ),
    };
    let body = serde_json::to_vec_pretty(&body).map_err(|e| CliError::Usage(e.to_string()))?;
    let delivery = uuid::Uuid::new_v4().to_string();
    let mut headers: Vec<(&'static str, String)> =
        vec![("content-type", "application/json".into())];
    match args.forge {
        Forge::Github => {
            headers.push(("x-github-event", event.into()));
            headers.push(("x-github-delivery", delivery.clone()));
            if let Some(secret) = secret(
                &args.github_secret,
                &args.github_secret_file,
                "GITHUB_WEBHOOK_SECRET_FILE",
            )? {
                let signature = source_listener::auth::github_signature(secret.as_bytes(), &body);
                headers.push(("x-hub-signature-256", signature));
            }
        }
        Forge::Gitlab => {
            headers.push(("x-gitlab-event", event.into()));
            headers.push(("x-gitlab-event-uuid", delivery.clone()));
            if let Some(token) = secret(
                &args.gitlab_token,
                &args.gitlab_token_file,
                "GITLAB_WEBHOOK_TOKEN_FILE",
            )? {
                headers.push(("x-gitlab-token", token));
            }
        }
    }
    Ok(Delivery {
        url: format!("{}{path}", args.url.trim_end_matches('/')),
        headers,
        body,
    })
}

/// A secret given as a value or a file (its first line).
fn secret(
    value: &Option<String>,
    file: &Option<PathBuf>,
    variable: &str,
) -> Result<Option<String>, CliError> {
    match (value, file) {
        (Some(value), _) => Ok(Some(value.clone())),
        (None, Some(path)) => flotilla_env::SecretFile::new(variable, path.clone())
            .read_one()
            .map(Some)
            .map_err(|e| CliError::Usage(e.to_string())),
        (None, None) => Ok(None),
    }
}

/// What a delivery is about.
struct Fact<'a> {
    owner: &'a str,
    name: &'a str,
    branch: &'a str,
    sha: &'a str,
    timestamp: &'a str,
    args: &'a SendArgs,
}

impl Fact<'_> {
    fn repo(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    fn commit(&self) -> Value {
        json!({
            "id": self.sha,
            "message": format!("A change to {}", self.repo()),
            "timestamp": self.timestamp,
            "url": format!("https://github.com/{}/commit/{}", self.repo(), self.sha),
            "author": {"name": self.owner, "username": self.owner},
            "added": [], "modified": ["README.md"], "removed": [],
        })
    }
}

fn github_repository(fact: &Fact<'_>) -> Value {
    json!({
        "full_name": fact.repo(),
        "name": fact.name,
        "owner": {"login": fact.owner},
        "default_branch": "main",
        "clone_url": format!("https://github.com/{}.git", fact.repo()),
    })
}

fn github_push(fact: &Fact<'_>) -> Value {
    json!({
        "ref": format!("refs/heads/{}", fact.branch),
        "before": "0000000000000000000000000000000000000000",
        "after": fact.sha,
        "created": false,
        "deleted": false,
        "repository": github_repository(fact),
        "pusher": {"name": fact.owner},
        "head_commit": fact.commit(),
        "commits": [fact.commit()],
        "compare": format!("https://github.com/{}/compare", fact.repo()),
    })
}

fn github_pull_request(fact: &Fact<'_>) -> Value {
    let args = fact.args;
    let action = args.action.clone().unwrap_or_else(|| "opened".into());
    let labels: Vec<Value> = args.labels.iter().map(|l| json!({"name": l})).collect();
    let mut body = json!({
        "action": action,
        "number": args.number,
        "pull_request": {
            "number": args.number,
            "title": format!("A change to {}", fact.repo()),
            "html_url": format!("https://github.com/{}/pull/{}", fact.repo(), args.number),
            "user": {"login": fact.owner},
            "labels": labels,
            "merged": args.merged,
            "updated_at": fact.timestamp,
            "head": {"ref": fact.branch, "sha": fact.sha,
                     "repo": {"full_name": fact.repo(), "clone_url": format!("https://github.com/{}.git", fact.repo())}},
            "base": {"ref": "main", "sha": "0000000000000000000000000000000000000000",
                     "repo": {"full_name": fact.repo()}},
        },
        "repository": github_repository(fact),
        "sender": {"login": fact.owner},
    });
    if let Some(label) = args.labels.first()
        && matches!(action.as_str(), "labeled" | "unlabeled")
    {
        body["label"] = json!({"name": label});
    }
    body
}

fn gitlab_project(fact: &Fact<'_>) -> Value {
    json!({
        "id": 1,
        "path_with_namespace": fact.repo(),
        "default_branch": "main",
        "git_http_url": format!("https://gitlab.com/{}.git", fact.repo()),
        "web_url": format!("https://gitlab.com/{}", fact.repo()),
    })
}

fn gitlab_push(fact: &Fact<'_>) -> Value {
    json!({
        "object_kind": "push",
        "ref": format!("refs/heads/{}", fact.branch),
        "before": "0000000000000000000000000000000000000000",
        "after": fact.sha,
        "checkout_sha": fact.sha,
        "user_username": fact.owner,
        "user_name": fact.owner,
        "project": gitlab_project(fact),
        "commits": [fact.commit()],
        "total_commits_count": 1,
    })
}

fn gitlab_merge_request(fact: &Fact<'_>) -> Value {
    let args = fact.args;
    let action = args.action.clone().unwrap_or_else(|| "open".into());
    let state = match action.as_str() {
        "close" => "closed",
        "merge" => "merged",
        _ => "opened",
    };
    let labels: Vec<Value> = args.labels.iter().map(|l| json!({"title": l})).collect();
    json!({
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": {"name": fact.owner, "username": fact.owner},
        "project": gitlab_project(fact),
        "object_attributes": {
            "iid": args.number,
            "action": action,
            "state": state,
            "title": format!("A change to {}", fact.repo()),
            "url": format!("https://gitlab.com/{}/-/merge_requests/{}", fact.repo(), args.number),
            "source_branch": fact.branch,
            "target_branch": "main",
            "source_project_id": 1,
            "target_project_id": 1,
            "source": {"path_with_namespace": fact.repo(), "git_http_url": format!("https://gitlab.com/{}.git", fact.repo())},
            "last_commit": fact.commit(),
            "labels": labels,
            "updated_at": fact.timestamp,
        },
        "labels": labels,
        "changes": {},
    })
}
