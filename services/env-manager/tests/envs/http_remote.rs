//! The GitOps repository over HTTP with a token: a git smart-HTTP server on 127.0.0.1 (`git
//! http-backend` behind axum, asking for Basic authentication as GitHub does for tokens), and
//! env-manager's working copy cloning, fetching and pushing through it.
//!
//! This runs plain HTTP: TLS is libgit2's own and is not exercised here.

use crate::bare;

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use base64::Engine;
use env_manager::gitops::{GitOps, Secret, Settings};
use git2::Repository;
use tokio::io::AsyncWriteExt;

const USER: &str = "x-access-token";
const TOKEN: &str = "gitops-s3cret";

#[derive(Clone)]
struct Server {
    root: PathBuf,
}

/// Serves the repositories under `root` at `http://127.0.0.1:PORT/<name>.git`.
async fn serve(root: PathBuf) -> Result<String> {
    let app = Router::new().fallback(cgi).with_state(Server { root });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// Asks for the token, then hands the request to `git http-backend` (CGI).
async fn cgi(
    State(server): State<Server>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{TOKEN}"))
    );
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&expected);
    if !authorized {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("www-authenticate", "Basic realm=\"gitops\"")
            .body(Body::empty())
            .expect("a valid response");
    }
    match backend(&server, &method, &uri, &headers, &body).await {
        Ok(response) => response,
        Err(e) => Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(Body::from(e.to_string()))
            .expect("a valid response"),
    }
}

async fn backend(
    server: &Server,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &server.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", USER)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", uri.path())
        .env("QUERY_STRING", uri.query().unwrap_or_default())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start git http-backend")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(body).await?;
    drop(stdin);
    let output = child.wait_with_output().await?;
    let out = output.stdout;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))
        .context("CGI headers end")?;
    let head = String::from_utf8_lossy(&out[..split.0]).to_string();
    let mut response = Response::builder();
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code: u16 = value.split(' ').next().unwrap_or("200").parse()?;
            response = response.status(code);
        } else {
            response = response.header(name.trim(), value);
        }
    }
    Ok(response.body(Body::from(out[split.0 + split.1..].to_vec()))?)
}

struct Remote {
    dir: tempfile::TempDir,
    url: String,
}

impl Remote {
    async fn start() -> Result<Remote> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("srv");
        let bare = Repository::init_bare(root.join("gitops.git"))?;
        bare.config()?.set_bool("http.receivepack", true)?;
        let url = format!("{}/gitops.git", serve(root).await?);
        Ok(Remote { dir, url })
    }

    fn settings(&self, token: Option<&str>) -> Settings {
        let mut config = env_manager::Config::new(self.url.clone(), self.dir.path().join("work"));
        config.gitops.credentials.token = token.map(|t| Secret::Value(t.into()));
        config.gitops
    }

    fn head_file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        bare::head_file(&self.dir.path().join("srv/gitops.git"), path)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_authenticates_fetches_and_pushes_over_http() -> Result<()> {
    let remote = Remote::start().await?;
    let gitops = GitOps::open(remote.settings(Some(TOKEN))).await?;

    bare::write(&gitops, "envs/pr-ping-1.json", "over http").await?;
    bare::write(&gitops, "envs/pr-ping-2.json", "over http").await?;

    assert!(remote.head_file("envs/pr-ping-1.json")?.is_some());
    assert!(remote.head_file("envs/pr-ping-2.json")?.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_token_fails_with_a_reason_instead_of_looping() -> Result<()> {
    let remote = Remote::start().await?;

    let wrong = GitOps::open(remote.settings(Some("not-the-token"))).await?;
    let err = bare::write(&wrong, "envs/x.json", "over http")
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("refused the credentials"), "{err}");

    let mut settings = remote.settings(None);
    settings.dir = remote.dir.path().join("work-2");
    let none = GitOps::open(settings).await?;
    let err = bare::write(&none, "envs/x.json", "over http")
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("FLOTILLA_GITOPS_TOKEN"), "{err}");
    Ok(())
}

/// A remote that accepts the connection and never answers (a hung proxy, a half-dead host)
/// fails the fetch after the network timeout instead of holding the writer forever; the error
/// and the working copy's description do not show the token in the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_that_accepts_and_never_answers_fails_within_the_network_timeout() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let dir = tempfile::tempdir()?;
    let url = format!("http://{USER}:{TOKEN}@{addr}/gitops.git");
    let mut config = env_manager::Config::new(url, dir.path().join("work"));
    config.gitops.network_timeout = std::time::Duration::from_secs(3);
    let gitops = GitOps::open(config.gitops).await?;
    assert!(!format!("{gitops:?}").contains(TOKEN), "{gitops:?}");

    // Other tests of this binary may set libgit2's process-wide timeout to 30s meanwhile.
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(90),
        gitops.read("apps/production.json".into()),
    )
    .await
    .context("the fetch from a silent remote still waits after 90s")?;
    let error = read.expect_err("nothing can be read from a silent remote");
    assert!(!error.to_string().contains(TOKEN), "{error}");
    held.abort();
    Ok(())
}
