//! Remote URLs as they may be shown: in logs, errors and dry-run output. A token often rides in
//! the URL (`https://x-access-token:TOKEN@github.com/...`, `?private_token=...`).

/// `url` without its secrets: an HTTP(S) URL loses its whole userinfo (GitHub takes a token as
/// the user name alone); any other URL keeps its user (`git@`, `ssh://git@`) and loses a
/// password; query values of parameters named like secrets are hidden.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // A path or `git@host:path`: no password can be written there.
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let http = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
            match userinfo.split_once(':') {
                _ if http => format!("***@{host}"),
                Some((user, _)) => format!("{user}:***@{host}"),
                None => format!("{userinfo}@{host}"),
            }
        }
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}{}", redact_query(tail))
}

/// Query parameters whose names say they hold a secret.
const SECRET_PARAMS: &[&str] = &[
    "token",
    "key",
    "secret",
    "password",
    "passwd",
    "signature",
    "sig",
    "auth",
    "credential",
];

fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let query = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret(name) => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&");
    match fragment {
        Some(fragment) => format!("{path}?{query}#{fragment}"),
        None => format!("{path}?{query}"),
    }
}

fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|secret| name.contains(secret))
}

#[cfg(test)]
mod tests {
    use super::redact_url;

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
