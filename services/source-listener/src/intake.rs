//! Everything about a delivery that needs no I/O: authenticate it, parse it into events, apply
//! the filters. The HTTP layer reads the body before and publishes after.

use std::borrow::Cow;

use axum::http::HeaderMap;

use crate::config::Secrets;
use crate::delivery::{Delivery, Verdict};
pub use crate::endpoint::Endpoint;
use crate::error::WebhookError;
use crate::filter::Filters;
use crate::tokens::{Token, Tokens};
use crate::{content, generic, github, gitlab};

/// What a delivery's headers prove about its sender, before its body is read.
#[derive(Debug, Clone, Copy)]
pub enum Sender<'a> {
    /// A GitLab delivery whose `X-Gitlab-Token` matched.
    GitLab,
    /// A generic delivery whose bearer token matched, with what the token may publish.
    Generic(&'a Token),
    /// A GitHub or Gitea delivery: its signature covers the body, so it proves nothing until
    /// the body is read.
    Unverified,
    /// A GitHub or Gitea delivery whose signature [`Intake::verify`] checked.
    Signed(Verified),
}

/// Proof that a body's signature was checked; only [`Intake::verify`] makes one.
#[derive(Debug, Clone, Copy)]
pub struct Verified(());

impl Sender<'_> {
    /// Whether the sender is known before its body is read.
    pub fn is_authenticated(&self) -> bool {
        !matches!(self, Sender::Unverified)
    }

    /// The generic token's name, for logs and metrics.
    pub fn token(&self) -> Option<&str> {
        match self {
            Sender::Generic(token) => Some(&token.name),
            _ => None,
        }
    }
}

/// The secrets and filters every delivery is checked against.
#[derive(Debug)]
pub struct Intake {
    secrets: Secrets,
    tokens: Tokens,
    filters: Filters,
}

impl Intake {
    /// An intake whose generic endpoint takes `secrets.generic` as the `default` token.
    pub fn new(secrets: Secrets, filters: Filters) -> Intake {
        // Cannot fail: a single token has no name or value to clash with.
        let tokens = Tokens::new(secrets.generic.clone(), Vec::new()).unwrap_or_default();
        Intake {
            secrets,
            tokens,
            filters,
        }
    }

    /// The generic endpoint's tokens (the `default` one from `secrets.generic` included).
    pub fn with_tokens(mut self, tokens: Tokens) -> Intake {
        self.tokens = tokens;
        self
    }

    /// Authenticates what the headers alone can: the token endpoints' tokens. A sender refused
    /// here is answered before its body is read.
    pub fn sender(
        &self,
        endpoint: Endpoint,
        headers: &HeaderMap,
    ) -> Result<Sender<'_>, WebhookError> {
        match endpoint {
            Endpoint::GitHub => Ok(Sender::Unverified),
            Endpoint::GitLab => {
                gitlab::authenticate(&self.secrets.gitlab, headers).map(|()| Sender::GitLab)
            }
            Endpoint::Generic => generic::authenticate(&self.tokens, headers).map(Sender::Generic),
        }
    }

    /// Checks the signature of a body whose sender [`Intake::sender`] could not know from the
    /// headers; a sender already known is returned as it is.
    pub fn verify<'a>(
        &'a self,
        endpoint: Endpoint,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Sender<'a>, WebhookError> {
        match self.sender(endpoint, headers)? {
            Sender::Unverified => {
                github::authenticate(&self.secrets.github, headers, body)?;
                Ok(Sender::Signed(Verified(())))
            }
            known => Ok(known),
        }
    }

    /// Authenticates `body` as sent to `endpoint` with `headers`, and reads it into the events
    /// to publish or the reason to publish none. Authentication comes first, so an
    /// unauthenticated sender learns nothing about what the listener would make of its body.
    pub fn handle(
        &self,
        endpoint: Endpoint,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Delivery, WebhookError> {
        let sender = self.verify(endpoint, headers, body)?;
        self.handle_from(endpoint, sender, headers, body)
    }

    /// [`Intake::handle`] for a sender [`Intake::sender`] already let through.
    pub fn handle_from(
        &self,
        endpoint: Endpoint,
        sender: Sender<'_>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Delivery, WebhookError> {
        let parsed = self.parse(endpoint, sender, headers, body)?;
        self.admit(parsed)
    }

    /// Authenticates what is left to authenticate and reads the body into a delivery, not yet
    /// checked against the sender's scope and the filters ([`Intake::admit`]).
    pub fn parse<'a, 'b>(
        &'a self,
        endpoint: Endpoint,
        sender: Sender<'a>,
        headers: &HeaderMap,
        body: &'b [u8],
    ) -> Result<Parsed<'a, 'b>, WebhookError> {
        let sender = match sender {
            Sender::Unverified => self.verify(endpoint, headers, body)?,
            known => known,
        };
        let json = content::json_of(endpoint, headers, body)?;
        let delivery = match endpoint {
            Endpoint::GitHub => github::parse(headers, &json, self.filters.repos())?,
            Endpoint::GitLab => gitlab::parse(headers, &json, self.filters.repos())?,
            Endpoint::Generic => generic::parse(&json)?,
        };
        Ok(Parsed {
            delivery,
            sender,
            json,
        })
    }

    /// Refuses a delivery whose events its token may not publish (403, nothing published),
    /// then applies the filters.
    pub fn admit(&self, parsed: Parsed<'_, '_>) -> Result<Delivery, WebhookError> {
        let Parsed {
            delivery,
            sender,
            json,
        } = parsed;
        if let (Sender::Generic(token), Verdict::Publish(events)) = (sender, &delivery.verdict) {
            for event in events {
                token.check_scope(event.spec.event_type)?;
            }
        }
        Ok(self.filters.apply(delivery, &json))
    }
}

/// A delivery read from its body, before [`Intake::admit`] checks it.
#[derive(Debug)]
pub struct Parsed<'a, 'b> {
    pub delivery: Delivery,
    sender: Sender<'a>,
    /// The JSON the filters look at (a form's `payload`, not the form).
    json: Cow<'b, [u8]>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Keys, github_signature};
    use axum::http::HeaderValue;
    use axum::http::header::CONTENT_TYPE;

    fn intake(filters: &str) -> Intake {
        Intake::new(
            Secrets {
                github: Keys::of(["gh"]),
                gitlab: Keys::of(["gl"]),
                generic: Keys::of(["gen"]),
            },
            Filters::from_yaml(filters, "test").expect("valid filters"),
        )
    }

    fn signed(event: &'static str, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(github::EVENT_HEADER, HeaderValue::from_static(event));
        headers.insert(github::DELIVERY_HEADER, HeaderValue::from_static("d-1"));
        let signature = github_signature(b"gh", body);
        headers.insert(
            github::SIGNATURE_HEADER,
            HeaderValue::from_str(&signature).expect("ascii"),
        );
        headers
    }

    #[test]
    fn an_unauthenticated_body_is_refused_before_it_is_parsed() {
        let mut headers = signed("push", b"{}");
        headers.remove(github::SIGNATURE_HEADER);
        let error = intake("")
            .handle(Endpoint::GitHub, &headers, b"not even json")
            .expect_err("unsigned");
        assert_eq!(error.status().as_u16(), 401, "not 400: {error}");
    }

    #[test]
    fn the_filters_see_the_raw_body_of_an_authenticated_delivery() {
        let body = br#"{"type":"source.custom","key":"k","data":{"source":"ci","kind":"nightly"}}"#;
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer gen"));
        let rules = "filters:\n- name: only-ci\n  events: [source.custom]\n  data:\n  - {path: data.source, type: string, value: ['^jenkins$']}\n";
        let delivery = intake(rules)
            .handle(Endpoint::Generic, &headers, body)
            .expect("valid");
        assert!(
            matches!(&delivery.verdict, Verdict::Ignore(why) if why.contains("only-ci")),
            "{delivery:?}"
        );
        let delivery = intake("")
            .handle(Endpoint::Generic, &headers, body)
            .expect("valid");
        assert!(matches!(delivery.verdict, Verdict::Publish(_)));
    }

    #[test]
    fn a_body_declared_as_anything_but_json_is_refused_after_authentication() {
        let body = br#"{"zen":"hi"}"#;
        for (content_type, accepted) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/cloudevents+json", true),
            ("text/plain", false),
            ("multipart/form-data", false),
        ] {
            let mut headers = signed("ping", body);
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            let answer = intake("").handle(Endpoint::GitHub, &headers, body);
            match answer {
                Ok(_) => assert!(accepted, "{content_type} was accepted"),
                Err(error) => {
                    assert!(!accepted, "{content_type}: {error}");
                    assert_eq!(error.status().as_u16(), 400);
                    assert!(error.to_string().contains(content_type), "{error}");
                }
            }
        }
        let mut unsigned = signed("ping", body);
        unsigned.remove(github::SIGNATURE_HEADER);
        unsigned.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let error = intake("")
            .handle(Endpoint::GitHub, &unsigned, body)
            .expect_err("unsigned");
        assert_eq!(
            error.status().as_u16(),
            401,
            "authentication first: {error}"
        );
    }

    #[test]
    fn a_signed_ping_is_ignored() {
        let body = br#"{"zen":"Design for failure."}"#;
        let delivery = intake("")
            .handle(Endpoint::GitHub, &signed("ping", body), body)
            .expect("valid");
        assert!(matches!(delivery.verdict, Verdict::Ignore(_)));
    }
}
