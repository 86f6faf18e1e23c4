//! A faulty canary → `canary.aborted`, against the template's own schedule: Argo measures first
//! at t=0, so with `failureLimit: 1` the deciding (second) failed measurement is taken at
//! t = interval; the figure is how long after that measurement is on the bus the abort is,
//! beside a bare JetStream publish → delivery measured in the same run on the same server.
//!
//! `cargo bench -p canary-analyzer --bench abort [-- SAMPLES]`: canary-analyzer analysis-only
//! in-process on a private nats-server, judging examples/ping at 100% errors through the web
//! provider. Target: the abort within 1 s of the deciding measurement.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use flotilla_bench::Latency;
use flotilla_bus::{EventType, Outgoing, Process};
use flotilla_proto::v1::{Analysis, Release};
use futures::StreamExt;

const TEMPLATE: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: web-status
spec:
  args:
  - name: url
  metrics:
  - name: status
    count: 5
    interval: 500ms
    successCondition: result == "ok"
    failureLimit: 1
    provider:
      web:
        url: "{{args.url}}"
        jsonPath: "{$.status}"
"#;

#[tokio::main]
async fn main() -> Result<()> {
    let samples: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.parse())
        .transpose()
        .context("SAMPLES must be a number")?
        .unwrap_or(20);
    let server = flotilla_testing::NatsServer::start();
    let client = server.connect().await;
    let bus = flotilla_bus::Bus::new(client.clone(), flotilla_bus::Names::default());
    bus.ensure_streams(&flotilla_bus::topology::StreamLimits::default())
        .await?;

    // A ping answering 500 to everything: every measurement fails.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let ping_addr = listener.local_addr()?;
    let settings = ping::Settings {
        answer: ping::Answer::Json,
        error_rate: 1.0,
        extra_latency: Duration::ZERO,
        app_version: None,
    };
    tokio::spawn(async move { axum::serve(listener, ping::router(settings)).await });

    let templates = tempfile::tempdir()?;
    std::fs::write(templates.path().join("web-status.yaml"), TEMPLATE)?;
    let mut config = canary_analyzer::Config::new();
    config.analysis_dir = Some(templates.path().to_path_buf());
    config.kube = canary_analyzer::Kube::Off;
    let mut process = Process::new(bus.clone());
    canary_analyzer::install(&mut process, &config, bus.canaries().await?)
        .map_err(anyhow::Error::msg)?;
    let running = flotilla_testing::serve(process).await?;

    let mut events = client.subscribe("flotilla.canary.>").await?;
    let mut after = Vec::with_capacity(samples);
    for i in 0..samples {
        let version = format!("v2024010112{:04}-aaaaaaa", i);
        let release = Release {
            change_id: format!("ping-{version}"),
            app: "ping".into(),
            version: version.clone(),
            previous_version: "v20230101000000-0000000".into(),
            analysis: vec![Analysis {
                template: "web-status".into(),
                args: HashMap::from([("url".to_owned(), format!("http://{ping_addr}/status"))]),
                cluster_scope: false,
            }],
            ..Default::default()
        };
        bus.publisher("env-manager")
            .publish(Outgoing::new(
                EventType::ReleaseRequested,
                "ping",
                &release,
            )?)
            .await?;
        let key = format!("ping-{version}");
        let mut last_measurement = None;
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), events.next())
                .await
                .context("canary events within 30s")?
                .context("the subscription")?;
            let subject = message.subject.as_str();
            if !subject.ends_with(&key) {
                continue;
            }
            if subject.starts_with("flotilla.canary.measurement.") {
                last_measurement = Some(Instant::now());
            } else if subject.starts_with("flotilla.canary.aborted.") {
                let measured = last_measurement.context("a measurement before the abort")?;
                after.push(measured.elapsed());
                break;
            } else if subject.starts_with("flotilla.canary.promoted.") {
                anyhow::bail!("a faulty canary was promoted");
            }
        }
    }
    running.shutdown().await?;

    let canary = Latency::from_samples(after).context("samples")?;
    let bare = flotilla_bench::bare_hop_latency(&client, "flotilla.bench.hop", samples)
        .await
        .map_err(|e| anyhow::anyhow!(e))?
        .context("samples")?;
    println!(
        "deciding failed measurement on the bus → canary.aborted on the bus ({samples} samples)"
    );
    println!(
        "  canary-analyzer  p50 {:>9.2?}  p99 {:>9.2?}",
        canary.p50, canary.p99
    );
    println!(
        "  bare hop         p50 {:>9.2?}  p99 {:>9.2?}",
        bare.p50, bare.p99
    );
    println!(
        "  ratio            p50 {:.1}x  (target: p99 < 1s: {})",
        canary.p50.as_secs_f64() / bare.p50.as_secs_f64(),
        if canary.p99 < Duration::from_secs(1) {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}
