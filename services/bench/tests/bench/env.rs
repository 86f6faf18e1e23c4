//! Smoke test of the env benchmark against a private nats-server. Timings vary with the
//! machine, so this checks only that every figure was measured and nothing was left behind.

use async_nats::jetstream;
use flotilla_bench::{EnvArgs, run_env};
use flotilla_testing::NatsServer;
use futures::TryStreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_measures_latency_and_both_grouping_modes_and_deletes_its_streams() {
    let server = NatsServer::start();
    let client = server.connect().await;
    let args = EnvArgs {
        count: 5,
        warmup: 1,
        burst: 20,
        rounds: 2,
        concurrency: 8,
        group_max: 32,
    };

    let report = run_env(client.clone(), &args)
        .await
        .expect("benchmark runs");

    assert_eq!(report.latency.samples, 5);
    assert!(report.latency.p50 <= report.latency.p99);
    for mode in [&report.grouped, &report.single] {
        assert_eq!(mode.throughput.messages, 40);
        assert!(mode.throughput.per_second() > 0.0);
    }
    assert_eq!(
        report.single.commits, 40,
        "one commit per write with grouping off"
    );
    assert!(
        (1..=40).contains(&report.grouped.commits),
        "{} commits",
        report.grouped.commits
    );
    let text = report.to_string();
    assert!(text.contains("writes/s") && text.contains("p50"), "{text}");
    let js = jetstream::new(client);
    let left: Vec<String> = js.stream_names().try_collect().await.expect("list streams");
    assert_eq!(left, Vec::<String>::new());
}
