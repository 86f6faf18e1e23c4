//! Faults injected while a run's load goes: a worker killed with SIGKILL and started again, the
//! stream leader of a cluster killed and kept down, a single NATS server restarted. Each fault
//! is logged with when it happened, so the report can say what the run survived.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::fleet::Fleet;
use crate::nats::Nats;
use crate::plan::Rng;
use crate::webhook::Delivery;

/// One fault, at an offset from the start of the load.
#[derive(Debug, Clone)]
pub enum Fault {
    /// kill -9 of a worker; started again after `down_for`.
    Crash { worker: String, down_for: Duration },
    /// kill -9 of the node leading the `FLOTILLA` stream; it stays down until
    /// [`Fleet::restart_downed_nodes`].
    KillStreamLeader,
    /// kill -9 of a single-node NATS, started again after `down_for`. While it is down a probe
    /// delivery is sent, which must be answered 503; it is sent again after the restart until
    /// accepted.
    RestartNats { down_for: Duration },
}

/// What happened, for the report.
#[derive(Debug, Clone)]
pub struct Happened {
    pub at: Duration,
    pub what: String,
}

/// The record of a run's faults.
#[derive(Debug, Default)]
pub struct Record {
    pub log: Vec<Happened>,
    /// The node killed as the stream leader, still down.
    pub downed_leader: Option<usize>,
    /// Answers to probe deliveries sent while NATS was down.
    pub outage_answers: Vec<u16>,
    /// Probe deliveries that were accepted after NATS came back: they must be stored.
    pub probes: Vec<String>,
    /// Restarts of a worker that failed to become ready again.
    pub failures: Vec<String>,
}

/// A schedule: each worker crashed once at a random moment within `window` (in turn, in a
/// random order), plus the extra faults at fixed fractions of the window.
pub fn schedule(
    workers: &[&str],
    window: Duration,
    extra: &[(f64, Fault)],
    seed: u64,
) -> Vec<(Duration, Fault)> {
    let mut rng = Rng::new(seed ^ 0xC4A0_5EED);
    let mut order: Vec<&str> = workers.to_vec();
    for i in (1..order.len()).rev() {
        let j = rng.range(0, i as u64 + 1) as usize;
        order.swap(i, j);
    }
    // Each worker gets a slot of its own within the middle 80% of the window, at a random
    // moment inside it, so that crashes come in turn and never overlap.
    let slots = order.len().max(1) as f64;
    let mut faults: Vec<(Duration, Fault)> = order
        .iter()
        .enumerate()
        .map(|(i, worker)| {
            let slot_start = 0.1 + 0.8 * i as f64 / slots;
            let at = slot_start + 0.8 / slots * rng.unit() * 0.8;
            let down_for = Duration::from_millis(rng.range(200, 2000));
            (
                window.mul_f64(at),
                Fault::Crash {
                    worker: (*worker).to_owned(),
                    down_for,
                },
            )
        })
        .collect();
    faults.extend(extra.iter().map(|(at, f)| (window.mul_f64(*at), f.clone())));
    faults.sort_by_key(|(at, _)| *at);
    faults
}

/// Injects `faults` into `fleet`, each at its offset from `started`.
pub async fn run(fleet: &mut Fleet, faults: Vec<(Duration, Fault)>, started: Instant) -> Record {
    let mut record = Record::default();
    for (at, fault) in faults {
        let now = started.elapsed();
        if at > now {
            tokio::time::sleep(at - now).await;
        }
        if let Err(e) = inject(fleet, &fault, started, &mut record).await {
            record.failures.push(format!("{fault:?}: {e:#}"));
        }
    }
    record
}

async fn inject(
    fleet: &mut Fleet,
    fault: &Fault,
    started: Instant,
    record: &mut Record,
) -> Result<()> {
    match fault {
        Fault::Crash { worker, down_for } => {
            let pid = fleet.worker(worker)?.pid().unwrap_or(0);
            let at = started.elapsed();
            fleet.crash_and_restart(worker, *down_for).await?;
            record.log.push(Happened {
                at,
                what: format!(
                    "kill -9 {worker} (pid {pid}), restarted after {down_for:?}, ready again {:.1?} later",
                    started.elapsed() - at
                ),
            });
        }
        Fault::KillStreamLeader => {
            let leader = Nats::stream_leader(&fleet.js, "FLOTILLA").await?;
            let index = fleet
                .nats
                .node(&leader)
                .with_context(|| format!("no node named {leader}"))?;
            let at = started.elapsed();
            fleet.nats.kill(index);
            record.downed_leader = Some(index);
            let new_leader = wait_for_new_leader(fleet, &leader).await;
            record.log.push(Happened {
                at,
                what: format!(
                    "kill -9 {leader}, the FLOTILLA stream's leader; kept down. New leader {} after {:.1?}",
                    new_leader.as_deref().unwrap_or("none"),
                    started.elapsed() - at
                ),
            });
        }
        Fault::RestartNats { down_for } => {
            let sender = fleet.sender()?;
            let at = started.elapsed();
            fleet.nats.kill(0);
            let probe = Delivery::push(
                "acme/probe",
                "suite-probe",
                &format!("{:040x}", at.as_nanos()),
                "2025-01-01T00:00:00Z",
            );
            // The listener notices the lost connection within moments; a probe sent before
            // that may still be held by the client and stored after the restart.
            tokio::time::sleep(Duration::from_millis(300)).await;
            if let Ok((status, _)) = sender.send_once(&probe).await {
                record.outage_answers.push(status);
            }
            let left = down_for.saturating_sub(Duration::from_millis(300));
            tokio::time::sleep(left).await;
            fleet.nats.restart(0)?;
            let answer = sender.send(&probe, Duration::from_secs(60)).await;
            if answer.status == 202 {
                record.probes.push(probe.id.clone());
            }
            record.log.push(Happened {
                at,
                what: format!(
                    "kill -9 nats-server, restarted after {down_for:?}; a delivery sent meanwhile was answered {:?}, then {} after the restart",
                    record.outage_answers.last(),
                    answer.status
                ),
            });
        }
    }
    Ok(())
}

/// The new leader of `FLOTILLA` once one other than `old` is elected (or none within 30 s).
async fn wait_for_new_leader(fleet: &Fleet, old: &str) -> Option<String> {
    // Short requests: during the election stream info goes unanswered, and a long timeout
    // would make the election look longer than it is.
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(500))
        .build(fleet.client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if let Ok(leader) = Nats::stream_leader(&js, "FLOTILLA").await
            && leader != old
        {
            return Some(leader);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

impl Fleet {
    /// Starts the node a [`Fault::KillStreamLeader`] left down, and waits until its copy of
    /// `FLOTILLA` holds what the stream's leader holds: it caught up.
    pub async fn restart_downed_node(
        &mut self,
        index: usize,
        within: Duration,
    ) -> Result<(u64, u64)> {
        self.nats.restart(index)?;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let leader = Nats::stream_leader(&self.js, "FLOTILLA").await?;
            let leader = self.nats.node(&leader).context("the leader's node")?;
            let theirs = self.nats.nodes[leader]
                .local_stream_state("FLOTILLA")
                .await?;
            let ours = self.nats.nodes[index]
                .local_stream_state("FLOTILLA")
                .await?;
            if let (Some(theirs), Some(ours)) = (theirs, ours)
                && theirs == ours
            {
                return Ok(ours);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!(
                    "node {} did not catch up within {within:?}: it holds {ours:?}, the leader {theirs:?} (messages, last sequence)",
                    self.nats.nodes[index].name
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
