//! The listener's settings: flags and environment variables (names in [`mod@env`]), and the filter
//! file `FLOTILLA_CONFIG` names.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::auth::Keys;
use crate::error::ConfigError;
use crate::filter::Filters;
use crate::tokens::{self, Tokens};

/// The environment variables the listener reads, in one place.
pub mod env {
    pub const GITHUB_WEBHOOK_SECRET: &str = "GITHUB_WEBHOOK_SECRET";
    pub const GITLAB_WEBHOOK_TOKEN: &str = "GITLAB_WEBHOOK_TOKEN";
    pub const GENERIC_WEBHOOK_TOKEN: &str = "GENERIC_WEBHOOK_TOKEN";
    pub const GITHUB_WEBHOOK_SECRET_FILE: &str = "GITHUB_WEBHOOK_SECRET_FILE";
    pub const GITLAB_WEBHOOK_TOKEN_FILE: &str = "GITLAB_WEBHOOK_TOKEN_FILE";
    pub const GENERIC_WEBHOOK_TOKEN_FILE: &str = "GENERIC_WEBHOOK_TOKEN_FILE";
    pub const REQUEST_TIMEOUT: &str = "FLOTILLA_REQUEST_TIMEOUT";
    pub const MAX_IN_FLIGHT: &str = "FLOTILLA_MAX_IN_FLIGHT";
    pub const MAX_BODY: &str = "FLOTILLA_MAX_BODY";
    pub const CONFIG: &str = "FLOTILLA_CONFIG";
    pub const PUBLISH_TIMEOUT: &str = "FLOTILLA_PUBLISH_TIMEOUT";
}

/// The listener's flags; each also reads the environment variable it names.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "webhooks")]
pub struct Args {
    /// Secret of the GitHub (and Gitea) webhooks. Without it (or a secret file) /webhooks/github
    /// refuses everything.
    #[arg(long, env = env::GITHUB_WEBHOOK_SECRET, hide_env_values = true)]
    pub github_webhook_secret: Option<String>,
    /// File with GitHub webhook secrets, one a line; every one verifies, so a secret is rotated
    /// by adding the new line, switching the webhook, then removing the old line.
    #[arg(long, env = env::GITHUB_WEBHOOK_SECRET_FILE, value_name = "FILE")]
    pub github_webhook_secret_file: Option<PathBuf>,
    /// Secret token of the GitLab webhooks. Without it (or a token file) /webhooks/gitlab refuses
    /// everything.
    #[arg(long, env = env::GITLAB_WEBHOOK_TOKEN, hide_env_values = true)]
    pub gitlab_webhook_token: Option<String>,
    /// File with GitLab webhook tokens, one a line (rotation as for GitHub secrets).
    #[arg(long, env = env::GITLAB_WEBHOOK_TOKEN_FILE, value_name = "FILE")]
    pub gitlab_webhook_token_file: Option<PathBuf>,
    /// Bearer token of /webhooks/generic, named `default`; it may publish source.custom only.
    /// Tokens that may publish more (tests.passed for a CI system, say) are listed under
    /// `genericTokens:` in the --config file, each with its name and event types. Without any
    /// token the endpoint refuses everything.
    #[arg(long, env = env::GENERIC_WEBHOOK_TOKEN, hide_env_values = true)]
    pub generic_webhook_token: Option<String>,
    /// File with bearer tokens of /webhooks/generic, one a line; all are the `default` token.
    #[arg(long, env = env::GENERIC_WEBHOOK_TOKEN_FILE, value_name = "FILE")]
    pub generic_webhook_token_file: Option<PathBuf>,
    /// Largest request body accepted, e.g. 5MiB, 512KiB, 1MB or a number of bytes.
    #[arg(long, env = env::MAX_BODY, default_value = "5MiB", value_parser = parse_byte_size)]
    pub max_body: usize,
    /// YAML file with filter rules (`filters:`, Argo Events data-filter style), per-repository
    /// rules (`repos:`) and the generic endpoint's scoped tokens (`genericTokens:`, each
    /// `{name, tokenFile | tokenEnv, events}`); see README.md.
    #[arg(long, env = env::CONFIG, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How long a delivery may wait for JetStream to store its events before the answer is 503.
    #[arg(long, env = env::PUBLISH_TIMEOUT, default_value = "5s", value_parser = humantime::parse_duration)]
    pub publish_timeout: Duration,
    /// How long a sender may take to send a request's headers (a slower one is disconnected)
    /// and, once let in, its body (a slower one is answered 408).
    #[arg(long, env = env::REQUEST_TIMEOUT, default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Deliveries of authenticated senders handled at once; one more is answered 503 with
    /// Retry-After at once instead of queueing (senders retry, and a retry is deduplicated).
    /// Signed (GitHub, Gitea) bodies, which authenticate only once read, are read in half as
    /// many slots of their own; a token endpoint refuses a bad token before reading anything.
    #[arg(long, env = env::MAX_IN_FLIGHT, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
}

/// The secrets of the three endpoints; an endpoint without one refuses every delivery.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub github: Keys,
    pub gitlab: Keys,
    pub generic: Keys,
}

/// Everything the listener needs besides its NATS connection.
#[derive(Debug)]
pub struct Config {
    pub secrets: Secrets,
    /// The generic endpoint's tokens and their scopes: `secrets.generic` as `default`, then the
    /// `genericTokens:` of `FLOTILLA_CONFIG`.
    pub tokens: Tokens,
    pub max_body: usize,
    pub publish_timeout: Duration,
    pub request_timeout: Duration,
    pub max_in_flight: usize,
    pub filters: Filters,
}

impl Config {
    /// Defaults for everything but the secrets, with no filters.
    pub fn new(secrets: Secrets) -> Config {
        // Cannot fail: one token has nothing to clash with.
        let tokens = Tokens::new(secrets.generic.clone(), Vec::new()).unwrap_or_default();
        Config {
            secrets,
            tokens,
            max_body: 5 << 20,
            publish_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_in_flight: 512,
            filters: Filters::default(),
        }
    }

    /// Checks the arguments and reads the filter file.
    pub fn from_args(args: &Args) -> Result<Config, ConfigError> {
        for (variable, value) in [
            (env::PUBLISH_TIMEOUT, args.publish_timeout),
            (env::REQUEST_TIMEOUT, args.request_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Invalid(format!(
                    "{variable} must be longer than 0s"
                )));
            }
        }
        let (filters, configured) = match &args.config {
            Some(path) => {
                let text = read_config(path)?;
                let origin = path.display().to_string();
                let filters = Filters::from_yaml(&text, &origin)?;
                let tokens = tokens::from_yaml(&text, &origin, |name| std::env::var(name).ok())?;
                (filters, tokens)
            }
            None => (Filters::default(), Vec::new()),
        };
        let secrets = Secrets {
            github: keys(
                &args.github_webhook_secret,
                &args.github_webhook_secret_file,
                env::GITHUB_WEBHOOK_SECRET_FILE,
            )?,
            gitlab: keys(
                &args.gitlab_webhook_token,
                &args.gitlab_webhook_token_file,
                env::GITLAB_WEBHOOK_TOKEN_FILE,
            )?,
            generic: keys(
                &args.generic_webhook_token,
                &args.generic_webhook_token_file,
                env::GENERIC_WEBHOOK_TOKEN_FILE,
            )?,
        };
        let tokens = Tokens::new(secrets.generic.clone(), configured).map_err(|reason| {
            ConfigError::Invalid(format!(
                "{} and {}: {reason}",
                env::GENERIC_WEBHOOK_TOKEN,
                env::CONFIG
            ))
        })?;
        Ok(Config {
            secrets,
            tokens,
            max_body: args.max_body,
            publish_timeout: args.publish_timeout,
            request_timeout: args.request_timeout,
            max_in_flight: usize::try_from(args.max_in_flight).unwrap_or(usize::MAX),
            filters,
        })
    }
}

fn read_config(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The secrets of an endpoint: the one in the environment and those of the file, if any. A
/// file that is named but cannot be read, or holds no secret, is an error: the operator meant to
/// configure the endpoint, and running with it refusing everything would hide the mistake.
fn keys(
    value: &Option<String>,
    file: &Option<PathBuf>,
    variable: &str,
) -> Result<Keys, ConfigError> {
    let mut keys = Keys::of(value.clone());
    if let Some(path) = file {
        keys.merge(Keys::of(flotilla_env::secret::read_all(variable, path)?));
    }
    Ok(keys)
}

/// Parses a size written like `5MiB`, `512KiB`, `1MB` or `1048576` (bytes).
pub fn parse_byte_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let invalid = || format!("`{text}` is not a size; write it like 5MiB, 512KiB, 1MB or 1048576");
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(multiplier)
        .and_then(|bytes| usize::try_from(bytes).ok())
        .filter(|bytes| *bytes > 0)
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_read_in_binary_and_decimal_units() {
        assert_eq!(parse_byte_size("5MiB"), Ok(5 * 1024 * 1024));
        assert_eq!(parse_byte_size("512 KiB"), Ok(512 * 1024));
        assert_eq!(parse_byte_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_byte_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_byte_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_byte_size("100B"), Ok(100));
    }

    #[test]
    fn sizes_that_are_not_sizes_are_refused() {
        for text in ["", "MiB", "5 parsecs", "0", "-1MiB", "5.5MiB", "5mib"] {
            let error = parse_byte_size(text).expect_err(text);
            assert!(error.contains("5MiB"), "{error}");
        }
    }

    #[test]
    fn empty_secrets_count_as_unset_and_a_missing_config_file_is_an_error() {
        use clap::Parser;
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let cli = Cli::try_parse_from(["x", "--github-webhook-secret", ""]).expect("parses");
        let config = Config::from_args(&cli.args).expect("valid");
        assert!(config.secrets.github.is_empty());
        assert_eq!(config.max_body, 5 << 20);

        let cli =
            Cli::try_parse_from(["x", "--config", "/nonexistent/flotilla.yaml"]).expect("parses");
        let error = Config::from_args(&cli.args).expect_err("no such file");
        assert!(
            error.to_string().contains("/nonexistent/flotilla.yaml"),
            "{error}"
        );
    }

    #[test]
    fn secrets_come_from_the_environment_and_from_files_together() {
        use clap::Parser;
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("github-secrets");
        std::fs::write(&file, "new\nold\n").expect("written");
        let path = file.to_str().expect("utf-8 path");
        let cli = Cli::try_parse_from([
            "x",
            "--github-webhook-secret",
            "env",
            "--github-webhook-secret-file",
            path,
        ])
        .expect("parses");
        let config = Config::from_args(&cli.args).expect("valid");
        assert_eq!(config.secrets.github.len(), 3);

        std::fs::write(&file, "\n\n").expect("written");
        let error = Config::from_args(&cli.args).expect_err("an empty secret file");
        assert!(
            error.to_string().contains("GITHUB_WEBHOOK_SECRET_FILE"),
            "{error}"
        );
        assert!(error.to_string().contains("no secret"), "{error}");

        let missing = dir.path().join("missing");
        let cli = Cli::try_parse_from([
            "x",
            "--gitlab-webhook-token-file",
            missing.to_str().expect("utf-8 path"),
        ])
        .expect("parses");
        let error = Config::from_args(&cli.args).expect_err("a missing secret file");
        assert!(
            error.to_string().contains("GITLAB_WEBHOOK_TOKEN_FILE"),
            "{error}"
        );
    }

    #[test]
    fn the_generic_token_keeps_working_beside_scoped_tokens_of_the_config_file() {
        use clap::Parser;
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let token = dir.path().join("ci-token");
        std::fs::write(&token, "ci\n").expect("written");
        let file = dir.path().join("flotilla.yaml");
        let yaml = format!(
            "genericTokens:\n- {{name: ci, tokenFile: {}, events: [tests.passed]}}\n",
            token.display()
        );
        std::fs::write(&file, yaml).expect("written");
        let path = file.to_str().expect("utf-8 path");
        let cli = Cli::try_parse_from(["x", "--generic-webhook-token", "gen", "--config", path])
            .expect("parses");
        let config = Config::from_args(&cli.args).expect("valid");
        let names: Vec<_> = config.tokens.names().collect();
        assert_eq!(names, ["default", "ci"]);
        let default = config.tokens.verify("gen").expect("the variable's token");
        assert_eq!(default.events, ["source.custom"]);
        assert_eq!(
            config.tokens.verify("ci").expect("the file's").events,
            ["tests.passed"]
        );

        let cli = Cli::try_parse_from(["x", "--generic-webhook-token", "ci", "--config", path])
            .expect("parses");
        let error = Config::from_args(&cli.args).expect_err("the same value twice");
        assert!(error.to_string().contains("same value"), "{error}");
    }
}
