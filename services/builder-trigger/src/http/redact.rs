//! Secrets kept out of what the http backend logs and reports: a CI request's URL may carry the
//! API token (in its userinfo or a query parameter), and log lines, `build.failed` reasons and
//! `log_url`s are read by many more people than the token's owner.

/// What a secret is replaced with.
pub const REDACTED: &str = "***";

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
        let mut found = Vec::new();
        if let Some((start, end)) = authority(url)
            && let Some(at) = url[start..end].rfind('@')
        {
            let userinfo = &url[start..start + at];
            found.extend(userinfo.split(':').map(str::to_owned));
        }
        if let Some((start, end)) = query(url) {
            for pair in url[start..end].split('&') {
                if let Some((name, value)) = pair.split_once('=')
                    && sensitive(&decode(name))
                {
                    found.push(value.to_owned());
                    found.push(decode(value));
                }
            }
        }
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
        self.text(&structural(url))
    }
}

/// Where a URL's authority (after `://`, up to the path, query or fragment) is.
fn authority(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    Some((start, end))
}

/// Where a URL's query (after `?`, up to the fragment) is.
fn query(url: &str) -> Option<(usize, usize)> {
    let start = url.find('?')? + 1;
    let end = url[start..].find('#').map_or(url.len(), |i| start + i);
    Some((start, end))
}

/// The URL with its userinfo and credential-like query values replaced.
fn structural(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some((start, end)) = authority(&out)
        && let Some(at) = out[start..end].rfind('@')
    {
        out.replace_range(start..start + at, REDACTED);
    }
    let Some((query_start, query_end)) = query(&out) else {
        return out;
    };
    let query: Vec<String> = out[query_start..query_end]
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if sensitive(&decode(name)) => format!("{name}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect();
    out.replace_range(query_start..query_end, &query.join("&"));
    out
}

/// Query parameter names that carry credentials: `token`, `access_token`, `api_key`,
/// `X-Amz-Signature`, `sig` (Azure SAS), `password`, `client_secret`, ...
fn sensitive(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "sig"
        || [
            "token",
            "key",
            "secret",
            "password",
            "passwd",
            "signature",
            "credential",
            "auth",
        ]
        .iter()
        .any(|word| name.contains(word))
}

/// Percent-decoding of a query name (`+` is a space), lossy: only to judge the name.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
