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

    pub(crate) fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The secrets an endpoint accepts: usually one, two or more while a secret is rotated (the
/// sender switches to the new one while the old one still verifies). None means the endpoint is
/// not configured and refuses every delivery.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Keys(Vec<Secret>);

impl Keys {
    /// The non-empty values among `values`, without repeats.
    pub fn of<S: Into<String>>(values: impl IntoIterator<Item = S>) -> Keys {
        let mut keys = Keys::default();
        keys.extend(values.into_iter().filter_map(|value| Secret::new(value)));
        keys
    }

    pub fn extend(&mut self, secrets: impl IntoIterator<Item = Secret>) {
        for secret in secrets {
            if !self.0.contains(&secret) {
                self.0.push(secret);
            }
        }
    }

    pub fn merge(&mut self, other: Keys) {
        self.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn secrets(&self) -> &[Secret] {
        &self.0
    }

    /// Whether a value is in both (checked at start-up, so not in constant time).
    pub(crate) fn shares_a_secret(&self, other: &Keys) -> bool {
        self.0.iter().any(|secret| other.0.contains(secret))
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} secret(s))", self.0.len())
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
/// `X-Gitea-Signature` has none) against every key. `header` names the header in error messages.
pub fn verify_hmac(
    keys: &Keys,
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
    // Every key is tried, so the time taken does not tell which one matched.
    let matched = keys.0.iter().fold(false, |matched, secret| {
        let ok = hmac(secret.bytes(), body).verify_slice(&expected).is_ok();
        matched | ok
    });
    if matched {
        Ok(())
    } else {
        Err(WebhookError::unauthorized(format!(
            "{header} does not match the body"
        )))
    }
}

/// Checks a shared token in constant time. Both sides are hashed first, so the comparison
/// takes the same time whatever the length of the token sent.
pub fn verify_token(keys: &Keys, header: &str, token: &str) -> Result<(), WebhookError> {
    let given = Sha256::digest(token.as_bytes());
    let matched = keys
        .0
        .iter()
        .fold(subtle::Choice::from(0), |matched, secret| {
            matched | given.ct_eq(&Sha256::digest(secret.bytes()))
        });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(WebhookError::unauthorized(format!("{header} is wrong")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(value: &str) -> Keys {
        Keys::of([value])
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
        assert!(Keys::of([""]).is_empty());
        assert_eq!(
            format!("{:?}", Secret::new("hunter2").expect("not empty")),
            "Secret(..)"
        );
        assert_eq!(format!("{:?}", secret("hunter2")), "Keys(1 secret(s))");
    }

    #[test]
    fn during_a_rotation_the_old_and_the_new_secret_both_verify() {
        let keys = Keys::of(["old-secret", "new-secret"]);
        for secret in ["old-secret", "new-secret"] {
            let signature = github_signature(secret.as_bytes(), b"{}");
            verify_hmac(&keys, "X-Hub-Signature-256", &signature, true, b"{}").expect(secret);
            verify_token(&keys, "X-Gitlab-Token", secret).expect(secret);
        }
        let forged = github_signature(b"older-secret", b"{}");
        verify_hmac(&keys, "X-Hub-Signature-256", &forged, true, b"{}").expect_err("retired");
        verify_token(&keys, "X-Gitlab-Token", "older-secret").expect_err("retired");
        verify_token(&Keys::default(), "X-Gitlab-Token", "").expect_err("no keys, no match");
    }

    #[test]
    fn a_secret_file_holds_one_secret_a_line() {
        let keys = Keys::of(flotilla_env::secret::lines(
            "new-secret\r\n\n  \nold secret with spaces\nnew-secret\n",
        ));
        assert_eq!(keys.len(), 2, "blank lines and repeats are skipped");
        verify_token(&keys, "X-Gitlab-Token", "old secret with spaces").expect("kept whole");
        verify_token(&keys, "X-Gitlab-Token", "new-secret").expect("\\r dropped");
    }
}
