//! `run_env`: env-manager under load, from `build.succeeded` to the env file pushed.
//!
//! env-manager runs in-process on isolated streams, writing a bare GitOps repository in a temp
//! dir. Latency is timed one build at a time, from publishing `build.succeeded` to receiving
//! the `env.requested` env-manager publishes once the env file is pushed and registered.
//! Throughput is bursts of builds published at once, with grouped commits on and off, taking
//! turns round by round; each mode writes its own repository so both start alike.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_nats::Subscriber;
use env_manager::gitops::GitOps;
use env_manager::{Config, EnvManager};
use flotilla_bus::{EventType, Outgoing, Publisher};
use flotilla_env::Registry;
use flotilla_proto::v1::Build;
use futures::StreamExt;
use futures::future::try_join_all;

use crate::args::EnvArgs;
use crate::env_report::{EnvReport, ModeReport};
use crate::error::BenchError;
use crate::fixture::{Fixture, after_cleanup};
use crate::stats::{Latency, Throughput};
use crate::via_bus::{RunningWorker, start_worker};

const PRODUCTION: &str = r#"{"apps": {"ping": {"image": "registry/apps/ping", "version": "v20230101000000-aaaaaaa"}}}
"#;
/// How long one env may take before the run is called stalled.
const STALL: Duration = Duration::from_secs(30);

/// Measures env-manager on the server `client` is connected to, with local bare repositories
/// in a temp dir; removes its streams and repositories before returning.
pub async fn run_env(client: async_nats::Client, args: &EnvArgs) -> Result<EnvReport, BenchError> {
    args.validate()?;
    let server = client.server_info().version;
    // Each mode has streams of its own, so its worker sees only its own builds.
    let fixtures = [Fixture::new(client.clone()), Fixture::new(client)];
    let measured = measure(&fixtures, args, server).await;
    let mut cleaned = Ok(());
    for fixture in &fixtures {
        if let Err(e) = fixture.delete().await {
            cleaned = Err(e);
        }
    }
    after_cleanup(measured, cleaned)
}

async fn measure(
    fixtures: &[Fixture; 2],
    args: &EnvArgs,
    server: String,
) -> Result<EnvReport, BenchError> {
    let dir = tempfile::tempdir().map_err(|e| BenchError::setup("a temp dir", e))?;
    let [grouped, single] = fixtures;
    let mut sides = [
        Side::start(grouped, dir.path(), "grouped", args, args.group_max).await?,
        Side::start(single, dir.path(), "single", args, 1).await?,
    ];
    let mut seq = 0u64;
    let mut samples = Vec::with_capacity(args.count);
    for i in 0..args.warmup + args.count {
        seq += 1;
        let started = Instant::now();
        sides[0].send(&[seq]).await?;
        sides[0].wait_for(1).await?;
        if i >= args.warmup {
            samples.push(started.elapsed());
        }
    }
    let mut modes = [ModeReport::new(args.group_max), ModeReport::new(1)];
    for round in 0..args.rounds {
        // Alternate which mode goes first, so drift weighs on both alike.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let burst: Vec<u64> = (seq + 1..=seq + args.burst as u64).collect();
            seq += args.burst as u64;
            let side = &mut sides[which];
            let commits_before = side.commits()?;
            let started = Instant::now();
            side.send(&burst).await?;
            side.wait_for(burst.len()).await?;
            let elapsed = started.elapsed();
            let commits = side.commits()? - commits_before;
            let throughput = Throughput {
                messages: burst.len(),
                elapsed,
                cpu: None,
            };
            modes[which].add(throughput, commits);
        }
    }
    let [grouped_side, single_side] = sides;
    grouped_side.stop().await;
    single_side.stop().await;
    let latency = Latency::from_samples(samples)
        .ok_or_else(|| BenchError::Args("no latency was measured".into()))?;
    let [grouped, single] = modes;
    Ok(EnvReport {
        args: args.clone(),
        server,
        latency,
        grouped,
        single,
    })
}

/// One env-manager with its own streams and GitOps repository, and a subscription to the
/// `env.requested` it publishes.
struct Side {
    remote: PathBuf,
    publisher: Publisher,
    sink: Subscriber,
    worker: RunningWorker,
}

impl Side {
    async fn start(
        fixture: &Fixture,
        dir: &Path,
        name: &str,
        args: &EnvArgs,
        group_max: usize,
    ) -> Result<Side, BenchError> {
        fixture.create().await?;
        let bus = &fixture.bus;
        let sink = bus
            .client()
            .subscribe(bus.names().subject("env.requested.>"))
            .await
            .map_err(|e| BenchError::setup("subscribe to env.requested", e))?;
        let remote = dir.join(format!("{name}.git"));
        seed(&remote).map_err(|e| BenchError::setup("seed the GitOps repository", e))?;
        let mut config = Config::new(
            remote.display().to_string(),
            dir.join(format!("{name}-work")),
        );
        config.gitops.group_max = group_max;
        let gitops = GitOps::open(config.gitops.clone())
            .await
            .map_err(|e| BenchError::setup("open the GitOps working copy", e))?;
        let envs = bus
            .envs()
            .await
            .map_err(|e| BenchError::setup("open the env registry", e))?;
        let handler = EnvManager::new(config, gitops, Registry::new(envs));
        let mut worker_config = env_manager::worker_config();
        worker_config.subjects = vec!["build.succeeded.>".into()];
        worker_config.concurrency = args.concurrency;
        let worker = start_worker(bus, worker_config, handler, "start env-manager").await?;
        Ok(Side {
            remote,
            publisher: bus.publisher("bench"),
            sink,
            worker,
        })
    }

    fn commits(&self) -> Result<usize, BenchError> {
        count_commits(&self.remote).map_err(|e| BenchError::setup("count commits", e))
    }

    async fn send(&self, seqs: &[u64]) -> Result<(), BenchError> {
        send(&self.publisher, seqs).await
    }

    async fn wait_for(&mut self, n: usize) -> Result<(), BenchError> {
        wait_for(&mut self.sink, n).await
    }

    async fn stop(self) {
        self.worker.stop(Duration::from_secs(10)).await;
    }
}

/// Publishes a `build.succeeded` for each sequence number, all at once.
async fn send(publisher: &Publisher, seqs: &[u64]) -> Result<(), BenchError> {
    let sends = seqs.iter().map(|seq| {
        let build = build(*seq);
        async move {
            let event = Outgoing::new(EventType::BuildSucceeded, &build.change_id, &build)
                .map_err(|e| BenchError::setup("encode a build", e))?
                .with_change_id(build.change_id.as_str());
            publisher
                .publish(event)
                .await
                .map_err(|e| BenchError::setup("publish a build", e))
        }
    });
    try_join_all(sends).await?;
    Ok(())
}

/// Waits for `n` env.requested events.
async fn wait_for(sink: &mut Subscriber, n: usize) -> Result<(), BenchError> {
    for received in 0..n {
        match tokio::time::timeout(STALL, sink.next()).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(BenchError::setup("env.requested", "the subscription ended")),
            Err(_) => {
                return Err(BenchError::setup(
                    "env.requested",
                    format!(
                        "{received} of {n} envs after {STALL:?}: env-manager is stuck (its log says why)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Build `seq` of ping: a push to the default branch, so a staging env of its own.
fn build(seq: u64) -> Build {
    let version = format!("v20240101{:06}-{:07x}", seq % 1_000_000, seq);
    Build {
        change_id: format!("ping-{version}"),
        app: "ping".into(),
        repo: "acme/ping".into(),
        sha: format!("{seq:040x}"),
        version,
        ..Default::default()
    }
}

/// A bare repository whose `main` holds the production manifest.
fn seed(remote: &Path) -> Result<(), git2::Error> {
    let repo = git2::Repository::init_bare(remote)?;
    let blob = repo.blob(PRODUCTION.as_bytes())?;
    let mut apps = repo.treebuilder(None)?;
    apps.insert("production.json", blob, 0o100644)?;
    let apps = apps.write()?;
    let mut root = repo.treebuilder(None)?;
    root.insert("apps", apps, 0o040000)?;
    let tree = repo.find_tree(root.write()?)?;
    let someone = git2::Signature::now("bench", "bench@flotilla.invalid")?;
    repo.commit(
        Some("refs/heads/main"),
        &someone,
        &someone,
        "production",
        &tree,
        &[],
    )?;
    Ok(())
}

fn count_commits(remote: &Path) -> Result<usize, git2::Error> {
    let repo = git2::Repository::open_bare(remote)?;
    let mut walk = repo.revwalk()?;
    walk.push_ref("refs/heads/main")?;
    Ok(walk.count())
}
