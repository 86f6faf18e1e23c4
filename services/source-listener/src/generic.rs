//! `POST /webhooks/generic`: any other source (a CI system, a cron job, a script).
//!
//! - Authentication: `Authorization: Bearer <token>`, one of [`Tokens`] (`GENERIC_WEBHOOK_TOKEN`
//!   and the `genericTokens:` of `FLOTILLA_CONFIG`), checked before the body is read.
//! - Body: `{"type": "<domain>.<event>", "key": "...", "data": {...}, "id": "optional"}`. The
//!   type is an event of the catalog within the token's scope (`source.custom` unless the
//!   token's entry lists more; anything else is a 403); `data` is its message in the proto3 JSON mapping,
//!   checked against the schema (an unknown field, a wrong type or a missing required field is a
//!   400 naming it). `source.custom` carries `{"source", "kind", "data"}`.
//! - The event id is `id`, else derived from the body: a sender's retry is a duplicate. Senders
//!   that post the same body on purpose within the duplicate window give each post an `id`.

use axum::http::{HeaderMap, header::AUTHORIZATION};
use flotilla_bus::{Encoding, EventType, Outgoing};
use serde::Deserialize;

use crate::delivery::{Delivery, Provider, check_length, content_id, decode, header, require};
use crate::error::WebhookError;
use crate::tokens::{Token, Tokens};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    #[serde(rename = "type")]
    event_type: String,
    key: String,
    data: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    id: Option<String>,
}

/// The token of `Authorization: Bearer <token>`, with its scope. Needs only the headers, so a
/// sender without a valid token is refused before its body is read.
pub fn authenticate<'a>(
    tokens: &'a Tokens,
    headers: &HeaderMap,
) -> Result<&'a Token, WebhookError> {
    if tokens.is_empty() {
        return Err(WebhookError::NotConfigured {
            endpoint: "/webhooks/generic",
            variable: "GENERIC_WEBHOOK_TOKEN",
        });
    }
    let value = header(headers, AUTHORIZATION.as_str()).ok_or_else(|| {
        WebhookError::unauthorized("missing Authorization: Bearer <token> header")
    })?;
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    let given = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| WebhookError::unauthorized("Authorization must be `Bearer <token>`"))?;
    tokens.verify(given)
}

/// Reads an authenticated delivery into the one event it carries.
pub fn parse(body: &[u8]) -> Result<Delivery, WebhookError> {
    let envelope: Envelope = decode("generic", body)?;
    let event_type = EventType::parse(&envelope.event_type)
        .map_err(|e| WebhookError::bad_request(e.to_string()))?;
    let key = require("generic", "key", &envelope.key)?;
    check_length("`key`", key)?;
    let data = serde_json::to_vec(&envelope.data)
        .map_err(|e| WebhookError::Internal(format!("re-encode data: {e}")))?;
    let mut event = Outgoing::from_json(event_type, key, &data, Encoding::Protobuf)
        .map_err(|e| WebhookError::bad_request(format!("invalid `data`: {e}")))?;
    if let Some(change_id) = change_id(&envelope.data) {
        event = event.with_change_id(change_id);
    }
    let id = envelope
        .id
        .filter(|id| !id.trim().is_empty())
        .unwrap_or_else(|| content_id(Provider::Generic, body));
    check_length("`id`", &id)?;
    let event = event.with_id(id.clone());
    Ok(Delivery::publish(
        Provider::Generic,
        event_type.as_str(),
        id,
        event,
    ))
}

/// The data's change id (`changeId`, or `change_id` as proto3 JSON also accepts), so events of
/// a change sent from outside are tagged like the ones workers publish.
fn change_id(data: &serde_json::Map<String, serde_json::Value>) -> Option<&str> {
    ["changeId", "change_id"]
        .iter()
        .find_map(|field| data.get(*field)?.as_str())
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use flotilla_proto::v1;
    use prost::Message;
    use serde_json::json;

    use crate::delivery::Verdict;

    fn only_event(delivery: &Delivery) -> &Outgoing {
        match &delivery.verdict {
            Verdict::Publish(events) if events.len() == 1 => &events[0],
            other => panic!("expected one event, got {other:?}"),
        }
    }

    #[test]
    fn a_custom_event_is_schema_checked_and_encoded_as_protobuf() {
        let body = json!({
            "type": "source.custom",
            "key": "nightly/job",
            "data": {"source": "cron", "kind": "nightly", "data": {"run": 7}},
            "id": "cron-7"
        });
        let delivery = parse(body.to_string().as_bytes()).expect("valid");
        assert_eq!(
            (delivery.id.as_str(), delivery.event),
            ("cron-7", "source.custom")
        );
        let event = only_event(&delivery);
        assert_eq!(
            event.subject("flotilla"),
            "flotilla.source.custom.nightly_job"
        );
        assert_eq!(
            event.content_type,
            "application/protobuf; proto=flotilla.v1.Custom"
        );
        let custom = v1::Custom::decode(event.payload.as_ref()).expect("Custom");
        assert_eq!(
            (custom.source.as_str(), custom.kind.as_str()),
            ("cron", "nightly")
        );
        assert!(custom.data.expect("data").fields.contains_key("run"));
    }

    #[test]
    fn any_catalog_type_parses_and_is_tagged_with_its_change_id_the_scope_is_checked_by_the_intake()
    {
        let body = json!({
            "type": "build.succeeded",
            "key": "ping-v1",
            "data": {"changeId": "ping-v1", "app": "ping", "version": "v1"}
        });
        let delivery = parse(body.to_string().as_bytes()).expect("valid");
        let event = only_event(&delivery);
        assert_eq!(event.change_id.as_deref(), Some("ping-v1"));
        assert!(
            delivery.id.starts_with("generic-"),
            "derived id: {}",
            delivery.id
        );
    }

    #[test]
    fn a_bad_field_in_data_is_a_bad_request_naming_it() {
        let body = json!({"type": "source.custom", "key": "k", "data": {"kind": "x", "colour": 1}});
        let error = parse(body.to_string().as_bytes()).expect_err("unknown field");
        assert_eq!(error.status().as_u16(), 400);
        assert!(error.to_string().contains("colour"), "{error}");
        let body = json!({"type": "source.custom", "key": "k", "data": {"source": "x"}});
        let error = parse(body.to_string().as_bytes()).expect_err("kind is required");
        assert!(error.to_string().contains("kind"), "{error}");
    }

    #[test]
    fn unknown_types_missing_keys_and_stray_fields_are_bad_requests() {
        for (body, names) in [
            (
                json!({"type": "build.exploded", "key": "k", "data": {}}),
                "build.exploded",
            ),
            (
                json!({"type": "source.custom", "key": "", "data": {"kind": "x"}}),
                "key",
            ),
            (json!({"type": "source.custom", "key": "k"}), "data"),
            (
                json!({"type": "source.custom", "key": "k", "data": {}, "extra": 1}),
                "extra",
            ),
            (
                json!({"type": "source.custom", "key": "k", "data": []}),
                "data",
            ),
        ] {
            let error = parse(body.to_string().as_bytes()).expect_err("refused");
            assert_eq!(error.status().as_u16(), 400, "{body}");
            assert!(error.to_string().contains(names), "{body}: {error}");
        }
    }

    #[test]
    fn the_bearer_token_must_match() {
        let token = Tokens::new(crate::auth::Keys::of(["t0k"]), Vec::new()).expect("valid");
        let mut headers = HeaderMap::new();
        authenticate(&token, &headers).expect_err("missing");
        for (value, ok) in [
            ("Bearer t0k", true),
            ("bearer t0k", true),
            ("Bearer nope", false),
            ("Basic t0k", false),
            ("t0k", false),
        ] {
            headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(authenticate(&token, &headers).is_ok(), ok, "{value}");
        }
        let unset = authenticate(&Tokens::default(), &headers).expect_err("not configured");
        assert!(unset.to_string().contains("GENERIC_WEBHOOK_TOKEN"));
    }
}
