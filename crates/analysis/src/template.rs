//! `AnalysisTemplate` / `ClusterAnalysisTemplate` (and an `AnalysisRun`'s spec) as users write
//! them, and their binding to argument values into metrics ready to run.
//!
//! Reading is in two steps, like Argo: the YAML is parsed as written (shape errors carry the
//! field and line), then [`Template::bind`] substitutes `{{args.x}}` into each metric and
//! validates the result (Argo's `ResolveMetricArgs` then `ValidateMetrics`).

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use crate::duration::parse_go_duration;
use crate::error::{TemplateError, TemplateErrorKind};
use crate::expr::Program;
use crate::spec::{MannWhitneySpec, PrometheusSpec, WebSpec};
use crate::validate::{check_provider, match_rules, validate_metric, validate_metrics};

pub use crate::metric::{
    Analysis, Condition, DEFAULT_CONSECUTIVE_ERROR_LIMIT, DEFAULT_MEASUREMENT_HISTORY_LIMIT,
    Metric, ProviderSpec,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretKeyRef {
    #[allow(dead_code)]
    name: String,
    #[allow(dead_code)]
    key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValueFrom {
    #[serde(default, rename = "secretKeyRef")]
    secret_key_ref: Option<SecretKeyRef>,
    #[serde(default, rename = "fieldRef")]
    field_ref: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArgDoc {
    name: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default, rename = "valueFrom")]
    value_from: Option<ValueFrom>,
}

/// Kubernetes' `IntOrString`: `count: 5` and `count: "{{args.count}}"` are both valid.
#[derive(Debug, Clone, PartialEq)]
enum IntOrString {
    Int(i64),
    Str(String),
}

// By hand rather than `#[serde(untagged)]`, which buffers the value and loses the line.
impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = IntOrString;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IntOrString, E> {
                Ok(IntOrString::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i64::try_from(v).map(IntOrString::Int).map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderDoc {
    #[serde(default)]
    prometheus: Option<PrometheusSpec>,
    #[serde(default)]
    web: Option<WebSpec>,
    #[serde(default, rename = "flotilla-mannwhitney")]
    mann_whitney: Option<MannWhitneySpec>,
    // Argo's other providers, read only to name them in the error.
    #[serde(default)]
    job: Option<serde_json::Value>,
    #[serde(default)]
    kayenta: Option<serde_json::Value>,
    #[serde(default)]
    datadog: Option<serde_json::Value>,
    #[serde(default, rename = "newRelic")]
    new_relic: Option<serde_json::Value>,
    #[serde(default)]
    wavefront: Option<serde_json::Value>,
    #[serde(default, rename = "cloudWatch")]
    cloud_watch: Option<serde_json::Value>,
    #[serde(default)]
    graphite: Option<serde_json::Value>,
    #[serde(default)]
    influxdb: Option<serde_json::Value>,
    #[serde(default)]
    skywalking: Option<serde_json::Value>,
    #[serde(default)]
    plugin: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricDoc {
    name: String,
    #[serde(default)]
    interval: String,
    #[serde(default, rename = "initialDelay")]
    initial_delay: String,
    #[serde(default)]
    count: Option<IntOrString>,
    #[serde(default, rename = "successCondition")]
    success_condition: String,
    #[serde(default, rename = "failureCondition")]
    failure_condition: String,
    #[serde(default, rename = "failureLimit")]
    failure_limit: Option<IntOrString>,
    #[serde(default, rename = "inconclusiveLimit")]
    inconclusive_limit: Option<IntOrString>,
    #[serde(default, rename = "consecutiveErrorLimit")]
    consecutive_error_limit: Option<IntOrString>,
    #[serde(default, rename = "consecutiveSuccessLimit")]
    consecutive_success_limit: Option<IntOrString>,
    provider: ProviderDoc,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DryRunDoc {
    #[serde(rename = "metricName")]
    metric_name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionDoc {
    #[serde(rename = "metricName")]
    metric_name: String,
    limit: i32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecDoc {
    #[serde(default)]
    args: Vec<ArgDoc>,
    metrics: Vec<MetricDoc>,
    #[serde(default, rename = "dryRun")]
    dry_run: Vec<DryRunDoc>,
    #[serde(default, rename = "measurementRetention")]
    measurement_retention: Vec<RetentionDoc>,
    // Fields of an AnalysisRun spec that do not change a judgement.
    #[serde(default)]
    terminate: bool,
    #[serde(default, rename = "ttlStrategy")]
    ttl_strategy: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
struct MetadataDoc {
    #[serde(default)]
    name: String,
}

#[derive(Debug, Clone, Deserialize)]
struct TemplateDoc {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: Option<MetadataDoc>,
    spec: SpecDoc,
}

/// A parsed template, not yet bound to argument values.
#[derive(Debug, Clone)]
pub struct Template {
    pub kind: String,
    pub name: String,
    args: Vec<ArgDoc>,
    /// Each metric as written, kept raw so `{{args.x}}` can be substituted in any string field.
    raw_metrics: Vec<serde_json::Value>,
    dry_run: Vec<String>,
    retention: Vec<(String, i32)>,
}

fn yaml_error(err: serde_path_to_error::Error<serde_yaml_ng::Error>) -> TemplateError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let line = inner.location().map(|l| l.line());
    // serde_yaml_ng prefixes its own path and position; keep only the cause.
    let mut message = inner.to_string();
    if let Some(idx) = message.find(" at line ") {
        message.truncate(idx);
    }
    if let Some((prefix, rest)) = message.split_once(": ")
        && !path.is_empty()
        && path != "."
        && prefix.contains(path.trim_start_matches('.'))
    {
        message = rest.to_string();
    }
    let field = if path == "." { String::new() } else { path };
    TemplateError {
        kind: TemplateErrorKind::Yaml,
        field,
        line,
        message,
    }
}

impl Template {
    /// Reads one YAML document: an `AnalysisTemplate`, a `ClusterAnalysisTemplate`, or an
    /// `AnalysisRun` (its `spec` has the same fields).
    pub fn from_yaml(text: &str) -> Result<Template, TemplateError> {
        let doc: TemplateDoc =
            serde_path_to_error::deserialize(serde_yaml_ng::Deserializer::from_str(text))
                .map_err(yaml_error)?;
        match doc.kind.as_str() {
            "AnalysisTemplate" | "ClusterAnalysisTemplate" | "AnalysisRun" => {}
            other => {
                return Err(TemplateError::new(
                    TemplateErrorKind::Yaml,
                    "kind",
                    format!(
                        "expected AnalysisTemplate, ClusterAnalysisTemplate or AnalysisRun, got {other:?}"
                    ),
                ));
            }
        }
        // The same text again, untyped: the metrics as written, for substitution.
        let raw: serde_json::Value = serde_yaml_ng::from_str(text)
            .map_err(|e| TemplateError::new(TemplateErrorKind::Yaml, "", e.to_string()))?;
        let raw_metrics = raw
            .pointer("/spec/metrics")
            .and_then(|m| m.as_array())
            .cloned()
            .unwrap_or_default();
        // The typed metrics served to report shape errors with their line; binding re-reads the
        // raw ones after substitution. `terminate` and `ttlStrategy` are accepted and unused.
        let _ = (
            &doc.spec.terminate,
            &doc.spec.ttl_strategy,
            &doc.spec.metrics,
        );
        Ok(Template {
            kind: doc.kind,
            name: doc.metadata.map(|m| m.name).unwrap_or_default(),
            args: doc.spec.args,
            raw_metrics,
            dry_run: doc
                .spec
                .dry_run
                .into_iter()
                .map(|d| d.metric_name)
                .collect(),
            retention: doc
                .spec
                .measurement_retention
                .into_iter()
                .map(|r| (r.metric_name, r.limit))
                .collect(),
        })
    }

    /// Names of the template's arguments, and whether each has a value of its own.
    pub fn args(&self) -> Vec<(String, bool)> {
        self.args
            .iter()
            .map(|a| (a.name.clone(), a.value.is_some()))
            .collect()
    }

    /// Binds argument values (`--arg NAME=VALUE`) over the template's own, substitutes them and
    /// validates every metric. Values for names the template does not declare are ignored, as
    /// Argo's `MergeArgs` ignores them.
    pub fn bind(&self, values: &[(String, String)]) -> Result<Analysis, TemplateError> {
        let args = self.resolve_args(values)?;
        let mut metrics = Vec::with_capacity(self.raw_metrics.len());
        for (i, raw) in self.raw_metrics.iter().enumerate() {
            let field = format!("spec.metrics[{i}]");
            let mut resolved = raw.clone();
            substitute(&mut resolved, &args, &field)?;
            let doc: MetricDoc = serde_path_to_error::deserialize(&resolved).map_err(|e| {
                TemplateError::new(
                    TemplateErrorKind::Yaml,
                    format!("{field}.{}", e.path()),
                    e.into_inner().to_string(),
                )
            })?;
            metrics.push(convert_metric(doc, &field)?);
        }
        validate_metrics(&metrics)?;
        let dry_run = match_rules(
            self.dry_run.iter().map(|n| (n.as_str(), ())),
            &metrics,
            "spec.dryRun",
        )?
        .into_iter()
        .map(|(name, ())| name)
        .collect();
        let retention = match_rules(
            self.retention.iter().map(|(n, l)| (n.as_str(), *l)),
            &metrics,
            "spec.measurementRetention",
        )?
        .into_iter()
        // Argo applies a retention limit only when it is > 0.
        .filter(|(_, limit)| *limit > 0)
        .map(|(name, limit)| (name, limit as usize))
        .collect();
        Ok(Analysis {
            name: self.name.clone(),
            metrics,
            dry_run,
            retention,
        })
    }

    fn resolve_args(
        &self,
        values: &[(String, String)],
    ) -> Result<HashMap<String, String>, TemplateError> {
        let mut out = HashMap::new();
        for (i, arg) in self.args.iter().enumerate() {
            let field = format!("spec.args[{i}]");
            let given = values
                .iter()
                .rev()
                .find(|(n, _)| *n == arg.name)
                .map(|(_, v)| v.clone());
            let value = match (given, &arg.value, &arg.value_from) {
                (Some(v), _, _) => v,
                (None, Some(v), _) => v.clone(),
                (None, None, Some(from)) => {
                    let what = if from.secret_key_ref.is_some() {
                        "valueFrom.secretKeyRef"
                    } else if from.field_ref.is_some() {
                        "valueFrom.fieldRef"
                    } else {
                        "valueFrom"
                    };
                    return Err(TemplateError::new(
                        TemplateErrorKind::Arg,
                        format!("{field}.{what}"),
                        format!(
                            "argument {:?} takes its value from {what}, which is not supported here: pass it with --arg {}=VALUE",
                            arg.name, arg.name
                        ),
                    ));
                }
                (None, None, None) => {
                    return Err(TemplateError::new(
                        TemplateErrorKind::Arg,
                        field,
                        format!(
                            "args.{} was not resolved: argument {:?} has no value",
                            arg.name, arg.name
                        ),
                    ));
                }
            };
            out.insert(format!("args.{}", arg.name), value);
        }
        Ok(out)
    }
}

/// fasttemplate's `{{tag}}` substitution over every string of the metric (Argo substitutes into
/// the metric's JSON text; substituting into each parsed string is the same without escaping).
fn substitute(
    v: &mut serde_json::Value,
    args: &HashMap<String, String>,
    field: &str,
) -> Result<(), TemplateError> {
    match v {
        serde_json::Value::String(s) if s.contains("{{") => {
            *s = substitute_str(s, args)
                .map_err(|m| TemplateError::new(TemplateErrorKind::Arg, field.to_string(), m))?;
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, args, &format!("{field}[{i}]"))?;
            }
        }
        serde_json::Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                substitute(item, args, &format!("{field}.{k}"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn substitute_str(s: &str, args: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("cannot find end tag=\"}}}}\" in {s:?}"))?;
        let tag = &after[..end];
        match args.get(tag.trim()) {
            Some(value) => out.push_str(value),
            None => return Err(format!("failed to resolve {{{{{tag}}}}}")),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn int_field(v: Option<IntOrString>, field: &str) -> Result<Option<i64>, TemplateError> {
    match v {
        None => Ok(None),
        Some(IntOrString::Int(i)) => Ok(Some(i)),
        // Kubernetes' IntValue() reads a non-number as 0; a clear error is kinder.
        Some(IntOrString::Str(s)) => s.trim().parse().map(Some).map_err(|_| {
            TemplateError::new(
                TemplateErrorKind::Field,
                field,
                format!("{s:?} is not an integer"),
            )
        }),
    }
}

fn duration_field(text: &str, field: &str) -> Result<Option<Duration>, TemplateError> {
    if text.is_empty() {
        return Ok(None);
    }
    parse_go_duration(text)
        .map(Some)
        .map_err(|e| TemplateError::new(TemplateErrorKind::Field, field, e))
}

fn condition(text: String, field: &str) -> Result<Option<Condition>, TemplateError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let program = Program::parse(&text).map_err(|e| {
        TemplateError::new(
            TemplateErrorKind::Expression,
            field,
            format!("{e} in {text:?}"),
        )
    })?;
    Ok(Some(Condition {
        source: text,
        program,
    }))
}

fn convert_provider(p: ProviderDoc, field: &str) -> Result<ProviderSpec, TemplateError> {
    let field = format!("{field}.provider");
    let mut found: Vec<(&str, ProviderSpec)> = Vec::new();
    if let Some(s) = p.prometheus {
        found.push(("prometheus", ProviderSpec::Prometheus(s)));
    }
    if let Some(s) = p.web {
        found.push(("web", ProviderSpec::Web(s)));
    }
    if let Some(s) = p.mann_whitney {
        found.push(("flotilla-mannwhitney", ProviderSpec::MannWhitney(s)));
    }
    let others = [
        ("job", p.job.is_some()),
        ("kayenta", p.kayenta.is_some()),
        ("datadog", p.datadog.is_some()),
        ("newRelic", p.new_relic.is_some()),
        ("wavefront", p.wavefront.is_some()),
        ("cloudWatch", p.cloud_watch.is_some()),
        ("graphite", p.graphite.is_some()),
        ("influxdb", p.influxdb.is_some()),
        ("skywalking", p.skywalking.is_some()),
        ("plugin", p.plugin.is_some()),
    ];
    if let Some((name, _)) = others.iter().find(|(_, set)| *set) {
        return Err(TemplateError::new(
            TemplateErrorKind::Provider,
            format!("{field}.{name}"),
            format!(
                "provider {name:?} is not supported (supported: prometheus, web, flotilla-mannwhitney)"
            ),
        ));
    }
    if found.len() > 1 {
        return Err(TemplateError::new(
            TemplateErrorKind::Provider,
            field,
            "multiple providers specified",
        ));
    }
    let (name, spec) = found.pop().ok_or_else(|| {
        TemplateError::new(
            TemplateErrorKind::Provider,
            field.clone(),
            "no provider specified",
        )
    })?;
    check_provider(&spec, &format!("{field}.{name}"))?;
    Ok(spec)
}

fn convert_metric(doc: MetricDoc, field: &str) -> Result<Metric, TemplateError> {
    let f = |sub: &str| format!("{field}.{sub}");
    // The judge's verdict needs no condition of its own: pass is Successful, fail is Failed,
    // marginal is Inconclusive (as Argo's Kayenta provider maps Kayenta's scores).
    let (success, failure) = match (
        &doc.provider.mann_whitney,
        doc.success_condition.trim(),
        doc.failure_condition.trim(),
    ) {
        (Some(_), "", "") => (
            "result.verdict == \"pass\"".to_string(),
            "result.verdict == \"fail\"".to_string(),
        ),
        _ => (doc.success_condition.clone(), doc.failure_condition.clone()),
    };
    let metric = Metric {
        interval: duration_field(&doc.interval, &f("interval"))?,
        initial_delay: duration_field(&doc.initial_delay, &f("initialDelay"))?,
        count: int_field(doc.count, &f("count"))?,
        failure_limit: int_field(doc.failure_limit, &f("failureLimit"))?,
        inconclusive_limit: int_field(doc.inconclusive_limit, &f("inconclusiveLimit"))?,
        consecutive_error_limit: int_field(
            doc.consecutive_error_limit,
            &f("consecutiveErrorLimit"),
        )?,
        consecutive_success_limit: int_field(
            doc.consecutive_success_limit,
            &f("consecutiveSuccessLimit"),
        )?,
        success_condition: condition(success, &f("successCondition"))?,
        failure_condition: condition(failure, &f("failureCondition"))?,
        provider: convert_provider(doc.provider, field)?,
        name: doc.name,
    };
    validate_metric(&metric)
        .map_err(|(sub, msg)| TemplateError::new(TemplateErrorKind::Field, f(sub), msg))?;
    Ok(metric)
}
