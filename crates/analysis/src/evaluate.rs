//! A measurement's value judged by the metric's conditions: Argo's `EvaluateResult`
//! (utils/evaluate/evaluate.go).

use crate::metric::Metric;
use crate::phase::Phase;
use crate::value::Value;

fn is_nil_or_empty(v: &Value) -> bool {
    match v {
        Value::Nil => true,
        Value::Floats(x) => x.is_empty(),
        Value::Array(x) => x.is_empty(),
        _ => false,
    }
}

fn eval_error(kind: &str, source: &str, result: &Value, err: String) -> String {
    if is_nil_or_empty(result) {
        format!(
            "could not evaluate {kind} \"{source}\": metric result is nil or empty: no data returned from the metric provider"
        )
    } else {
        format!("could not evaluate {kind} \"{source}\": {err}")
    }
}

/// Successful / Failed / Inconclusive, or `Err` (the measurement is an Error) when a condition
/// cannot be evaluated. Without conditions every value is Successful; with only one, the
/// other is its negation; with both, neither true is Inconclusive and failure wins over
/// success.
pub fn evaluate_result(metric: &Metric, result: &Value) -> Result<Phase, String> {
    let success = match &metric.success_condition {
        Some(c) => Some(
            c.program
                .eval_condition(result)
                .map_err(|e| eval_error("successCondition", &c.source, result, e))?,
        ),
        None => None,
    };
    let failure = match &metric.failure_condition {
        Some(c) => Some(
            c.program
                .eval_condition(result)
                .map_err(|e| eval_error("failureCondition", &c.source, result, e))?,
        ),
        None => None,
    };
    let (success, failure) = match (success, failure) {
        (None, None) => return Ok(Phase::Successful),
        (Some(s), None) => (s, !s),
        (None, Some(f)) => (!f, f),
        (Some(s), Some(f)) => (s, f),
    };
    Ok(if failure {
        Phase::Failed
    } else if !success {
        Phase::Inconclusive
    } else {
        Phase::Successful
    })
}
