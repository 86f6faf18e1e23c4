//! The envelope on the wire, against a real nats-server: what a publisher writes is what the
//! CloudEvents NATS binding says, and a consumer with only `proto/` can decode it.

use crate::common;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use flotilla_bus::{Encoding, Event, EventType, Outgoing};
use flotilla_proto::v1::Build;
use prost_reflect::{DescriptorPool, DynamicMessage, Value};

fn header<'a>(message: &'a async_nats::jetstream::Message, name: &str) -> Option<&'a str> {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str())
}

#[tokio::test]
async fn protobuf_event_round_trips_with_cloudevents_headers() -> Result<()> {
    let (_server, bus) = common::setup().await?;
    let published = common::publish_build(&bus, EventType::BuildStarted, "ping-v1").await?;
    assert_eq!(published.subject, "flotilla.build.started.ping-v1");

    let stored =
        common::stored_raw(&bus, "FLOTILLA", "flotilla.>", 1, Duration::from_secs(2)).await?;
    let message = stored.first().context("stored")?;
    assert_eq!(header(message, "ce-specversion"), Some("1.0"));
    assert_eq!(header(message, "ce-id"), Some(published.id.as_str()));
    assert_eq!(header(message, "Nats-Msg-Id"), Some(published.id.as_str()));
    assert_eq!(header(message, "ce-source"), Some("flotilla/test"));
    assert_eq!(
        header(message, "ce-type"),
        Some("dev.flotilla.build.started.v1")
    );
    assert_eq!(header(message, "ce-subject"), Some("ping-v1"));
    assert_eq!(header(message, "flotilla-change-id"), Some("ping-v1"));
    assert_eq!(
        header(message, "content-type"),
        Some("application/protobuf; proto=flotilla.v1.Build")
    );
    assert_eq!(
        header(message, "ce-datacontenttype"),
        Some("application/protobuf;%20proto=flotilla.v1.Build"),
        "every attribute is a ce- header, percent-encoded"
    );
    let time = header(message, "ce-time").context("ce-time")?;
    time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
        .context("ce-time is RFC 3339")?;

    let event = Event::from_parts(
        &message.subject,
        message.headers.as_ref(),
        message.payload.clone(),
    )?;
    assert_eq!(event.decode::<Build>()?, common::build("ping-v1"));
    assert_eq!(event.data_json()?["changeId"], "ping-v1");
    Ok(())
}

#[tokio::test]
async fn json_event_round_trips_and_decodes_into_the_same_message() -> Result<()> {
    let (_server, bus) = common::setup().await?;
    let data = br#"{"change_id":"ping-v2","app":"ping","version":"v2","images":[{"name":"ping","ref":"r/ping:v2"}]}"#;
    let event = Outgoing::from_json(EventType::BuildSucceeded, "ping-v2", data, Encoding::Json)?;
    bus.publisher("test").publish(event).await?;

    let stored = common::stored(
        &bus,
        "flotilla.build.succeeded.>",
        1,
        Duration::from_secs(2),
    )
    .await?;
    let event = stored.first().context("stored")?;
    assert_eq!(event.content_type, "application/json");
    let build: Build = event.decode()?;
    assert_eq!(build.change_id, "ping-v2");
    assert_eq!(build.images[0].r#ref, "r/ping:v2");
    assert_eq!(event.data_json()?["images"][0]["name"], "ping");
    Ok(())
}

#[tokio::test]
async fn a_consumer_with_only_the_proto_files_decodes_a_published_event() -> Result<()> {
    let (_server, bus) = common::setup().await?;
    common::publish_build(&bus, EventType::BuildFailed, "ping-v3").await?;
    let stored =
        common::stored_raw(&bus, "FLOTILLA", "flotilla.>", 1, Duration::from_secs(2)).await?;
    let message = stored.first().context("stored")?;

    // Compile proto/ here, independently of the crate's generated code.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files: Vec<_> = std::fs::read_dir(root.join("flotilla/v1"))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    let pool = DescriptorPool::from_file_descriptor_set(protox::compile(&files, [&root])?)?;

    let content_type = header(message, "content-type").context("content-type")?;
    let name = content_type
        .strip_prefix("application/protobuf; proto=")
        .context("protobuf content type")?;
    let descriptor = pool
        .get_message_by_name(name)
        .context("message in proto/")?;
    let decoded = DynamicMessage::decode(descriptor, message.payload.as_ref())?;
    assert_eq!(
        decoded.get_field_by_name("change_id").as_deref(),
        Some(&Value::String("ping-v3".into()))
    );
    Ok(())
}

#[tokio::test]
async fn attribute_values_outside_printable_ascii_are_percent_encoded_and_decoded_back()
-> Result<()> {
    let (_server, bus) = common::setup().await?;
    let event = Outgoing::new(EventType::BuildStarted, "k", &common::build("k"))?
        .with_id("delivery 42 \u{20AC}")
        .with_change_id("ping \"v1\"");
    bus.publisher("test").publish(event).await?;
    let stored =
        common::stored_raw(&bus, "FLOTILLA", "flotilla.>", 1, Duration::from_secs(2)).await?;
    let message = stored.first().context("stored")?;
    assert_eq!(header(message, "ce-id"), Some("delivery%2042%20%E2%82%AC"));
    assert_eq!(
        header(message, "flotilla-change-id"),
        Some("ping%20%22v1%22")
    );
    let event = Event::from_parts(
        &message.subject,
        message.headers.as_ref(),
        message.payload.clone(),
    )?;
    assert_eq!(event.id, "delivery 42 \u{20AC}");
    assert_eq!(event.change_id.as_deref(), Some("ping \"v1\""));
    Ok(())
}

#[tokio::test]
async fn an_event_published_outside_a_handler_carries_the_trace_context_kept_for_it() -> Result<()>
{
    // No tracer here (export off): the kept context passes through as it is, so a background
    // task's event stays in the change's trace across workers that do export.
    let (_server, bus) = common::setup().await?;
    let kept = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let carried = Outgoing::new(
        EventType::BuildStarted,
        "ping-v1",
        &common::build("ping-v1"),
    )?
    .with_traceparent(kept);
    bus.publisher("test").publish(carried).await?;
    let unkept = Outgoing::new(
        EventType::BuildStarted,
        "ping-v2",
        &common::build("ping-v2"),
    )?
    .with_traceparent("");
    bus.publisher("test").publish(unkept).await?;

    let stored =
        common::stored_raw(&bus, "FLOTILLA", "flotilla.>", 2, Duration::from_secs(2)).await?;
    assert_eq!(header(&stored[0], "traceparent"), Some(kept));
    assert_eq!(
        header(&stored[1], "traceparent"),
        None,
        "nothing kept and no cause: no context is made up"
    );
    Ok(())
}
