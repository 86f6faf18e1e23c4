//! The listener's settings: flags and environment variables (names in [`mod@env`]), and the filter
//! file `FLOTILLA_CONFIG` names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::Secret;
use crate::error::ConfigError;
use crate::filter::Filters;

/// The environment variables the listener reads, in one place.
pub mod env {
    pub const HTTP_ADDR: &str = "FLOTILLA_HTTP_ADDR";
    pub const GITHUB_WEBHOOK_SECRET: &str = "GITHUB_WEBHOOK_SECRET";
    pub const GITLAB_WEBHOOK_TOKEN: &str = "GITLAB_WEBHOOK_TOKEN";
    pub const GENERIC_WEBHOOK_TOKEN: &str = "GENERIC_WEBHOOK_TOKEN";
    pub const MAX_BODY: &str = "FLOTILLA_MAX_BODY";
    pub const CONFIG: &str = "FLOTILLA_CONFIG";
    pub const PUBLISH_TIMEOUT: &str = "FLOTILLA_PUBLISH_TIMEOUT";
    pub const SHUTDOWN_GRACE: &str = "FLOTILLA_SHUTDOWN_GRACE";
}

/// The listener's flags; each also reads the environment variable it names.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "webhooks")]
pub struct Args {
    /// Address serving POST /webhooks/{github,gitlab,generic} and GET /healthz, /readyz, /metrics.
    #[arg(long, env = env::HTTP_ADDR, default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Secret of the GitHub (and Gitea) webhooks; without it /webhooks/github refuses everything.
    #[arg(long, env = env::GITHUB_WEBHOOK_SECRET, hide_env_values = true)]
    pub github_webhook_secret: Option<String>,
    /// Secret token of the GitLab webhooks; without it /webhooks/gitlab refuses everything.
    #[arg(long, env = env::GITLAB_WEBHOOK_TOKEN, hide_env_values = true)]
    pub gitlab_webhook_token: Option<String>,
    /// Bearer token of /webhooks/generic; without it the endpoint refuses everything.
    #[arg(long, env = env::GENERIC_WEBHOOK_TOKEN, hide_env_values = true)]
    pub generic_webhook_token: Option<String>,
    /// Largest request body accepted, e.g. 5MiB, 512KiB, 1MB or a number of bytes.
    #[arg(long, env = env::MAX_BODY, default_value = "5MiB", value_parser = parse_byte_size)]
    pub max_body: usize,
    /// YAML file with filter rules (`filters:`, Argo Events data-filter style; see README.md).
    #[arg(long, env = env::CONFIG, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How long a delivery may wait for JetStream to store its events before the answer is 503.
    #[arg(long, env = env::PUBLISH_TIMEOUT, default_value = "5s", value_parser = humantime::parse_duration)]
    pub publish_timeout: Duration,
    /// How long in-flight deliveries may take to finish after SIGTERM.
    #[arg(long, env = env::SHUTDOWN_GRACE, default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
}

/// The secrets of the three endpoints; an endpoint without one refuses every delivery.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub github: Option<Secret>,
    pub gitlab: Option<Secret>,
    pub generic: Option<Secret>,
}

/// Everything the listener needs besides its NATS connection.
#[derive(Debug)]
pub struct Config {
    pub secrets: Secrets,
    pub max_body: usize,
    pub publish_timeout: Duration,
    pub filters: Filters,
}

impl Config {
    /// Defaults for everything but the secrets, with no filters.
    pub fn new(secrets: Secrets) -> Config {
        Config {
            secrets,
            max_body: 5 << 20,
            publish_timeout: Duration::from_secs(5),
            filters: Filters::default(),
        }
    }

    /// Checks the arguments and reads the filter file.
    pub fn from_args(args: &Args) -> Result<Config, ConfigError> {
        if args.publish_timeout.is_zero() {
            return Err(ConfigError::Invalid(format!(
                "{} must be longer than 0s",
                env::PUBLISH_TIMEOUT
            )));
        }
        let filters = match &args.config {
            Some(path) => Filters::load(path)?,
            None => Filters::default(),
        };
        let secret = |value: &Option<String>| value.clone().and_then(Secret::new);
        Ok(Config {
            secrets: Secrets {
                github: secret(&args.github_webhook_secret),
                gitlab: secret(&args.gitlab_webhook_token),
                generic: secret(&args.generic_webhook_token),
            },
            max_body: args.max_body,
            publish_timeout: args.publish_timeout,
            filters,
        })
    }
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
        assert!(config.secrets.github.is_none());
        assert_eq!(config.max_body, 5 << 20);

        let cli =
            Cli::try_parse_from(["x", "--config", "/nonexistent/flotilla.yaml"]).expect("parses");
        let error = Config::from_args(&cli.args).expect_err("no such file");
        assert!(
            error.to_string().contains("/nonexistent/flotilla.yaml"),
            "{error}"
        );
    }
}
