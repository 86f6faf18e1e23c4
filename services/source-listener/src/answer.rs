//! The answers to deliveries: `202 {"events": [..]}`, `200 {"ignored": ..}`, or the error's
//! status with `{"error": ..}`, each logged once in the delivery's span.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flotilla_bus::Published;
use serde::Serialize;

use crate::error::WebhookError;

/// What a handled delivery is answered with.
pub enum Answer {
    Accepted(Vec<Published>),
    Ignored(String),
}

#[derive(Serialize)]
struct AcceptedBody<'a> {
    events: Vec<EventRef<'a>>,
}

#[derive(Serialize)]
struct EventRef<'a> {
    id: &'a str,
    subject: &'a str,
    /// Set when JetStream had the event already (a redelivery): nothing new was stored.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
}

impl Answer {
    pub fn log_and_respond(self) -> Response {
        match self {
            Answer::Accepted(published) => {
                for event in &published {
                    tracing::info!(
                        subject = %event.subject,
                        stream_seq = event.sequence,
                        duplicate = event.duplicate,
                        "delivery accepted"
                    );
                }
                let events = published
                    .iter()
                    .map(|p| EventRef {
                        id: &p.id,
                        subject: &p.subject,
                        duplicate: p.duplicate,
                    })
                    .collect();
                (StatusCode::ACCEPTED, axum::Json(AcceptedBody { events })).into_response()
            }
            Answer::Ignored(why) => {
                tracing::info!(reason = %why, "delivery ignored");
                let body = serde_json::json!({ "ignored": why });
                (StatusCode::OK, axum::Json(body)).into_response()
            }
        }
    }
}

/// Logs a refused delivery (errors only for the listener's own defects) and answers it.
pub fn refused(error: WebhookError) -> Response {
    let status = error.status();
    if status.is_server_error() && !error.is_retryable() {
        tracing::error!(%status, error = %error, "delivery failed");
    } else {
        tracing::warn!(%status, error = %error, "delivery refused");
    }
    error.into_response()
}
