//! Header values of CloudEvents attributes, as the NATS binding encodes them: percent-encoding
//! of space, `"`, `%` and everything outside printable ASCII on the way out; double-quoted
//! strings and percent-encoding undone on the way in.

use std::borrow::Cow;

use async_nats::{HeaderMap, HeaderName};

use crate::error::BusError;

/// Percent-encodes an attribute value for a NATS header.
pub fn encode(value: &str) -> Cow<'_, str> {
    let needs = |b: u8| !(0x21..=0x7e).contains(&b) || b == b'"' || b == b'%';
    if !value.bytes().any(needs) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for byte in value.bytes() {
        if needs(byte) {
            out.push_str(&format!("%{byte:02X}"));
        } else {
            out.push(char::from(byte));
        }
    }
    Cow::Owned(out)
}

/// Decodes a header value into an attribute value: unquotes a double-quoted string, then
/// percent-decodes once. Invalid UTF-8 after decoding is an error.
pub fn decode(raw: &str) -> Result<Cow<'_, str>, BusError> {
    let unquoted = unquote(raw.trim());
    if !unquoted.contains('%') {
        return Ok(unquoted);
    }
    let bytes = unquoted.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| BusError::Envelope(format!("bad percent-encoding in `{raw}`")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| BusError::Envelope(format!("`{raw}` decodes to invalid UTF-8")))
}

fn unquote(value: &str) -> Cow<'_, str> {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return Cow::Borrowed(value);
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(escaped) = chars.next() {
                out.push(escaped);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Looks a header up by name, ignoring case as NATS header names are meant to be: our own
/// spelling first (the common, fast case), then any other.
pub fn get<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    if let Some(value) = headers.get(name.clone()) {
        return Some(value.as_str());
    }
    let name: &str = name.as_ref();
    headers
        .iter()
        .find(|(key, _)| AsRef::<str>::as_ref(*key).eq_ignore_ascii_case(name))
        .and_then(|(_, values)| values.first())
        .map(|value| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specs_example_is_encoded_as_the_spec_says() {
        assert_eq!(
            encode("Euro \u{20AC} \u{1F600}"),
            "Euro%20%E2%82%AC%20%F0%9F%98%80"
        );
        assert_eq!(encode("flotilla/env-manager"), "flotilla/env-manager");
        assert_eq!(encode("50% \"done\""), "50%25%20%22done%22");
    }

    #[test]
    fn decoding_undoes_encoding_and_accepts_quotes_and_lower_case() {
        for value in ["Euro \u{20AC} \u{1F600}", "a\"b%c", "plain", ""] {
            assert_eq!(decode(&encode(value)).expect("valid"), value);
        }
        assert_eq!(
            decode("\"quoted \\\"x\\\"\"").expect("valid"),
            "quoted \"x\""
        );
        assert_eq!(decode("%e2%82%ac").expect("valid"), "\u{20AC}");
        assert_eq!(decode("unneeded%41").expect("valid"), "unneededA");
    }

    #[test]
    fn overlong_or_broken_encodings_are_rejected() {
        assert!(decode("%C0%A0").is_err(), "overlong space");
        assert!(decode("%ZZ").is_err());
        assert!(decode("50%").is_err());
    }

    #[test]
    fn header_lookup_ignores_case() {
        let mut headers = HeaderMap::new();
        headers.insert("Ce-Id", "x");
        assert_eq!(get(&headers, &HeaderName::from_static("ce-id")), Some("x"));
        assert_eq!(get(&headers, &HeaderName::from_static("ce-type")), None);
    }
}
