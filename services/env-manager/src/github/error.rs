//! Why a GitHub call failed, and whether trying again may help: a leaf, so the crate's own
//! error can wrap it without importing the client.

use reqwest::{Method, StatusCode};

/// Why a GitHub call failed.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("GitHub {method} {path}: {source}")]
    Http {
        method: Method,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GitHub {method} {path} answered {status}: {body}")]
    Status {
        method: Method,
        path: String,
        status: StatusCode,
        body: String,
    },
    #[error("GitHub token: {0}")]
    Token(String),
    #[error("GitHub {path}: unexpected answer: {reason}")]
    Answer { path: String, reason: String },
    /// A value bound for a request path is not what it claims to be (a commit id that is not
    /// hex): nothing is sent.
    #[error("not sent to GitHub: {0}")]
    Invalid(String),
}

impl GithubError {
    /// Whether trying again later may work: network errors, rate limits and server errors.
    pub fn is_retryable(&self) -> bool {
        match self {
            GithubError::Http { .. } => true,
            GithubError::Status { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::FORBIDDEN // secondary rate limits answer 403
            }
            GithubError::Token(_) | GithubError::Answer { .. } | GithubError::Invalid(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_and_server_errors_are_retried_but_bad_requests_are_not() {
        let status = |status| GithubError::Status {
            method: Method::POST,
            path: "/x".into(),
            status,
            body: String::new(),
        };
        assert!(status(StatusCode::BAD_GATEWAY).is_retryable());
        assert!(status(StatusCode::TOO_MANY_REQUESTS).is_retryable());
        assert!(!status(StatusCode::UNPROCESSABLE_ENTITY).is_retryable());
        assert!(!status(StatusCode::NOT_FOUND).is_retryable());
    }
}
