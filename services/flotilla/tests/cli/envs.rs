//! `flotilla envs`: the registry's envs listed; `keep` extends one in the registry; `delete`
//! publishes its manual teardown; unknown or departing envs get a clear error and change nothing.

use std::time::Duration;

use anyhow::{Context, Result};
use flotilla_bus::{Bus, Names};
use flotilla_env::{EnvRecord, Registry, State};
use flotilla_proto::v1::TeardownRequest;
use flotilla_testing::NatsServer;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::Cli;

const HOUR: Duration = Duration::from_secs(3600);

fn at(when: OffsetDateTime) -> String {
    when.format(&Rfc3339).unwrap_or_default()
}

fn parse(text: &str) -> OffsetDateTime {
    OffsetDateTime::parse(text, &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A bus with two envs: a preview made 5 hours ago expiring in 67, active an hour ago, and a
/// staging env being deleted.
async fn seeded(server: &NatsServer, cli: &Cli) -> Result<(Bus, Registry)> {
    cli.init().await?;
    let bus = Bus::new(server.connect().await, Names::default());
    let registry = Registry::new(bus.envs().await?);
    let now = OffsetDateTime::now_utc();
    let mut preview = EnvRecord {
        state: State::Ready,
        kind: "preview".into(),
        change_id: "ping-v2".into(),
        repo: "acme/ping".into(),
        pr: 7,
        owner: "octocat".into(),
        created_at: at(now - 5 * HOUR),
        expires_at: at(now + 67 * HOUR),
        ..Default::default()
    };
    preview
        .other
        .insert("last_activity".into(), json!(at(now - HOUR)));
    registry
        .update("pr-acme-ping-7", |_| Some(preview.clone()))
        .await?;
    let staging = EnvRecord {
        state: State::Deleting,
        kind: "staging".into(),
        change_id: "ping-v1".into(),
        reason: "promoted".into(),
        created_at: at(now - 2 * HOUR),
        ..Default::default()
    };
    registry
        .update("stg-ping-v1", |_| Some(staging.clone()))
        .await?;
    Ok((bus, registry))
}

#[tokio::test]
async fn envs_lists_every_env_as_a_table_and_as_json() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    seeded(&server, &cli).await?;

    let table = cli.run(&["envs"]).await?.success()?;
    let lines = table.lines();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for column in [
        "ENV",
        "KIND",
        "STATE",
        "AGE",
        "EXPIRES IN",
        "LAST ACTIVITY",
        "OWNER",
        "PR",
        "CHANGE",
    ] {
        assert!(lines[0].contains(column), "{column} in {}", lines[0]);
    }
    for part in [
        "pr-acme-ping-7",
        "preview",
        "ready",
        "5h ago",
        "2d 18h",
        "1h ago",
        "octocat",
        "acme/ping#7",
        "ping-v2",
    ] {
        assert!(lines[1].contains(part), "{part} in {}", lines[1]);
    }
    for part in ["stg-ping-v1", "staging", "deleting", "ping-v1"] {
        assert!(lines[2].contains(part), "{part} in {}", lines[2]);
    }

    let json = cli
        .run(&["envs", "--json"])
        .await?
        .success()?
        .json_lines()?;
    assert_eq!(json.len(), 2);
    assert_eq!(json[0]["env"], "pr-acme-ping-7");
    assert_eq!(json[0]["state"], "ready");
    assert_eq!(json[0]["pr"], 7);
    assert_eq!(json[0]["owner"], "octocat");
    assert!(
        json[0]["expires_in_s"]
            .as_i64()
            .is_some_and(|s| s > 66 * 3600)
    );
    assert_eq!(json[1]["state"], "deleting");
    assert_eq!(json[1]["expires_in_s"], serde_json::Value::Null);
    Ok(())
}

#[tokio::test]
async fn keep_extends_the_env_in_the_registry_and_never_shortens_it() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    let (_bus, registry) = seeded(&server, &cli).await?;
    let before = OffsetDateTime::now_utc();

    let run = cli
        .run(&["envs", "keep", "pr-acme-ping-7", "--for", "96h"])
        .await?
        .success()?;
    assert!(
        run.stdout.contains("pr-acme-ping-7 kept until"),
        "{}",
        run.stdout
    );
    let record = registry.get("pr-acme-ping-7").await?.context("kept")?;
    let expires = parse(&record.expires_at);
    assert!(expires >= before + 96 * HOUR, "{}", record.expires_at);
    assert_eq!(record.other["kept_until"], json!(record.expires_at));
    assert_eq!(record.state, State::Ready, "nothing else changes");

    // Shorter than what it has now: kept as it is.
    cli.run(&["envs", "keep", "pr-acme-ping-7", "--for", "1h"])
        .await?
        .success()?;
    let again = registry.get("pr-acme-ping-7").await?.context("kept")?;
    assert_eq!(again.expires_at, record.expires_at);
    Ok(())
}

#[tokio::test]
async fn keep_and_delete_refuse_unknown_and_departing_envs_clearly() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    let (bus, registry) = seeded(&server, &cli).await?;
    let before = registry.list().await?;

    for args in [
        &["envs", "keep", "pr-nope-1", "--for", "48h"][..],
        &["envs", "delete", "pr-nope-1"][..],
    ] {
        let run = cli.run(args).await?;
        assert_eq!(run.code(), Some(64), "{args:?}");
        assert!(
            run.stderr.contains("no env pr-nope-1 in the registry"),
            "{}",
            run.stderr
        );
    }
    for args in [
        &["envs", "keep", "stg-ping-v1", "--for", "48h"][..],
        &["envs", "delete", "stg-ping-v1"][..],
    ] {
        let run = cli.run(args).await?;
        assert_eq!(run.code(), Some(64), "{args:?}");
        assert!(
            run.stderr
                .contains("stg-ping-v1 is deleting already (promoted)"),
            "{}",
            run.stderr
        );
    }
    let run = cli
        .run(&["envs", "keep", "pr-acme-ping-7", "--for", "0s"])
        .await?;
    assert_eq!(run.code(), Some(64));

    assert_eq!(registry.list().await?, before, "nothing changed");
    let stored =
        flotilla_testing::stored_events(&bus, "flotilla.env.>", 1, Duration::from_millis(300))
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
    assert!(stored.is_empty(), "nothing published");
    Ok(())
}

#[tokio::test]
async fn delete_publishes_one_manual_teardown_for_the_envs_change() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    let (bus, _registry) = seeded(&server, &cli).await?;

    cli.run(&["envs", "delete", "pr-acme-ping-7"])
        .await?
        .success()?;
    let again = cli
        .run(&["envs", "delete", "pr-acme-ping-7"])
        .await?
        .success()?;
    assert!(
        again.stdout.contains("requested already"),
        "{}",
        again.stdout
    );
    let stored = flotilla_testing::stored_exactly(
        &bus,
        "flotilla.env.teardown.requested.pr-acme-ping-7",
        1,
        Duration::from_secs(10),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    let request: TeardownRequest = stored[0].decode()?;
    assert_eq!(request.reason, "manual");
    assert_eq!(request.change_id, "ping-v2");
    assert_eq!(stored[0].source, "flotilla/cli");
    Ok(())
}

#[tokio::test]
async fn a_requested_env_says_which_provision_hooks_it_waits_on() -> Result<()> {
    use flotilla_env::hooks::{HookState, RunState, RunStatus};
    let server = NatsServer::start();
    let cli = Cli::new(&server);
    let (_bus, registry) = seeded(&server, &cli).await?;
    let now = OffsetDateTime::now_utc();
    let hook = |name: &str, change: &str, provision: RunState| HookState {
        name: name.into(),
        change_id: change.into(),
        created: provision.state != RunStatus::Pending,
        provision,
        deprovision: RunState::default(),
    };
    let requested = EnvRecord {
        state: State::Requested,
        kind: "preview".into(),
        change_id: "web-v3".into(),
        repo: "acme/web".into(),
        pr: 9,
        created_at: at(now - Duration::from_secs(30)),
        hooks: vec![
            hook(
                "database",
                "web-v3",
                RunState {
                    state: RunStatus::Running,
                    attempt: 1,
                    started_at: at(now - Duration::from_secs(12)),
                    ..RunState::default()
                },
            ),
            hook("dataset", "web-v3", RunState::default()),
            // An earlier change's hook: kept for the teardown, not waited on.
            hook(
                "cache",
                "web-v2",
                RunState {
                    state: RunStatus::Succeeded,
                    ..RunState::default()
                },
            ),
        ],
        ..Default::default()
    };
    registry
        .update("pr-acme-web-9", |_| Some(requested.clone()))
        .await?;

    let table = cli.run(&["envs"]).await?.success()?;
    let line = table
        .lines()
        .into_iter()
        .find(|l| l.starts_with("pr-acme-web-9"))
        .context("the requested env is listed")?
        .to_owned();
    assert!(
        line.contains("requested (provisioning: database running 1")
            && line.contains("s, dataset pending)"),
        "{line}"
    );
    assert!(!line.contains("cache"), "{line}");
    let ready = table
        .lines()
        .into_iter()
        .find(|l| l.starts_with("pr-acme-ping-7"))
        .context("the ready env")?
        .to_owned();
    assert!(!ready.contains("provisioning"), "{ready}");

    let json = cli
        .run(&["envs", "--json"])
        .await?
        .success()?
        .json_lines()?;
    let web = json
        .iter()
        .find(|e| e["env"] == "pr-acme-web-9")
        .context("in the JSON")?;
    assert_eq!(web["hooks"][0]["name"], "database");
    assert_eq!(web["hooks"][0]["provision"]["state"], "running");
    assert_eq!(web["hooks"][1]["provision"]["state"], "pending");
    assert_eq!(web["hooks"].as_array().map(Vec::len), Some(3));
    Ok(())
}
