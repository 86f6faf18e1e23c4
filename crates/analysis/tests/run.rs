//! The run's rules, on scripted provider values and tokio's paused clock.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use flotilla_analysis::run::{Event, Provider, RunOptions, run};
use flotilla_analysis::{Metric, Phase, ProviderError, Template, Value, Verdict};
use futures::future::BoxFuture;

/// Hands out each metric's scripted values in order (the last one repeats) and records when
/// each measurement was asked for.
struct Scripted {
    values: Mutex<HashMap<String, VecDeque<Result<Value, ProviderError>>>>,
    calls: Mutex<Vec<(String, Duration)>>,
    start: tokio::time::Instant,
    latency: Duration,
}

impl Scripted {
    fn new(script: Vec<(&str, Vec<Result<Value, ProviderError>>)>) -> Self {
        Scripted {
            values: Mutex::new(
                script
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.into()))
                    .collect(),
            ),
            calls: Mutex::new(Vec::new()),
            start: tokio::time::Instant::now(),
            latency: Duration::ZERO,
        }
    }

    fn times(&self, metric: &str) -> Vec<u64> {
        let calls = self.calls.lock().expect("ok");
        calls
            .iter()
            .filter(|(m, _)| m == metric)
            .map(|(_, t)| t.as_secs())
            .collect()
    }
}

impl Provider for Scripted {
    fn measure<'a>(&'a self, metric: &'a Metric) -> BoxFuture<'a, Result<Value, ProviderError>> {
        Box::pin(async move {
            self.calls
                .lock()
                .expect("ok")
                .push((metric.name.clone(), self.start.elapsed()));
            tokio::time::sleep(self.latency).await;
            let mut values = self.values.lock().expect("ok");
            let queue = values.get_mut(&metric.name).expect("scripted metric");
            if queue.len() > 1 {
                queue.pop_front().expect("ok")
            } else {
                queue.front().cloned().expect("ok")
            }
        })
    }
}

fn v(xs: &[f64]) -> Result<Value, ProviderError> {
    Ok(Value::Floats(xs.to_vec()))
}
fn scalar(x: f64) -> Result<Value, ProviderError> {
    Ok(Value::Float(x))
}
fn down() -> Result<Value, ProviderError> {
    Err(ProviderError::Request("connection refused".into()))
}

/// A template from metric bodies (each a YAML fragment under `- name: NAME`).
fn template(metrics: &[(&str, &str)], extra: &str) -> flotilla_analysis::Analysis {
    let mut yaml = String::from("kind: AnalysisTemplate\nspec:\n  metrics:\n");
    for (name, body) in metrics {
        yaml.push_str(&format!("  - name: {name}\n"));
        for line in body.lines() {
            yaml.push_str(&format!("    {line}\n"));
        }
        yaml.push_str("    provider: {prometheus: {address: http://x, query: q}}\n");
    }
    yaml.push_str(extra);
    Template::from_yaml(&yaml)
        .expect("ok")
        .bind(&[])
        .expect("ok")
}

async fn go(
    analysis: &flotilla_analysis::Analysis,
    p: &Scripted,
    deadline: Option<Duration>,
) -> Verdict {
    run(analysis, p, RunOptions { deadline }, &mut |_| {}).await
}

#[tokio::test(start_paused = true)]
async fn one_measurement_without_interval_or_count() {
    let a = template(&[("rate", "successCondition: result[0] >= 0.95")], "");
    let p = Scripted::new(vec![("rate", vec![v(&[0.99])])]);
    let verdict = go(&a, &p, None).await;
    assert_eq!(verdict.phase, Phase::Successful);
    assert_eq!(verdict.metrics[0].count, 1);
    assert_eq!(
        verdict.metrics[0].measurements[0].value.as_deref(),
        Some("[0.99]")
    );
    assert_eq!(p.times("rate"), vec![0]);
}

#[tokio::test(start_paused = true)]
async fn empty_vector_indexed_is_an_error_retried_every_ten_seconds_until_the_error_limit() {
    let a = template(&[("rate", "successCondition: result[0] >= 0.95")], "");
    let p = Scripted::new(vec![("rate", vec![v(&[])])]);
    let verdict = go(&a, &p, None).await;
    assert_eq!(verdict.phase, Phase::Error);
    let r = &verdict.metrics[0];
    // consecutiveErrorLimit 4: the fifth consecutive error ends the metric.
    assert_eq!((r.error, r.count), (5, 0));
    assert_eq!(p.times("rate"), vec![0, 10, 20, 30, 40]);
    assert!(
        r.measurements[0]
            .message
            .contains("metric result is nil or empty"),
        "{}",
        r.measurements[0].message
    );
    assert!(
        verdict
            .message
            .contains("consecutiveErrors (5) > consecutiveErrorLimit (4)"),
        "{}",
        verdict.message
    );
}

#[tokio::test(start_paused = true)]
async fn empty_vector_guarded_by_len_is_judged() {
    let a = template(
        &[
            (
                "ok",
                "successCondition: len(result) == 0 || result[0] >= 0.95",
            ),
            (
                "bad",
                "successCondition: len(result) > 0 && result[0] >= 0.95",
            ),
        ],
        "",
    );
    let p = Scripted::new(vec![("ok", vec![v(&[])]), ("bad", vec![v(&[])])]);
    let verdict = go(&a, &p, None).await;
    assert_eq!(verdict.metrics[0].phase, Phase::Successful);
    assert_eq!(verdict.metrics[1].phase, Phase::Failed);
    assert_eq!(verdict.phase, Phase::Failed);
}

#[tokio::test(start_paused = true)]
async fn nan_scalar_is_failed_with_one_condition_and_inconclusive_with_both() {
    let a = template(
        &[
            ("one", "successCondition: result >= 0.95"),
            (
                "both",
                "successCondition: result >= 0.95\nfailureCondition: result < 0.95",
            ),
            (
                "guarded",
                "successCondition: isNaN(result) || result >= 0.95",
            ),
        ],
        "",
    );
    let p = Scripted::new(vec![
        ("one", vec![scalar(f64::NAN)]),
        ("both", vec![scalar(f64::NAN)]),
        ("guarded", vec![scalar(f64::NAN)]),
    ]);
    let verdict = go(&a, &p, None).await;
    let phases: Vec<Phase> = verdict.metrics.iter().map(|m| m.phase).collect();
    assert_eq!(
        phases,
        vec![Phase::Failed, Phase::Inconclusive, Phase::Successful]
    );
    assert_eq!(
        verdict.metrics[0].measurements[0].value.as_deref(),
        Some("NaN")
    );
    // Failed is the worst phase of all.
    assert_eq!(verdict.phase, Phase::Failed);
}

#[tokio::test(start_paused = true)]
async fn provider_errors_do_not_count_toward_count() {
    let a = template(&[("rate", "successCondition: result[0] >= 0.95")], "");
    let p = Scripted::new(vec![("rate", vec![down(), down(), v(&[0.99])])]);
    let verdict = go(&a, &p, None).await;
    assert_eq!(verdict.phase, Phase::Successful);
    let r = &verdict.metrics[0];
    assert_eq!((r.count, r.error, r.successful), (1, 2, 1));
    assert_eq!(p.times("rate"), vec![0, 10, 20]);
    assert_eq!(r.measurements[0].message, "connection refused");
}

#[tokio::test(start_paused = true)]
async fn failure_limit_is_a_strict_comparison() {
    let body = "interval: 1m\ncount: 5\nfailureLimit: 2\nsuccessCondition: result[0] >= 0.95";
    // Two failures are within the limit: the metric reaches its count and succeeds.
    let a = template(&[("rate", body)], "");
    let p = Scripted::new(vec![("rate", vec![v(&[0.1]), v(&[0.1]), v(&[0.99])])]);
    let verdict = go(&a, &p, None).await;
    assert_eq!(verdict.phase, Phase::Successful);
    assert_eq!(
        (verdict.metrics[0].count, verdict.metrics[0].failed),
        (5, 2)
    );
    assert_eq!(p.times("rate"), vec![0, 60, 120, 180, 240]);
    // The third failure ends it at once.
    let p = Scripted::new(vec![(
        "rate",
        vec![v(&[0.1]), v(&[0.99]), v(&[0.1]), v(&[0.1]), v(&[0.99])],
    )]);
    let verdict = go(&a, &p, None).await;
    assert_eq!(verdict.phase, Phase::Failed);
    assert_eq!(p.times("rate"), vec![0, 60, 120, 180]);
    assert_eq!(
        verdict.message,
        "Metric \"rate\" assessed Failed due to failed (3) > failureLimit (2)"
    );
}

#[tokio::test(start_paused = true)]
async fn inconclusive_beyond_its_limit_makes_the_run_inconclusive() {
    let body = "interval: 1m\ncount: 4\ninconclusiveLimit: 1\nsuccessCondition: result[0] >= 0.95\nfailureCondition: result[0] < 0.5";
    let a = template(&[("rate", body)], "");
    let p = Scripted::new(vec![("rate", vec![v(&[0.7]), v(&[0.99]), v(&[0.7])])]);
    let verdict = go(&a, &p, None).await;
    assert_eq!(verdict.phase, Phase::Inconclusive);
    assert_eq!(p.times("rate"), vec![0, 60, 120]);
    assert_eq!(verdict.summary.inconclusive, 1);
}

#[tokio::test(start_paused = true)]
async fn consecutive_errors_reset_on_a_good_measurement() {
    let body =
        "interval: 1m\ncount: 2\nconsecutiveErrorLimit: 2\nsuccessCondition: result[0] >= 0.95";
    let a = template(&[("rate", body)], "");
    let p = Scripted::new(vec![(
        "rate",
        vec![down(), down(), v(&[0.99]), down(), down(), v(&[0.99])],
    )]);
    let verdict = go(&a, &p, None).await;
    assert_eq!(verdict.phase, Phase::Successful);
    assert_eq!(verdict.metrics[0].error, 4);
    // Errors retry after 10 s; a good measurement waits its interval.
    assert_eq!(p.times("rate"), vec![0, 10, 20, 80, 90, 100]);
    let p = Scripted::new(vec![("rate", vec![down(), down(), down()])]);
    let verdict = go(&a, &p, None).await;
    assert_eq!(verdict.phase, Phase::Error);
    assert_eq!(p.times("rate"), vec![0, 10, 20]);
}

#[tokio::test(start_paused = true)]
async fn an_expression_that_cannot_evaluate_is_an_error_measurement() {
    // A vector compared to a number: expr refuses it when compiling against []float64.
    let a = template(
        &[(
            "rate",
            "successCondition: result == 1\nconsecutiveErrorLimit: 0",
        )],
        "",
    );
    let p = Scripted::new(vec![("rate", vec![v(&[1.0])])]);
    let verdict = go(&a, &p, None).await;
    assert_eq!(verdict.phase, Phase::Error);
    let m = &verdict.metrics[0].measurements[0];
    assert_eq!(m.phase, Phase::Error);
    assert!(
        m.message
            .contains("could not evaluate successCondition \"result == 1\": invalid operation"),
        "{}",
        m.message
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_metric_stops_the_run_and_running_metrics_end_successful() {
    let a = template(
        &[
            ("fails", "successCondition: result[0] >= 0.95"),
            (
                "forever",
                "interval: 1m\nsuccessCondition: result[0] >= 0.95",
            ),
        ],
        "",
    );
    let p = Scripted::new(vec![
        ("fails", vec![v(&[0.1])]),
        ("forever", vec![v(&[0.99])]),
    ]);
    let verdict = go(&a, &p, None).await;
    assert_eq!(verdict.phase, Phase::Failed);
    assert_eq!(verdict.elapsed, Duration::ZERO);
    assert_eq!(verdict.metrics[1].phase, Phase::Successful);
    assert_eq!(p.times("forever"), vec![0]);
}

#[tokio::test(start_paused = true)]
async fn dry_run_metrics_never_decide_the_run() {
    let a = template(
        &[
            ("gate", "successCondition: result[0] >= 0.95"),
            ("trial", "successCondition: result[0] >= 0.95"),
        ],
        "  dryRun:\n  - metricName: trial\n",
    );
    let p = Scripted::new(vec![("gate", vec![v(&[0.99])]), ("trial", vec![v(&[0.1])])]);
    let verdict = go(&a, &p, None).await;
    assert_eq!(verdict.phase, Phase::Successful);
    let trial = &verdict.metrics[1];
    assert!(trial.dry_run);
    assert_eq!(trial.phase, Phase::Failed);
    assert_eq!(
        trial.message,
        "Metric assessed Failed due to failed (1) > failureLimit (0)"
    );
    assert_eq!((verdict.summary.count, verdict.summary.successful), (1, 1));
    assert_eq!(
        (
            verdict.dry_run_summary.count,
            verdict.dry_run_summary.failed
        ),
        (1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn measurement_retention_keeps_the_latest_and_counters_stay() {
    let a = template(
        &[
            ("a", "interval: 1s\ncount: 12"),
            ("b", "interval: 1s\ncount: 12"),
        ],
        "  measurementRetention:\n  - metricName: ^b$\n    limit: 3\n",
    );
    let p = Scripted::new(vec![("a", vec![v(&[1.0])]), ("b", vec![v(&[1.0])])]);
    let verdict = go(&a, &p, None).await;
    assert_eq!(verdict.phase, Phase::Successful);
    assert_eq!(
        (
            verdict.metrics[0].count,
            verdict.metrics[0].measurements.len()
        ),
        (12, 10)
    );
    assert_eq!(
        (
            verdict.metrics[1].count,
            verdict.metrics[1].measurements.len()
        ),
        (12, 3)
    );
    assert_eq!(
        verdict.metrics[1].measurements[0].started_at,
        Duration::from_secs(9)
    );
}

#[tokio::test(start_paused = true)]
async fn interval_without_count_runs_until_the_deadline_terminates_it() {
    let a = template(
        &[("rate", "interval: 1m\nsuccessCondition: result[0] >= 0.95")],
        "",
    );
    let p = Scripted::new(vec![("rate", vec![v(&[0.99])])]);
    let verdict = go(&a, &p, Some(Duration::from_secs(330))).await;
    assert_eq!(verdict.phase, Phase::Successful);
    assert_eq!(verdict.message, "Run Terminated");
    assert_eq!(p.times("rate"), vec![0, 60, 120, 180, 240, 300]);
    assert_eq!(verdict.elapsed, Duration::from_secs(330));
}

#[tokio::test(start_paused = true)]
async fn initial_delay_and_schedule_from_the_finished_time() {
    let a = template(
        &[("late", "initialDelay: 30s\ninterval: 10s\ncount: 3")],
        "",
    );
    let mut p = Scripted::new(vec![("late", vec![v(&[1.0])])]);
    p.latency = Duration::from_secs(2);
    let verdict = go(&a, &p, None).await;
    assert_eq!(verdict.phase, Phase::Successful);
    // The next measurement is due an interval after the previous one *finished*.
    assert_eq!(p.times("late"), vec![30, 42, 54]);
}

#[tokio::test(start_paused = true)]
async fn error_outranks_inconclusive_and_failed_outranks_error() {
    let a = template(
        &[
            ("err", "consecutiveErrorLimit: 0"),
            (
                "inc",
                "successCondition: 'false'\nfailureCondition: 'false'",
            ),
        ],
        "",
    );
    let p = Scripted::new(vec![("err", vec![down()]), ("inc", vec![v(&[1.0])])]);
    assert_eq!(go(&a, &p, None).await.phase, Phase::Error);
    let a = template(
        &[
            ("err", "consecutiveErrorLimit: 0"),
            ("fail", "successCondition: 'false'"),
        ],
        "",
    );
    let p = Scripted::new(vec![("err", vec![down()]), ("fail", vec![v(&[1.0])])]);
    assert_eq!(go(&a, &p, None).await.phase, Phase::Failed);
}

#[tokio::test(start_paused = true)]
async fn each_measurement_is_reported_with_running_counts() {
    let a = template(
        &[(
            "rate",
            "interval: 1m\ncount: 3\nfailureLimit: 1\nsuccessCondition: result[0] >= 0.95",
        )],
        "",
    );
    let p = Scripted::new(vec![("rate", vec![v(&[0.99]), v(&[0.5]), v(&[0.99])])]);
    let mut seen = Vec::new();
    let verdict = run(&a, &p, RunOptions::default(), &mut |e| match e {
        Event::Measurement {
            metric,
            measurement,
            result,
        } => seen.push(format!(
            "{metric} {} {} {}/{}",
            measurement.phase,
            measurement.value.as_deref().unwrap_or("-"),
            result.count,
            result.failed
        )),
        Event::MetricCompleted { metric, phase, .. } => seen.push(format!("{metric} done {phase}")),
    })
    .await;
    assert_eq!(verdict.phase, Phase::Successful);
    assert_eq!(
        seen,
        vec![
            "rate Successful [0.99] 1/0",
            "rate Failed [0.5] 2/1",
            "rate Successful [0.99] 3/1",
            "rate done Successful"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn consecutive_success_limit_ends_the_metric_early() {
    let a = template(
        &[(
            "rate",
            "interval: 1m\ncount: 10\nfailureLimit: -1\nconsecutiveSuccessLimit: 2\nsuccessCondition: result[0] >= 0.95",
        )],
        "",
    );
    let p = Scripted::new(vec![("rate", vec![v(&[0.5]), v(&[0.99]), v(&[0.99])])]);
    let verdict = go(&a, &p, None).await;
    assert_eq!(verdict.phase, Phase::Successful);
    assert_eq!(p.times("rate"), vec![0, 60, 120]);
}

#[tokio::test(start_paused = true)]
async fn a_bad_template_is_an_error_verdict_naming_the_field() {
    let p = Scripted::new(vec![]);
    let cases = [
        ("kind: AnalysisTemplate\nspec:\n  metrics: [\n", "line"),
        (
            "kind: AnalysisTemplate\nspec:\n  metrics:\n  - name: m\n    provider: {datadog: {query: q}}\n",
            "spec.metrics[0].provider.datadog",
        ),
        (
            "kind: AnalysisTemplate\nspec:\n  args: [{name: svc}]\n  metrics:\n  - name: m\n    provider: {web: {url: 'http://{{args.svc}}'}}\n",
            "args.svc was not resolved",
        ),
        (
            "kind: AnalysisTemplate\nspec:\n  metrics:\n  - name: m\n    successCondition: result[0] >=\n    provider: {web: {url: http://x}}\n",
            "spec.metrics[0].successCondition",
        ),
    ];
    for (yaml, want) in cases {
        let verdict =
            flotilla_analysis::run_yaml(yaml, &[], &p, RunOptions::default(), &mut |_| {}).await;
        assert_eq!(verdict.phase, Phase::Error);
        assert_eq!(verdict.exit_code(), 3);
        assert!(
            verdict.message.contains(want),
            "{want}: {}",
            verdict.message
        );
    }
}
