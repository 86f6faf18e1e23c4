//! Smoke test of the webhook intake benchmark against a private nats-server. Timings vary with
//! the machine, so it checks only that every side was measured with what was asked, that every
//! delivery was really stored, and that nothing was left behind.

use async_nats::jetstream;
use flotilla_bench::{WebhookArgs, run_webhook};
use flotilla_testing::NatsServer;
use futures::TryStreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_measures_intake_and_bare_publishing_and_deletes_its_streams() {
    let server = NatsServer::start();
    let client = server.connect().await;
    let args = WebhookArgs {
        clients: 4,
        requests: 40,
        rounds: 2,
        payload: 2048,
        rate: 200,
        paced: 20,
        warmup: 4,
    };

    let report = run_webhook(client.clone(), &args)
        .await
        .expect("benchmark runs");

    assert_eq!(report.body, 2048);
    assert_eq!((report.bare.messages, report.intake.messages), (40, 40));
    assert!(report.bare.per_second() > 0.0 && report.intake.per_second() > 0.0);
    assert_eq!(report.paced.samples, 20);
    assert!(report.paced.p50 <= report.paced.p99);
    let text = report.to_string();
    assert!(
        text.contains("intake/bare") && text.contains("paced"),
        "{text}"
    );

    let js = jetstream::new(client);
    let left: Vec<String> = js.stream_names().try_collect().await.expect("list streams");
    assert!(left.is_empty(), "streams left behind: {left:?}");
}
