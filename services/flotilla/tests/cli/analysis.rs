//! `flotilla analysis run` against a real Prometheus (Debian's package, started on loopback with
//! a 1 s scrape) of a real `examples/ping` the test drives with traffic, against ping's own web
//! endpoint, and with every kind of bad template.

use crate::support::*;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use flotilla_testing::Prometheus;
use ping::{Answer, Settings};

/// The seed's success-rate check, as deploy/ ships it.
const SUCCESS_RATE: &str = include_str!("../../../../deploy/analysis/success-rate.yaml");
/// The seed's web check of `{$.status}`, as deploy/ ships it.
const WEB_STATUS: &str = include_str!("../../../../deploy/analysis/web-status.yaml");

/// ping on a free loopback port, and a task sending it a request every 10 ms.
async fn ping(error_rate: f64, answer: Answer) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let settings = Settings {
        answer,
        error_rate,
        extra_latency: Duration::ZERO,
        app_version: None,
    };
    tokio::spawn(async move { axum::serve(listener, ping::router(settings)).await });
    let client = reqwest::Client::new();
    tokio::spawn(async move {
        loop {
            let _ = client.get(format!("http://{addr}/ping")).send().await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    Ok(addr)
}

/// The query of [`SUCCESS_RATE`].
const QUERY: &str = r#"sum(rate(ping_http_requests_total{job="ping", code!~"5.."}[30s])) / sum(rate(ping_http_requests_total{job="ping"}[30s]))"#;

/// Prometheus scraping `target`, once the success-rate query has an answer (a rate needs two
/// samples in its window); `None` (the test is skipped, and says so) where Prometheus is not
/// installed.
async fn prometheus(target: SocketAddr) -> Result<Option<Prometheus>> {
    if Prometheus::binary().is_none() {
        eprintln!("skipped: prometheus is not installed (scripts/test installs it)");
        return Ok(None);
    }
    let prometheus = Prometheus::start(&[target]).await?;
    let url = format!("{}/api/v1/query", prometheus.url());
    let client = reqwest::Client::new();
    let answered = flotilla_testing::eventually_async(Duration::from_secs(60), || async {
        let Ok(response) = client.get(&url).query(&[("query", QUERY)]).send().await else {
            return false;
        };
        let Ok(body) = response.json::<serde_json::Value>().await else {
            return false;
        };
        body["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    })
    .await;
    anyhow::ensure!(answered, "prometheus never answered {QUERY}");
    Ok(Some(prometheus))
}

async fn analysis(template: &str, args: &[&str]) -> Result<Run> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("template.yaml");
    std::fs::write(&path, template)?;
    let path = path.display().to_string();
    let mut argv = vec!["analysis", "run", path.as_str()];
    argv.extend_from_slice(args);
    Cli::at("nats://127.0.0.1:1").run(&argv).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_ping_passes_its_success_rate_on_real_prometheus() -> Result<()> {
    let target = ping(0.0, Answer::Text).await?;
    let Some(prometheus) = prometheus(target).await? else {
        return Ok(());
    };
    let arg = format!("prometheus={}", prometheus.url());
    let run = analysis(SUCCESS_RATE, &["--arg", &arg, "--arg", "interval=1s"]).await?;

    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout, run.stderr);
    let measured = run
        .lines()
        .iter()
        .filter(|l| l.contains("success-rate  ["))
        .count();
    assert_eq!(
        measured, 3,
        "each measurement printed as taken:\n{}",
        run.stdout
    );
    assert!(run.stdout.contains("verdict: Successful"), "{}", run.stdout);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_failing_30_percent_of_requests_fails_on_real_prometheus() -> Result<()> {
    let target = ping(0.3, Answer::Text).await?;
    let Some(prometheus) = prometheus(target).await? else {
        return Ok(());
    };
    let arg = format!("prometheus={}", prometheus.url());
    let run = analysis(
        SUCCESS_RATE,
        &["--arg", &arg, "--arg", "interval=1s", "--json"],
    )
    .await?;

    assert_eq!(run.code(), Some(1), "{}\n{}", run.stdout, run.stderr);
    let lines = run.json_lines()?;
    let first = lines.first().expect("a measurement");
    assert_eq!(first["phase"], "Failed", "{}", run.stdout);
    let rate: f64 = first["value"]
        .as_str()
        .and_then(|v| v.trim_matches(|c| c == '[' || c == ']').parse().ok())
        .expect("a vector value");
    assert!((0.6..0.8).contains(&rate), "about 70% succeed: {rate}");
    let verdict = lines.last().expect("the verdict");
    assert_eq!(verdict["verdict"], "Failed");
    Ok(())
}

#[tokio::test]
async fn the_web_provider_checks_the_new_versions_answer() -> Result<()> {
    let target = ping(0.0, Answer::Json).await?;
    let template = r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: answer
spec:
  args:
  - name: url
  metrics:
  - name: answer
    count: 2
    interval: 200ms
    consecutiveErrorLimit: 0
    successCondition: result == "pong"
    provider:
      web:
        url: "{{args.url}}"
        jsonPath: "{$.value}"
"#;
    let arg = format!("url=http://{target}/ping");
    let run = analysis(template, &["--arg", &arg]).await?;
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout, run.stderr);

    // A version answering 500: the web provider's measurement is an Error, and with no
    // consecutive error allowed the run is in Error.
    let broken = ping(1.0, Answer::Json).await?;
    let arg = format!("url=http://{broken}/ping");
    let run = analysis(template, &["--arg", &arg]).await?;
    assert_eq!(run.code(), Some(3), "{}", run.stdout);
    Ok(())
}

#[tokio::test]
async fn the_web_status_check_passes_a_healthy_ping_and_fails_a_degraded_one() -> Result<()> {
    let healthy = ping(0.0, Answer::Json).await?;
    let arg = format!("url=http://{healthy}/status");
    let run = analysis(WEB_STATUS, &["--arg", &arg]).await?;
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout, run.stderr);
    let degraded = ping(0.3, Answer::Json).await?;
    let arg = format!("url=http://{degraded}/status");
    let run = analysis(WEB_STATUS, &["--arg", &arg]).await?;
    assert_eq!(run.code(), Some(1), "{}\n{}", run.stdout, run.stderr);
    Ok(())
}

#[tokio::test]
async fn a_bad_template_is_an_error_naming_the_line_or_field() -> Result<()> {
    let header = "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata:\n  name: x\n";
    let broken_yaml = format!("{header}spec:\n  metrics: [\n  - name: x\n    bad: [");
    let unknown_provider =
        format!("{header}spec:\n  metrics:\n  - name: x\n    provider:\n      datadog: {{}}\n");
    let bad_expression = SUCCESS_RATE.replace("result[0] >= 0.95", "result[0] >=>= 0.95");
    let cases: [(&str, &str, &[&str]); 4] = [
        (&broken_yaml, "line", &[]),
        (&unknown_provider, "provider", &[]),
        (
            &SUCCESS_RATE.replace("    value: http://prometheus.monitoring.svc:9090\n", ""),
            "prometheus",
            &[],
        ),
        (
            &bad_expression,
            "successCondition",
            &["--arg", "prometheus=http://127.0.0.1:1"],
        ),
    ];
    for (template, named, args) in cases {
        let run = analysis(template, args).await?;
        assert_eq!(
            run.code(),
            Some(3),
            "{template}\n{}\n{}",
            run.stdout,
            run.stderr
        );
        assert!(
            run.stdout.contains("verdict: Error") && run.stdout.contains(named),
            "names {named}: {}",
            run.stdout
        );
    }
    let missing = Cli::at("nats://127.0.0.1:1")
        .run(&["analysis", "run", "/nonexistent/template.yaml"])
        .await?;
    assert_eq!(missing.code(), Some(64), "{}", missing.stderr);
    Ok(())
}
