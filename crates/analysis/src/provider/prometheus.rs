//! Argo's Prometheus provider (metricproviders/prometheus/prometheus.go): an instant query (or a
//! range query with `rangeQuery`) on `/api/v1/query`, POSTed as a form the way client_golang
//! does, with the template's address, timeout (default 30 s), headers and basic auth.
//! Scalars become a float; vectors and matrices become the list of their sample values.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::duration::parse_go_duration;
use crate::error::ProviderError;
use crate::provider::{HttpProvider, request_error};
use crate::spec::{BasicAuth, Header, PrometheusSpec};
use crate::value::Value;

/// Where the address comes from when a template has none, as in Argo.
pub const ADDRESS_ENV: &str = "ARGO_ROLLOUTS_PROMETHEUS_ADDRESS";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to query.
pub(crate) struct Endpoint<'a> {
    pub address: String,
    pub headers: &'a [Header],
    pub basic_auth: Option<&'a BasicAuth>,
    pub timeout: Duration,
    pub insecure: bool,
}

/// Argo's `NewPrometheusAPI` checks: an address that is a URL, from the template or the
/// environment. These surface as measurement errors, as in Argo.
pub(crate) fn address(configured: &str) -> Result<String, ProviderError> {
    let address = if !configured.is_empty() {
        configured.to_string()
    } else {
        match std::env::var(ADDRESS_ENV) {
            Ok(a) if !a.is_empty() => a,
            _ => {
                return Err(ProviderError::Config(
                    "prometheus address is not configured".into(),
                ));
            }
        }
    };
    match reqwest::Url::parse(&address) {
        Ok(u) if u.has_host() => Ok(address),
        _ => Err(ProviderError::Config(
            "prometheus address is not is url format".into(),
        )),
    }
}

pub(crate) fn timeout(seconds: Option<i64>) -> Result<Duration, ProviderError> {
    match seconds {
        None => Ok(DEFAULT_TIMEOUT),
        Some(s) if s < 0 => Err(ProviderError::Config(
            "prometheus timeout should not be negative".into(),
        )),
        Some(s) => Ok(Duration::from_secs(s as u64)),
    }
}

pub async fn measure(http: &HttpProvider, spec: &PrometheusSpec) -> Result<Value, ProviderError> {
    let auth = &spec.authentication.basic_auth;
    if !auth.username.is_empty() || !auth.password.is_empty() {
        if auth.username.is_empty() {
            return Err(ProviderError::Config(
                "missing mandatory parameter in metric for basic auth setup: username".into(),
            ));
        }
        if auth.password.is_empty() {
            return Err(ProviderError::Config(
                "missing mandatory parameter in metric for basic auth setup: password".into(),
            ));
        }
    }
    let endpoint = Endpoint {
        address: address(&spec.address)?,
        headers: &spec.headers,
        basic_auth: (!auth.username.is_empty()).then_some(auth),
        timeout: timeout(spec.timeout)?,
        insecure: spec.insecure,
    };
    let data = match &spec.range_query {
        None => {
            let now = unix_seconds(SystemTime::now());
            query(
                http,
                &endpoint,
                "query",
                &[("query", spec.query.clone()), ("time", now)],
            )
            .await?
        }
        Some(r) => {
            let start = eval_time(&r.start).map_err(|e| {
                ProviderError::Config(format!("failed to parse rangeQuery.start as time: {e}"))
            })?;
            let end = eval_time(&r.end).map_err(|e| {
                ProviderError::Config(format!("failed to parse rangeQuery.end as time: {e}"))
            })?;
            let step = parse_go_duration(&r.step).map_err(|e| {
                ProviderError::Config(format!("failed to parse rangeQuery.step as duration: {e}"))
            })?;
            let form = [
                ("query", spec.query.clone()),
                ("start", unix_seconds(start)),
                ("end", unix_seconds(end)),
                ("step", format!("{}", step.as_secs_f64())),
            ];
            query(http, &endpoint, "query_range", &form).await?
        }
    };
    to_value(&data)
}

fn unix_seconds(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

/// The time expressions range queries use in practice: `now()`, `now() - duration("5m")`.
/// (Argo evaluates them with expr's date functions; other forms are refused.)
fn eval_time(text: &str) -> Result<SystemTime, String> {
    let t = text.trim();
    let now = SystemTime::now();
    if t == "now()" || t.is_empty() {
        return Ok(now);
    }
    let rest = t.strip_prefix("now()").ok_or_else(|| format!("unsupported time expression {text:?} (now() and now() - duration(\"...\") are supported)"))?.trim();
    let (sign, rest) = match rest.chars().next() {
        Some('-') => (-1, &rest[1..]),
        Some('+') => (1, &rest[1..]),
        _ => return Err(format!("unsupported time expression {text:?}")),
    };
    let arg = rest
        .trim()
        .strip_prefix("duration(")
        .and_then(|r| r.strip_suffix(')'))
        .map(|a| a.trim().trim_matches(|c| c == '"' || c == '\''))
        .ok_or_else(|| format!("unsupported time expression {text:?}"))?;
    let d = parse_go_duration(arg)?;
    Ok(if sign < 0 { now - d } else { now + d })
}

/// POSTs a form to `/api/v1/<endpoint>`, falling back to GET where POST is not allowed (as
/// client_golang does), and returns the `data` object of a successful answer.
pub(crate) async fn query(
    http: &HttpProvider,
    endpoint: &Endpoint<'_>,
    path: &str,
    form: &[(&str, String)],
) -> Result<serde_json::Value, ProviderError> {
    let url = format!("{}/api/v1/{path}", endpoint.address.trim_end_matches('/'));
    let client = http.client(endpoint.insecure);
    let build = |post: bool| {
        let mut req = if post {
            client.post(&url).form(form)
        } else {
            client.get(&url).query(form)
        };
        req = req.timeout(endpoint.timeout);
        for h in endpoint.headers {
            req = req.header(h.key.as_str(), h.value.as_str());
        }
        if let Some(a) = endpoint.basic_auth {
            req = req.basic_auth(&a.username, Some(&a.password));
        }
        req
    };
    let mut resp = build(true)
        .send()
        .await
        .map_err(|e| request_error("POST", &url, &e))?;
    let status = resp.status().as_u16();
    if status == 405 || status == 501 {
        resp = build(false)
            .send()
            .await
            .map_err(|e| request_error("GET", &url, &e))?;
    }
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|e| request_error("POST", &url, &e))?;
    let doc: Result<serde_json::Value, _> = serde_json::from_slice(&body);
    // client_golang: an error envelope is `<errorType>: <error>`, whatever the status code.
    if let Ok(doc) = &doc
        && doc.get("status").and_then(|s| s.as_str()) == Some("error")
    {
        let kind = doc
            .get("errorType")
            .and_then(|s| s.as_str())
            .unwrap_or("unknown");
        let msg = doc.get("error").and_then(|s| s.as_str()).unwrap_or("");
        return Err(ProviderError::Response(format!("{kind}: {msg}")));
    }
    if !(200..300).contains(&status) {
        let kind = if status >= 500 {
            "server_error: server error"
        } else {
            "client_error: client error"
        };
        return Err(ProviderError::Response(format!("{kind}: {status}")));
    }
    let doc = doc.map_err(|e| ProviderError::Response(format!("bad_response: {e}")))?;
    doc.get("data")
        .cloned()
        .ok_or_else(|| ProviderError::Response("bad_response: no data in response".into()))
}

/// A sample value: Prometheus writes them as strings, `"NaN"` and `"+Inf"` included.
fn sample(v: &serde_json::Value) -> Result<f64, ProviderError> {
    let text = v
        .as_array()
        .and_then(|pair| pair.get(1))
        .and_then(|s| s.as_str())
        .ok_or_else(|| ProviderError::Response(format!("bad_response: malformed sample {v}")))?;
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        t => t.parse().map_err(|_| {
            ProviderError::Response(format!("bad_response: sample value {t:?} is not a number"))
        }),
    }
}

/// Argo's `processResponse`: scalar → float64; vector → []float64 of each sample's value;
/// matrix → []float64 of every value of every series, in order; anything else is an error.
pub(crate) fn to_value(data: &serde_json::Value) -> Result<Value, ProviderError> {
    let kind = data
        .get("resultType")
        .and_then(|k| k.as_str())
        .unwrap_or("");
    let result = data
        .get("result")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let series = || result.as_array().cloned().unwrap_or_default();
    match kind {
        "scalar" => Ok(Value::Float(sample(&result)?)),
        // A native-histogram sample has no float value; client_golang leaves it 0.
        "vector" => Ok(Value::Floats(
            series()
                .iter()
                .map(|s| s.get("value").map_or(Ok(0.0), sample))
                .collect::<Result<_, _>>()?,
        )),
        "matrix" => {
            let mut out = Vec::new();
            for s in series() {
                for v in s
                    .get("values")
                    .and_then(|v| v.as_array())
                    .cloned()
                    .unwrap_or_default()
                {
                    out.push(sample(&v)?);
                }
            }
            Ok(Value::Floats(out))
        }
        _ => Err(ProviderError::Response(
            "Prometheus metric type not supported".into(),
        )),
    }
}

/// Samples of every series of a range query, flattened (the judge's input).
pub(crate) fn matrix_samples(data: &serde_json::Value) -> Result<Vec<f64>, ProviderError> {
    match to_value(data)? {
        Value::Floats(x) => Ok(x),
        Value::Float(x) => Ok(vec![x]),
        _ => Ok(Vec::new()),
    }
}
