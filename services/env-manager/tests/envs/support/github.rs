//! A GitHub REST API on 127.0.0.1 for the tests: it records every call, keeps commit statuses,
//! and holds one repository's branches, files and pull requests in memory, answering the
//! calls env-manager makes the way GitHub documents them (201 on create, 422 for a ref or pull
//! request that exists, 409 for a stale file sha).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One call the server received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub authorization: String,
    pub body: Value,
}

#[derive(Debug, Default)]
struct Repo {
    /// branch → (commit sha, path → contents)
    branches: BTreeMap<String, (String, BTreeMap<String, Vec<u8>>)>,
    /// (number, head, base, title)
    pulls: Vec<(u64, String, String, String)>,
    commits: u64,
}

#[derive(Debug, Default)]
struct Inner {
    calls: Vec<Call>,
    repo: Repo,
}

/// The running server.
#[derive(Clone)]
pub struct FakeGithub {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeGithub {
    /// Serves on a random loopback port until the test's runtime ends.
    pub async fn start() -> anyhow::Result<FakeGithub> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new().fallback(serve).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(FakeGithub { url, inner })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("fake GitHub lock")
    }

    /// Puts `path` with `contents` on `branch` (creating the branch).
    pub fn seed(&self, branch: &str, path: &str, contents: &[u8]) {
        let mut inner = self.lock();
        let repo = &mut inner.repo;
        repo.commits += 1;
        let sha = format!("{:040x}", repo.commits);
        let entry = repo.branches.entry(branch.to_owned()).or_default();
        entry.0 = sha;
        entry.1.insert(path.to_owned(), contents.to_vec());
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The statuses posted, as (sha, context, state, description), in order.
    pub fn statuses(&self) -> Vec<(String, String, String, String)> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == Method::POST && c.path.contains("/statuses/"))
            .map(|c| {
                let sha = c.path.rsplit('/').next().unwrap_or_default().to_owned();
                let text = |k: &str| c.body[k].as_str().unwrap_or_default().to_owned();
                (sha, text("context"), text("state"), text("description"))
            })
            .collect()
    }

    /// A file on a branch.
    pub fn file(&self, branch: &str, path: &str) -> Option<Vec<u8>> {
        let inner = self.lock();
        inner.repo.branches.get(branch)?.1.get(path).cloned()
    }

    /// The open pull requests as (head, base, title).
    pub fn pulls(&self) -> Vec<(String, String, String)> {
        let inner = self.lock();
        let pulls = inner.repo.pulls.iter();
        pulls
            .map(|(_, h, b, t)| (h.clone(), b.clone(), t.clone()))
            .collect()
    }
}

async fn serve(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut inner = inner.lock().expect("fake GitHub lock");
    inner.calls.push(Call {
        method: method.clone(),
        path: uri.to_string(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: body.clone(),
    });
    let query: BTreeMap<String, String> = uri
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), decode(v)))
                .collect()
        })
        .unwrap_or_default();
    // /repos/{owner}/{repo}/..., each segment decoded as a server does
    let decoded: Vec<String> = uri.path().split('/').skip(4).map(decode).collect();
    let parts: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let repo = &mut inner.repo;
    match (method, parts.as_slice()) {
        (Method::POST, ["statuses", _sha]) => {
            (StatusCode::CREATED, axum::Json(json!({"id": 1}))).into_response()
        }
        (Method::GET, ["git", "ref", "heads", branch @ ..]) => {
            match repo.branches.get(&branch.join("/")) {
                Some((sha, _)) => axum::Json(json!({"object": {"sha": sha}})).into_response(),
                None => not_found(),
            }
        }
        (Method::POST, ["git", "refs"]) => create_ref(repo, &body),
        (Method::GET, ["contents", path @ ..]) => {
            let branch = query.get("ref").cloned().unwrap_or_else(|| "main".into());
            let file = repo
                .branches
                .get(&branch)
                .and_then(|b| b.1.get(&path.join("/")));
            match file {
                Some(contents) => axum::Json(json!({
                    // GitHub wraps the base64 at 60 characters.
                    "content": wrapped(&BASE64.encode(contents)),
                    "sha": blob_sha(contents),
                }))
                .into_response(),
                None => not_found(),
            }
        }
        (Method::PUT, ["contents", path @ ..]) => update_file(repo, &path.join("/"), &body),
        (Method::POST, ["pulls"]) => open_pull(repo, &body),
        (Method::GET, ["pulls"]) => {
            let head = query.get("head").cloned().unwrap_or_default();
            let open: Vec<Value> = repo
                .pulls
                .iter()
                .filter(|(_, h, _, _)| head.ends_with(&format!(":{h}")))
                .map(|(n, ..)| pull_json(*n))
                .collect();
            axum::Json(Value::Array(open)).into_response()
        }
        _ => not_found(),
    }
}

fn create_ref(repo: &mut Repo, body: &Value) -> Response {
    let name = body["ref"].as_str().unwrap_or_default();
    let Some(branch) = name.strip_prefix("refs/heads/") else {
        return unprocessable("Reference name is not a branch");
    };
    if repo.branches.contains_key(branch) {
        return unprocessable("Reference already exists");
    }
    let sha = body["sha"].as_str().unwrap_or_default();
    let Some(files) = repo
        .branches
        .values()
        .find(|(s, _)| s == sha)
        .map(|b| b.1.clone())
    else {
        return unprocessable("Object does not exist");
    };
    repo.branches
        .insert(branch.to_owned(), (sha.to_owned(), files));
    (StatusCode::CREATED, axum::Json(json!({"ref": name}))).into_response()
}

fn update_file(repo: &mut Repo, path: &str, body: &Value) -> Response {
    let branch = body["branch"].as_str().unwrap_or("main").to_owned();
    let Some(entry) = repo.branches.get_mut(&branch) else {
        return not_found();
    };
    let current = entry.1.get(path).map(|c| blob_sha(c)).unwrap_or_default();
    if body["sha"].as_str() != Some(current.as_str()) {
        return (
            StatusCode::CONFLICT,
            axum::Json(json!({"message": "sha mismatch"})),
        )
            .into_response();
    }
    let Ok(contents) = BASE64.decode(body["content"].as_str().unwrap_or_default()) else {
        return unprocessable("content is not base64");
    };
    entry.1.insert(path.to_owned(), contents);
    repo.commits += 1;
    entry.0 = format!("{:040x}", repo.commits);
    axum::Json(json!({"commit": {"sha": entry.0}})).into_response()
}

fn open_pull(repo: &mut Repo, body: &Value) -> Response {
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
    let (head, base) = (text("head"), text("base"));
    if repo.pulls.iter().any(|(_, h, _, _)| *h == head) {
        return unprocessable("A pull request already exists");
    }
    if !repo.branches.contains_key(&head) || !repo.branches.contains_key(&base) {
        return unprocessable("Validation Failed: no such branch");
    }
    let number = repo.pulls.len() as u64 + 1;
    repo.pulls.push((number, head, base, text("title")));
    (StatusCode::CREATED, axum::Json(pull_json(number))).into_response()
}

fn pull_json(number: u64) -> Value {
    json!({"number": number, "html_url": format!("https://github.example/acme/gitops/pull/{number}")})
}

fn blob_sha(contents: &[u8]) -> String {
    hex::encode(Sha256::digest(contents))
}

fn wrapped(encoded: &str) -> String {
    let mut out = String::new();
    for (i, c) in encoded.chars().enumerate() {
        if i > 0 && i % 60 == 0 {
            out.push('\n');
        }
        out.push(c);
    }
    out
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"message": "Not Found"})),
    )
        .into_response()
}

fn unprocessable(message: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({"message": message})),
    )
        .into_response()
}

/// A percent-encoded path segment or query value, decoded.
fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}
