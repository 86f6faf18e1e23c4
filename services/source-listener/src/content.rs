//! The JSON of a delivery, by its content type: JSON as sent, or, from GitHub's (and Gitea's)
//! form-encoded webhooks, the `payload` field of the form.
//!
//! GitHub's web form creates webhooks as `application/x-www-form-urlencoded` unless the user
//! changes it. The signature covers the raw form body, so the form is decoded only after the
//! signature was checked against it.

use std::borrow::Cow;

use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;

use crate::endpoint::Endpoint;
use crate::error::WebhookError;

const FORM: &str = "application/x-www-form-urlencoded";

/// The JSON `body` carries, or a 400 saying why it carries none. A sender that names no type
/// is given the benefit of the doubt: the parser says precisely what is wrong with a body that
/// is not JSON.
pub fn json_of<'b>(
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: &'b [u8],
) -> Result<Cow<'b, [u8]>, WebhookError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(Cow::Borrowed(body));
    };
    let text = value.to_str().unwrap_or_default();
    let essence = text.split(';').next().unwrap_or_default().trim();
    let json = essence.eq_ignore_ascii_case("application/json")
        || essence.to_ascii_lowercase().ends_with("+json");
    if json {
        Ok(Cow::Borrowed(body))
    } else if essence.eq_ignore_ascii_case(FORM) && endpoint == Endpoint::GitHub {
        payload(body).map(Cow::Owned)
    } else {
        Err(WebhookError::bad_request(format!(
            "content type `{}` is not supported; send application/json (a GitHub webhook's \
             \"Content type\" setting)",
            text.escape_debug()
        )))
    }
}

/// The url-decoded `payload` field of a form body: exactly one, as GitHub sends it.
fn payload(body: &[u8]) -> Result<Vec<u8>, WebhookError> {
    let mut payloads = form_urlencoded::parse(body).filter(|(name, _)| name == "payload");
    let first = payloads
        .next()
        .ok_or_else(|| WebhookError::bad_request("form-encoded delivery has no `payload` field"))?;
    if payloads.next().is_some() {
        return Err(WebhookError::bad_request(
            "form-encoded delivery has more than one `payload` field",
        ));
    }
    Ok(first.1.into_owned().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn form() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(FORM));
        headers
    }

    #[test]
    fn the_payload_field_of_a_form_is_the_json() {
        let body = b"payload=%7B%22zen%22%3A%22a+b%26c%22%7D";
        let json = json_of(Endpoint::GitHub, &form(), body).expect("a form");
        assert_eq!(json.as_ref(), br#"{"zen":"a b&c"}"#);
    }

    #[test]
    fn a_form_without_exactly_one_payload_or_at_another_endpoint_is_a_bad_request() {
        for body in [&b"zen=1"[..], b"", b"payload=1&payload=2"] {
            let error = json_of(Endpoint::GitHub, &form(), body).expect_err("no single payload");
            assert_eq!(error.status().as_u16(), 400);
            assert!(error.to_string().contains("`payload`"), "{error}");
        }
        for endpoint in [Endpoint::GitLab, Endpoint::Generic] {
            let error = json_of(endpoint, &form(), b"payload=%7B%7D").expect_err("JSON only");
            assert!(error.to_string().contains(FORM), "{error}");
        }
    }
}
