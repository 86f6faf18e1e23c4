//! The generic endpoint's bearer tokens, each scoped to the event types it may publish.
//!
//! A token that can publish any catalog type can set production to any version with one POST
//! (`tests.passed`, `canary.promoted`, ...), so every token carries a scope: `source.custom`
//! unless its entry in `FLOTILLA_CONFIG` lists more. `GENERIC_WEBHOOK_TOKEN` (and its `_FILE`)
//! is the token named `default`, with the default scope.
//!
//! ```yaml
//! genericTokens:
//!   - name: ci                              # in logs and metrics; unique
//!     tokenFile: /run/secrets/ci-token      # one token a line (rotation), or:
//!     # tokenEnv: CI_WEBHOOK_TOKEN          # the variable that holds the token
//!     events: [tests.passed, tests.failed]  # default: [source.custom]
//! ```

use std::path::PathBuf;

use flotilla_proto::catalog;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::auth::Keys;
use crate::error::{ConfigError, WebhookError};

/// The scope of a token that names none, and of `GENERIC_WEBHOOK_TOKEN`.
pub const DEFAULT_SCOPE: &[&str] = &["source.custom"];
/// The name of the token from `GENERIC_WEBHOOK_TOKEN` / `GENERIC_WEBHOOK_TOKEN_FILE`.
pub const DEFAULT_NAME: &str = "default";

/// One named token (with its rotation siblings) and what it may publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub keys: Keys,
    /// Event types of the catalog, checked at start-up.
    pub events: Vec<&'static str>,
}

impl Token {
    /// A token with the default scope.
    pub fn new(name: impl Into<String>, keys: Keys) -> Token {
        Token {
            name: name.into(),
            keys,
            events: DEFAULT_SCOPE.to_vec(),
        }
    }

    /// The token with `events` as its scope; each must be a catalog type.
    pub fn scoped(mut self, events: &[&str]) -> Result<Token, String> {
        self.events = events
            .iter()
            .map(|name| event_type(name))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    pub fn may_publish(&self, event_type: &str) -> bool {
        self.events.contains(&event_type)
    }

    /// Refuses an event type outside the token's scope with a 403 naming both.
    pub fn check_scope(&self, event_type: &str) -> Result<(), WebhookError> {
        if self.may_publish(event_type) {
            return Ok(());
        }
        Err(WebhookError::Forbidden(format!(
            "token `{}` may not publish `{event_type}`; it may publish {} (genericTokens in \
             FLOTILLA_CONFIG)",
            self.name,
            self.events.join(", ")
        )))
    }
}

/// Every token of the generic endpoint. None means the endpoint refuses every delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens(Vec<Token>);

impl Tokens {
    /// `GENERIC_WEBHOOK_TOKEN`'s keys as the `default` token, then the configured ones. A token
    /// value listed twice would make the scope depend on the order: an error.
    pub fn new(legacy: Keys, configured: Vec<Token>) -> Result<Tokens, String> {
        let mut tokens = Vec::with_capacity(configured.len() + 1);
        if !legacy.is_empty() {
            tokens.push(Token::new(DEFAULT_NAME, legacy));
        }
        for token in configured {
            if tokens.iter().any(|t: &Token| t.name == token.name) {
                return Err(format!("two tokens are named `{}`", token.name));
            }
            if let Some(other) = tokens.iter().find(|t| t.keys.shares_a_secret(&token.keys)) {
                return Err(format!(
                    "tokens `{}` and `{}` have the same value; each needs its own",
                    other.name, token.name
                ));
            }
            tokens.push(token);
        }
        Ok(Tokens(tokens))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|t| t.name.as_str())
    }

    /// The token `given` is, compared in constant time against every secret of every token,
    /// so the time taken tells neither how much of it was right nor which token matched.
    pub fn verify(&self, given: &str) -> Result<&Token, WebhookError> {
        let given = Sha256::digest(given.as_bytes());
        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        for (position, token) in (0u32..).zip(&self.0) {
            for secret in token.keys.secrets() {
                let matched = given.ct_eq(&Sha256::digest(secret.bytes()));
                index.conditional_assign(&position, matched);
                found |= matched;
            }
        }
        if bool::from(found) {
            let index = usize::try_from(index).unwrap_or(usize::MAX);
            self.0
                .get(index)
                .ok_or_else(|| WebhookError::Internal("matched token index out of range".into()))
        } else {
            Err(WebhookError::unauthorized("the bearer token is wrong"))
        }
    }
}

/// One entry of `genericTokens:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenSpec {
    pub name: String,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

/// The part of `FLOTILLA_CONFIG` this module reads; the rest belongs to the filters.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileSpec {
    #[serde(default)]
    generic_tokens: Vec<TokenSpec>,
}

/// Reads the `genericTokens:` entries of the config file's `text`, their secrets from their files
/// or from `env` (the process environment, handed in so tests need not set variables).
pub fn from_yaml(
    text: &str,
    origin: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<Token>, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let file: FileSpec = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
        path: origin.to_owned(),
        reason: e.to_string(),
    })?;
    file.generic_tokens
        .into_iter()
        .enumerate()
        .map(|(i, spec)| {
            let entry = if spec.name.trim().is_empty() {
                format!("genericTokens[{i}]")
            } else {
                format!("genericTokens `{}`", spec.name.trim())
            };
            spec.compile(&env).map_err(|reason| ConfigError::Token {
                path: origin.to_owned(),
                entry,
                reason,
            })
        })
        .collect()
}

impl TokenSpec {
    fn compile(self, env: &impl Fn(&str) -> Option<String>) -> Result<Token, String> {
        let name = self.name.trim();
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if name.is_empty() || !name.chars().all(valid) {
            return Err("`name` must be letters, digits, `-` or `_` (it labels metrics)".into());
        }
        let keys = match (&self.token_file, &self.token_env) {
            (Some(path), None) => Keys::of(
                flotilla_env::secret::read_all(&format!("{name}: tokenFile"), path)
                    .map_err(|e| e.to_string())?,
            ),
            (None, Some(variable)) => Keys::of([env(variable)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| {
                    format!("`tokenEnv: {variable}` names a variable that is unset or empty")
                })?]),
            _ => return Err("give exactly one of `tokenFile` and `tokenEnv`".into()),
        };
        let token = Token::new(name, keys);
        match self.events {
            None => Ok(token),
            Some(events) if events.is_empty() => {
                Err("`events` is empty; leave it out for the default [source.custom]".into())
            }
            Some(events) => {
                let events: Vec<&str> = events.iter().map(String::as_str).collect();
                token.scoped(&events)
            }
        }
    }
}

fn event_type(name: &str) -> Result<&'static str, String> {
    catalog::lookup(name.trim())
        .map(|spec| spec.event_type)
        .ok_or_else(|| {
            let known: Vec<_> = catalog::event_type_names().collect();
            format!("unknown event type `{name}`; known: {}", known.join(", "))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_their_token_from_a_file_or_a_variable_and_default_to_custom_events() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("ci-token");
        std::fs::write(&file, "ci-new\nci-old\n").expect("written");
        let yaml = format!(
            "filters: []\ngenericTokens:\n- name: ci\n  tokenFile: {}\n  events: [tests.passed, tests.failed]\n- name: cron\n  tokenEnv: CRON_TOKEN\n",
            file.display()
        );
        let env = |name: &str| (name == "CRON_TOKEN").then(|| "cron-secret".to_owned());
        let tokens = from_yaml(&yaml, "test.yaml", env).expect("valid");
        let tokens = Tokens::new(Keys::of(["legacy"]), tokens).expect("distinct");
        assert_eq!(
            tokens.names().collect::<Vec<_>>(),
            ["default", "ci", "cron"]
        );
        for (given, name, events) in [
            ("legacy", "default", vec!["source.custom"]),
            ("ci-new", "ci", vec!["tests.passed", "tests.failed"]),
            ("ci-old", "ci", vec!["tests.passed", "tests.failed"]),
            ("cron-secret", "cron", vec!["source.custom"]),
        ] {
            let token = tokens.verify(given).expect(given);
            assert_eq!((token.name.as_str(), &token.events), (name, &events));
        }
        let error = tokens.verify("ci-ne").expect_err("a prefix");
        assert_eq!(error.status().as_u16(), 401);
    }

    #[test]
    fn a_type_outside_the_scope_is_a_403_naming_the_token_and_its_scope() {
        let token = Token::new("ci", Keys::of(["t"]))
            .scoped(&["tests.passed"])
            .expect("valid");
        token.check_scope("tests.passed").expect("in scope");
        let error = token
            .check_scope("build.succeeded")
            .expect_err("out of scope");
        assert_eq!(error.status().as_u16(), 403);
        let text = error.to_string();
        assert!(
            text.contains("`ci`") && text.contains("`build.succeeded`"),
            "{text}"
        );
        assert!(text.contains("tests.passed"), "{text}");
    }

    #[test]
    fn bad_entries_are_refused_at_start_up_with_the_reason() {
        for (yaml, reason) in [
            (
                "genericTokens:\n- {name: ci, tokenEnv: CI}\n",
                "unset or empty",
            ),
            ("genericTokens:\n- {name: ci}\n", "exactly one of"),
            (
                "genericTokens:\n- {name: 'c i', tokenEnv: X}\n",
                "letters, digits",
            ),
            (
                "genericTokens:\n- {name: ci, tokenEnv: X, events: [tests.pased]}\n",
                "tests.pased",
            ),
            (
                "genericTokens:\n- {name: ci, tokenEnv: X, events: []}\n",
                "`events` is empty",
            ),
            (
                "genericTokens:\n- {name: ci, tokenEnv: X, scope: [a]}\n",
                "scope",
            ),
            (
                "genericTokens:\n- {name: ci, tokenFile: /nonexistent/token}\n",
                "/nonexistent/token",
            ),
        ] {
            let env = |name: &str| (name == "X").then(|| "x".to_owned());
            let error = from_yaml(yaml, "test.yaml", env).expect_err(yaml);
            let text = error.to_string();
            assert!(text.contains(reason), "{yaml}: {text}");
            assert!(text.contains("test.yaml"), "{text}");
        }
    }

    #[test]
    fn names_and_values_must_be_distinct() {
        let token = |name: &str, value: &str| Token::new(name, Keys::of([value]));
        let error = Tokens::new(Keys::default(), vec![token("a", "1"), token("a", "2")])
            .expect_err("same name");
        assert!(error.contains("`a`"), "{error}");
        let error = Tokens::new(Keys::of(["1"]), vec![token("a", "1")]).expect_err("same value");
        assert!(
            error.contains("`default`") && error.contains("`a`"),
            "{error}"
        );
        assert!(
            Tokens::new(Keys::default(), Vec::new())
                .expect("none")
                .is_empty()
        );
    }
}
