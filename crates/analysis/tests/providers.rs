//! The HTTP providers against local servers on loopback answering with Prometheus API
//! payload shapes and web metric bodies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use flotilla_analysis::run::{Provider, RunOptions, run};
use flotilla_analysis::{HttpProvider, Phase, Template, Value};

#[derive(Debug, Clone, Default)]
struct Seen {
    method: String,
    path: String,
    query: String,
    body: String,
    headers: Vec<(String, String)>,
}

type Answer = Arc<dyn Fn(&Seen) -> (StatusCode, String) + Send + Sync>;

#[derive(Clone)]
struct Server {
    seen: Arc<Mutex<Vec<Seen>>>,
    answer: Answer,
    delay: Duration,
}

async fn handle(
    State(s): State<Server>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let seen = Seen {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        body: String::from_utf8_lossy(&body).into_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
    };
    s.seen.lock().expect("lock").push(seen.clone());
    tokio::time::sleep(s.delay).await;
    (s.answer)(&seen)
}

/// A server on a random loopback port; returns its base URL and what it saw.
async fn serve(
    delay: Duration,
    answer: impl Fn(&Seen) -> (StatusCode, String) + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = Server {
        seen: seen.clone(),
        answer: Arc::new(answer),
        delay,
    };
    let app = Router::new().fallback(handle).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

fn ok(body: &str) -> (StatusCode, String) {
    (StatusCode::OK, body.to_string())
}

const VECTOR: &str = r#"{"status":"success","data":{"resultType":"vector","result":[
 {"metric":{"__name__":"up","instance":"demo.prometheus.io:9090","job":"prometheus"},"value":[1767436620,"0.99"]},
 {"metric":{"__name__":"up","env":"demo","instance":"demo.prometheus.io:9093","job":"alertmanager"},"value":[1767436620,"1"]}]}}"#;
const SCALAR_NAN: &str =
    r#"{"data":{"result":[1767436620,"NaN"],"resultType":"scalar"},"status":"success"}"#;
const SCALAR_INF: &str =
    r#"{"data":{"result":[1767436620,"+Inf"],"resultType":"scalar"},"status":"success"}"#;
const MATRIX: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[
 {"metric":{"__name__":"up","job":"prometheus"},"values":[[1767433020,"1"],[1767434820,"2"]]},
 {"metric":{"__name__":"up","job":"node"},"values":[[1767433020,"3"]]}]}}"#;
const EMPTY: &str = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
const STRING: &str =
    r#"{"status":"success","data":{"resultType":"string","result":[1767436620,"x"]}}"#;
const NOT_READY: &str = r#"{"error":"TSDB not ready","errorType":"internal","status":"error"}"#;

fn prometheus_metric(address: &str, extra: &str) -> flotilla_analysis::Metric {
    let yaml = format!(
        "kind: AnalysisTemplate\nspec:\n  metrics:\n  - name: m\n    provider:\n      prometheus:\n        address: {address}\n        query: 'sum(rate(x[1m]))'\n{extra}"
    );
    Template::from_yaml(&yaml)
        .expect("template")
        .bind(&[])
        .expect("bind")
        .metrics
        .remove(0)
}

async fn measure(m: &flotilla_analysis::Metric) -> Result<Value, flotilla_analysis::ProviderError> {
    HttpProvider::new().expect("client").measure(m).await
}

#[tokio::test]
async fn prometheus_vector_becomes_its_sample_values_and_sends_headers_and_auth() {
    let (url, seen) = serve(Duration::ZERO, |_| ok(VECTOR)).await;
    let extra = "        headers:\n        - key: X-Scope-OrgID\n          value: tenant_a\n        authentication:\n          basicAuth: {username: u, password: p}\n";
    let v = measure(&prometheus_metric(&url, extra))
        .await
        .expect("value");
    assert_eq!(v, Value::Floats(vec![0.99, 1.0]));
    assert_eq!(v.to_string(), "[0.99,1]");
    let seen = seen.lock().expect("lock")[0].clone();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/api/v1/query")
    );
    assert!(
        seen.body.contains("query=sum%28rate%28x%5B1m%5D%29%29"),
        "{}",
        seen.body
    );
    assert!(seen.body.contains("time="), "{}", seen.body);
    assert!(
        seen.headers
            .contains(&("x-scope-orgid".into(), "tenant_a".into()))
    );
    assert!(
        seen.headers
            .contains(&("authorization".into(), "Basic dTpw".into()))
    );
}

#[tokio::test]
async fn prometheus_scalars_nan_inf_matrix_and_empty_vector() {
    for (body, want) in [
        (SCALAR_INF, "+Inf"),
        (MATRIX, "[1,2,3]"),
        (EMPTY, "[]"),
        (SCALAR_NAN, "NaN"),
    ] {
        let (url, _) = serve(Duration::ZERO, move |_| ok(body)).await;
        let v = measure(&prometheus_metric(&url, "")).await.expect("value");
        assert_eq!(v.to_string(), want);
    }
}

#[tokio::test]
async fn prometheus_errors_become_measurement_errors() {
    let (url, _) = serve(Duration::ZERO, |_| {
        (StatusCode::SERVICE_UNAVAILABLE, NOT_READY.to_string())
    })
    .await;
    let err = measure(&prometheus_metric(&url, ""))
        .await
        .expect_err("error");
    assert_eq!(err.to_string(), "internal: TSDB not ready");
    let (url, _) = serve(Duration::ZERO, |_| ok(STRING)).await;
    let err = measure(&prometheus_metric(&url, ""))
        .await
        .expect_err("error");
    assert_eq!(err.to_string(), "Prometheus metric type not supported");
    let (url, _) = serve(Duration::ZERO, |_| {
        (StatusCode::BAD_GATEWAY, "<html>".into())
    })
    .await;
    let err = measure(&prometheus_metric(&url, ""))
        .await
        .expect_err("error");
    assert_eq!(err.to_string(), "server_error: server error: 502");
    let err = measure(&prometheus_metric("not-a-url", ""))
        .await
        .expect_err("error");
    assert_eq!(err.to_string(), "prometheus address is not is url format");
}

#[tokio::test]
async fn prometheus_falls_back_to_get_where_post_is_not_allowed() {
    let (url, seen) = serve(Duration::ZERO, |s| {
        if s.method == "POST" {
            (StatusCode::METHOD_NOT_ALLOWED, String::new())
        } else {
            ok(VECTOR)
        }
    })
    .await;
    let v = measure(&prometheus_metric(&url, "")).await.expect("value");
    assert_eq!(v, Value::Floats(vec![0.99, 1.0]));
    let seen = seen.lock().expect("lock");
    assert_eq!(seen[1].method, "GET");
    assert!(seen[1].query.contains("query="), "{}", seen[1].query);
}

#[tokio::test]
async fn prometheus_timeout_from_the_template_is_an_error() {
    let (url, _) = serve(Duration::from_secs(5), |_| ok(VECTOR)).await;
    let err = measure(&prometheus_metric(&url, "        timeout: 1\n"))
        .await
        .expect_err("timeout");
    assert!(err.to_string().contains("Client.Timeout"), "{err}");
}

#[tokio::test]
async fn prometheus_range_query_sends_start_end_and_step() {
    let (url, seen) = serve(Duration::ZERO, |_| ok(MATRIX)).await;
    let extra = "        rangeQuery:\n          start: 'now() - duration(\"5m\")'\n          end: 'now()'\n          step: 1m\n";
    let v = measure(&prometheus_metric(&url, extra))
        .await
        .expect("value");
    assert_eq!(v, Value::Floats(vec![1.0, 2.0, 3.0]));
    let seen = seen.lock().expect("lock")[0].clone();
    assert_eq!(seen.path, "/api/v1/query_range");
    assert!(
        seen.body.contains("step=60") && seen.body.contains("start=") && seen.body.contains("end="),
        "{}",
        seen.body
    );
}

fn web_metric(url: &str, extra: &str) -> flotilla_analysis::Metric {
    let yaml = format!(
        "kind: AnalysisTemplate\nspec:\n  metrics:\n  - name: m\n    provider:\n      web:\n        url: {url}\n{extra}"
    );
    Template::from_yaml(&yaml)
        .expect("template")
        .bind(&[])
        .expect("bind")
        .metrics
        .remove(0)
}

#[tokio::test]
async fn web_json_path_plain_text_and_status() {
    let body = r#"{"data":{"ok":true,"successPercent":0.95},"status":"healthy"}"#;
    let (url, seen) = serve(Duration::ZERO, move |s| match s.path.as_str() {
        "/json" => ok(body),
        "/text" => ok("I am OK"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "boom".into()),
    })
    .await;
    let extra = "        jsonPath: \"{$.data.ok}\"\n        headers:\n        - key: Authorization\n          value: Bearer t\n";
    assert_eq!(
        measure(&web_metric(&format!("{url}/json"), extra)).await,
        Ok(Value::Bool(true))
    );
    assert_eq!(
        seen.lock().expect("lock")[0]
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str()),
        Some("Bearer t")
    );
    let v = measure(&web_metric(
        &format!("{url}/json"),
        "        jsonPath: \"{$.data}\"\n",
    ))
    .await
    .expect("value");
    assert_eq!(v.to_string(), r#"{"ok":true,"successPercent":0.95}"#);
    assert_eq!(
        measure(&web_metric(&format!("{url}/text"), "")).await,
        Ok(Value::Str("I am OK".into()))
    );
    let err = measure(&web_metric(&format!("{url}/fail"), ""))
        .await
        .expect_err("status");
    assert_eq!(err.to_string(), "received non 2xx response code: 500");
    let err = measure(&web_metric(
        &format!("{url}/json"),
        "        jsonPath: \"{$.data.missing}\"\n",
    ))
    .await
    .expect_err("path");
    assert_eq!(
        err.to_string(),
        "Could not find JSONPath in body: missing is not found"
    );
}

#[tokio::test]
async fn web_json_body_is_posted_and_get_with_a_body_is_refused() {
    let (url, seen) = serve(Duration::ZERO, |_| ok(r#"{"status":"ok"}"#)).await;
    let extra = "        method: POST\n        jsonBody:\n          service: checkout\n        jsonPath: \"{$.status}\"\n";
    assert_eq!(
        measure(&web_metric(&url, extra)).await,
        Ok(Value::Str("ok".into()))
    );
    let s = seen.lock().expect("lock")[0].clone();
    assert_eq!(s.method, "POST");
    assert_eq!(s.body, r#"{"service":"checkout"}"#);
    assert!(
        s.headers
            .contains(&("content-type".into(), "application/json".into()))
    );
    let err = measure(&web_metric(&url, "        body: x\n"))
        .await
        .expect_err("GET with body");
    assert_eq!(
        err.to_string(),
        "Body/JSONBody can only be used with POST or PUT WebMetric Method types"
    );
}

#[tokio::test]
async fn a_template_runs_end_to_end_against_prometheus() {
    let (url, _) = serve(Duration::ZERO, |_| ok(VECTOR)).await;
    let yaml = "kind: AnalysisTemplate\nspec:\n  args:\n  - name: address\n  metrics:\n  - name: success-rate\n    successCondition: result[0] >= 0.95\n    provider:\n      prometheus:\n        address: '{{args.address}}'\n        query: up\n  - name: health\n    successCondition: result == \"healthy\"\n    provider:\n      web:\n        url: '{{args.address}}/health'\n        jsonPath: \"{$.status}\"\n".to_string();
    let (web, _) = serve(Duration::ZERO, |_| ok(r#"{"status":"healthy"}"#)).await;
    let yaml = yaml.replace("'{{args.address}}/health'", &format!("'{web}/health'"));
    let analysis = Template::from_yaml(&yaml)
        .expect("template")
        .bind(&[("address".into(), url)])
        .expect("bind");
    let provider = HttpProvider::new().expect("client");
    let verdict = run(&analysis, &provider, RunOptions::default(), &mut |_| {}).await;
    assert_eq!(verdict.phase, Phase::Successful, "{verdict:?}");
    assert_eq!(
        verdict.metrics[0].measurements[0].value.as_deref(),
        Some("[0.99,1]")
    );
    assert_eq!(
        verdict.metrics[1].measurements[0].value.as_deref(),
        Some("\"healthy\"")
    );
}

/// A range-query answer whose samples depend on the query: canary or baseline.
fn series(values: &[f64]) -> String {
    let pts: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("[{},\"{v}\"]", 1767433020 + i * 15))
        .collect();
    format!(
        r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{}},"values":[{}]}}]}}}}"#,
        pts.join(",")
    )
}

#[tokio::test]
async fn mann_whitney_judge_fails_a_slower_canary_and_passes_an_equal_one() {
    let baseline: Vec<f64> = (0..20).map(|i| 100.0 + (i % 5) as f64).collect();
    let slow: Vec<f64> = baseline.iter().map(|v| v + 40.0).collect();
    let (b1, s1) = (series(&baseline), series(&slow));
    let (url, seen) = serve(Duration::ZERO, move |s| {
        if s.body.contains("canary") {
            ok(&s1)
        } else {
            ok(&b1)
        }
    })
    .await;
    let yaml = format!(
        "kind: AnalysisTemplate\nspec:\n  metrics:\n  - name: judge\n    provider:\n      flotilla-mannwhitney:\n        address: {url}\n        lookback: 5m\n        step: 15s\n        metrics:\n        - name: latency\n          canary: latency{{track=\"canary\"}}\n          baseline: latency{{track=\"stable\"}}\n          direction: increase\n"
    );
    let analysis = Template::from_yaml(&yaml)
        .expect("template")
        .bind(&[])
        .expect("bind");
    let provider = HttpProvider::new().expect("client");
    let verdict = run(&analysis, &provider, RunOptions::default(), &mut |_| {}).await;
    assert_eq!(verdict.phase, Phase::Failed, "{verdict:?}");
    let value = verdict.metrics[0].measurements[0]
        .value
        .clone()
        .unwrap_or_default();
    assert!(
        value.contains("\"classification\":\"High\"") && value.contains("\"verdict\":\"fail\""),
        "{value}"
    );
    assert_eq!(seen.lock().expect("lock")[0].path, "/api/v1/query_range");

    let (b2, b3) = (series(&baseline), series(&baseline));
    let (url, _) = serve(Duration::ZERO, move |s| {
        if s.body.contains("canary") {
            ok(&b2)
        } else {
            ok(&b3)
        }
    })
    .await;
    let analysis = Template::from_yaml(&yaml.replace(&yaml_address(&yaml), &url))
        .expect("template")
        .bind(&[])
        .expect("bind");
    let verdict = run(&analysis, &provider, RunOptions::default(), &mut |_| {}).await;
    assert_eq!(verdict.phase, Phase::Successful, "{verdict:?}");
}

fn yaml_address(yaml: &str) -> String {
    yaml.lines()
        .find_map(|l| l.trim().strip_prefix("address: "))
        .unwrap_or_default()
        .to_string()
}
