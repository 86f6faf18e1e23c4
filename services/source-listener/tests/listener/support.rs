//! Shared fixtures of the component tests: a private nats-server with Flotilla's streams, the
//! real listener serving on a free loopback port in-process, and a client that signs what it
//! sends.

#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context, Result};
use flotilla_bus::{Bus, Process};
use flotilla_testing::NatsServer;
use serde_json::Value;
use source_listener::auth::{Keys, github_signature};
use source_listener::{Config, Filters, Secrets, SourceListener};

pub const GITHUB_SECRET: &str = "gh-secret";
pub const GITLAB_TOKEN: &str = "gl-token";
pub const GENERIC_TOKEN: &str = "gen-token";

/// A config with every endpoint's secret set, as a test deployment would have.
pub fn config() -> Config {
    Config::new(Secrets {
        github: Keys::of([GITHUB_SECRET]),
        gitlab: Keys::of([GITLAB_TOKEN]),
        generic: Keys::of([GENERIC_TOKEN]),
    })
}

pub fn with_filters(mut config: Config, yaml: &str) -> Config {
    config.filters = Filters::from_yaml(yaml, "test filters").expect("valid test filters");
    config
}

/// A nats-server, the bus on it, and the listener serving on 127.0.0.1:0.
pub struct Harness {
    pub nats: NatsServer,
    pub bus: Bus,
    pub http: reqwest::Client,
    base: String,
    served: flotilla_testing::Served,
}

impl Harness {
    pub async fn start() -> Result<Harness> {
        Harness::with(config()).await
    }

    pub async fn with(config: Config) -> Result<Harness> {
        let (nats, bus) = flotilla_testing::bus().await?;
        let mut process = Process::new(bus.clone());
        process.grace(Duration::from_secs(5));
        let listener = SourceListener::new(&bus, config, process.health());
        listener.install(&mut process);
        let served = flotilla_testing::serve(process).await?;
        Ok(Harness {
            nats,
            bus,
            http: reqwest::Client::new(),
            base: format!("http://{}", served.addr()),
            served,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A GitHub delivery signed with the test secret.
    pub async fn github(&self, event: &str, delivery: &str, body: &[u8]) -> Result<Answer> {
        let signature = github_signature(GITHUB_SECRET.as_bytes(), body);
        let request = self
            .http
            .post(self.url("/webhooks/github"))
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", signature)
            .body(body.to_vec());
        Answer::of(request).await
    }

    pub async fn gitlab(&self, event: &str, token: &str, body: &Value) -> Result<Answer> {
        let request = self
            .http
            .post(self.url("/webhooks/gitlab"))
            .header("x-gitlab-event", event)
            .header("x-gitlab-token", token)
            .json(body);
        Answer::of(request).await
    }

    pub async fn generic(&self, body: &Value) -> Result<Answer> {
        let request = self
            .http
            .post(self.url("/webhooks/generic"))
            .bearer_auth(GENERIC_TOKEN)
            .json(body);
        Answer::of(request).await
    }

    /// What is stored under `filter`, once there are `want` messages or 3 s passed.
    pub async fn stored(
        &self,
        filter: &str,
        want: usize,
    ) -> Result<Vec<async_nats::jetstream::Message>> {
        flotilla_testing::stored_messages(
            self.bus.jetstream(),
            "FLOTILLA",
            filter,
            want,
            Duration::from_secs(3),
        )
        .await
        .map_err(|e| anyhow::anyhow!("read back {filter}: {e}"))
    }

    pub async fn shutdown(self) -> Result<()> {
        self.served.shutdown().await
    }
}

/// An HTTP answer: its status and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub async fn of(request: reqwest::RequestBuilder) -> Result<Answer> {
        let response = request.send().await.context("send the delivery")?;
        let status = response.status().as_u16();
        let text = response.text().await.context("read the answer")?;
        let body = serde_json::from_str(&text)
            .with_context(|| format!("answer {status} is not JSON: {text}"))?;
        Ok(Answer { status, body })
    }

    /// The subjects of a 202's events.
    pub fn subjects(&self) -> Vec<&str> {
        self.body["events"]
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .filter_map(|e| e["subject"].as_str())
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub fn header<'a>(message: &'a async_nats::jetstream::Message, name: &str) -> Option<&'a str> {
    message.headers.as_ref()?.get(name).map(|v| v.as_str())
}
