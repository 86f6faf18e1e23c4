use std::time::Duration;

use anyhow::{Context, Result};
use flotilla_bus::envelope::header;
use flotilla_testing::NatsServer;
use serde_json::{Value, json};

use crate::support::{Cli, build, jetstream, message_count};

/// Publishes three build events and an env event; returns their receipts in order.
async fn four_events(cli: &Cli) -> Result<Vec<Value>> {
    let mut receipts = Vec::new();
    for (event_type, key) in [
        ("build.started", "ping-v1"),
        ("build.succeeded", "ping-v1"),
        ("build.started", "ping-v2"),
    ] {
        receipts.push(cli.publish(event_type, key, &build(key)).await?);
    }
    receipts.push(
        cli.publish(
            "env.requested",
            "stg-ping-v1",
            &json!({"env": "stg-ping-v1"}),
        )
        .await?,
    );
    Ok(receipts)
}

fn seqs_and_ids(lines: &[Value]) -> Vec<(Value, Value)> {
    lines
        .iter()
        .map(|l| (l["seq"].clone(), l["id"].clone()))
        .collect()
}

#[tokio::test]
async fn replay_from_seq_prints_exactly_the_matching_events_from_that_sequence() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;
    let receipts = four_events(&cli).await?;

    let run = cli
        .run(&["replay", "build.>", "--from-seq", "2", "--json"])
        .await?
        .success()?;

    let lines = run.json_lines()?;
    assert_eq!(
        seqs_and_ids(&lines),
        vec![
            (json!(2), receipts[1]["id"].clone()),
            (json!(3), receipts[2]["id"].clone()),
        ]
    );
    assert_eq!(lines[1]["type"], "dev.flotilla.build.started.v1");
    assert_eq!(lines[1]["change_id"], "ping-v2");
    assert_eq!(lines[1]["data"], build("ping-v2"));
    assert!(run.stderr.contains("replayed 2 events"), "{}", run.stderr);
    Ok(())
}

#[tokio::test]
async fn replay_since_and_until_print_exactly_the_events_stored_in_that_window() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;
    let mut ids = Vec::new();
    for (i, key) in ["ping-v1", "ping-v2", "ping-v3"].into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        ids.push(cli.publish("build.started", key, &build(key)).await?["id"].clone());
    }
    // Stored about 4s, 2s and 0s ago.
    let window = |args: &'static [&'static str]| {
        let cli = cli.clone();
        async move {
            let run = cli
                .run(&[&["replay", ">", "--json"], args].concat())
                .await?;
            anyhow::Ok(seqs_and_ids(&run.success()?.json_lines()?))
        }
    };

    assert_eq!(
        window(&["--since", "1s"]).await?,
        vec![(json!(3), ids[2].clone())]
    );
    assert_eq!(
        window(&["--until", "3s"]).await?,
        vec![(json!(1), ids[0].clone())]
    );
    assert_eq!(
        window(&["--since", "3s", "--until", "1s"]).await?,
        vec![(json!(2), ids[1].clone())]
    );
    Ok(())
}

#[tokio::test]
async fn replay_prints_human_lines_with_the_event_details() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;
    let receipt = cli
        .publish("build.started", "ping-v1", &build("ping-v1"))
        .await?;

    let run = cli.run(&["replay", "build.started.*"]).await?.success()?;

    let lines = run.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let id = receipt["id"].as_str().context("id")?;
    for part in [
        "flotilla.build.started.ping-v1",
        "build.started",
        &format!("id={id}"),
        "change=ping-v1",
        r#""app":"ping""#,
    ] {
        assert!(lines[0].contains(part), "{part} missing from {}", lines[0]);
    }
    Ok(())
}

#[tokio::test]
async fn replay_to_a_prefix_republishes_each_event_with_its_original_sequence() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;
    let receipts = four_events(&cli).await?;
    let js = jetstream(&server).await;

    cli.run(&["replay", "build.>", "--to", "flotilla.replay"])
        .await?
        .success()?;

    let stream = js.get_stream("FLOTILLA").await?;
    let mut msg_ids = Vec::new();
    for (copy_seq, original_seq) in [(5, 1), (6, 2), (7, 3)] {
        let copy = stream.get_raw_message(copy_seq).await?;
        let original = stream.get_raw_message(original_seq).await?;
        assert_eq!(
            copy.subject.as_str(),
            original
                .subject
                .as_str()
                .replacen("flotilla.", "flotilla.replay.", 1)
        );
        let get = |m: &async_nats::jetstream::message::StreamMessage, name: &str| {
            m.headers.get(name).map(|v| v.as_str().to_owned())
        };
        assert_eq!(
            get(&copy, header::REPLAYED_FROM),
            Some(original_seq.to_string())
        );
        assert_eq!(get(&copy, header::ID), get(&original, header::ID));
        assert_eq!(
            get(&copy, header::ID).as_deref(),
            receipts[original_seq as usize - 1]["id"].as_str()
        );
        assert_eq!(get(&copy, header::TYPE), get(&original, header::TYPE));
        assert_eq!(copy.payload, original.payload);
        let msg_id = get(&copy, header::MSG_ID).context("a Nats-Msg-Id")?;
        assert_ne!(Some(&msg_id), get(&original, header::MSG_ID).as_ref());
        msg_ids.push(msg_id);
    }
    assert_eq!(
        message_count(&js, "FLOTILLA").await?,
        7,
        "env.requested is not replayed"
    );

    // A second run has its own ids, so its copies are stored rather than dropped as duplicates.
    cli.run(&["replay", "build.>", "--to", "flotilla.replay"])
        .await?
        .success()?;
    assert_eq!(message_count(&js, "FLOTILLA").await?, 10);
    let again = stream.get_raw_message(8).await?;
    let again_id = again
        .headers
        .get(header::MSG_ID)
        .map(|v| v.as_str().to_owned());
    assert!(!msg_ids.contains(&again_id.context("a Nats-Msg-Id")?));
    Ok(())
}

#[tokio::test]
async fn replaying_into_its_own_filter_stops_at_what_was_stored_when_it_began() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;
    four_events(&cli).await?;

    // `flotilla.>` also matches the copies under flotilla.replay.>: without the snapshot bound
    // this would replay its own output forever.
    let run = cli
        .run(&["replay", ">", "--to", "flotilla.replay"])
        .await?
        .success()?;

    assert_eq!(
        message_count(&jetstream(&server).await, "FLOTILLA").await?,
        8
    );
    assert!(run.stderr.contains("replayed 4 events"), "{}", run.stderr);
    Ok(())
}

#[tokio::test]
async fn replay_to_a_prefix_no_stream_stores_says_so_and_publishes_nothing() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    cli.init().await?;
    four_events(&cli).await?;

    let run = cli.run(&["replay", "build.>", "--to", "elsewhere"]).await?;

    assert_eq!(run.code(), Some(64), "{}", run.stderr);
    assert!(
        run.stderr.contains("no stream stores elsewhere"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--to flotilla.replay"),
        "{}",
        run.stderr
    );
    assert_eq!(
        message_count(&jetstream(&server).await, "FLOTILLA").await?,
        4
    );
    Ok(())
}
