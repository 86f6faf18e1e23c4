//! canary-analyzer's leases on a three-node cluster with the lease bucket at three replicas:
//! replicas on different nodes racing for one release, new or with its lease expired, never
//! both hold it.
//!
//! A lease write is a compare-and-set, which nats-server before 2.9.21 lets through twice on a
//! replicated stream (nats-server#4320; see `registry_cluster`): two replicas would both judge
//! the release. `flotilla_bus::kv::update` repairs it; the price is that both may be told
//! "taken" once, and then the replica the record names takes it back as its own.

use std::time::Duration;

use anyhow::{Context, Result};
use canary_analyzer::lease::{Claim, Leases};
use canary_analyzer::release::Job;
use flotilla_bus::topology::StreamLimits;
use flotilla_bus::{Bus, Names};
use flotilla_e2e::nats::Nats;

const REPLICAS: usize = 4;
const RELEASES: usize = 15;
const TTL: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_racing_for_a_release_on_a_replicated_bucket_never_both_hold_it() -> Result<()> {
    let nats = Nats::cluster(3)?;
    let client = nats.connect().await?;
    nats.wait_jetstream(&client).await?;
    Bus::new(client, Names::default())
        .ensure_streams(&StreamLimits {
            replicas: 3,
            ..StreamLimits::default()
        })
        .await?;
    let mut replicas = Vec::new();
    for i in 0..REPLICAS {
        // Each replica on its own connection, to its own node: as the workers are.
        let client = async_nats::connect(nats.nodes[i % nats.nodes.len()].url()).await?;
        let bus = Bus::new(client, Names::default());
        replicas.push(Leases::new(bus.canaries().await?, format!("r{i}"), TTL));
    }
    let jobs: Vec<Job> = (0..RELEASES).map(job).collect();

    // New releases, then the same ones once every lease has expired.
    for round in ["new", "expired"] {
        if round == "expired" {
            tokio::time::sleep(TTL + Duration::from_millis(200)).await;
        }
        for job in &jobs {
            let claims = futures::future::join_all(
                replicas
                    .iter()
                    .map(|replica| async move { replica.claim(job, "").await }),
            )
            .await;
            let mut holders = Vec::new();
            for (i, claim) in claims.into_iter().enumerate() {
                match claim.map_err(|e| anyhow::anyhow!("{e}"))? {
                    Claim::Mine(held) => holders.push((i, *held)),
                    Claim::Taken { .. } => {}
                    Claim::Finished => anyhow::bail!("{}: finished, never decided", job.release),
                }
            }
            assert!(
                holders.len() <= 1,
                "{} ({round}): held by {:?} at once",
                job.release,
                holders.iter().map(|(i, _)| i).collect::<Vec<_>>()
            );
            let (revision, record) = replicas[0]
                .read(&job.key())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .context("the lease record")?;
            match holders.first() {
                Some((i, held)) => {
                    assert_eq!(record.owner, replicas[*i].owner(), "{}", job.release);
                    assert_eq!(
                        revision, held.revision,
                        "{}: the winning write stands",
                        job.release
                    );
                }
                None => {
                    // Everyone was told "taken": the replica the record names takes it back
                    // at its next sweep.
                    let named = replicas
                        .iter()
                        .find(|r| r.owner() == record.owner)
                        .context("the record names a replica")?;
                    let again = named
                        .claim(job, "")
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    assert!(
                        matches!(again, Claim::Mine(_)),
                        "{} ({round}): {} takes back the release its record names",
                        job.release,
                        record.owner
                    );
                }
            }
        }
    }
    Ok(())
}

fn job(n: usize) -> Job {
    Job {
        release: format!("ping-v{n}"),
        change_id: format!("ping-v{n}"),
        app: "ping".into(),
        version: format!("v{n}"),
        previous_version: String::new(),
        repo: "acme/ping".into(),
        sha: String::new(),
        analysis: Vec::new(),
    }
}
