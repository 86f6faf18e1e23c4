//! What a parsed delivery is: who sent it, its id, and what it means for the pipeline.
//!
//! Also the small helpers every provider parser shares: reading headers, decoding a JSON body
//! with errors that name the field, and deriving an id from the body when the sender gives none.

use axum::http::HeaderMap;
use flotilla_bus::{EventType, Outgoing};
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

use crate::error::WebhookError;

/// Who sent a delivery; the `provider` field of the events and the metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    GitHub,
    /// Gitea (and Forgejo) send GitHub-compatible deliveries to the GitHub endpoint.
    Gitea,
    GitLab,
    Generic,
}

impl Provider {
    pub const ALL: [Provider; 4] = [
        Provider::GitHub,
        Provider::Gitea,
        Provider::GitLab,
        Provider::Generic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::Gitea => "gitea",
            Provider::GitLab => "gitlab",
            Provider::Generic => "generic",
        }
    }

    pub fn from_name(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a valid delivery asks of the pipeline.
#[derive(Debug)]
pub enum Verdict {
    /// Events to publish; the delivery is accepted once JetStream stored every one.
    Publish(Vec<Outgoing>),
    /// Nothing to do (a ping, a deleted branch, an event Flotilla does not handle, a filter).
    Ignore(String),
}

/// A delivery that passed authentication and parsing.
#[derive(Debug)]
pub struct Delivery {
    pub provider: Provider,
    /// The kind of event, from a fixed set so it can label metrics: `push`, `pull_request`,
    /// `ping`, `other`, or the event type of a generic delivery.
    pub event: &'static str,
    /// The event id: the provider's delivery id, or one derived from the body.
    pub id: String,
    pub verdict: Verdict,
}

impl Delivery {
    pub fn ignore(provider: Provider, event: &'static str, id: String, why: String) -> Self {
        Delivery {
            provider,
            event,
            id,
            verdict: Verdict::Ignore(why),
        }
    }

    pub fn publish(provider: Provider, event: &'static str, id: String, out: Outgoing) -> Self {
        Delivery {
            provider,
            event,
            id,
            verdict: Verdict::Publish(vec![out]),
        }
    }
}

/// Longest key or event id accepted. Keys end up in subjects and ids in headers; a NATS server
/// drops a client whose protocol line is over 4 KiB, so a sender must not be able to get near.
pub const MAX_TOKEN_LEN: usize = 256;

/// Refuses a key or id longer than [`MAX_TOKEN_LEN`].
pub fn check_length(what: &str, value: &str) -> Result<(), WebhookError> {
    if value.len() > MAX_TOKEN_LEN {
        Err(WebhookError::bad_request(format!(
            "{what} is longer than {MAX_TOKEN_LEN} bytes"
        )))
    } else {
        Ok(())
    }
}

/// An event of `event_type` about `key` whose id is the delivery's id, so a redelivery is a
/// JetStream duplicate.
pub fn event<M: prost::Message + prost::Name>(
    event_type: EventType,
    key: &str,
    message: &M,
    id: &str,
) -> Result<Outgoing, WebhookError> {
    check_length("the repository name", key)?;
    check_length("the delivery id", id)?;
    // Only a defect here can make this fail: the types and messages are fixed in the code.
    Outgoing::new(event_type, key, message)
        .map(|out| out.with_id(id))
        .map_err(|e| WebhookError::Internal(e.to_string()))
}

/// A header's value, trimmed; `None` when absent, empty or not visible ASCII.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// An id for a delivery that came without one: the same body always gets the same id, so a
/// sender's retry is a JetStream duplicate rather than a second event.
pub fn content_id(provider: Provider, body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("{provider}-{}", hex::encode(&digest[..16]))
}

/// Decodes a JSON body into `T`; the error names the field that did not fit.
pub fn decode<'de, T: Deserialize<'de>>(what: &str, body: &'de [u8]) -> Result<T, WebhookError> {
    // Tracking the path costs on every field (a tenth of a delivery's handling for an 8 KiB
    // push); it is only needed to explain a body that does not fit, so that one is read again.
    match serde_json::from_slice(body) {
        Ok(value) => Ok(value),
        Err(_) => decode_explained(what, body),
    }
}

/// [`decode`] with the path of the field that did not fit in the error.
fn decode_explained<'de, T: Deserialize<'de>>(
    what: &str,
    body: &'de [u8],
) -> Result<T, WebhookError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path.is_empty() || path == "." {
            WebhookError::bad_request(format!("invalid {what} payload: {inner}"))
        } else {
            WebhookError::bad_request(format!("invalid {what} payload: `{path}`: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| WebhookError::bad_request(format!("invalid {what} payload: {e}")))?;
    Ok(value)
}

/// Reads `null` as the default value: providers send `null` for many absent fields, and an
/// absent optional field is never a reason to refuse a delivery.
pub fn nullable<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// Fails with a 400 naming `field` when `value` is empty: a handled event must carry it.
pub fn require<'a>(what: &str, field: &str, value: &'a str) -> Result<&'a str, WebhookError> {
    if value.trim().is_empty() {
        Err(WebhookError::bad_request(format!(
            "{what} payload has no `{field}`"
        )))
    } else {
        Ok(value)
    }
}

/// A provider's timestamp as RFC 3339 in UTC (`2017-12-10T17:01:11Z`): RFC 3339 with any
/// offset, or GitLab's older `2017-12-10 17:01:11 UTC` / `2017-12-10 17:01:11 +0100`. Empty
/// when it is empty or none of these: a time is a hint (a build's version), never a reason to
/// refuse a delivery.
pub fn utc_time(text: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

    let text = text.trim();
    let parsed = OffsetDateTime::parse(text, &Rfc3339).ok().or_else(|| {
        let (local, zone) = text.rsplit_once(' ')?;
        let local = PrimitiveDateTime::parse(
            local,
            format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
        )
        .ok()?;
        let offset = if zone == "UTC" {
            UtcOffset::UTC
        } else {
            UtcOffset::parse(
                zone,
                format_description!("[offset_hour sign:mandatory][offset_minute]"),
            )
            .ok()?
        };
        Some(local.assume_offset(offset))
    });
    parsed
        .and_then(|at| at.to_offset(UtcOffset::UTC).format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The git convention for "no commit": the `before` of a new ref, the `after` of a deleted one.
pub fn is_zero_sha(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

#[cfg(test)]
mod time_tests {
    use super::utc_time;

    #[test]
    fn provider_times_become_rfc3339_in_utc() {
        assert_eq!(utc_time("2019-11-13T01:28:51Z"), "2019-11-13T01:28:51Z");
        assert_eq!(
            utc_time("2019-11-26T02:01:12-05:00"),
            "2019-11-26T07:01:12Z"
        );
        assert_eq!(utc_time("2017-12-10 17:01:11 UTC"), "2017-12-10T17:01:11Z");
        assert_eq!(
            utc_time("2013-12-03 17:23:34 +0200"),
            "2013-12-03T15:23:34Z"
        );
        for bad in ["", "yesterday", "2017-12-10 17:01:11 CET"] {
            assert_eq!(utc_time(bad), "", "{bad}");
        }
    }
}

/// Where a ref points: a branch, a tag, or something else (notes, pull refs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefName<'a> {
    Branch(&'a str),
    Tag(&'a str),
    Other(&'a str),
}

impl<'a> RefName<'a> {
    pub fn parse(full: &'a str) -> Self {
        if let Some(branch) = full.strip_prefix("refs/heads/") {
            RefName::Branch(branch)
        } else if let Some(tag) = full.strip_prefix("refs/tags/") {
            RefName::Tag(tag)
        } else {
            RefName::Other(full)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_body_always_gets_the_same_derived_id() {
        let a = content_id(Provider::GitLab, b"{\"a\":1}");
        assert_eq!(a, content_id(Provider::GitLab, b"{\"a\":1}"));
        assert_ne!(a, content_id(Provider::GitLab, b"{\"a\":2}"));
        assert!(a.starts_with("gitlab-"), "{a}");
    }

    #[test]
    fn overlong_keys_and_ids_are_bad_requests() {
        let long = "x".repeat(MAX_TOKEN_LEN + 1);
        let message = flotilla_proto::v1::Push::default();
        let error = event(EventType::SourcePush, &long, &message, "id").expect_err("long key");
        assert_eq!(error.status().as_u16(), 400);
        event(EventType::SourcePush, "acme/ping", &message, &long).expect_err("long id");
        event(EventType::SourcePush, "acme/ping", &message, "id").expect("short enough");
    }

    #[test]
    fn refs_split_into_branches_tags_and_the_rest() {
        assert_eq!(
            RefName::parse("refs/heads/feat/x"),
            RefName::Branch("feat/x")
        );
        assert_eq!(RefName::parse("refs/tags/v1.2"), RefName::Tag("v1.2"));
        assert_eq!(
            RefName::parse("refs/notes/commits"),
            RefName::Other("refs/notes/commits")
        );
    }

    #[test]
    fn decode_errors_name_the_field_that_did_not_fit() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            inner: Inner,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Inner {
            number: u64,
        }
        let error = decode::<Outer>("test", br#"{"inner":{"number":"seven"}}"#)
            .expect_err("a string is not a number");
        assert!(error.to_string().contains("`inner.number`"), "{error}");
        let error = decode::<Outer>("test", b"{").expect_err("truncated");
        assert_eq!(error.status().as_u16(), 400);
    }

    #[test]
    fn null_reads_as_the_default() {
        #[derive(Debug, Deserialize)]
        struct Fields {
            #[serde(default, deserialize_with = "nullable")]
            name: String,
            #[serde(default, deserialize_with = "nullable")]
            list: Vec<String>,
        }
        let fields: Fields =
            decode("test", br#"{"name":null,"list":null}"#).expect("null is accepted");
        assert_eq!(fields.name, "");
        assert!(fields.list.is_empty());
    }
}
