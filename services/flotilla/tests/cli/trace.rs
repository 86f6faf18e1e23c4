//! One trace per change: `flotilla up` exporting to a real OTLP/HTTP receiver (on loopback, in
//! this test) that decodes every span it gets, while a pushed change goes from its webhook
//! through every worker to its canary's verdict and its staging env's teardown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use flotilla_testing::NatsServer;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;

use crate::support::{Cli, eventually};
use crate::up::Up;

/// A span as the receiver got it.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    kind: i32,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
    attributes: HashMap<String, String>,
}

impl Span {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }
}

type Spans = Arc<Mutex<Vec<Span>>>;

/// `POST /v1/traces` as an OpenTelemetry collector answers it (protobuf in, protobuf out);
/// `GET /status` is the app's status page the canary's web analysis reads.
async fn receiver() -> Result<(SocketAddr, Spans)> {
    let spans = Spans::default();
    let app = Router::new()
        .route("/v1/traces", post(collect))
        .with_state(spans.clone())
        .route(
            "/status",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, spans))
}

async fn collect(State(spans): State<Spans>, body: Bytes) -> impl IntoResponse {
    let protobuf = [(header::CONTENT_TYPE, "application/x-protobuf")];
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, protobuf, Vec::new());
    };
    let got = request
        .resource_spans
        .into_iter()
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .map(|span| Span {
            name: span.name,
            kind: span.kind,
            trace_id: span.trace_id,
            span_id: span.span_id,
            parent: span.parent_span_id,
            attributes: span
                .attributes
                .into_iter()
                .filter_map(|kv| Some((kv.key, text(kv.value?.value?))))
                .collect(),
        });
    if let Ok(mut spans) = spans.lock() {
        spans.extend(got);
    }
    let answer = ExportTraceServiceResponse::default().encode_to_vec();
    (StatusCode::OK, protobuf, answer)
}

fn text(value: Value) -> String {
    match value {
        Value::StringValue(s) => s,
        Value::IntValue(i) => i.to_string(),
        Value::BoolValue(b) => b.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn spans_now(spans: &Spans) -> Vec<Span> {
    spans.lock().map(|s| s.clone()).unwrap_or_default()
}

/// Which span publishes a stage's event: the webhook, or a worker handling another event.
enum Cause {
    Webhook,
    Handling(&'static str, &'static str),
}

/// The change's stages as `up` carries them without a cluster, each with what publishes it.
const STAGES: [(&str, Cause); 12] = [
    ("source.push", Cause::Webhook),
    (
        "build.started",
        Cause::Handling("source.push", "builder-trigger"),
    ),
    (
        "build.succeeded",
        Cause::Handling("source.push", "builder-trigger"),
    ),
    (
        "env.requested",
        Cause::Handling("build.succeeded", "env-manager"),
    ),
    // Published by sync-watcher's tracker, after the report, not by a handler.
    (
        "env.ready",
        Cause::Handling("env.requested", "sync-watcher"),
    ),
    (
        "tests.passed",
        Cause::Handling("env.ready", "builder-trigger"),
    ),
    (
        "release.requested",
        Cause::Handling("tests.passed", "env-manager"),
    ),
    (
        "env.teardown.requested",
        Cause::Handling("tests.passed", "env-manager"),
    ),
    // Published by canary-analyzer's supervisor, in the background.
    (
        "canary.step",
        Cause::Handling("release.requested", "canary-analyzer"),
    ),
    (
        "canary.measurement",
        Cause::Handling("release.requested", "canary-analyzer"),
    ),
    (
        "canary.promoted",
        Cause::Handling("release.requested", "canary-analyzer"),
    ),
    // Published by the reaper's sweep once the teardown is confirmed.
    (
        "env.deleted",
        Cause::Handling("env.teardown.requested", "env-manager"),
    ),
];

#[tokio::test]
async fn a_change_is_one_trace_from_its_webhook_through_every_workers_stages() -> Result<()> {
    let (otlp, spans) = receiver().await?;
    let server = NatsServer::start();
    let data = tempfile::tempdir()?;
    let templates = tempfile::tempdir()?;
    std::fs::write(
        templates.path().join("status.yaml"),
        format!(
            r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: status-check
spec:
  args:
  - name: version
  metrics:
  - name: status
    count: 1
    successCondition: result == "ok"
    provider:
      web:
        url: "http://{otlp}/status?version={{{{args.version}}}}"
        jsonPath: "{{$.status}}"
"#
        ),
    )?;
    let cli = Cli::new(&server);
    let endpoint = format!("http://{otlp}");
    let mut up = Up::start(
        &cli,
        data.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("NO_PROXY", "127.0.0.1"),
            ("FLOTILLA_BUILD_COMMAND", "true"),
            ("FLOTILLA_KUBE", "off"),
            ("FLOTILLA_REAP_KUBE", "off"),
            ("FLOTILLA_REAP_SWEEP", "1s"),
            ("FLOTILLA_ANALYSIS", "ping=status-check"),
            (
                "FLOTILLA_ANALYSIS_DIR",
                &templates.path().display().to_string(),
            ),
        ],
    )
    .await?;

    let url = format!("http://127.0.0.1:{}", up.http);
    let secret = data.path().join("secrets/github-webhook-secret");
    let push = [
        "webhook",
        "send",
        "github",
        "push",
        "--url",
        &url,
        "--repo",
        "acme/ping",
        "--branch",
        "main",
    ];
    let secret = secret.display().to_string();
    let sent = cli
        .run_with_env(&push, &[("GITHUB_WEBHOOK_SECRET_FILE", &secret)])
        .await?
        .success()?;
    ensure!(sent.stdout.starts_with("202 "), "{}", sent.stdout);

    let requested = up.line_containing("flotilla.env.requested.").await?;
    let env = requested
        .split_whitespace()
        .find_map(|t| t.strip_prefix("flotilla.env.requested."))
        .context("the env of env.requested")?
        .to_owned();
    // The report comes after sync-watcher handled the request (its span is exported when the
    // handling ended), as a PostSync hook runs after the sync the request started.
    eventually(
        "sync-watcher's handling of env.requested",
        Duration::from_secs(10),
        || {
            let handled = spans_now(&spans).iter().any(|s| {
                s.name == "handle env.requested" && s.attribute("worker") == Some("sync-watcher")
            });
            async move { Ok(handled.then_some(())) }
        },
    )
    .await?;
    let answer = reqwest::Client::new()
        .post(format!("{url}/report/{env}/ping"))
        .json(&serde_json::json!({"status": "succeeded", "message": "synced"}))
        .send()
        .await?;
    ensure!(answer.status().is_success(), "report: {}", answer.status());
    up.lines_containing(
        &[
            &format!("flotilla.env.deleted.{env}"),
            "flotilla.canary.promoted.",
        ],
        &[
            "flotilla.env.failed.",
            "flotilla.tests.failed.",
            "flotilla.canary.aborted.",
        ],
    )
    .await?;
    // Ctrl-C: up stops, and the exporter sends what it holds before the process exits.
    assert_eq!(up.interrupt().await?, Some(0));

    let spans = eventually("every stage's spans", Duration::from_secs(5), || {
        let got = spans_now(&spans);
        let complete = STAGES
            .iter()
            .all(|(stage, _)| got.iter().any(|s| s.name == format!("publish {stage}")));
        async move { Ok(complete.then_some(got)) }
    })
    .await?;
    check_trace(&spans, &env)
}

/// One trace rooted at the webhook; each stage's PRODUCER span a child of the handling of the
/// stage before it, each handling a child of its event's PRODUCER span; the change's
/// attributes on every stage.
fn check_trace(spans: &[Span], env: &str) -> Result<()> {
    let by_id: HashMap<&[u8], &Span> = spans.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    let parent = |span: &Span| by_id.get(span.parent.as_slice()).copied();
    let webhooks: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "webhook github push")
        .collect();
    let [webhook] = webhooks.as_slice() else {
        let names: Vec<_> = spans.iter().map(|s| (&s.name, &s.attributes)).collect();
        bail!("one webhook span, got {webhooks:#?} among {names:#?}");
    };
    assert!(
        webhook.parent.is_empty(),
        "the webhook span is the trace's root"
    );
    assert_eq!(webhook.kind, SpanKind::Server as i32);
    assert_eq!(webhook.attribute("http.response.status_code"), Some("202"));
    let trace = &webhook.trace_id;

    let staged: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name.starts_with("publish ") || s.name.starts_with("handle "))
        .collect();
    for span in &staged {
        assert_eq!(
            &span.trace_id, trace,
            "{} is in another trace: {span:#?}",
            span.name
        );
    }

    let change = spans
        .iter()
        .find(|s| s.name == "publish build.succeeded")
        .and_then(|s| s.attribute("change_id"))
        .context("build.succeeded names the change")?
        .to_owned();
    for (stage, cause) in &STAGES {
        let published: Vec<&&Span> = staged
            .iter()
            .filter(|s| s.name == format!("publish {stage}"))
            .collect();
        assert!(!published.is_empty(), "no span publishes {stage}");
        for span in published {
            assert_eq!(span.kind, SpanKind::Producer as i32, "{stage}");
            assert_eq!(span.attribute("messaging.system"), Some("nats"), "{stage}");
            let from = parent(span).with_context(|| format!("the parent of publish {stage}"))?;
            match cause {
                Cause::Webhook => assert_eq!(from.span_id, webhook.span_id, "{stage}"),
                Cause::Handling(event, worker) => {
                    assert_eq!(from.name, format!("handle {event}"), "publish {stage}");
                    assert_eq!(from.attribute("worker"), Some(*worker), "publish {stage}");
                }
            }
            if *stage != "source.push" {
                assert_eq!(
                    span.attribute("change_id"),
                    Some(change.as_str()),
                    "{stage}"
                );
            }
        }
    }
    for span in staged.iter().filter(|s| s.name.starts_with("handle ")) {
        let event = span.name.trim_start_matches("handle ");
        let from = parent(span).with_context(|| format!("the parent of {}", span.name))?;
        assert_eq!(from.name, format!("publish {event}"), "{span:#?}");
        assert_eq!(span.kind, SpanKind::Consumer as i32, "{}", span.name);
        let by_builder = span.attribute("worker") == Some("builder-trigger");
        if event != "source.push" || by_builder {
            assert_eq!(
                span.attribute("change_id"),
                Some(change.as_str()),
                "{span:#?}"
            );
        }
    }

    let find = |name: &str| staged.iter().find(|s| s.name == name).copied();
    let push = find("publish source.push").context("source.push")?;
    assert_eq!(push.attribute("repo"), Some("acme/ping"));
    let built = find("publish build.succeeded").context("build.succeeded")?;
    assert_eq!(built.attribute("app"), Some("ping"));
    let version = built.attribute("version").context("the version")?;
    assert_eq!(change, format!("ping-{version}"));
    let ready = find("publish env.ready").context("env.ready")?;
    assert_eq!(ready.attribute("env"), Some(env));
    let promoted = find("publish canary.promoted").context("canary.promoted")?;
    assert_eq!(promoted.attribute("release"), Some(change.as_str()));
    Ok(())
}
