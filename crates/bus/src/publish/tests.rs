//! The recording publisher: what a dry run would publish, with no server to publish to.

use flotilla_proto::catalog::EventType;
use flotilla_proto::v1::Build;

use super::*;
use crate::dry_run::{EffectKind, Recorder};
use crate::topology::Names;

/// A bus whose connection never succeeds: nothing can be published on it, so an answer from
/// it proves the publisher did not try.
async fn unreachable_bus() -> Bus {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect("127.0.0.1:1")
        .await
        .expect("a client that connects in the background");
    Bus::new(client, Names::default())
}

fn build() -> Outgoing {
    let build = Build {
        change_id: "ping-v1".into(),
        app: "ping".into(),
        version: "v1".into(),
        ..Default::default()
    };
    Outgoing::new(EventType::BuildStarted, "ping-v1", &build).expect("a catalog event")
}

#[tokio::test]
async fn a_recording_publisher_records_what_it_would_publish_and_sends_nothing() {
    let recorder = Recorder::new();
    let publisher = unreachable_bus()
        .await
        .publisher("builder-trigger")
        .recording(recorder.clone());
    let published = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        publisher.publish_all(vec![build(), build()], None),
    )
    .await
    .expect("answers at once, without a server")
    .expect("records");
    assert_eq!(published.len(), 2);
    assert!(published.iter().all(|p| p.sequence == 0 && !p.duplicate));
    assert_eq!(published[0].subject, "flotilla.build.started.ping-v1");
    let effects = recorder.take();
    assert_eq!(effects.len(), 2);
    assert_eq!(effects[0].kind, EffectKind::Publish);
    assert_eq!(
        effects[0].summary,
        format!(
            "publish build.started on flotilla.build.started.ping-v1 (id {})",
            published[0].id
        )
    );
    let data: serde_json::Value =
        serde_json::from_str(effects[0].detail.as_deref().expect("the data")).expect("JSON");
    assert_eq!(data["changeId"], "ping-v1");
}

#[tokio::test]
async fn recorded_outputs_get_the_ids_a_real_publish_would_give_them() {
    let real = unreachable_bus().await.publisher("env-manager");
    let dry = real.clone().recording(Recorder::new());
    let mut headers = HeaderMap::new();
    headers.insert(header::SPECVERSION, envelope::SPECVERSION);
    headers.insert(header::ID, "cause-1");
    headers.insert(header::SOURCE, "flotilla/builder-trigger");
    headers.insert(header::TYPE, "dev.flotilla.build.succeeded.v1");
    let cause = Event::from_parts(
        "flotilla.build.succeeded.ping-v1",
        Some(&headers),
        bytes::Bytes::new(),
    )
    .expect("an envelope");
    let published = dry
        .publish_all(vec![build(), build()], Some(&cause))
        .await
        .expect("records");
    assert_eq!(
        published[1].id,
        real.derive_id("cause-1", "build.started", "ping-v1", 1)
    );
    assert!(real.recorder().is_none());
}
