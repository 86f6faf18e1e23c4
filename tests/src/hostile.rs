//! Hostile input against a running fleet, as rounds the CI tests and the full run share:
//! poison on every consumed subject until every dead letter it must cause is there, and
//! oversized deliveries from many senders at once while the listener's memory is sampled.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use async_nats::jetstream;

use crate::check::{self, Letter};
use crate::corpus::{self, Target};
use crate::poison::{self, Poison};
use crate::process::rss_of;

/// The reaper only wakes its sweep on these two and never reads their data: a malformed body
/// is nothing it acts on, so only an envelope-less message is a dead letter of its.
pub const DATA_UNREAD: [(&str, &str); 2] = [
    ("reaper", "env.teardown.requested"),
    ("reaper", "env.deleted"),
];

/// What a poison round found.
#[derive(Debug)]
pub struct PoisonRound {
    pub sent: Vec<Poison>,
    /// `(worker, subject)` pairs that must be dead letters.
    pub expected: BTreeSet<(String, String)>,
    pub letters: Vec<Letter>,
    /// Expected letters that did not come.
    pub missing: Vec<(String, String)>,
    pub took: Duration,
}

/// Publishes the poison and waits (up to `within`) for every dead letter it must cause.
pub async fn poison_round(js: &jetstream::Context, within: Duration) -> Result<PoisonRound> {
    let started = tokio::time::Instant::now();
    let sent = poison::publish_all(js).await?;
    let mut expected = BTreeSet::new();
    for poison in &sent {
        let event_type = poison
            .subject
            .strip_prefix("flotilla.")
            .and_then(|s| s.rsplit_once('.'))
            .map(|(t, _)| t)
            .context("a poison subject")?;
        for worker in &poison.consumers {
            let unread = DATA_UNREAD.contains(&(worker.as_str(), event_type));
            if poison.kind == "no-envelope" || !unread {
                expected.insert((worker.clone(), poison.subject.clone()));
            }
        }
    }
    let letters = loop {
        let letters = check::read_letters(js).await?;
        let all = expected.iter().all(|(worker, subject)| {
            letters
                .iter()
                .any(|l| &l.worker == worker && &l.subject == subject)
        });
        if all || started.elapsed() > within {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let have: BTreeSet<(String, String)> = letters
        .iter()
        .map(|l| (l.worker.clone(), l.subject.clone()))
        .collect();
    let missing = expected.difference(&have).cloned().collect();
    Ok(PoisonRound {
        sent,
        expected,
        letters,
        missing,
        took: started.elapsed(),
    })
}

/// What a flood of oversized deliveries did to the listener.
#[derive(Debug)]
pub struct Flood {
    pub senders: usize,
    /// Each sender's answer (413; 408 or 0 when cut off at the request timeout first).
    pub statuses: Vec<u16>,
    pub rss_before: u64,
    pub rss_peak: u64,
}

/// `senders` oversized deliveries at once to the listener whose process is `pid`, sampling its
/// resident memory every 20 ms.
pub async fn flood(target: &Target, pid: u32, senders: usize) -> Result<Flood> {
    let before = rss_of(pid).context("the listener's memory")?;
    let peak = Arc::new(AtomicU64::new(before));
    let sampling = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(rss) = rss_of(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut floods = tokio::task::JoinSet::new();
    for _ in 0..senders {
        let target = target.clone();
        floods.spawn(async move { corpus::oversized(&target).await });
    }
    let mut statuses = Vec::new();
    while let Some(case) = floods.join_next().await {
        statuses.push(case??.got);
    }
    sampling.abort();
    Ok(Flood {
        senders,
        statuses,
        rss_before: before,
        rss_peak: peak.load(Ordering::Relaxed),
    })
}
