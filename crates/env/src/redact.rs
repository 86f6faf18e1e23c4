//! URLs and text as they may be shown — in logs, errors, events and dry-run output. A credential
//! often rides in a URL (`https://x-access-token:TOKEN@github.com/...`, `?private_token=...`,
//! `?X-Amz-Signature=...`); the GitOps remote and CI request URLs are both redacted here.

/// What a secret is replaced with.
pub const REDACTED: &str = "***";

/// `url` without its secrets: an HTTP(S) URL loses its whole userinfo (GitHub takes a token as
/// the user name alone); any other URL keeps its user (`git@`, `ssh://git@`) and loses a
/// password; the values of query parameters named like credentials are replaced. Text that is
/// not a URL keeps everything but such query values.
pub fn url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some((start, end)) = authority(&out)
        && let Some(at) = out[start..end].rfind('@')
    {
        let scheme = &out[..start - 3];
        let http = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
        let userinfo = &out[start..start + at];
        match userinfo.split_once(':') {
            Some((user, _)) if !http => {
                let user_end = start + user.len() + 1;
                out.replace_range(user_end..start + at, REDACTED);
            }
            _ if http => out.replace_range(start..start + at, REDACTED),
            _ => {}
        }
    }
    let Some((query_start, query_end)) = query(&out) else {
        return out;
    };
    let query: Vec<String> = out[query_start..query_end]
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_sensitive(&decode(name)) => format!("{name}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect();
    out.replace_range(query_start..query_end, &query.join("&"));
    out
}

/// The secrets `url` carries, to be redacted wherever else they appear (an answer may echo
/// them): the parts of its userinfo, and the values of its credential-like query parameters,
/// raw and decoded.
pub fn secrets_in(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Some((start, end)) = authority(url)
        && let Some(at) = url[start..end].rfind('@')
    {
        found.extend(url[start..start + at].split(':').map(str::to_owned));
    }
    if let Some((start, end)) = query(url) {
        for pair in url[start..end].split('&') {
            if let Some((name, value)) = pair.split_once('=')
                && is_sensitive(&decode(name))
            {
                found.push(value.to_owned());
                found.push(decode(value));
            }
        }
    }
    found
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

/// Query parameter names that carry credentials: `token`, `access_token`, `api_key`,
/// `X-Amz-Signature`, `sig` (Azure SAS), `password`, `client_secret`, ...
pub fn is_sensitive(name: &str) -> bool {
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
    use super::url as redact_url;

    #[test]
    fn http_userinfo_is_hidden_whole() {
        assert_eq!(
            redact_url("https://x-access-token:ghp_SECRET@github.com/acme/gitops.git"),
            "https://***@github.com/acme/gitops.git"
        );
        assert_eq!(
            redact_url("http://ghp_SECRET@127.0.0.1:8080/repo.git"),
            "http://***@127.0.0.1:8080/repo.git"
        );
    }

    #[test]
    fn an_ssh_user_stays_and_a_password_goes() {
        assert_eq!(redact_url("ssh://git@host/x.git"), "ssh://git@host/x.git");
        assert_eq!(
            redact_url("ssh://git:pw@host/x.git"),
            "ssh://git:***@host/x.git"
        );
        assert_eq!(
            redact_url("git@github.com:acme/x.git"),
            "git@github.com:acme/x.git"
        );
    }

    #[test]
    fn secret_query_values_are_hidden_and_others_kept() {
        assert_eq!(
            redact_url("https://ci.example/api?private_token=abc&ref=main#top"),
            "https://ci.example/api?private_token=***&ref=main#top"
        );
    }

    #[test]
    fn a_url_without_secrets_is_unchanged() {
        for url in [
            "/srv/gitops.git",
            "file:///srv/gitops.git",
            "https://github.com/a/b.git",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }
}
