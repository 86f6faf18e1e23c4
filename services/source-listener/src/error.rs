//! Why a delivery was refused, and why the listener could not start.
//!
//! Each [`WebhookError`] variant is one HTTP answer: the status tells the sender whether to retry
//! (503) or give up (400, 401, 403, 413), and the message is the one-line `{"error": ".."}` body.

use std::time::Duration;

use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use flotilla_bus::BusError;

/// A delivery the listener did not accept.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The signature or token is missing or wrong.
    #[error("{0}")]
    Unauthorized(String),
    /// The endpoint has no secret configured, so nothing sent to it can be authenticated.
    #[error("{variable} is not set: {endpoint} refuses every delivery until it is")]
    NotConfigured {
        endpoint: &'static str,
        variable: &'static str,
    },
    /// The sender authenticated but may not publish what it sent (a token's scope).
    #[error("{0}")]
    Forbidden(String),
    /// The body is not what the endpoint takes, or a handled event lacks a required field.
    #[error("{0}")]
    BadRequest(String),
    /// The sender did not send the whole body within `FLOTILLA_REQUEST_TIMEOUT`.
    #[error("the request body did not arrive within {0:?} (FLOTILLA_REQUEST_TIMEOUT)")]
    RequestTimeout(Duration),
    /// `FLOTILLA_MAX_IN_FLIGHT` deliveries are being handled already.
    #[error("{0} deliveries are in flight (FLOTILLA_MAX_IN_FLIGHT); try again shortly")]
    Busy(usize),
    /// The body is larger than `FLOTILLA_MAX_BODY`.
    #[error("request body is larger than the limit of {limit} bytes (FLOTILLA_MAX_BODY)")]
    TooLarge { limit: usize },
    /// The event made from the delivery would not fit in one NATS message.
    #[error(
        "the event made from this delivery is {size} bytes; NATS takes at most {max} (max_payload)"
    )]
    EventTooLarge { size: usize, max: usize },
    /// The NATS connection is down: answered at once rather than after a publish timeout.
    #[error("NATS is unreachable ({0}); nothing was accepted, try again later")]
    Unavailable(String),
    /// JetStream did not store the events: the sender should retry, and the retry is deduplicated.
    #[error("events were not stored, try again later: {0}")]
    Publish(#[source] BusError),
    /// JetStream did not acknowledge in time; a retry with the same delivery id is deduplicated.
    #[error("JetStream did not acknowledge within {0:?}; try again later")]
    PublishTimeout(Duration),
    /// A defect of the listener itself (an event it built does not fit the catalog).
    #[error("internal error: {0}")]
    Internal(String),
}

impl WebhookError {
    /// A 400 with a one-line reason.
    pub fn bad_request(reason: impl std::fmt::Display) -> Self {
        WebhookError::BadRequest(reason.to_string())
    }

    /// A 401 with a one-line reason.
    pub fn unauthorized(reason: impl std::fmt::Display) -> Self {
        WebhookError::Unauthorized(reason.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            WebhookError::Unauthorized(_) | WebhookError::NotConfigured { .. } => {
                StatusCode::UNAUTHORIZED
            }
            WebhookError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebhookError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebhookError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            WebhookError::TooLarge { .. } | WebhookError::EventTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            WebhookError::Unavailable(_)
            | WebhookError::Busy(_)
            | WebhookError::Publish(_)
            | WebhookError::PublishTimeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebhookError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the sender may succeed by sending the same delivery again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.status(),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT
        )
    }
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string() });
        let mut response = (self.status(), Json(body)).into_response();
        if let WebhookError::Busy(_) = self {
            // The load is momentary: a second is long enough for deliveries to finish.
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// Settings that cannot work; the binary exits 64 with this message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("FLOTILLA_CONFIG {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("FLOTILLA_CONFIG {path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("FLOTILLA_CONFIG {path}: filter `{rule}`: {reason}")]
    Rule {
        path: String,
        rule: String,
        reason: String,
    },
    #[error("FLOTILLA_CONFIG {path}: {entry}: {reason}")]
    Repo {
        path: String,
        entry: String,
        reason: String,
    },
    #[error("FLOTILLA_CONFIG {path}: {entry}: {reason}")]
    Token {
        path: String,
        entry: String,
        reason: String,
    },
    /// A `*_FILE` secret file that is named but unreadable or empty.
    #[error(transparent)]
    SecretFile(#[from] flotilla_env::Error),
    #[error("{0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_refusal_has_its_own_status() {
        let cases = [
            (WebhookError::unauthorized("no"), 401),
            (
                WebhookError::NotConfigured {
                    endpoint: "/webhooks/github",
                    variable: "GITHUB_WEBHOOK_SECRET",
                },
                401,
            ),
            (WebhookError::bad_request("bad"), 400),
            (WebhookError::Forbidden("scope".into()), 403),
            (WebhookError::TooLarge { limit: 1 }, 413),
            (WebhookError::EventTooLarge { size: 2, max: 1 }, 413),
            (WebhookError::Unavailable("disconnected".into()), 503),
            (WebhookError::PublishTimeout(Duration::from_secs(5)), 503),
            (WebhookError::Busy(512), 503),
            (WebhookError::RequestTimeout(Duration::from_secs(10)), 408),
        ];
        for (error, status) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
            assert_eq!(
                error.is_retryable(),
                status == 503 || status == 408,
                "{error}"
            );
        }
    }

    #[test]
    fn a_busy_answer_says_when_to_retry() {
        let response = WebhookError::Busy(1).into_response();
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(
            response.headers().get(RETRY_AFTER).map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        let response = WebhookError::Unavailable("down".into()).into_response();
        assert!(response.headers().get(RETRY_AFTER).is_none());
    }

    #[test]
    fn an_unconfigured_endpoint_names_the_variable_to_set() {
        let error = WebhookError::NotConfigured {
            endpoint: "/webhooks/gitlab",
            variable: "GITLAB_WEBHOOK_TOKEN",
        };
        assert!(
            error.to_string().contains("GITLAB_WEBHOOK_TOKEN"),
            "{error}"
        );
    }
}
