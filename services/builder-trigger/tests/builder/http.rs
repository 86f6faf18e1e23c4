//! The http backend against a CI system served on loopback by the test: a start request
//! rendered from the template, then the result on the callback endpoint or from a status URL.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use builder_trigger::http::{Settings, Template};
use builder_trigger::{BackendConfig, BuilderTrigger, Config};
use flotilla_bus::{EventType, Process};
use serde_json::{Value, json};
use support::*;

/// What the CI system does with a run it is asked for.
#[derive(Clone)]
enum Behaviour {
    /// Calls back with this body, after first trying a wrong token.
    CallBack(Value),
    /// Answers the first request 503, then behaves as `CallBack`.
    BusyOnce(Value),
    /// Takes the run and never reports.
    Silent,
    /// Refuses the run with 422.
    Refuse,
    /// Answers with a workflow name; its status reads Running twice, then this phase.
    Workflow(&'static str),
}

/// A request's query parameters, decoded, in order.
type Query = Vec<(String, String)>;

#[derive(Clone)]
struct Ci {
    behaviour: Behaviour,
    /// (path, Authorization header, body) of each start request.
    started: Arc<Mutex<Vec<(String, String, Value)>>>,
    /// The query parameters of each start request, decoded.
    queries: Arc<Mutex<Vec<Query>>>,
    /// HTTP status of each callback attempt.
    callbacks: Arc<Mutex<Vec<u16>>>,
    status_reads: Arc<Mutex<u32>>,
}

impl Ci {
    async fn serve(behaviour: Behaviour) -> Result<(Ci, String)> {
        let ci = Ci {
            behaviour,
            started: Arc::default(),
            queries: Arc::default(),
            callbacks: Arc::default(),
            status_reads: Arc::default(),
        };
        let router = axum::Router::new()
            .route("/repos/{owner}/{name}/dispatches", post(start))
            .route("/workflows/{name}", get(workflow))
            .with_state(ci.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok((ci, url))
    }

    fn started(&self) -> Vec<(String, String, Value)> {
        self.started.lock().expect("not poisoned").clone()
    }

    fn queries(&self) -> Vec<Query> {
        self.queries.lock().expect("not poisoned").clone()
    }
}

async fn start(
    State(ci): State<Ci>,
    Path((owner, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let query = query.unwrap_or_default();
    let pairs = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    ci.queries.lock().expect("not poisoned").push(pairs);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let attempts = {
        let mut started = ci.started.lock().expect("not poisoned");
        started.push((
            format!("/repos/{owner}/{name}/dispatches"),
            auth,
            body.clone(),
        ));
        started.len()
    };
    match ci.behaviour.clone() {
        Behaviour::BusyOnce(_) if attempts == 1 => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"message": "try again"})),
        ),
        Behaviour::CallBack(report) | Behaviour::BusyOnce(report) => {
            let url = body["inputs"]["callback_url"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let token = body["inputs"]["callback_token"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let callbacks = ci.callbacks.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for token in ["not-the-token", token.as_str()] {
                    let answer = client
                        .post(&url)
                        .bearer_auth(token)
                        .json(&report)
                        .send()
                        .await;
                    let code = answer.map(|a| a.status().as_u16()).unwrap_or(0);
                    callbacks.lock().expect("not poisoned").push(code);
                }
            });
            (StatusCode::NO_CONTENT, Json(Value::Null))
        }
        Behaviour::Silent => (StatusCode::NO_CONTENT, Json(Value::Null)),
        // Echoes the request, as some CI systems do: whatever it carried ends up in the answer.
        Behaviour::Refuse => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "message": "Workflow does not have 'workflow_dispatch' trigger",
                "request": format!("/repos/{owner}/{name}/dispatches?{query}"),
            })),
        ),
        Behaviour::Workflow(_) => (StatusCode::OK, Json(json!({"metadata": {"name": "wf-7"}}))),
    }
}

async fn workflow(State(ci): State<Ci>, Path(name): Path<String>) -> (StatusCode, Json<Value>) {
    let Behaviour::Workflow(phase) = ci.behaviour else {
        return (StatusCode::NOT_FOUND, Json(Value::Null));
    };
    if name != "wf-7" {
        return (StatusCode::NOT_FOUND, Json(Value::Null));
    }
    let reads = {
        let mut reads = ci.status_reads.lock().expect("not poisoned");
        *reads += 1;
        *reads
    };
    let phase = if reads <= 2 { "Running" } else { phase };
    (
        StatusCode::OK,
        Json(json!({"status": {"phase": phase, "message": "step functional-tests: exit 1"}})),
    )
}

/// A GitHub Actions style dispatch whose workflow calls back.
fn dispatch(ci: &str) -> Value {
    json!({
        "url": format!("{ci}/repos/{{{{repo}}}}/dispatches"),
        "headers": {"Authorization": "Bearer {{token}}"},
        "body": {"ref": "{{ref}}", "inputs": {
            "sha": "{{sha}}", "version": "{{version}}", "image": "{{image}}",
            "pipeline_image": "{{pipeline_image}}",
            "callback_url": "{{callback_url}}", "callback_token": "{{callback_token}}"
        }}
    })
}

/// Runs builder-trigger on the http backend with `template`, serving its callbacks.
async fn run_http(fx: &Fixture, template: Value, timeout: Duration) -> Result<Running> {
    let port = flotilla_testing::free_port();
    let settings = Settings {
        build: Template::parse(&template.to_string()).map_err(anyhow::Error::msg)?,
        test: None,
        token: Some("ci-token".into()),
        callback_url: Some(format!("http://127.0.0.1:{port}")),
        callback_secret: None,
    };
    let mut config = Config::with_backend(BackendConfig::Http(settings));
    config.build_timeout = timeout;
    let (runner, routes) = builder_trigger::runner(&config).await?;
    let mut process = Process::new(fx.bus.clone());
    process
        .worker(
            flotilla_testing::quick(builder_trigger::worker_config()),
            BuilderTrigger::new(config, runner, fx.registry().await?),
        )
        .route(routes);
    flotilla_testing::serve_on(process, format!("127.0.0.1:{port}").parse()?).await
}

#[tokio::test]
async fn the_ci_system_takes_the_build_and_its_callback_reports_success_with_images() -> Result<()>
{
    let fx = Fixture::start().await?;
    let report = json!({
        "status": "succeeded", "message": "built", "log_url": "https://ci.example/runs/7",
        "images": [{"name": "ping", "ref": "registry.example.com/ping:v1", "digest": "sha256:abc"}],
    });
    let (ci, url) = Ci::serve(Behaviour::CallBack(report)).await?;
    let worker = run_http(&fx, dispatch(&url), WITHIN).await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let events = fx.stored_exactly("flotilla.build.>", 2).await?;
    assert!(
        events[1].subject.starts_with("flotilla.build.succeeded."),
        "{}",
        events[1].subject
    );
    let built = build(&events[1])?;
    assert_eq!(built.log_url, "https://ci.example/runs/7");
    let images: Vec<_> = built
        .images
        .iter()
        .map(|i| (i.r#ref.as_str(), i.digest.as_str()))
        .collect();
    assert_eq!(images, vec![("registry.example.com/ping:v1", "sha256:abc")]);

    let started = ci.started();
    let (path, auth, body) = started.first().context("the CI system was asked")?;
    assert_eq!(path, "/repos/acme/ping/dispatches");
    assert_eq!(auth, "Bearer ci-token");
    assert_eq!(body["ref"], "refs/heads/main");
    assert_eq!(body["inputs"]["sha"], SHA);
    assert_eq!(body["inputs"]["version"], built.version.as_str());
    assert_eq!(
        body["inputs"]["pipeline_image"],
        format!("registry/apps/ping-pipeline:{}", built.version).as_str()
    );
    assert_eq!(
        *ci.callbacks.lock().expect("not poisoned"),
        vec![401, 202],
        "a wrong token is refused, the run's own is taken"
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_failure_reported_on_the_callback_fails_the_build_with_its_message() -> Result<()> {
    let fx = Fixture::start().await?;
    let report =
        json!({"status": "failed", "message": "cargo build\nerror[E0308]: mismatched types"});
    let (_ci, url) = Ci::serve(Behaviour::CallBack(report)).await?;
    let worker = run_http(&fx, dispatch(&url), WITHIN).await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let failed = fx.build_failed().await?;
    assert!(
        failed
            .reason
            .starts_with("the CI run reported failure: cargo build"),
        "{}",
        failed.reason
    );
    assert!(
        failed.reason.contains("error[E0308]: mismatched types"),
        "{}",
        failed.reason
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_ci_run_that_never_calls_back_fails_the_build_at_its_timeout() -> Result<()> {
    let fx = Fixture::start().await?;
    let (ci, url) = Ci::serve(Behaviour::Silent).await?;
    let worker = run_http(&fx, dispatch(&url), Duration::from_secs(1)).await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let failed = fx.build_failed().await?;
    assert!(
        failed.reason.starts_with("timed out after 1s"),
        "{}",
        failed.reason
    );
    assert_eq!(ci.started().len(), 1, "the run was requested");
    worker.shutdown().await
}

#[tokio::test]
async fn a_ci_system_refusing_the_run_fails_the_build_with_its_answer() -> Result<()> {
    let fx = Fixture::start().await?;
    let (_ci, url) = Ci::serve(Behaviour::Refuse).await?;
    let worker = run_http(&fx, dispatch(&url), WITHIN).await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let failed = fx.build_failed().await?;
    assert!(failed.reason.contains("422"), "{}", failed.reason);
    assert!(
        failed.reason.contains("workflow_dispatch"),
        "{}",
        failed.reason
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_polled_ci_run_is_read_until_it_ends() -> Result<()> {
    let fx = Fixture::start().await?;
    let (ci, url) = Ci::serve(Behaviour::Workflow("Failed")).await?;
    let template = json!({
        "url": format!("{url}/repos/{{{{repo}}}}/dispatches"),
        "body": {"inputs": {"sha": "{{sha}}"}},
        "result": {"poll": {
            "url": format!("{url}/workflows/{{{{id}}}}"), "id": "/metadata/name",
            "status": "/status/phase", "message": "/status/message", "interval": "50ms"
        }}
    });
    let worker = run_http(&fx, template, WITHIN).await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let failed = fx.build_failed().await?;
    assert!(
        failed.reason.starts_with("the CI run ended Failed"),
        "{}",
        failed.reason
    );
    assert!(
        failed.reason.contains("step functional-tests: exit 1"),
        "{}",
        failed.reason
    );
    assert!(
        *ci.status_reads.lock().expect("not poisoned") >= 3,
        "read until it ended"
    );
    worker.shutdown().await
}

#[tokio::test]
async fn a_ci_system_that_is_busy_at_first_is_asked_again() -> Result<()> {
    let fx = Fixture::start().await?;
    let (ci, url) = Ci::serve(Behaviour::BusyOnce(json!({"status": "succeeded"}))).await?;
    let worker = run_http(&fx, dispatch(&url), WITHIN).await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let succeeded = fx.stored("flotilla.build.succeeded.>", 1, WITHIN).await?;
    assert_eq!(succeeded.len(), 1);
    assert_eq!(ci.started().len(), 2, "asked again after the 503");
    worker.shutdown().await
}

#[tokio::test]
async fn a_callback_that_reaches_another_replica_is_handed_to_the_one_whose_run_waits() -> Result<()>
{
    let fx = Fixture::start().await?;
    let report = json!({"status": "succeeded", "message": "built elsewhere"});
    let (ci, url) = Ci::serve(Behaviour::CallBack(report)).await?;

    // Replica B serves callbacks but handles no event; the Service sends every callback to it.
    let port_b = flotilla_testing::free_port();
    let settings = |callback_port: u16| -> Result<Settings> {
        Ok(Settings {
            build: Template::parse(&dispatch(&url).to_string()).map_err(anyhow::Error::msg)?,
            test: None,
            token: Some("ci-token".into()),
            callback_url: Some(format!("http://127.0.0.1:{callback_port}")),
            callback_secret: None,
        })
    };
    let config_b = Config::with_backend(BackendConfig::Http(settings(port_b)?));
    let (runner_b, routes_b) = builder_trigger::runner(&config_b).await?;
    let mut replica_b = Process::new(fx.bus.clone());
    runner_b.attach(fx.bus.client(), replica_b.tasks()).await;
    replica_b.route(routes_b);
    let replica_b =
        flotilla_testing::serve_on(replica_b, format!("127.0.0.1:{port_b}").parse()?).await?;

    // Replica A runs the build, and tells the CI system to call back through the Service (B).
    let mut config_a = Config::with_backend(BackendConfig::Http(settings(port_b)?));
    config_a.build_timeout = WITHIN;
    let (runner_a, _routes_a) = builder_trigger::runner(&config_a).await?;
    let worker = fx
        .run_handler(BuilderTrigger::new(
            config_a,
            runner_a,
            fx.registry().await?,
        ))
        .await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let events = fx.stored_exactly("flotilla.build.>", 2).await?;
    assert!(
        events[1].subject.starts_with("flotilla.build.succeeded."),
        "{}",
        events[1].subject
    );
    assert_eq!(
        *ci.callbacks.lock().expect("not poisoned"),
        vec![401, 202],
        "the waiting replica checked the token of each callback B handed it"
    );
    let unknown = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{port_b}/callbacks/builds/no-such-run"
        ))
        .bearer_auth("whatever")
        .json(&json!({"status": "succeeded"}))
        .send()
        .await?;
    assert_eq!(unknown.status().as_u16(), 404, "no replica has that run");
    worker.shutdown().await?;
    replica_b.shutdown().await
}

#[tokio::test]
async fn placeholders_in_the_url_are_percent_encoded_so_a_branch_name_adds_no_parameter()
-> Result<()> {
    let fx = Fixture::start().await?;
    let (ci, url) = Ci::serve(Behaviour::CallBack(json!({"status": "succeeded"}))).await?;
    let mut template = dispatch(&url);
    template["url"] = json!(format!(
        "{url}/repos/{{{{repo}}}}/dispatches?ref={{{{ref}}}}&sha={{{{sha}}}}"
    ));
    let worker = run_http(&fx, template, WITHIN).await?;

    // A fork's branch may be named anything git allows.
    let mut pr = pull_request("opened", 7);
    pr.head_ref = "x?a=b&c#d".into();
    fx.publish(EventType::SourcePullRequest, "acme/ping", &pr)
        .await?;

    fx.stored("flotilla.build.succeeded.>", 1, WITHIN).await?;
    let queries = ci.queries();
    let query = queries.first().context("the CI system was asked")?;
    assert_eq!(
        query,
        &vec![
            ("ref".to_owned(), "refs/heads/x?a=b&c#d".to_owned()),
            ("sha".to_owned(), SHA.to_owned()),
        ],
        "the branch stays one parameter's value"
    );
    worker.shutdown().await
}

#[tokio::test]
async fn the_api_token_never_reaches_a_build_failed_reason_or_log_url() -> Result<()> {
    let fx = Fixture::start().await?;
    let (ci, url) = Ci::serve(Behaviour::Refuse).await?;
    let mut template = dispatch(&url);
    template["url"] = json!(format!(
        "http://user:pa55@{}/repos/{{{{repo}}}}/dispatches?access_token={{{{token}}}}&api_key=literal-key",
        url.trim_start_matches("http://")
    ));
    let worker = run_http(&fx, template, WITHIN).await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let failed = fx.build_failed().await?;
    assert_eq!(
        ci.queries().first().and_then(|q| q.first()).cloned(),
        Some(("access_token".to_owned(), "ci-token".to_owned())),
        "the CI system got the token"
    );
    for secret in ["ci-token", "pa55", "literal-key"] {
        assert!(
            !failed.reason.contains(secret),
            "{secret} in the reason: {}",
            failed.reason
        );
    }
    assert!(failed.reason.contains("422"), "{}", failed.reason);
    assert!(
        failed.reason.contains("access_token=***"),
        "the URL is still named: {}",
        failed.reason
    );
    worker.shutdown().await
}

#[tokio::test]
async fn secrets_in_a_reported_log_url_or_message_are_redacted() -> Result<()> {
    let fx = Fixture::start().await?;
    let report = json!({
        "status": "failed",
        "message": "curl -H 'Authorization: Bearer ci-token' failed",
        "log_url": "https://bot:hunter2@ci.example/runs/7?X-Amz-Signature=abc&page=2",
    });
    let (_ci, url) = Ci::serve(Behaviour::CallBack(report)).await?;
    let worker = run_http(&fx, dispatch(&url), WITHIN).await?;

    fx.publish(EventType::SourcePush, "acme/ping", &push_to_main())
        .await?;

    let failed = fx.build_failed().await?;
    assert_eq!(
        failed.log_url,
        "https://***@ci.example/runs/7?X-Amz-Signature=***&page=2"
    );
    for secret in ["ci-token", "hunter2", "=abc"] {
        assert!(
            !failed.reason.contains(secret),
            "{secret} in the reason: {}",
            failed.reason
        );
    }
    assert!(failed.reason.contains("Bearer ***"), "{}", failed.reason);
    worker.shutdown().await
}
