//! env-manager's settings: flags and environment variables (names in [`mod@env`]).

use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;
use crate::gitops::{Credentials, Settings};

/// The environment variables env-manager reads, in one place.
pub mod env {
    pub const GITOPS_URL: &str = "FLOTILLA_GITOPS_URL";
    pub const GITOPS_BRANCH: &str = "FLOTILLA_GITOPS_BRANCH";
    pub const GITOPS_DIR: &str = "FLOTILLA_GITOPS_DIR";
    pub const GITOPS_SSH_KEY: &str = "FLOTILLA_GITOPS_SSH_KEY";
    pub const GITOPS_TOKEN: &str = "FLOTILLA_GITOPS_TOKEN";
    pub const PRODUCTION_MANIFEST: &str = "FLOTILLA_PRODUCTION_MANIFEST";
    pub const ENVS_DIR: &str = "FLOTILLA_ENVS_DIR";
    pub const ENV_TTL: &str = "FLOTILLA_ENV_TTL";
}

/// Pushes tried before a write gives up on a busy remote (and the event is retried later).
const PUSH_ATTEMPTS: u32 = 5;

/// env-manager's flags; each also reads the environment variable it names.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "envs")]
pub struct Args {
    /// The GitOps repository: a path, or an ssh:// or https:// URL.
    #[arg(long, env = env::GITOPS_URL)]
    pub gitops_url: String,
    /// The branch Argo CD follows.
    #[arg(long, env = env::GITOPS_BRANCH, default_value = "main")]
    pub gitops_branch: String,
    /// Where the working copy lives (cloned there when absent).
    #[arg(long, env = env::GITOPS_DIR, default_value = "/var/lib/flotilla/gitops")]
    pub gitops_dir: PathBuf,
    /// Private key for SSH URLs.
    #[arg(long, env = env::GITOPS_SSH_KEY)]
    pub gitops_ssh_key: Option<PathBuf>,
    /// Token for HTTPS URLs.
    #[arg(long, env = env::GITOPS_TOKEN, hide_env_values = true)]
    pub gitops_token: Option<String>,
    /// The production manifest, relative to the repository root.
    #[arg(long, env = env::PRODUCTION_MANIFEST, default_value = "apps/production.json")]
    pub production_manifest: String,
    /// The directory of env manifests (`<env>.json`), relative to the repository root.
    #[arg(long, env = env::ENVS_DIR, default_value = "envs")]
    pub envs_dir: String,
    /// How long an environment lives after its build, unless torn down sooner.
    #[arg(long, env = env::ENV_TTL, default_value = "72h", value_parser = humantime::parse_duration)]
    pub env_ttl: Duration,
}

/// Everything env-manager needs besides its NATS connection.
#[derive(Debug, Clone)]
pub struct Config {
    pub gitops: Settings,
    pub production_manifest: String,
    pub envs_dir: String,
    pub env_ttl: Duration,
}

impl Config {
    /// Defaults around a repository URL and working copy.
    pub fn new(url: impl Into<String>, dir: impl Into<PathBuf>) -> Config {
        Config {
            gitops: Settings {
                url: url.into(),
                branch: "main".into(),
                dir: dir.into(),
                credentials: Credentials::default(),
                push_attempts: PUSH_ATTEMPTS,
            },
            production_manifest: "apps/production.json".into(),
            envs_dir: "envs".into(),
            env_ttl: Duration::from_secs(72 * 3600),
        }
    }

    pub fn from_args(args: &Args) -> Result<Config, Error> {
        let invalid = |what: &str| Err(Error::Config(what.to_owned()));
        if args.gitops_url.trim().is_empty() {
            return invalid(&format!("{} is empty", env::GITOPS_URL));
        }
        if args.gitops_branch.trim().is_empty() {
            return invalid(&format!("{} is empty", env::GITOPS_BRANCH));
        }
        for (name, path) in [
            (env::PRODUCTION_MANIFEST, &args.production_manifest),
            (env::ENVS_DIR, &args.envs_dir),
        ] {
            if !is_relative_inside(path) {
                return invalid(&format!(
                    "{name} must be a path inside the repository, not {path:?}"
                ));
            }
        }
        if args.env_ttl.is_zero() {
            return invalid(&format!("{} must be more than 0", env::ENV_TTL));
        }
        let mut config = Config::new(args.gitops_url.clone(), args.gitops_dir.clone());
        config.gitops.branch = args.gitops_branch.clone();
        config.gitops.credentials = Credentials {
            ssh_key: args.gitops_ssh_key.clone(),
            token: args.gitops_token.clone().filter(|t| !t.is_empty()),
        };
        config.production_manifest = args.production_manifest.clone();
        config.envs_dir = args.envs_dir.trim_end_matches('/').to_owned();
        config.env_ttl = args.env_ttl;
        Ok(config)
    }

    /// The env manifest of `env`, relative to the repository root.
    pub fn env_manifest(&self, env: &str) -> String {
        format!("{}/{env}.json", self.envs_dir)
    }
}

/// A relative path that stays inside the repository.
fn is_relative_inside(path: &str) -> bool {
    let path = std::path::Path::new(path);
    !path.as_os_str().is_empty()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(extra: &[&str]) -> Result<Config, Error> {
        let mut argv = vec!["env-manager", "--gitops-url", "/srv/gitops.git"];
        argv.extend_from_slice(extra);
        let cli = Cli::try_parse_from(argv).expect("the flags parse");
        Config::from_args(&cli.args)
    }

    #[test]
    fn defaults_follow_the_design() {
        let config = parse(&[]).expect("valid");
        assert_eq!(config.gitops.branch, "main");
        assert_eq!(config.production_manifest, "apps/production.json");
        assert_eq!(config.env_manifest("pr-ping-1"), "envs/pr-ping-1.json");
        assert_eq!(config.env_ttl, Duration::from_secs(72 * 3600));
    }

    #[test]
    fn manifest_paths_outside_the_repository_are_refused() {
        for bad in ["../prod.json", "/etc/prod.json", ""] {
            assert!(
                matches!(
                    parse(&["--production-manifest", bad]),
                    Err(Error::Config(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse(&["--envs-dir", "a/../../b"]),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn the_ttl_is_a_human_duration_and_not_zero() {
        let config = parse(&["--env-ttl", "1h 30m"]).expect("valid");
        assert_eq!(config.env_ttl, Duration::from_secs(5400));
        assert!(matches!(parse(&["--env-ttl", "0s"]), Err(Error::Config(_))));
    }

    #[test]
    fn the_token_is_not_printed_with_the_settings() {
        let config = parse(&["--gitops-token", "s3cret"]).expect("valid");
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
