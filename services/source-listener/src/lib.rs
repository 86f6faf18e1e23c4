//! source-listener: Flotilla's front door. It turns webhook deliveries from GitHub, Gitea,
//! GitLab and any other source into events on the bus, and publishes nothing it cannot vouch
//! for.
//!
//! | endpoint | authentication | events |
//! |---|---|---|
//! | `POST /webhooks/github` | `X-Hub-Signature-256` with `GITHUB_WEBHOOK_SECRET` (Gitea: `X-Gitea-Signature`), over the raw body (JSON, or a form whose `payload` is the JSON) | `push`, `pull_request` (`ping` is answered) |
//! | `POST /webhooks/gitlab` | `X-Gitlab-Token` = `GITLAB_WEBHOOK_TOKEN` | `Push Hook`, `Tag Push Hook`, `Merge Request Hook` |
//! | `POST /webhooks/generic` | `Authorization: Bearer <token>` ([`tokens`]) | `{"type", "key", "data", "id"?}`, a catalog type in the token's scope (`source.custom` by default) |
//!
//! Pushes become `flotilla.source.push.<repo>` ([`Push`](flotilla_proto::v1::Push)), pull and
//! merge requests `flotilla.source.pull_request.<repo>`
//! ([`PullRequest`](flotilla_proto::v1::PullRequest), with GitHub's action names for every
//! provider), with `ce-source: flotilla/source-listener`. The event id is the provider's
//! delivery id (or one derived from the body), so a redelivery is a JetStream duplicate.
//!
//! Answers: `202 {"events":[{"id","subject"}]}` once JetStream acknowledged every event;
//! `200 {"ignored": why}` for a valid delivery with nothing to do (a ping, a deleted branch, an
//! unhandled event or action, a filter); `401` for a bad or missing signature or token, or an
//! endpoint whose secret is not configured; `403` for a generic event type outside the token's
//! scope; `408` for a body slower than `FLOTILLA_REQUEST_TIMEOUT`; `400` for a body that is not what the endpoint
//! takes; `413` past `FLOTILLA_MAX_BODY`; `503` while NATS is unreachable or does not store the
//! events in time (the sender retries; the retry is deduplicated). Errors are
//! `{"error": "<one line>"}`.
//!
//! Filters (the YAML file `FLOTILLA_CONFIG`) are described in [`filter`]; metrics in
//! [`metrics`]. The logic is layered so each part is testable alone: [`intake`] authenticates,
//! parses ([`github`], [`gitlab`], [`generic`]) and filters without I/O; [`server`] reads
//! bodies, publishes and answers. Token endpoints authenticate from the headers before a body is
//! read, so a sender without the token holds no slot.

mod answer;
pub mod auth;
pub mod config;
mod content;
pub mod delivery;
mod endpoint;
pub mod error;
pub mod filter;
pub mod generic;
pub mod github;
pub mod gitlab;
pub mod intake;
pub mod metrics;
pub mod server;
pub mod tokens;

pub use config::{Args, Config, Secrets};
pub use delivery::{Delivery, Provider, Verdict};
pub use error::{ConfigError, WebhookError};
pub use filter::Filters;
pub use intake::{Endpoint, Intake, Sender};
pub use server::{SourceListener, WORKER};
pub use tokens::{Token, Tokens};
