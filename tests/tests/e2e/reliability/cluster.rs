//! A three-node JetStream cluster with every stream and bucket replicated three times: the
//! FLOTILLA stream's leader is killed with SIGKILL mid-run and kept down, and workers are
//! killed and restarted, while changes keep arriving; nothing accepted is lost or duplicated,
//! and the leader, started again, catches up.

use anyhow::Result;
use async_nats::jetstream::stream;
use flotilla_bus::{Bus, Names};
use flotilla_e2e::chaos::Fault;
use flotilla_e2e::fleet::{Fleet, FleetConfig};
use flotilla_e2e::nats::Nats;
use flotilla_e2e::scenario::{self, Scenario};
use flotilla_env::Registry;

use super::{DRAIN, FLEETS, assert_clean};

// What this run found: nats-server 2.9.10 lets two compare-and-set updates of one registry
// record through when they reach a replicated bucket together, the second undoing the first
// (an env's `ready` undone by a report stored at the same moment; `flotilla_bus::kv::update`
// repairs it), two handlings of one build after acks lost in the election recorded the env
// twice (`trust::recorded`), and env-manager killed while it held the GitOps branch's lock
// file left it behind, failing every later push (`flotilla_gitops::locks`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_losing_its_stream_leader_and_workers_mid_run_loses_and_repeats_nothing()
-> Result<()> {
    let _turn = FLEETS.lock().await;
    let mut fleet = Fleet::start(FleetConfig {
        nodes: 3,
        ..FleetConfig::default()
    })
    .await?;
    for bucket in ["KV_flotilla-envs", "KV_flotilla-canaries"] {
        let config = fleet
            .js
            .get_stream(bucket)
            .await?
            .info()
            .await?
            .config
            .clone();
        assert_eq!(config.num_replicas, 3, "{bucket}");
        assert!(
            !config.allow_direct,
            "{bucket}: a replicated bucket is read from its leader, never a lagging replica"
        );
    }
    let main: stream::Config = fleet
        .js
        .get_stream("FLOTILLA")
        .await?
        .info()
        .await?
        .config
        .clone();
    assert_eq!(main.num_replicas, 3);

    let seed = scenario::seed();
    let scenario = Scenario {
        changes: 40,
        rate: 4.0,
        pull_requests: 0.3,
        crash: vec![
            "env-manager".into(),
            "builder-trigger".into(),
            "canary-analyzer".into(),
        ],
        faults: vec![(0.35, Fault::KillStreamLeader)],
        seed,
        drain: DRAIN,
    };
    let run = scenario.run(&mut fleet, |_| {}).await?;
    assert_clean(&run, &mut fleet, seed);

    assert!(
        run.chaos.downed_leader.is_some(),
        "the stream leader was killed"
    );
    let (messages, last) = run
        .caught_up
        .clone()
        .expect("the killed leader was restarted")
        .expect("and caught up");
    assert!(
        messages > 0 && last >= messages,
        "its copy holds the run: {messages} messages"
    );
    assert_eq!(
        run.verdict.terminal, 40,
        "every change reached its terminal state"
    );

    // With a follower of the registry's stream down, listing the registry (what the reaper's
    // and sync-watcher's sweeps do) works every time: a listing consumer the server places on
    // the dead node is given up for another.
    let leader = Nats::stream_leader(&fleet.js, "KV_flotilla-envs").await?;
    let follower = (0..3)
        .find(|&i| fleet.nats.nodes[i].name != leader)
        .expect("a follower");
    fleet.nats.kill(follower);
    let bus = Bus::new(fleet.client.clone(), Names::default());
    let registry = Registry::new(bus.envs().await?);
    for attempt in 0..12 {
        let listed = registry.list().await;
        assert!(
            listed.as_ref().is_ok_and(|envs| envs.len() == 40),
            "listing {attempt} with {} down: {:?}",
            fleet.nats.nodes[follower].name,
            listed.map(|envs| envs.len())
        );
    }
    fleet.stop().await
}
