//! How long one reaper sweep takes over 10,000 registered envs: the registry read, a fetch and
//! listing of the GitOps repository holding their 10,000 env files, the cluster's labelled
//! Namespaces (10,000, on the fake Kubernetes API server) and Applications, every timer
//! computed, orphans compared. Nothing is due, so the figure is the sweep itself.
//!
//! `cargo bench -p reaper --bench sweep [-- ENVS]`. Target: < 1 s for 10,000.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use flotilla_bus::{Bus, Names};
use flotilla_env::{EnvRecord, Registry, State};
use flotilla_gitops::{Mirror, Remote};
use flotilla_kube_fake::{FakeKube, Resource};
use futures::StreamExt;
use reaper::{Clock, Config, Sweeper};
use serde_json::json;

const SWEEPS: usize = 5;

#[tokio::main]
async fn main() -> Result<()> {
    let envs: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.parse())
        .transpose()
        .context("ENVS must be a number")?
        .unwrap_or(10_000);
    let server = flotilla_testing::NatsServer::start();
    let bus = Bus::new(server.connect().await, Names::default());
    bus.ensure_streams(&flotilla_bus::topology::StreamLimits::default())
        .await?;
    let registry = Registry::new(bus.envs().await?);
    let kube = FakeKube::start([Resource::argo_application(), Resource::namespace()]).await;
    let dir = tempfile::tempdir()?;
    let remote = dir.path().join("gitops.git");

    let now = time::OffsetDateTime::now_utc();
    let created = reaper::timer::rfc3339(now - Duration::from_secs(3600));
    let expires = reaper::timer::rfc3339(now + Duration::from_secs(72 * 3600));
    let names: Vec<String> = (0..envs).map(|i| format!("pr-bench-ping-{i}")).collect();
    let started = Instant::now();
    futures::stream::iter(names.iter())
        .map(|env| {
            let record = EnvRecord {
                state: State::Ready,
                kind: "preview".into(),
                change_id: format!("{env}-v1"),
                created_at: created.clone(),
                expires_at: expires.clone(),
                ..Default::default()
            };
            let registry = registry.clone();
            async move { registry.update(env, |_| Some(record.clone())).await }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
    for env in &names {
        kube.put(
            &Resource::namespace(),
            json!({"metadata": {"name": env, "labels": {"flotilla.dev/env": env}}}),
        );
    }
    seed_git(&remote, &names)?;
    eprintln!("seeded {envs} envs in {:?}", started.elapsed());

    let mirror = Mirror::open(
        Remote::new(remote.display().to_string(), "main"),
        dir.path().join("mirror.git"),
    )
    .await?;
    let sweeper = Sweeper::new(
        Config::new(),
        registry,
        bus.publisher(reaper::WORKER),
        mirror,
        Some(reaper::cluster::Cluster::new(kube.client(), "argocd")),
        Clock::System,
    );
    let mut times = Vec::with_capacity(SWEEPS);
    for _ in 0..SWEEPS {
        let started = Instant::now();
        let report = sweeper.sweep().await;
        times.push(started.elapsed());
        anyhow::ensure!(report.errors.is_empty(), "{:?}", report.errors);
        anyhow::ensure!(report.envs == envs, "swept {} of {envs}", report.envs);
        anyhow::ensure!(report.orphans.is_empty(), "{:?}", &report.orphans[..1]);
    }
    times.sort();
    println!(
        "reaper sweep over {envs} envs: min {:?}, median {:?}, max {:?} (target < 1 s)",
        times[0],
        times[SWEEPS / 2],
        times[SWEEPS - 1]
    );
    Ok(())
}

/// A GitOps repository whose `envs/` holds one file per env.
fn seed_git(path: &std::path::Path, names: &[String]) -> Result<()> {
    let repo = git2::Repository::init_bare(path)?;
    let blob = repo.blob(b"{}\n")?;
    let mut envs = repo.treebuilder(None)?;
    for env in names {
        envs.insert(format!("{env}.json"), blob, 0o100644)?;
    }
    let mut root = repo.treebuilder(None)?;
    root.insert("envs", envs.write()?, 0o040000)?;
    let tree = repo.find_tree(root.write()?)?;
    let someone = git2::Signature::now("someone", "someone@example.com")?;
    repo.commit(
        Some("refs/heads/main"),
        &someone,
        &someone,
        "envs",
        &tree,
        &[],
    )?;
    Ok(())
}
