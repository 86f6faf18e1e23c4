//! The providers' configuration as Argo's `MetricProvider` spells it, plus Flotilla's
//! Mann-Whitney judge. Plain data; the providers that act on it live in `provider`.

use serde::Deserialize;

/// `key`/`value` pairs, as Argo writes HTTP headers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
}

/// Only `basicAuth` is supported; `oauth2` and `sigv4` are read so the error can name them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    #[serde(default, rename = "basicAuth")]
    pub basic_auth: BasicAuth,
    #[serde(default)]
    pub oauth2: Option<serde_json::Value>,
    #[serde(default)]
    pub sigv4: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    #[serde(default)]
    pub start: String,
    #[serde(default)]
    pub end: String,
    #[serde(default)]
    pub step: String,
}

/// Argo's `PrometheusMetric`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSpec {
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub query: String,
    /// Seconds; Argo's default is 30.
    #[serde(default)]
    pub timeout: Option<i64>,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub headers: Vec<Header>,
    #[serde(default)]
    pub authentication: Authentication,
    #[serde(default, rename = "rangeQuery")]
    pub range_query: Option<RangeQuery>,
}

/// Argo's `WebMetric`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSpec {
    #[serde(default)]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: Vec<Header>,
    #[serde(default)]
    pub body: String,
    #[serde(default, rename = "jsonBody")]
    pub json_body: Option<serde_json::Value>,
    /// Seconds; zero or less means Argo's default of 10.
    #[serde(default, rename = "timeoutSeconds")]
    pub timeout_seconds: i64,
    #[serde(default, rename = "jsonPath")]
    pub json_path: String,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub authentication: Authentication,
}

/// Which way a change in the canary is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Higher canary values are bad (latency, error rate).
    #[default]
    Increase,
    /// Lower canary values are bad (throughput, success rate).
    Decrease,
    /// Any significant change is bad.
    Either,
}

/// One compared series of the Mann-Whitney judge.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgedSeries {
    pub name: String,
    /// PromQL range-queried for the canary's samples.
    pub canary: String,
    /// PromQL range-queried for the baseline's samples.
    pub baseline: String,
    #[serde(default)]
    pub direction: Direction,
    /// Share of the baseline's median the canary may move in the bad direction and still pass
    /// (Kayenta's allowed increase/decrease); 0 means any significant move fails.
    #[serde(default)]
    pub tolerance: f64,
}

fn default_pass() -> f64 {
    95.0
}
fn default_marginal() -> f64 {
    75.0
}
fn default_confidence() -> f64 {
    0.95
}
fn default_lookback() -> String {
    "10m".into()
}
fn default_step() -> String {
    "15s".into()
}

/// Kayenta's score thresholds: a score at or above `pass` passes, at or below `marginal` fails,
/// between is marginal.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    #[serde(default = "default_pass")]
    pub pass: f64,
    #[serde(default = "default_marginal")]
    pub marginal: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            pass: default_pass(),
            marginal: default_marginal(),
        }
    }
}

/// `provider: {flotilla-mannwhitney: ...}`: canary against baseline over a lookback window.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MannWhitneySpec {
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub headers: Vec<Header>,
    /// Seconds per range query; 30 like the Prometheus provider.
    #[serde(default)]
    pub timeout: Option<i64>,
    #[serde(default = "default_lookback")]
    pub lookback: String,
    #[serde(default = "default_step")]
    pub step: String,
    /// Confidence level of the interval on the shift between canary and baseline.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    #[serde(default)]
    pub thresholds: Thresholds,
    pub metrics: Vec<JudgedSeries>,
}
