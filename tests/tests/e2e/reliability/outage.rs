//! A whole single-node NATS killed with SIGKILL mid-run and started again: webhooks are
//! answered 503 while it is down, and nothing acknowledged is lost.

use std::time::Duration;

use anyhow::Result;
use flotilla_e2e::chaos::Fault;
use flotilla_e2e::fleet::{Fleet, FleetConfig};
use flotilla_e2e::scenario::{self, Scenario};

use super::{DRAIN, FLEETS, assert_clean};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_run_is_answered_503_and_loses_nothing_acknowledged() -> Result<()> {
    let _turn = FLEETS.lock().await;
    let mut fleet = Fleet::start(FleetConfig::default()).await?;
    let seed = scenario::seed();
    let scenario = Scenario {
        changes: 30,
        rate: 4.0,
        pull_requests: 0.3,
        crash: Vec::new(),
        faults: vec![(
            0.4,
            Fault::RestartNats {
                down_for: Duration::from_secs(3),
            },
        )],
        seed,
        drain: DRAIN,
    };
    let run = scenario.run(&mut fleet, |_| {}).await?;
    assert_clean(&run, &mut fleet, seed);

    assert_eq!(
        run.chaos.outage_answers,
        [503],
        "a delivery sent while NATS was down is answered 503"
    );
    assert_eq!(
        run.chaos.probes.len(),
        1,
        "and accepted once it is back (the checks found it stored once)"
    );
    assert_eq!(run.verdict.terminal, 30);
    fleet.stop().await
}
