//! Smoke tests of the two-hop benchmark against a private nats-server. Timings vary with the
//! machine, so these check only that both pipelines were measured and nothing was left behind.

use async_nats::jetstream;
use flotilla_bench::{HopArgs, run_hop};
use flotilla_bus::topology::StreamLimits;
use flotilla_bus::{Bus, Names};
use flotilla_testing::NatsServer;
use futures::TryStreamExt;

/// Counts small enough for a test, still covering every phase and both round orders.
fn tiny() -> HopArgs {
    HopArgs {
        count: 10,
        pipelined: 50,
        warmup: 3,
        window: 8,
        rounds: 2,
        ..HopArgs::default()
    }
}

async fn stream_names(js: &jetstream::Context) -> Vec<String> {
    let mut names: Vec<String> = js.stream_names().try_collect().await.expect("list streams");
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_measures_both_pipelines_and_deletes_its_streams() {
    let server = NatsServer::start();
    let client = server.connect().await;

    let report = run_hop(client.clone(), &tiny())
        .await
        .expect("benchmark runs");

    for side in [&report.bare, &report.bus] {
        assert_eq!(side.latency.samples, 10);
        assert!(side.latency.p50 <= side.latency.p99);
        assert_eq!(side.throughput.messages, 50);
        assert!(side.throughput.per_second() > 0.0);
    }
    assert!(report.payload.abs_diff(HopArgs::default().payload) <= 1);
    let text = report.to_string();
    assert!(text.contains("bare") && text.contains("bus"), "{text}");

    assert!(!report.streams.is_empty());
    let js = jetstream::new(client);
    for name in &report.streams {
        assert!(js.get_stream(name).await.is_err(), "{name} still exists");
    }
    assert_eq!(stream_names(&js).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_leaves_the_real_flotilla_streams_alone() {
    let server = NatsServer::start();
    let client = server.connect().await;
    let bus = Bus::new(client.clone(), Names::default());
    bus.ensure_streams(&StreamLimits::default())
        .await
        .expect("create FLOTILLA");
    let before = stream_names(bus.jetstream()).await;
    bus.jetstream()
        .publish("flotilla.source.custom.x", "kept".into())
        .await
        .expect("publish")
        .await
        .expect("stored");

    run_hop(client, &tiny()).await.expect("benchmark runs");

    assert_eq!(stream_names(bus.jetstream()).await, before);
    let mut stream = bus.stream().await.expect("FLOTILLA");
    let info = stream.info().await.expect("stream info");
    assert_eq!(info.state.messages, 1);
    assert_eq!(info.state.consumer_count, 0);
}
