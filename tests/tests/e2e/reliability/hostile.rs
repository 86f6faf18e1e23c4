//! Hostile input: malformed events on every subject a worker consumes, and hostile webhook
//! deliveries. Poison goes to the dead-letter stream with a reason and the workers keep
//! running; every hostile delivery gets its answer, nothing of it is stored, and the
//! listener's memory stays bounded while oversized bodies pour in.

use std::time::Duration;

use anyhow::{Context, Result};
use flotilla_e2e::check::Stored;
use flotilla_e2e::corpus::{self, Target};
use flotilla_e2e::fleet::{Fleet, FleetConfig, SECRET};
use flotilla_e2e::hostile;
use flotilla_e2e::scenario::{self, Scenario};

use super::{DRAIN, FLEETS, assert_clean};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_on_every_consumed_subject_is_dead_lettered_with_a_reason_and_work_goes_on()
-> Result<()> {
    let _turn = FLEETS.lock().await;
    let mut fleet = Fleet::start(FleetConfig::default()).await?;
    let round = hostile::poison_round(&fleet.js, Duration::from_secs(30)).await?;
    assert!(
        round.expected.len() > 40,
        "{} (worker, subject) pairs",
        round.expected.len()
    );
    assert!(
        round.missing.is_empty(),
        "no dead letter for {:?}",
        round.missing
    );
    for letter in &round.letters {
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
    let mut fleet = Fleet::start(config).await?;
    let listener = fleet.worker("source-listener")?;
    let pid = listener.pid().context("the listener runs")?;
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
    let ids: Vec<&str> = stored.facts.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(
        ids,
        [replayed.as_str()],
        "only the valid delivery is stored"
    );

    // Oversized bodies from many senders at once are refused as they stream in, not buffered
    // whole: 16 bodies of 5 MiB would be 80 MiB.
    let flood = hostile::flood(&target, pid, 16).await?;
    for status in &flood.statuses {
        // 413 once the limit is read; on a busy machine a sender may be cut off at the
        // request timeout first (408, or the connection closed).
        assert!([413, 408, 0].contains(status), "{flood:?}");
    }
    let growth = flood.rss_peak.saturating_sub(flood.rss_before);
    assert!(
        growth < 32 * 1024 * 1024,
        "{} oversized bodies grew the listener by {} MiB",
        flood.senders,
        growth >> 20
    );
    let ready = reqwest::get(format!("http://127.0.0.1:{}/readyz", target.port)).await?;
    assert_eq!(ready.status().as_u16(), 200, "the listener is still ready");
    assert_eq!(fleet.exited(), Vec::<String>::new());
    fleet.stop().await
}
