//! The `flotilla-mannwhitney` judge: for each series, range-queries canary and baseline over the
//! lookback window, runs Mann-Whitney U on the two samples and classifies the canary as Kayenta
//! does (Pass, High, Low; NoData when a side has no samples). The score is the share of judged
//! series that pass, 0–100, and the verdict follows Kayenta's thresholds: `pass` at or above
//! `thresholds.pass`, `fail` at or below `thresholds.marginal`, `marginal` between.
//!
//! The measurement's value is a map: `{score, verdict, series: {NAME: {classification, pValue,
//! shift, lower, upper, canaryMedian, baselineMedian, canarySamples, baselineSamples}}}`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::duration::parse_go_duration;
use crate::error::ProviderError;
use crate::provider::HttpProvider;
use crate::provider::prometheus::{Endpoint, address, matrix_samples, query, timeout};
use crate::spec::{Direction, JudgedSeries, MannWhitneySpec, Thresholds};
use crate::stats::mann_whitney;
use crate::value::Value;

fn median(xs: &[f64]) -> f64 {
    let mut s: Vec<f64> = xs.iter().copied().filter(|v| !v.is_nan()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Classifies one series from its samples: `Pass`, `High`, `Low` or `NoData`, and whether
/// that classification passes given the direction.
pub fn classify(
    series: &JudgedSeries,
    canary: &[f64],
    baseline: &[f64],
    confidence: f64,
) -> (BTreeMap<String, Value>, Option<bool>) {
    let mut out = BTreeMap::new();
    out.insert("canarySamples".to_string(), Value::Int(canary.len() as i64));
    out.insert(
        "baselineSamples".to_string(),
        Value::Int(baseline.len() as i64),
    );
    let Some(r) = mann_whitney(canary, baseline, confidence) else {
        out.insert("classification".into(), Value::Str("NoData".into()));
        return (out, None);
    };
    let base = median(baseline);
    // The shift the canary may show in the bad direction before it counts (Kayenta's allowed
    // increase / decrease, as a share of the baseline's median).
    let allowed = series.tolerance * if base.is_nan() { 0.0 } else { base.abs() };
    let class = if r.lower > allowed {
        "High"
    } else if r.upper < -allowed {
        "Low"
    } else {
        "Pass"
    };
    let passes = matches!(
        (class, series.direction),
        ("Pass", _) | ("High", Direction::Decrease) | ("Low", Direction::Increase)
    );
    for (k, v) in [
        ("pValue", r.p_value),
        ("u", r.u),
        ("shift", r.shift),
        ("lower", r.lower),
        ("upper", r.upper),
        ("canaryMedian", median(canary)),
        ("baselineMedian", base),
    ] {
        out.insert(k.to_string(), Value::Float(v));
    }
    out.insert("classification".into(), Value::Str(class.into()));
    (out, Some(passes))
}

/// Kayenta's score and verdict over the series that had data.
pub fn score(passes: &[bool], thresholds: &Thresholds) -> (f64, &'static str) {
    let score = 100.0 * passes.iter().filter(|p| **p).count() as f64 / passes.len().max(1) as f64;
    let verdict = if score <= thresholds.marginal {
        "fail"
    } else if score < thresholds.pass {
        "marginal"
    } else {
        "pass"
    };
    (score, verdict)
}

fn secs(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

pub async fn measure(http: &HttpProvider, spec: &MannWhitneySpec) -> Result<Value, ProviderError> {
    let endpoint = Endpoint {
        address: address(&spec.address)?,
        headers: &spec.headers,
        basic_auth: None,
        timeout: timeout(spec.timeout)?,
        insecure: false,
    };
    let lookback = parse_go_duration(&spec.lookback).map_err(ProviderError::Config)?;
    let step = parse_go_duration(&spec.step)
        .map_err(ProviderError::Config)?
        .max(Duration::from_millis(1));
    let end = SystemTime::now();
    let start = end - lookback;
    let mut series = BTreeMap::new();
    let mut passes = Vec::new();
    for s in &spec.metrics {
        let mut samples = Vec::with_capacity(2);
        for q in [&s.canary, &s.baseline] {
            let form = [
                ("query", q.clone()),
                ("start", secs(start)),
                ("end", secs(end)),
                ("step", format!("{}", step.as_secs_f64())),
            ];
            samples.push(matrix_samples(
                &query(http, &endpoint, "query_range", &form).await?,
            )?);
        }
        let (detail, passed) = classify(s, &samples[0], &samples[1], spec.confidence);
        if let Some(p) = passed {
            passes.push(p);
        }
        series.insert(s.name.clone(), Value::Map(detail));
    }
    if passes.is_empty() {
        return Err(ProviderError::Response(
            "no samples for canary or baseline in any series".into(),
        ));
    }
    let (score, verdict) = score(&passes, &spec.thresholds);
    let mut out = BTreeMap::new();
    out.insert("score".to_string(), Value::Float(score));
    out.insert("verdict".to_string(), Value::Str(verdict.into()));
    out.insert("series".to_string(), Value::Map(series));
    Ok(Value::Map(out))
}
