//! The generic endpoint's tokens are scoped: each publishes only the event types its entry
//! lists (`source.custom` by default), over real HTTP to a listener on a real nats-server.

use crate::support::{self, Answer, GENERIC_TOKEN, Harness};

use anyhow::Result;
use serde_json::{Value, json};
use source_listener::auth::Keys;
use source_listener::{Token, Tokens};

const CI_TOKEN: &str = "ci-token";

/// `GENERIC_WEBHOOK_TOKEN` (the `default` token) and a CI system's token that may report tests.
async fn harness() -> Result<Harness> {
    let mut config = support::config();
    let ci = Token::new("ci", Keys::of([CI_TOKEN]))
        .scoped(&["tests.passed", "tests.failed"])
        .map_err(anyhow::Error::msg)?;
    config.tokens = Tokens::new(Keys::of([GENERIC_TOKEN]), vec![ci]).map_err(anyhow::Error::msg)?;
    Harness::with(config).await
}

async fn post(harness: &Harness, token: &str, body: &Value) -> Result<Answer> {
    let request = harness
        .http
        .post(harness.url("/webhooks/generic"))
        .bearer_auth(token)
        .json(body);
    Answer::of(request).await
}

fn build_succeeded() -> Value {
    json!({"type": "build.succeeded", "key": "ping-v9", "id": "b-1",
           "data": {"changeId": "ping-v9", "app": "ping", "version": "v9"}})
}

fn tests_passed() -> Value {
    json!({"type": "tests.passed", "key": "staging-ping", "id": "t-1",
           "data": {"env": "staging-ping", "changeId": "ping-v9", "reason": "suite green"}})
}

fn custom() -> Value {
    json!({"type": "source.custom", "key": "nightly", "id": "c-1",
           "data": {"source": "cron", "kind": "nightly"}})
}

#[tokio::test]
async fn the_default_token_publishes_only_custom_events() -> Result<()> {
    let harness = harness().await?;
    for body in [
        build_succeeded(),
        tests_passed(),
        json!({"type": "env.teardown.requested", "key": "production", "data": {"env": "production", "reason": "manual"}}),
    ] {
        let answer = post(&harness, GENERIC_TOKEN, &body).await?;
        assert_eq!(answer.status, 403, "{body}: {answer:?}");
        let error = answer.body["error"].as_str().unwrap_or_default();
        assert!(error.contains("`default`"), "{error}");
        assert!(
            error.contains(body["type"].as_str().unwrap_or("?")),
            "{error}"
        );
        assert!(!error.contains('\n'), "one line: {error}");
    }
    assert!(
        harness.stored("flotilla.>", 1).await?.is_empty(),
        "nothing published"
    );

    let answer = post(&harness, GENERIC_TOKEN, &custom()).await?;
    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(answer.subjects(), ["flotilla.source.custom.nightly"]);
    harness.shutdown().await
}

#[tokio::test]
async fn a_scoped_token_publishes_its_types_and_nothing_else() -> Result<()> {
    let harness = harness().await?;
    let answer = post(&harness, CI_TOKEN, &tests_passed()).await?;
    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(answer.subjects(), ["flotilla.tests.passed.staging-ping"]);

    for body in [build_succeeded(), custom()] {
        let answer = post(&harness, CI_TOKEN, &body).await?;
        assert_eq!(answer.status, 403, "{body}: {answer:?}");
        let error = answer.body["error"].as_str().unwrap_or_default();
        assert!(error.contains("`ci`"), "{error}");
        assert!(error.contains("tests.passed, tests.failed"), "{error}");
    }
    assert!(harness.stored("flotilla.build.>", 1).await?.is_empty());
    assert!(harness.stored("flotilla.source.>", 1).await?.is_empty());

    let wrong = post(&harness, "not-a-token", &tests_passed()).await?;
    assert_eq!(wrong.status, 401, "{wrong:?}");

    let metrics = harness
        .http
        .get(harness.url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    for line in [
        r#"flotilla_webhook_token_deliveries_total{token="ci",status="202"} 1"#,
        r#"flotilla_webhook_token_deliveries_total{token="ci",status="403"} 2"#,
        r#"flotilla_webhook_deliveries_total{provider="generic",event="build.succeeded",outcome="rejected",status="403"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    harness.shutdown().await
}
