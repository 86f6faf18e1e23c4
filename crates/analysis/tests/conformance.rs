//! Conformance with argo-rollouts' own templates and recorded runs, read from the shared
//! fixtures beside the checkout (`../shared/fixtures`). Skips, saying so, when they are absent.

use std::path::PathBuf;

use flotilla_analysis::evaluate::evaluate_result;
use flotilla_analysis::{Phase, Template, TemplateErrorKind, Value};

fn fixtures() -> Option<PathBuf> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/argo-rollouts");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent", dir.display());
        None
    }
}

fn read(dir: &std::path::Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).expect("fixture readable")
}

/// Documentation fragments that start at `metrics:` become whole templates.
fn as_template(text: &str) -> String {
    if text.contains("kind:") {
        text.to_string()
    } else {
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        format!(
            "kind: AnalysisTemplate\nspec:\n  args:\n  - name: service-name\n    value: svc\n  - name: api-token\n    value: t\n{body}"
        )
    }
}

#[test]
fn the_docs_templates_read_and_bind() {
    let Some(dir) = fixtures() else { return };
    for name in [
        "templates/analysistemplate.prometheus.success-rate.yaml",
        "templates/analysistemplate.prometheus.range-query.yaml",
        "templates/metric.web.jsonpath-ok.yaml",
        "templates/metric.web.jsonpath-successPercent.yaml",
        "templates/metric.web.plain-text.yaml",
    ] {
        let text = as_template(&read(&dir, name));
        let t = Template::from_yaml(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let a = t
            .bind(&[("service-name".into(), "checkout".into())])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!a.metrics.is_empty(), "{name}");
    }
}

#[test]
fn the_examples_read_and_unsupported_providers_are_named() {
    let Some(dir) = fixtures() else { return };
    let text = read(&dir, "examples/analysis-templates.yaml");
    let mut supported = 0;
    let mut refused = 0;
    for doc in text.split("\n---") {
        if !doc.contains("kind: AnalysisTemplate") {
            continue;
        }
        match Template::from_yaml(doc)
            .and_then(|t| t.bind(&[("service-name".into(), "svc".into())]))
        {
            Ok(_) => supported += 1,
            Err(e) => {
                assert_eq!(e.kind, TemplateErrorKind::Provider, "{e}");
                assert!(e.message.contains("is not supported"), "{e}");
                refused += 1;
            }
        }
    }
    assert!(supported + refused > 0);
}

fn parse_value(v: &str) -> Value {
    match v.trim().trim_matches('\'').trim_matches('"') {
        "NaN" => Value::Float(f64::NAN),
        "+Inf" => Value::Float(f64::INFINITY),
        "[]" => Value::Floats(vec![]),
        other => other
            .parse()
            .map(Value::Float)
            .unwrap_or_else(|_| Value::Str(other.into())),
    }
}

/// The "Handling Metric Results" examples: each block's conditions, recorded value and phase.
#[test]
fn nan_inf_and_empty_results_are_judged_as_argo_documents() {
    let Some(dir) = fixtures() else { return };
    let text = read(
        &dir,
        "status/docs-analysisrun-metric-results.NaN-Inf-empty.md",
    );
    let mut checked = 0;
    for block in text.split("```yaml").skip(1) {
        let block = block.split("```").next().unwrap_or_default();
        let field = |key: &str| {
            block
                .lines()
                .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
        };
        let (Some(value), Some(phase)) = (field("value:"), field("phase:")) else {
            continue;
        };
        let mut metric = String::from("kind: AnalysisTemplate\nspec:\n  metrics:\n  - name: m\n");
        for key in ["successCondition:", "failureCondition:"] {
            if let Some(c) = field(key) {
                metric.push_str(&format!("    {key} '{c}'\n"));
            }
        }
        metric.push_str("    provider: {prometheus: {query: q}}\n");
        let m = Template::from_yaml(&metric)
            .expect("template")
            .bind(&[])
            .expect("bind")
            .metrics
            .remove(0);
        let got = evaluate_result(&m, &parse_value(&value)).expect("evaluates");
        assert_eq!(got.to_string(), phase, "{block}");
        checked += 1;
    }
    assert_eq!(checked, 7);
}

/// A recorded AnalysisRun: its measurement re-judged gives the recorded phase. The run predates
/// argo-rollouts#731 (2020-09-26), when web values were strings; since then `{$.completed}`
/// is a bool and `result == "true"` is a type error, which this engine reproduces.
#[test]
fn a_recorded_web_run_is_judged_the_same() {
    let Some(dir) = fixtures() else { return };
    let text = read(&dir, "status/rollout-aborted.analysisrun.web-failed.yaml");
    let m = Template::from_yaml(&text)
        .expect("AnalysisRun reads")
        .bind(&[])
        .expect("bind")
        .metrics
        .remove(0);
    assert_eq!(
        evaluate_result(&m, &Value::Str("false".into())),
        Ok(Phase::Failed)
    );
    let typed = evaluate_result(&m, &Value::Bool(false)).expect_err("bool vs string");
    assert!(
        typed.contains("mismatched types bool and string"),
        "{typed}"
    );
}
