//! The env registry on a three-node cluster with the bucket at three replicas: concurrent
//! compare-and-set updates of one record, from clients on every node, lose none.
//!
//! nats-server before 2.9.21 checks a publish's expected last sequence per subject (what a KV
//! update is) against what the leader has applied, not against the writes still being agreed
//! on: two updates of one revision sent together both succeed, and the second silently undoes
//! the first (nats-server#4320). Debian's 2.9.10 does this; the registry finds and repairs it.

use anyhow::{Context, Result};
use flotilla_bus::topology::StreamLimits;
use flotilla_bus::{Bus, Names};
use flotilla_e2e::nats::Nats;
use flotilla_env::{EnvRecord, Registry};
use serde_json::Value;

const WRITERS: usize = 4;
const EACH: u64 = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_of_one_record_on_a_replicated_bucket_lose_none() -> Result<()> {
    let nats = Nats::cluster(3)?;
    let client = nats.connect().await?;
    nats.wait_jetstream(&client).await?;
    let bus = Bus::new(client.clone(), Names::default());
    bus.ensure_streams(&StreamLimits {
        replicas: 3,
        ..StreamLimits::default()
    })
    .await?;
    let registry = Registry::new(bus.envs().await?);
    registry
        .update("stg-ping", |_| Some(EnvRecord::default()))
        .await?;

    let mut writers = Vec::new();
    for i in 0..WRITERS {
        // Each writer on its own connection, to its own node: as the workers are.
        let url = nats.nodes[i % nats.nodes.len()].url();
        let client = async_nats::connect(url).await?;
        let bus = Bus::new(client, Names::default());
        let registry = Registry::new(bus.envs().await?);
        writers.push(tokio::spawn(async move {
            for n in 0..EACH {
                loop {
                    let updated = registry
                        .update("stg-ping", |current| {
                            // An idempotent change, as every registry change is: a mark of its
                            // own.
                            let mut record = current.unwrap_or_default();
                            let marks = record
                                .other
                                .entry("marks")
                                .or_insert_with(|| Value::Object(Default::default()));
                            marks
                                .as_object_mut()?
                                .insert(format!("{i}-{n}"), Value::Bool(true));
                            Some(record)
                        })
                        .await;
                    match updated {
                        Ok(()) => break,
                        // Four writers on one record can lose every attempt of an update; a
                        // worker's event is then retried later, and so is this update.
                        Err(flotilla_env::Error::Contended { .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok::<_, flotilla_env::Error>(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    let record = registry.get("stg-ping").await?.context("the record")?;
    let marks = record
        .other
        .get("marks")
        .and_then(Value::as_object)
        .map_or(0, |marks| marks.len());
    assert_eq!(
        marks,
        WRITERS * EACH as usize,
        "every update kept: none undone by a concurrent one"
    );
    Ok(())
}
