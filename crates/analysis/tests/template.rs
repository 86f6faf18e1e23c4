//! Reading templates: args, defaults, validation, and errors that name the field and line.

use flotilla_analysis::template::ProviderSpec;
use flotilla_analysis::{Template, TemplateErrorKind};
use std::time::Duration;

const SUCCESS_RATE: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: success-rate
spec:
  args:
  - name: service-name
  - name: threshold
    value: "0.95"
  metrics:
  - name: success-rate
    interval: 5m
    count: "{{args.count}}"
    successCondition: result[0] >= {{args.threshold}}
    failureLimit: 3
    provider:
      prometheus:
        address: http://prometheus.example.com:9090
        timeout: 40
        headers:
        - key: X-Scope-OrgID
          value: tenant_a
        query: sum(rate(x{service="{{ args.service-name }}"}[5m]))
  - name: once
    provider:
      web:
        url: http://example/{{args.service-name}}
        jsonPath: "{$.data.ok}"
"#;

fn args(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn args_are_substituted_into_every_string_and_intstr_fields_resolve() {
    let yaml = SUCCESS_RATE.replace(
        "  - name: threshold",
        "  - name: count\n    value: \"5\"\n  - name: threshold",
    );
    let t = Template::from_yaml(&yaml).expect("ok");
    let a = t.bind(&args(&[("service-name", "checkout")])).expect("ok");
    let m = &a.metrics[0];
    assert_eq!(m.count, Some(5));
    assert_eq!(m.effective_count(), Some(5));
    assert_eq!(m.interval, Some(Duration::from_secs(300)));
    assert_eq!(m.failure_limit(), 3);
    assert_eq!(
        m.success_condition.as_ref().expect("ok").source,
        "result[0] >= 0.95"
    );
    match &m.provider {
        ProviderSpec::Prometheus(p) => {
            assert_eq!(p.query, "sum(rate(x{service=\"checkout\"}[5m]))");
            assert_eq!(p.timeout, Some(40));
            assert_eq!(p.headers[0].key, "X-Scope-OrgID");
        }
        other => panic!("{other:?}"),
    }
    // Argo's defaults: no interval and no count is one measurement; limits 0, 0 and 4.
    let once = &a.metrics[1];
    assert_eq!(once.effective_count(), Some(1));
    assert_eq!(once.failure_limit(), 0);
    assert_eq!(once.inconclusive_limit(), 0);
    assert_eq!(once.consecutive_error_limit(), 4);
    // A caller's value overrides the template's own.
    let a = t
        .bind(&args(&[("service-name", "x"), ("threshold", "0.5")]))
        .expect("ok");
    assert_eq!(
        a.metrics[0].success_condition.as_ref().expect("ok").source,
        "result[0] >= 0.5"
    );
}

#[test]
fn a_missing_arg_is_an_error_naming_it() {
    let t = Template::from_yaml(SUCCESS_RATE).expect("ok");
    let err = t.bind(&[]).expect_err("an error");
    assert_eq!(err.kind, TemplateErrorKind::Arg);
    assert!(err.to_string().contains("service-name"), "{err}");
    // A tag naming an argument the template does not declare.
    let err = t
        .bind(&args(&[("service-name", "x")]))
        .expect_err("an error");
    assert!(
        err.to_string().contains("failed to resolve {{args.count}}"),
        "{err}"
    );
    assert!(err.field.starts_with("spec.metrics[0].count"), "{err}");
}

#[test]
fn secret_key_ref_args_are_refused_clearly() {
    let yaml = SUCCESS_RATE.replace(
        "  - name: service-name\n",
        "  - name: service-name\n    valueFrom:\n      secretKeyRef:\n        name: s\n        key: k\n",
    );
    let err = Template::from_yaml(&yaml)
        .expect("ok")
        .bind(&[])
        .expect_err("an error");
    assert_eq!(err.field, "spec.args[0].valueFrom.secretKeyRef");
    assert!(err.message.contains("--arg service-name="), "{err}");
}

#[test]
fn broken_yaml_names_the_line() {
    let err =
        Template::from_yaml("kind: AnalysisTemplate\nspec:\n  metrics: [\n").expect_err("an error");
    assert_eq!(err.kind, TemplateErrorKind::Yaml);
    assert!(err.line.is_some(), "{err:?}");
    let yaml = SUCCESS_RATE.replace("failureLimit: 3", "failureLimit: [3]");
    let err = Template::from_yaml(&yaml).expect_err("an error");
    assert_eq!(err.line, Some(16), "{err}");
    assert!(err.field.contains("metrics[0].failureLimit"), "{err}");
    let yaml = SUCCESS_RATE.replace("successCondition", "sucessCondition");
    let err = Template::from_yaml(&yaml).expect_err("an error");
    assert!(err.message.contains("sucessCondition"), "{err}");
    assert_eq!(err.line, Some(15), "{err}");
}

#[test]
fn unknown_provider_and_bad_expression_name_the_field() {
    let yaml = SUCCESS_RATE.replace("      web:\n        url: http://example/{{args.service-name}}\n        jsonPath: \"{$.data.ok}\"", "      job:\n        spec: {}");
    let yaml = yaml.replace("    count: \"{{args.count}}\"\n", "");
    let err = Template::from_yaml(&yaml)
        .expect("ok")
        .bind(&args(&[("service-name", "x")]))
        .expect_err("an error");
    assert_eq!(err.kind, TemplateErrorKind::Provider, "{err}");
    assert_eq!(err.field, "spec.metrics[1].provider.job");
    let yaml = SUCCESS_RATE
        .replace("result[0] >= {{args.threshold}}", "result[0] >=")
        .replace("    count: \"{{args.count}}\"\n", "");
    let err = Template::from_yaml(&yaml)
        .expect("ok")
        .bind(&args(&[("service-name", "x")]))
        .expect_err("an error");
    assert_eq!(err.kind, TemplateErrorKind::Expression);
    assert_eq!(err.field, "spec.metrics[0].successCondition");
    assert!(err.message.contains("column"), "{err}");
}

fn metric(extra: &str) -> String {
    format!(
        "kind: AnalysisTemplate\nspec:\n  metrics:\n  - name: m\n{extra}    provider:\n      web:\n        url: http://x\n"
    )
}

#[test]
fn argo_validation_rules_refuse_bad_limits() {
    let cases = [
        (
            "    count: 3\n",
            "interval must be specified when count > 1",
        ),
        (
            "    failureLimit: -2\n",
            "failureLimit must be >= 0, or -1 to be disabled",
        ),
        ("    failureLimit: -1\n", "cannot both be disabled"),
        (
            "    inconclusiveLimit: -1\n",
            "inconclusiveLimit must be >= 0",
        ),
        (
            "    consecutiveErrorLimit: -1\n",
            "consecutiveErrorLimit must be >= 0",
        ),
        (
            "    count: 2\n    interval: 1m\n    failureLimit: 3\n",
            "count (2) must be >= failureLimit",
        ),
        ("    interval: 5 minutes\n", "unknown unit"),
        ("    count: lots\n", "is not an integer"),
    ];
    for (extra, want) in cases {
        let err = Template::from_yaml(&metric(extra))
            .expect("ok")
            .bind(&[])
            .expect_err("an error");
        assert!(err.message.contains(want), "{extra:?}: {err}");
        assert!(err.field.starts_with("spec.metrics[0]."), "{err}");
    }
    // failureLimit -1 is fine once consecutiveSuccessLimit is set.
    let ok = metric(
        "    failureLimit: -1\n    consecutiveSuccessLimit: 2\n    count: 3\n    interval: 1s\n",
    );
    assert!(Template::from_yaml(&ok).expect("ok").bind(&[]).is_ok());
}

#[test]
fn dry_run_and_retention_rules_are_unanchored_regexes_that_must_match() {
    let two = "kind: AnalysisTemplate\nspec:\n  metrics:\n  - name: success-rate\n    provider: {web: {url: http://x}}\n  - name: latency\n    provider: {web: {url: http://x}}\n";
    let t = Template::from_yaml(&format!("{two}  dryRun:\n  - metricName: success\n  measurementRetention:\n  - metricName: .*\n    limit: 3\n")).expect("ok");
    let a = t.bind(&[]).expect("ok");
    assert!(a.dry_run.contains("success-rate"));
    assert!(!a.dry_run.contains("latency"));
    assert_eq!(a.retention_limit("latency"), 3);
    let err = Template::from_yaml(&format!("{two}  dryRun:\n  - metricName: nothing\n"))
        .expect("ok")
        .bind(&[])
        .expect_err("an error");
    assert_eq!(err.field, "spec.dryRun[0].metricName");
    // Go's regexp refuses a lone `*`, so Argo matches nothing with it.
    assert!(
        Template::from_yaml(&format!("{two}  dryRun:\n  - metricName: \"*\"\n"))
            .expect("ok")
            .bind(&[])
            .is_err()
    );
}

#[test]
fn duplicate_metric_names_are_refused() {
    let yaml = "kind: AnalysisTemplate\nspec:\n  metrics:\n  - name: a\n    provider: {web: {url: http://x}}\n  - name: a\n    provider: {web: {url: http://x}}\n";
    let err = Template::from_yaml(yaml)
        .expect("ok")
        .bind(&[])
        .expect_err("an error");
    assert_eq!(err.field, "spec.metrics[1].name");
}
