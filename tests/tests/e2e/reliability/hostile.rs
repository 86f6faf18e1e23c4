//! Hostile input: malformed events on every subject a worker consumes, and hostile webhook
//! deliveries. Poison goes to the dead-letter stream with a reason and the workers keep
//! running; every hostile delivery gets its answer, nothing of it is stored, and the
//! listener's memory stays bounded while oversized bodies pour in.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use flotilla_e2e::check::{self, Stored};
use flotilla_e2e::corpus::{self, Target};
use flotilla_e2e::fleet::{Fleet, FleetConfig, SECRET};
use flotilla_e2e::scenario::{self, Scenario};
use flotilla_e2e::{events, poison};

use super::{DRAIN, FLEETS, assert_clean};

/// The reaper only wakes its sweep on these two and never reads their data: a malformed body
/// is nothing it acts on.
const DATA_UNREAD: [(&str, &str); 2] = [
    ("reaper", "env.teardown.requested"),
    ("reaper", "env.deleted"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_on_every_consumed_subject_is_dead_lettered_with_a_reason_and_work_goes_on()
-> Result<()> {
    let _turn = FLEETS.lock().await;
    let mut fleet = Fleet::start(FleetConfig::default()).await?;
    let sent = poison::publish_all(&fleet.js).await?;
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
    assert!(
        expected.len() > 40,
        "{} (worker, subject) pairs",
        expected.len()
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (letters, arrived) = loop {
        let letters = check::read_letters(&fleet.js).await?;
        let all = expected.iter().all(|(worker, subject)| {
            letters
                .iter()
                .any(|l| &l.worker == worker && &l.subject == subject)
        });
        if all || tokio::time::Instant::now() > deadline {
            break (letters, all);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let have: BTreeSet<(String, String)> = letters
        .iter()
        .map(|l| (l.worker.clone(), l.subject.clone()))
        .collect();
    let missing: Vec<_> = expected.difference(&have).collect();
    assert!(arrived, "no dead letter for {missing:?}");
    for letter in &letters {
        assert!(
            !letter.reason.is_empty(),
            "{} on {}: a reason",
            letter.worker,
            letter.subject
        );
        assert!(
            letter.subject.contains(".poison-"),
            "only poison is dead-lettered: {letter:?}"
        );
    }
    assert_eq!(
        fleet.exited(),
        Vec::<String>::new(),
        "no worker died of poison"
    );

    // And the fleet still works: changes sent after the poison all finish, and the checks find
    // no dead letter but the poison's.
    let seed = scenario::seed();
    let scenario = Scenario {
        changes: 8,
        rate: 8.0,
        pull_requests: 0.25,
        crash: Vec::new(),
        faults: Vec::new(),
        seed,
        drain: DRAIN,
    };
    let mut run = scenario.run(&mut fleet, |_| {}).await?;
    run.verdict
        .problems
        .retain(|p| !(p.starts_with("dead letter of") && p.contains(".poison-")));
    assert_clean(&run, &mut fleet, seed);
    fleet.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_webhooks_get_their_answer_store_nothing_and_leave_memory_bounded() -> Result<()> {
    let _turn = FLEETS.lock().await;
    let request_timeout = Duration::from_secs(2);
    let mut config = FleetConfig::default();
    config.extra_env.push((
        "source-listener".into(),
        "FLOTILLA_REQUEST_TIMEOUT".into(),
        humantime::format_duration(request_timeout).to_string(),
    ));
    let fleet = Fleet::start(config).await?;
    let listener = fleet.worker("source-listener")?;
    let target = Target {
        port: listener.http_port,
        secret: SECRET.into(),
        max_body: 5 * 1024 * 1024,
        request_timeout,
    };

    let (cases, replayed) = corpus::run(&target).await?;
    let wrong: Vec<_> = cases.iter().filter(|c| !c.ok()).collect();
    assert!(wrong.is_empty(), "wrong answers: {wrong:#?}");

    // Nothing stored but the one valid delivery, once, though it was sent twice.
    let stored = Stored::read(&fleet.js, &fleet.gitops.remote).await?;
    let sources: Vec<_> = stored
        .facts
        .iter()
        .filter(|f| f.kind.starts_with("source."))
        .collect();
    assert_eq!(sources.len(), 1, "{sources:#?}");
    assert_eq!(sources[0].id, replayed);
    let all = events::read_facts(&fleet.js).await?;
    assert!(
        all.iter()
            .all(|f| f.id == replayed || f.kind != "source.push"),
        "no other delivery became an event"
    );

    // Memory: oversized bodies from many senders at once are refused as they stream in, not
    // buffered whole.
    let pid = listener.pid().context("the listener runs")?;
    let before = flotilla_e2e::process::rss_of(pid).context("its memory")?;
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampling = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(rss) = flotilla_e2e::process::rss_of(pid) {
                    peak.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let senders = 16;
    let mut floods = tokio::task::JoinSet::new();
    for _ in 0..senders {
        let target = target.clone();
        floods.spawn(async move { corpus::oversized(&target).await });
    }
    while let Some(case) = floods.join_next().await {
        let case = case??;
        // 413 once the limit is read; on a busy machine a sender may be cut off at the
        // request timeout first (408, or the connection closed).
        assert!([413, 408, 0].contains(&case.got), "{case:?}");
    }
    sampling.abort();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    let growth = peak.saturating_sub(before);
    assert!(
        growth < 32 * 1024 * 1024,
        "{senders} oversized bodies of 5 MiB grew the listener by {} MiB",
        growth >> 20
    );
    let ready = reqwest::get(format!("http://127.0.0.1:{}/readyz", target.port)).await?;
    assert_eq!(ready.status().as_u16(), 200, "the listener is still ready");
    let mut fleet = fleet;
    assert_eq!(fleet.exited(), Vec::<String>::new());
    fleet.stop().await
}
