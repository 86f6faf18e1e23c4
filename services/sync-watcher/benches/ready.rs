//! How long after Argo CD shows an env's app Synced and Healthy (past the stable window) its
//! `env.ready` is on the bus, against a bare JetStream publish → delivery measured in the same
//! run on the same server (absolute times on a shared machine are noisy; the ratio is the
//! figure).
//!
//! `cargo bench -p sync-watcher --bench ready [-- SAMPLES]`: sync-watcher runs in-process on a
//! private nats-server and the fake Kubernetes API server (tests/kube-fake), which plays
//! Argo CD. Target: p50 < 100 ms beyond the stable window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use flotilla_bench::Latency;
use flotilla_bus::{EventType, Outgoing, Process};
use flotilla_env::{App, EnvRecord, Registry, State};
use flotilla_kube_fake::{FakeKube, Resource};
use flotilla_proto::v1::Environment;
use futures::StreamExt;
use serde_json::json;
use sync_watcher::Config;
use sync_watcher::history::SameRevisionOnly;

const STABLE: Duration = Duration::from_millis(200);
const REVISION: &str = "2222222222222222222222222222222222222222";

#[tokio::main]
async fn main() -> Result<()> {
    let samples: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.parse())
        .transpose()
        .context("SAMPLES must be a number")?
        .unwrap_or(50);
    let server = flotilla_testing::NatsServer::start();
    let client = server.connect().await;
    let bus = flotilla_bus::Bus::new(client.clone(), flotilla_bus::Names::default());
    bus.ensure_streams(&flotilla_bus::topology::StreamLimits::default())
        .await?;
    let registry = Registry::new(bus.envs().await?);
    let kube = FakeKube::start([Resource::argo_application()]).await;

    let mut config = Config::new();
    config.tracker.stable = STABLE;
    config.tracker.sweep = Duration::from_secs(60);
    let mut process = Process::new(bus.clone());
    sync_watcher::install(
        &mut process,
        &config,
        registry.clone(),
        Some(kube.client()),
        Arc::new(SameRevisionOnly),
    );
    let running = flotilla_testing::serve(process).await?;

    let mut ready = client.subscribe("flotilla.env.ready.>").await?;
    let mut beyond = Vec::with_capacity(samples);
    for i in 0..samples {
        let env = format!("pr-bench-ping-{i}");
        request(&bus, &registry, &env).await?;
        kube.put(
            &Resource::argo_application(),
            json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": {"name": format!("{env}-ping"), "namespace": "argocd",
                             "labels": {"flotilla.dev/env": env, "flotilla.dev/app": "ping"}},
                "spec": {},
                "status": {"sync": {"status": "OutOfSync"}, "health": {"status": "Progressing"}},
            }),
        );
        // The request is taken and the Application seen before the flip is timed.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let flipped = Instant::now();
        kube.merge_status(
            &Resource::argo_application(),
            "argocd",
            &format!("{env}-ping"),
            json!({"sync": {"status": "Synced", "revision": REVISION}, "health": {"status": "Healthy"}}),
        )
        .context("the Application")?;
        let message = tokio::time::timeout(Duration::from_secs(10), ready.next())
            .await
            .context("env.ready within 10s")?
            .context("the subscription")?;
        anyhow::ensure!(
            message.subject.as_str().ends_with(&env),
            "{}",
            message.subject
        );
        beyond.push(flipped.elapsed().saturating_sub(STABLE));
    }
    running.shutdown().await?;

    let sync = Latency::from_samples(beyond).context("samples")?;
    // The same count of bare JetStream hops: publish, acknowledged, delivered to a subscriber.
    let bare = flotilla_bench::bare_hop_latency(&client, "flotilla.bench.hop", samples)
        .await
        .map_err(|e| anyhow::anyhow!(e))?
        .context("samples")?;
    println!(
        "flip to Synced+Healthy → env.ready, beyond the {STABLE:?} stable window ({samples} samples)"
    );
    println!(
        "  sync-watcher  p50 {:>9.2?}  p99 {:>9.2?}",
        sync.p50, sync.p99
    );
    println!(
        "  bare hop      p50 {:>9.2?}  p99 {:>9.2?}",
        bare.p50, bare.p99
    );
    println!(
        "  ratio         p50 {:.1}x  p99 {:.1}x  (target: p50 < 100ms: {})",
        sync.p50.as_secs_f64() / bare.p50.as_secs_f64(),
        sync.p99.as_secs_f64() / bare.p99.as_secs_f64(),
        if sync.p50 < Duration::from_millis(100) {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

/// What env-manager does: the record, then `env.requested`.
async fn request(bus: &flotilla_bus::Bus, registry: &Registry, env: &str) -> Result<()> {
    let record = EnvRecord {
        state: State::Requested,
        kind: "preview".into(),
        change_id: format!("{env}-change"),
        apps: vec![App {
            name: "ping".into(),
            version: "v1".into(),
            image: String::new(),
        }],
        revision: REVISION.into(),
        ..Default::default()
    };
    registry.update(env, |_| Some(record.clone())).await?;
    let requested = Environment {
        env: env.into(),
        change_id: record.change_id.clone(),
        revision: REVISION.into(),
        ..Default::default()
    };
    bus.publisher("env-manager")
        .publish(Outgoing::new(EventType::EnvRequested, env, &requested)?)
        .await?;
    Ok(())
}
