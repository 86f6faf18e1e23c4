use anyhow::{Context, Result};
use flotilla_bus::Event;
use flotilla_proto::v1::Build;
use flotilla_testing::NatsServer;
use serde_json::json;

use crate::support::{Cli, build, jetstream, message_count};

#[tokio::test]
async fn publish_with_an_unknown_field_fails_naming_the_field_with_exit_65() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;
    let mut data = build("ping-v1");
    data["colour"] = json!("blue");

    let run = cli
        .run_with_stdin(&["publish", "build.started", "ping-v1"], &data.to_string())
        .await?;

    assert_eq!(run.code(), Some(65), "{}", run.stderr);
    assert!(run.stderr.contains("colour"), "{}", run.stderr);
    assert_eq!(
        message_count(&jetstream(&server).await, "FLOTILLA").await?,
        0
    );
    Ok(())
}

#[tokio::test]
async fn publish_with_a_wrongly_typed_field_fails_naming_the_field_with_exit_65() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;
    let mut data = build("ping-v1");
    data["pr"] = json!("forty-two");

    let run = cli
        .run_with_stdin(&["publish", "build.started", "ping-v1"], &data.to_string())
        .await?;

    assert_eq!(run.code(), Some(65), "{}", run.stderr);
    assert!(run.stderr.contains("`pr`"), "{}", run.stderr);
    assert_eq!(
        message_count(&jetstream(&server).await, "FLOTILLA").await?,
        0
    );
    Ok(())
}

#[tokio::test]
async fn publish_without_a_required_field_fails_naming_it_with_exit_65() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);

    let run = cli
        .run_with_stdin(
            &["publish", "env.ready", "pr-ping-1"],
            r#"{"kind":"preview"}"#,
        )
        .await?;

    assert_eq!(run.code(), Some(65), "{}", run.stderr);
    assert!(run.stderr.contains("`env`"), "{}", run.stderr);
    Ok(())
}

#[tokio::test]
async fn a_published_event_is_stored_as_protobuf_in_its_envelope() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;

    let receipt = cli
        .publish("build.started", "ping/v1", &build("ping-v1"))
        .await?;

    assert_eq!(receipt["subject"], "flotilla.build.started.ping_v1");
    assert_eq!(receipt["seq"], 1);
    assert_eq!(receipt["duplicate"], false);
    let id = receipt["id"].as_str().context("id is a string")?;
    let js = jetstream(&server).await;
    let stored = js.get_stream("FLOTILLA").await?.get_raw_message(1).await?;
    let event = Event::from_parts(&stored.subject, Some(&stored.headers), stored.payload)?;
    assert_eq!(event.id, id);
    assert_eq!(event.source, "flotilla/cli");
    assert_eq!(event.ce_type, "dev.flotilla.build.started.v1");
    assert_eq!(
        event.content_type,
        "application/protobuf; proto=flotilla.v1.Build"
    );
    // Taken from the data, since no --change-id was given.
    assert_eq!(event.change_id.as_deref(), Some("ping-v1"));
    let build: Build = event.decode()?;
    assert_eq!(build.app, "ping");
    assert_eq!(build.version, "v20240501120000-1a2b3c4");
    Ok(())
}

#[tokio::test]
async fn as_json_keeps_json_on_the_wire_and_a_reused_id_is_reported_as_a_duplicate() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;
    let args = [
        "publish",
        "build.succeeded",
        "ping-v1",
        "--as-json",
        "--id",
        "build-42",
        "--change-id",
        "other-change",
    ];
    let data = build("ping-v1").to_string();

    let first = cli
        .run_with_stdin(&args, &data)
        .await?
        .success()?
        .json_lines()?;
    let second = cli
        .run_with_stdin(&args, &data)
        .await?
        .success()?
        .json_lines()?;

    assert_eq!(
        first,
        vec![
            json!({"id": "build-42", "subject": "flotilla.build.succeeded.ping-v1", "seq": 1, "duplicate": false})
        ]
    );
    assert_eq!(
        second,
        vec![
            json!({"id": "build-42", "subject": "flotilla.build.succeeded.ping-v1", "seq": 1, "duplicate": true})
        ]
    );
    let js = jetstream(&server).await;
    let stored = js.get_stream("FLOTILLA").await?.get_raw_message(1).await?;
    let event = Event::from_parts(&stored.subject, Some(&stored.headers), stored.payload)?;
    assert_eq!(event.content_type, "application/json");
    assert_eq!(event.change_id.as_deref(), Some("other-change"));
    assert_eq!(event.data_json()?["app"], "ping");
    Ok(())
}
