//! The listener's metrics, served on `/metrics` beside the bus's:
//!
//! - `flotilla_webhook_deliveries_total{provider, event, outcome, status}`: every delivery, with
//!   `outcome` `accepted`, `ignored` or `rejected` and the HTTP status answered;
//! - `flotilla_webhook_token_deliveries_total{token, status}`: generic deliveries by the name
//!   of the token that authenticated them;
//! - `flotilla_webhook_duration_seconds{provider, outcome}`: from request to answer, JetStream
//!   acknowledgements included.
//!
//! Every label value comes from a fixed set, so a sender cannot grow the series without bound.

use std::time::Duration;

use axum::http::StatusCode;
use flotilla_bus::Health;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::delivery::Provider;

/// What became of a delivery.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    accepted,
    ignored,
    rejected,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    provider: &'static str,
    event: &'static str,
    outcome: Outcome,
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    provider: &'static str,
    outcome: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    token: String,
    status: &'static str,
}

#[derive(Debug, Clone)]
pub struct Metrics {
    deliveries: Family<DeliveryLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    duration: Family<DurationLabels, Histogram>,
}

impl Metrics {
    /// Creates the metrics and registers them with `health`'s registry.
    pub fn register(health: &Health) -> Metrics {
        let metrics = Metrics {
            deliveries: Family::default(),
            tokens: Family::default(),
            // 0.5 ms .. ~16 s: an ignored ping answers in microseconds, a publish during a
            // reconnect can take the whole publish timeout.
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
        };
        health.register(|registry| {
            registry.register(
                "flotilla_webhook_deliveries",
                "Webhook deliveries by provider, event, outcome and HTTP status",
                metrics.deliveries.clone(),
            );
            registry.register(
                "flotilla_webhook_duration_seconds",
                "Time from a webhook request to its answer, JetStream acknowledgements included",
                metrics.duration.clone(),
            );
            registry.register(
                "flotilla_webhook_token_deliveries",
                "Generic deliveries by the token that authenticated them and HTTP status",
                metrics.tokens.clone(),
            );
        });
        metrics
    }

    pub fn observe(
        &self,
        provider: Provider,
        event: &'static str,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let outcome = match status {
            StatusCode::ACCEPTED => Outcome::accepted,
            StatusCode::OK => Outcome::ignored,
            _ => Outcome::rejected,
        };
        self.deliveries
            .get_or_create(&DeliveryLabels {
                provider: provider.as_str(),
                event,
                outcome,
                status: status_label(status),
            })
            .inc();
        self.duration
            .get_or_create(&DurationLabels {
                provider: provider.as_str(),
                outcome,
            })
            .observe(elapsed.as_secs_f64());
    }
}

impl Metrics {
    /// Counts a generic delivery under the name of its token (names come from the
    /// configuration, so the series are bounded).
    pub fn observe_token(&self, token: String, status: StatusCode) {
        let status = status_label(status);
        self.tokens
            .get_or_create(&TokenLabels { token, status })
            .inc();
    }
}

fn status_label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "200",
        202 => "202",
        400 => "400",
        401 => "401",
        403 => "403",
        408 => "408",
        413 => "413",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_are_counted_by_outcome_and_status() {
        let health = Health::new();
        let metrics = Metrics::register(&health);
        metrics.observe(
            Provider::GitHub,
            "push",
            StatusCode::ACCEPTED,
            Duration::from_millis(3),
        );
        metrics.observe(
            Provider::GitHub,
            "ping",
            StatusCode::OK,
            Duration::from_micros(50),
        );
        metrics.observe(
            Provider::GitLab,
            "other",
            StatusCode::UNAUTHORIZED,
            Duration::ZERO,
        );
        let text = health.encode_metrics();
        for line in [
            r#"flotilla_webhook_deliveries_total{provider="github",event="push",outcome="accepted",status="202"} 1"#,
            r#"flotilla_webhook_deliveries_total{provider="github",event="ping",outcome="ignored",status="200"} 1"#,
            r#"flotilla_webhook_deliveries_total{provider="gitlab",event="other",outcome="rejected",status="401"} 1"#,
            r#"flotilla_webhook_duration_seconds_count{provider="github",outcome="accepted"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
