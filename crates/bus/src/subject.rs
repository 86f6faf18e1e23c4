//! Subject helpers: key sanitizing and NATS wildcard matching.

/// Makes `raw` usable as the key token of a subject: every character outside
/// `[A-Za-z0-9_-]` becomes `_`. An empty key becomes `_` so the subject keeps its shape.
pub fn sanitize_key(raw: &str) -> String {
    if raw.is_empty() {
        return "_".to_owned();
    }
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether `subject` matches the NATS `pattern` (`*` one token, `>` one or more trailing tokens).
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for want in pattern.split('.') {
        match (want, tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (want, Some(got)) if want == got => {}
            _ => return false,
        }
    }
    tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_only_safe_characters() {
        assert_eq!(sanitize_key("acme/ping"), "acme_ping");
        assert_eq!(sanitize_key("ping-v20240101.1a2b"), "ping-v20240101_1a2b");
        assert_eq!(sanitize_key("a b>*"), "a_b__");
        assert_eq!(sanitize_key("über"), "_ber");
        assert_eq!(sanitize_key(""), "_");
    }

    #[test]
    fn wildcards_match_like_nats() {
        assert!(matches("flotilla.>", "flotilla.build.started.x"));
        assert!(!matches("flotilla.>", "flotilla"));
        assert!(matches("flotilla.build.*.x", "flotilla.build.failed.x"));
        assert!(!matches("flotilla.build.*", "flotilla.build.failed.x"));
        assert!(matches("flotilla.env.ready.>", "flotilla.env.ready.pr-1"));
        assert!(!matches(
            "flotilla.env.ready.>",
            "flotilla.env.requested.pr-1"
        ));
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.b.c"));
    }
}
