//! Argo's checks of a bound template (utils/analysis/factory.go `ValidateMetric`,
//! `ValidateMetrics`; utils/analysis/helpers.go dry-run and retention rules; the provider
//! constructors' refusals), each reporting the field it is about.

use std::collections::HashSet;

use crate::duration::parse_go_duration;
use crate::error::{TemplateError, TemplateErrorKind};
use crate::metric::{Metric, ProviderSpec};

/// What Argo's provider constructors refuse before any request.
pub fn check_provider(spec: &ProviderSpec, field: &str) -> Result<(), TemplateError> {
    let err = |sub: &str, msg: String| {
        let f = if sub.is_empty() {
            field.to_string()
        } else {
            format!("{field}.{sub}")
        };
        Err(TemplateError::new(TemplateErrorKind::Provider, f, msg))
    };
    let auth_unsupported = |a: &crate::spec::Authentication| {
        if a.oauth2.is_some() {
            Some("authentication.oauth2")
        } else if a.sigv4.is_some() {
            Some("authentication.sigv4")
        } else {
            None
        }
    };
    match spec {
        ProviderSpec::Prometheus(p) => {
            if p.timeout.is_some_and(|t| t < 0) {
                return err(
                    "timeout",
                    "prometheus timeout should not be negative".into(),
                );
            }
            if let Some(sub) = auth_unsupported(&p.authentication) {
                return err(sub, "is not supported (basicAuth and headers are)".into());
            }
            if let Some(Err(e)) = p.range_query.as_ref().map(|r| parse_go_duration(&r.step)) {
                return err(
                    "rangeQuery.step",
                    format!("failed to parse rangeQuery.step as duration: {e}"),
                );
            }
        }
        ProviderSpec::Web(w) => {
            if let Some(sub) = auth_unsupported(&w.authentication) {
                return err(sub, "is not supported (headers are)".into());
            }
            if let Err(e) = crate::jsonpath::JsonPath::parse(&w.json_path) {
                return err("jsonPath", e);
            }
            if !matches!(w.method.as_str(), "" | "GET" | "POST" | "PUT") {
                return err(
                    "method",
                    format!("method {:?} is not one of GET, POST, PUT", w.method),
                );
            }
        }
        ProviderSpec::MannWhitney(m) => {
            for (sub, text) in [("lookback", &m.lookback), ("step", &m.step)] {
                if let Err(e) = parse_go_duration(text) {
                    return err(sub, e);
                }
            }
            if !(m.confidence > 0.0 && m.confidence < 1.0) {
                return err("confidence", "must be between 0 and 1".into());
            }
            if m.metrics.is_empty() {
                return err("metrics", "at least one series to judge is needed".into());
            }
            if m.thresholds.marginal > m.thresholds.pass {
                return err("thresholds", "marginal must not be above pass".into());
            }
        }
    }
    Ok(())
}

/// Argo's `ValidateMetric` (utils/analysis/factory.go), with the field each rule is about.
pub fn validate_metric(m: &Metric) -> Result<(), (&'static str, String)> {
    let count = m.count.unwrap_or(0);
    let failure_limit = m.failure_limit();
    let success_limit = m.consecutive_success_limit();
    let inconclusive_limit = m.inconclusive_limit();
    if success_limit < 0 {
        return Err((
            "consecutiveSuccessLimit",
            "consecutiveSuccessLimit must be >= 0".into(),
        ));
    }
    if failure_limit < -1 {
        return Err((
            "failureLimit",
            "failureLimit must be >= 0, or -1 to be disabled".into(),
        ));
    }
    if success_limit == 0 && failure_limit == -1 {
        return Err((
            "failureLimit",
            "failureLimit and consecutiveSuccessLimit cannot both be disabled".into(),
        ));
    }
    if inconclusive_limit < 0 {
        return Err(("inconclusiveLimit", "inconclusiveLimit must be >= 0".into()));
    }
    if m.consecutive_error_limit.is_some_and(|l| l < 0) {
        return Err((
            "consecutiveErrorLimit",
            "consecutiveErrorLimit must be >= 0".into(),
        ));
    }
    if count > 0 {
        if failure_limit >= 0 && count < failure_limit + success_limit {
            return Err((
                "count",
                format!(
                    "count ({count}) must be >= failureLimit + consecutiveSuccessLimit ({failure_limit} + {success_limit}) if both >= 0"
                ),
            ));
        }
        if failure_limit < 0 && count < success_limit {
            return Err(("count", "count must be >= consecutiveSuccessLimit".into()));
        }
        if count < inconclusive_limit {
            return Err(("count", "count must be >= inconclusiveLimit".into()));
        }
    }
    if count > 1 && m.interval.is_none() {
        return Err((
            "interval",
            "interval must be specified when count > 1".into(),
        ));
    }
    Ok(())
}

/// Argo's `ValidateMetrics`: at least one metric, names unique.
pub fn validate_metrics(metrics: &[Metric]) -> Result<(), TemplateError> {
    if metrics.is_empty() {
        return Err(TemplateError::new(
            TemplateErrorKind::Field,
            "spec.metrics",
            "no metrics specified",
        ));
    }
    let mut seen = HashSet::new();
    for (i, m) in metrics.iter().enumerate() {
        if !seen.insert(m.name.as_str()) {
            return Err(TemplateError::new(
                TemplateErrorKind::Field,
                format!("spec.metrics[{i}].name"),
                format!("duplicate name '{}'", m.name),
            ));
        }
    }
    Ok(())
}

/// Argo's `GetDryRunMetrics` / `GetMeasurementRetentionMetrics`: each rule is a regular
/// expression matched *unanchored* against metric names (Go's `regexp.MatchString`), and must
/// match at least one. An invalid expression matches nothing (Argo drops the error), so `*`
/// alone is refused, whatever the docs say; `.*` matches all.
pub fn match_rules<'a, T: Copy>(
    rules: impl Iterator<Item = (&'a str, T)>,
    metrics: &[Metric],
    field: &str,
) -> Result<Vec<(String, T)>, TemplateError> {
    let mut out = Vec::new();
    for (i, (pattern, payload)) in rules.enumerate() {
        let re = regex::Regex::new(pattern).ok();
        let mut matched = 0;
        for m in metrics {
            if re.as_ref().is_some_and(|re| re.is_match(&m.name)) {
                out.push((m.name.clone(), payload));
                matched += 1;
            }
        }
        if matched == 0 {
            return Err(TemplateError::new(
                TemplateErrorKind::Field,
                format!("{field}[{i}].metricName"),
                format!("Rule didn't match any metric name(s): {pattern:?}"),
            ));
        }
    }
    Ok(out)
}
