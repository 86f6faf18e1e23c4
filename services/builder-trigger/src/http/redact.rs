//! Secrets kept out of what the http backend logs and reports: a CI request's URL may carry the
//! API token (in its userinfo or a query parameter), and log lines, `build.failed` reasons and
//! `log_url`s are read by many more people than the token's owner.

use flotilla_env::redact;
pub use flotilla_env::redact::REDACTED;

/// Removes secrets from URLs and text: userinfo, query parameters named like a credential, and
/// the known secret values (raw and percent-encoded) wherever they appear.
#[derive(Debug, Clone, Default)]
pub struct Redact {
    secrets: Vec<String>,
}

impl Redact {
    /// Redacts the non-empty `secrets` besides what URLs show to be secret.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Redact {
        let mut all = Vec::new();
        for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
            let encoded = super::template::encode(secret, false);
            if encoded != secret {
                all.push(encoded);
            }
            all.push(secret.to_owned());
        }
        // Longest first: a secret containing another is replaced whole.
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        Redact { secrets: all }
    }

    /// Also redacts the secrets `url` carries (its userinfo, the values of its credential-like
    /// query parameters), wherever they appear: a CI system may echo them in its answer.
    pub fn with_url(&self, url: &str) -> Redact {
        let found = redact::secrets_in(url);
        let known = self.secrets.iter().map(String::as_str);
        Redact::new(known.chain(found.iter().map(String::as_str)))
    }

    /// `text` with every known secret replaced.
    pub fn text(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), REDACTED);
            }
        }
        text
    }

    /// `url` without userinfo, with the values of credential-like query parameters replaced,
    /// and without the known secrets. Works on any text: one that is not a URL loses only the
    /// known secrets.
    pub fn url(&self, url: &str) -> String {
        self.text(&redact::url(url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_and_credential_like_query_values_are_replaced() {
        let redact = Redact::default();
        assert_eq!(
            redact.url("https://user:pass@ci.example/runs?x=1&access_token=abc&API%5FKEY=k#top"),
            "https://***@ci.example/runs?x=1&access_token=***&API%5FKEY=***#top"
        );
        assert_eq!(
            redact.url("https://ci.example/a@b?sig=s&signature=t&Password=p&ref=main"),
            "https://ci.example/a@b?sig=***&signature=***&Password=***&ref=main"
        );
        assert_eq!(redact.url("/var/log/builds/b.log"), "/var/log/builds/b.log");
    }

    #[test]
    fn the_secrets_a_url_carries_are_redacted_wherever_they_appear() {
        let redact = Redact::new(["t0k"])
            .with_url("https://bot:pw@ci.example/x?api_key=k%2By&ref=main&token=t0k");
        assert_eq!(
            redact.text("echo: api_key=k+y ref=main bot pw t0k"),
            "echo: api_key=*** ref=main *** *** ***"
        );
    }

    #[test]
    fn known_secrets_are_replaced_wherever_they_appear_raw_or_encoded() {
        let redact = Redact::new(["s3cr3t/+=", "", "other"]);
        assert_eq!(
            redact.url("https://ci.example/s3cr3t/+=/x?q=s3cr3t%2F%2B%3D"),
            "https://ci.example/***/x?q=***"
        );
        assert_eq!(
            redact.text("answered 401: bad token other"),
            "answered 401: bad token ***"
        );
    }
}
