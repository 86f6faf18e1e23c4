//! Authenticating deliveries: HMAC signatures (GitHub, Gitea) and shared tokens (GitLab, generic).
//!
//! Every comparison is constant-time, so response timing says nothing about how much of a
//! forged signature or token was right.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::WebhookError;

type HmacSha256 = Hmac<Sha256>;

/// A webhook secret or token. Its `Debug` never shows the value, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// `None` for an empty value: an empty secret would make every signature "valid" for
    /// anyone who knows it is empty, so it counts as not configured.
    pub fn new(value: impl Into<String>) -> Option<Secret> {
        let value = value.into();
        (!value.is_empty()).then_some(Secret(value))
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The `X-Hub-Signature-256` value GitHub sends for `body`: `sha256=<lowercase hex HMAC>`.
/// Public so that tools and tests can sign what they send.
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac(secret, body).finalize().into_bytes())
    )
}

fn hmac(secret: &[u8], body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(body);
    mac
}

/// Checks a hex HMAC-SHA256 of `body` (with or without GitHub's `sha256=` prefix, as Gitea's
/// `X-Gitea-Signature` has none). `header` names the header in error messages.
pub fn verify_hmac(
    secret: &Secret,
    header: &str,
    signature: &str,
    prefixed: bool,
    body: &[u8],
) -> Result<(), WebhookError> {
    let hex_digest = if prefixed {
        signature.strip_prefix("sha256=").ok_or_else(|| {
            WebhookError::unauthorized(format!("{header} must start with `sha256=`"))
        })?
    } else {
        signature
    };
    let expected = hex::decode(hex_digest).map_err(|_| {
        WebhookError::unauthorized(format!("{header} is not a hex HMAC-SHA256 digest"))
    })?;
    hmac(secret.bytes(), body)
        .verify_slice(&expected)
        .map_err(|_| WebhookError::unauthorized(format!("{header} does not match the body")))
}

/// Checks a shared token in constant time. Both sides are hashed first, so the comparison
/// takes the same time whatever the length of the token sent.
pub fn verify_token(secret: &Secret, header: &str, token: &str) -> Result<(), WebhookError> {
    let given = Sha256::digest(token.as_bytes());
    let expected = Sha256::digest(secret.bytes());
    if bool::from(given.ct_eq(&expected)) {
        Ok(())
    } else {
        Err(WebhookError::unauthorized(format!("{header} is wrong")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(value: &str) -> Secret {
        Secret::new(value).expect("not empty")
    }

    #[test]
    fn github_test_vector_signs_and_verifies() {
        // From GitHub's "Validating webhook deliveries" documentation.
        let signature = github_signature(b"It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(
            signature,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        let secret = secret("It's a Secret to Everybody");
        verify_hmac(
            &secret,
            "X-Hub-Signature-256",
            &signature,
            true,
            b"Hello, World!",
        )
        .expect("the documented signature verifies");
    }

    #[test]
    fn a_signature_of_another_body_is_refused() {
        let secret = secret("s3cret");
        let signature = github_signature(b"s3cret", b"{\"a\":1}");
        let error = verify_hmac(
            &secret,
            "X-Hub-Signature-256",
            &signature,
            true,
            b"{\"a\":2}",
        )
        .expect_err("body was changed");
        assert_eq!(error.status().as_u16(), 401);
    }

    #[test]
    fn a_signature_made_with_another_secret_is_refused() {
        let signature = github_signature(b"other", b"{}");
        verify_hmac(
            &secret("s3cret"),
            "X-Hub-Signature-256",
            &signature,
            true,
            b"{}",
        )
        .expect_err("wrong secret");
    }

    #[test]
    fn malformed_signatures_are_refused_with_the_reason() {
        let secret = secret("s3cret");
        let hex = hex::encode([0u8; 32]);
        let no_prefix = verify_hmac(&secret, "X-Hub-Signature-256", &hex, true, b"{}")
            .expect_err("prefix is required");
        assert!(no_prefix.to_string().contains("sha256="), "{no_prefix}");
        let not_hex = verify_hmac(&secret, "X-Hub-Signature-256", "sha256=zz", true, b"{}")
            .expect_err("not hex");
        assert!(not_hex.to_string().contains("hex"), "{not_hex}");
        verify_hmac(&secret, "X-Hub-Signature-256", "sha256=abcd", true, b"{}")
            .expect_err("a truncated digest never verifies");
    }

    #[test]
    fn gitea_signatures_have_no_prefix() {
        let signature = github_signature(b"s3cret", b"{}");
        let bare = signature.trim_start_matches("sha256=");
        verify_hmac(&secret("s3cret"), "X-Gitea-Signature", bare, false, b"{}")
            .expect("bare hex verifies");
    }

    #[test]
    fn tokens_must_match_exactly() {
        let secret = secret("tok-123");
        verify_token(&secret, "X-Gitlab-Token", "tok-123").expect("same token");
        for wrong in ["tok-12", "tok-1234", "TOK-123", ""] {
            verify_token(&secret, "X-Gitlab-Token", wrong).expect_err(wrong);
        }
    }

    #[test]
    fn an_empty_secret_counts_as_not_configured_and_never_prints() {
        assert!(Secret::new("").is_none());
        assert_eq!(format!("{:?}", secret("hunter2")), "Secret(..)");
    }
}
