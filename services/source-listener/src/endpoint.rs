//! The endpoint a delivery was sent to: a leaf, so that reading a body (`content`) and judging
//! a delivery (`intake`) can both name it.

use axum::http::HeaderMap;

use crate::delivery::Provider;
use crate::{github, gitlab};

/// The endpoint a delivery was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    GitHub,
    GitLab,
    Generic,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::GitHub => "/webhooks/github",
            Endpoint::GitLab => "/webhooks/gitlab",
            Endpoint::Generic => "/webhooks/generic",
        }
    }

    /// Who sent the delivery, as far as the headers tell (for metrics and logs).
    pub fn provider(self, headers: &HeaderMap) -> Provider {
        match self {
            Endpoint::GitHub => github::provider(headers),
            Endpoint::GitLab => Provider::GitLab,
            Endpoint::Generic => Provider::Generic,
        }
    }

    /// The event label of a delivery that was refused before its body was understood.
    pub fn event_label(self, headers: &HeaderMap) -> &'static str {
        match self {
            Endpoint::GitHub => github::event_label(headers),
            Endpoint::GitLab => gitlab::event_label(headers),
            Endpoint::Generic => "unknown",
        }
    }
}
