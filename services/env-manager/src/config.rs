//! env-manager's settings: flags and environment variables (names in [`mod@env`]).

use std::path::PathBuf;
use std::time::Duration;

use flotilla_env::SecretFile;

use crate::error::Error;
use crate::github::{self, Github, GithubRepo};
use crate::gitops::{Author, Credentials, Secret, Settings};

pub use analysis::AnalysisMap;

mod analysis;

/// The environment variables env-manager reads, in one place.
pub mod env {
    pub const GITOPS_URL: &str = "FLOTILLA_GITOPS_URL";
    pub const GITOPS_BRANCH: &str = "FLOTILLA_GITOPS_BRANCH";
    pub const GITOPS_DIR: &str = "FLOTILLA_GITOPS_DIR";
    pub const GITOPS_SSH_KEY: &str = "FLOTILLA_GITOPS_SSH_KEY";
    pub const GITOPS_TOKEN: &str = "FLOTILLA_GITOPS_TOKEN";
    pub const GITOPS_TOKEN_FILE: &str = "FLOTILLA_GITOPS_TOKEN_FILE";
    pub const GITOPS_USERNAME: &str = "FLOTILLA_GITOPS_USERNAME";
    pub const GITOPS_SSH_PASSPHRASE_FILE: &str = "FLOTILLA_GITOPS_SSH_PASSPHRASE_FILE";
    pub const GITOPS_KNOWN_HOSTS: &str = "FLOTILLA_GITOPS_KNOWN_HOSTS";
    pub const GITOPS_AUTHOR_NAME: &str = "FLOTILLA_GITOPS_AUTHOR_NAME";
    pub const GITOPS_AUTHOR_EMAIL: &str = "FLOTILLA_GITOPS_AUTHOR_EMAIL";
    pub const GITOPS_GROUP_MAX: &str = "FLOTILLA_GITOPS_GROUP_MAX";
    pub const PROMOTE: &str = "FLOTILLA_PROMOTE";
    pub const GITOPS_GITHUB_REPO: &str = "FLOTILLA_GITOPS_GITHUB_REPO";
    pub const ANALYSIS: &str = "FLOTILLA_ANALYSIS";
    pub const GITHUB_TOKEN: &str = "FLOTILLA_GITHUB_TOKEN";
    pub const GITHUB_TOKEN_FILE: &str = "FLOTILLA_GITHUB_TOKEN_FILE";
    pub const GITHUB_API_URL: &str = "FLOTILLA_GITHUB_API_URL";
    pub const PRODUCTION_MANIFEST: &str = "FLOTILLA_PRODUCTION_MANIFEST";
    pub const ENVS_DIR: &str = "FLOTILLA_ENVS_DIR";
    pub const ENV_TTL: &str = "FLOTILLA_ENV_TTL";
}

/// Pushes tried before a write gives up on a busy remote (and the event is retried later).
const PUSH_ATTEMPTS: u32 = 8;
/// Writes grouped into one commit at most, by default.
const GROUP_MAX: usize = 32;

/// Where the working copy lives unless `FLOTILLA_GITOPS_DIR` says otherwise.
pub const DEFAULT_GITOPS_DIR: &str = "/var/lib/flotilla/gitops";

/// env-manager's flags; each also reads the environment variable it names.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "envs")]
pub struct Args {
    /// The GitOps repository: a path, or an ssh:// or https:// URL (required).
    #[arg(long, env = env::GITOPS_URL)]
    pub gitops_url: Option<String>,
    /// The branch Argo CD follows.
    #[arg(long, env = env::GITOPS_BRANCH, default_value = "main")]
    pub gitops_branch: String,
    /// Where the working copy lives (cloned there when absent) [default:
    /// /var/lib/flotilla/gitops].
    #[arg(long, env = env::GITOPS_DIR)]
    pub gitops_dir: Option<PathBuf>,
    /// Private key for SSH URLs.
    #[arg(long, env = env::GITOPS_SSH_KEY)]
    pub gitops_ssh_key: Option<PathBuf>,
    /// Token for HTTPS URLs.
    #[arg(long, env = env::GITOPS_TOKEN, hide_env_values = true)]
    pub gitops_token: Option<String>,
    /// A file holding the token for HTTPS URLs, read at each authentication.
    #[arg(long, env = env::GITOPS_TOKEN_FILE, conflicts_with = "gitops_token")]
    pub gitops_token_file: Option<PathBuf>,
    /// The user sent with the token when the URL names none [default: x-access-token].
    #[arg(long, env = env::GITOPS_USERNAME)]
    pub gitops_username: Option<String>,
    /// A file holding the SSH key's passphrase.
    #[arg(long, env = env::GITOPS_SSH_PASSPHRASE_FILE)]
    pub gitops_ssh_passphrase_file: Option<PathBuf>,
    /// An OpenSSH known_hosts file the SSH remote's host key must be in (e.g. from
    /// `ssh-keyscan`), read at each connection [default: ~/.ssh/known_hosts, as libgit2 reads it].
    #[arg(long, env = env::GITOPS_KNOWN_HOSTS, value_name = "FILE")]
    pub gitops_known_hosts: Option<PathBuf>,
    /// The author (and committer) name of env-manager's commits.
    #[arg(long, env = env::GITOPS_AUTHOR_NAME, default_value = "flotilla env-manager")]
    pub gitops_author_name: String,
    /// The author (and committer) email of env-manager's commits.
    #[arg(long, env = env::GITOPS_AUTHOR_EMAIL, default_value = "env-manager@flotilla.invalid")]
    pub gitops_author_email: String,
    /// Writes that arrive together are made one commit and one push, up to this many; 1 turns
    /// grouping off (a commit per write).
    #[arg(long, env = env::GITOPS_GROUP_MAX, default_value_t = GROUP_MAX)]
    pub gitops_group_max: usize,
    /// How a tested staging change reaches production: `commit` (to the branch) or
    /// `pull-request` (a branch and a pull request through the GitHub API).
    #[arg(long, env = env::PROMOTE, default_value = "commit", value_parser = ["commit", "pull-request"])]
    pub promote: String,
    /// The GitOps repository on GitHub (`owner/name`), for `pull-request` promotions [default:
    /// from the URL].
    #[arg(long, env = env::GITOPS_GITHUB_REPO)]
    pub gitops_github_repo: Option<String>,
    /// The analyses each app's releases run: `APP=TEMPLATE[+TEMPLATE],...`, `*` for every
    /// other app, `cluster:NAME` for a ClusterAnalysisTemplate.
    #[arg(long, env = env::ANALYSIS, default_value = "", value_name = "APP=TEMPLATE,...")]
    pub analysis: String,
    /// GitHub token for commit statuses and pull-request promotions.
    #[arg(long, env = env::GITHUB_TOKEN, hide_env_values = true)]
    pub github_token: Option<String>,
    /// A file holding the GitHub token, read at each call.
    #[arg(long, env = env::GITHUB_TOKEN_FILE, conflicts_with = "github_token")]
    pub github_token_file: Option<PathBuf>,
    /// The GitHub API (GitHub Enterprise: `https://HOST/api/v3`).
    #[arg(long, env = env::GITHUB_API_URL, default_value = github::DEFAULT_API_URL)]
    pub github_api_url: String,
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
    /// The label whose removal from a pull request tears its preview down.
    pub preview_label: Option<String>,
    /// How tested changes reach production.
    pub promote: Promote,
    /// The analyses of each app's releases.
    pub analysis: AnalysisMap,
    /// The GitHub API, when a token is configured: commit statuses, pull-request promotions.
    pub github: Option<Github>,
}

/// How a tested staging change reaches production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Promote {
    /// A commit on the GitOps branch.
    Commit,
    /// A branch and a pull request in this GitHub repository, for a person to merge.
    PullRequest(GithubRepo),
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
                author: Author::default(),
                group_max: GROUP_MAX,
            },
            production_manifest: "apps/production.json".into(),
            envs_dir: "envs".into(),
            env_ttl: Duration::from_secs(72 * 3600),
            preview_label: None,
            promote: Promote::Commit,
            analysis: AnalysisMap::default(),
            github: None,
        }
    }

    /// Tears a preview down when the label that gave it is removed, when one is set.
    pub fn with_preview(mut self, preview: &flotilla_env::PreviewArgs) -> Config {
        self.preview_label = preview.label();
        self
    }

    pub fn from_args(args: &Args) -> Result<Config, Error> {
        let invalid = |what: &str| Err(Error::Config(what.to_owned()));
        let url = args
            .gitops_url
            .as_deref()
            .map(str::trim)
            .unwrap_or_default();
        if url.is_empty() {
            return invalid(&format!(
                "{} is not set: the GitOps repository, a path or an ssh:// or https:// URL",
                env::GITOPS_URL
            ));
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
        if args.gitops_group_max == 0 {
            return invalid(&format!("{} must be at least 1", env::GITOPS_GROUP_MAX));
        }
        if args.gitops_author_name.trim().is_empty() || !args.gitops_author_email.contains('@') {
            return invalid(&format!(
                "{} and {} must name someone",
                env::GITOPS_AUTHOR_NAME,
                env::GITOPS_AUTHOR_EMAIL
            ));
        }
        let dir = args
            .gitops_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_GITOPS_DIR));
        let mut config = Config::new(url.to_owned(), dir);
        config.gitops.branch = args.gitops_branch.clone();
        config.gitops.credentials = Credentials {
            ssh_key: args.gitops_ssh_key.clone(),
            ssh_passphrase: args
                .gitops_ssh_passphrase_file
                .clone()
                .map(|file| Secret::File(SecretFile::new(env::GITOPS_SSH_PASSPHRASE_FILE, file))),
            username: args.gitops_username.clone().filter(|u| !u.is_empty()),
            token: secret(
                &args.gitops_token,
                &args.gitops_token_file,
                env::GITOPS_TOKEN_FILE,
            ),
            known_hosts: args.gitops_known_hosts.clone(),
        };
        config.gitops.author = Author {
            name: args.gitops_author_name.clone(),
            email: args.gitops_author_email.clone(),
        };
        config.gitops.group_max = args.gitops_group_max;
        config.production_manifest = args.production_manifest.clone();
        config.envs_dir = args.envs_dir.trim_end_matches('/').to_owned();
        config.env_ttl = args.env_ttl;
        config.analysis = AnalysisMap::parse(&args.analysis)?;
        config.github = secret(
            &args.github_token,
            &args.github_token_file,
            env::GITHUB_TOKEN_FILE,
        )
        .map(|token| Github::new(&args.github_api_url, token))
        .transpose()?;
        if args.promote == "pull-request" {
            if config.github.is_none() {
                return invalid(&format!(
                    "{}=pull-request needs {} or {}",
                    env::PROMOTE,
                    env::GITHUB_TOKEN,
                    env::GITHUB_TOKEN_FILE
                ));
            }
            let repo = match &args.gitops_github_repo {
                Some(repo) => GithubRepo::parse(repo),
                None => GithubRepo::from_url(url),
            };
            let repo = repo.ok_or_else(|| {
                Error::Config(format!(
                    "{}=pull-request: set {} to the GitOps repository's owner/name",
                    env::PROMOTE,
                    env::GITOPS_GITHUB_REPO
                ))
            })?;
            config.promote = Promote::PullRequest(repo);
        }
        Ok(config)
    }

    /// The env manifest of `env`, relative to the repository root.
    pub fn env_manifest(&self, env: &str) -> String {
        format!("{}/{env}.json", self.envs_dir)
    }
}

/// A secret given as a value or a file (named by `variable`); an empty value is none.
fn secret(value: &Option<String>, file: &Option<PathBuf>, variable: &str) -> Option<Secret> {
    match (value.as_deref().filter(|v| !v.is_empty()), file) {
        (Some(value), _) => Some(Secret::Value(value.to_owned())),
        (None, Some(file)) => Some(Secret::File(SecretFile::new(variable, file.clone()))),
        (None, None) => None,
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
    fn the_tokens_are_not_printed_with_the_settings() {
        let config =
            parse(&["--gitops-token", "s3cret", "--github-token", "gh-s3cret"]).expect("valid");
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(config.github.is_some());
    }

    #[test]
    fn grouping_can_be_turned_off_but_not_to_zero() {
        assert_eq!(parse(&[]).expect("valid").gitops.group_max, GROUP_MAX);
        let off = parse(&["--gitops-group-max", "1"]).expect("valid");
        assert_eq!(off.gitops.group_max, 1);
        assert!(matches!(
            parse(&["--gitops-group-max", "0"]),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn the_commit_author_comes_from_the_settings() {
        let config = parse(&[
            "--gitops-author-name",
            "Deploy Bot",
            "--gitops-author-email",
            "deploy@example.com",
        ])
        .expect("valid");
        assert_eq!(config.gitops.author.name, "Deploy Bot");
        assert_eq!(config.gitops.author.email, "deploy@example.com");
    }

    #[test]
    fn pull_request_promotion_needs_a_token_and_finds_the_repository_in_the_url() {
        assert!(matches!(
            parse(&["--promote", "pull-request"]),
            Err(Error::Config(_))
        ));
        let mut argv = vec![
            "env-manager",
            "--gitops-url",
            "https://github.com/acme/gitops.git",
            "--github-token",
            "t",
            "--promote",
            "pull-request",
        ];
        let cli = Cli::try_parse_from(argv.clone()).expect("the flags parse");
        let config = Config::from_args(&cli.args).expect("valid");
        assert_eq!(
            config.promote,
            Promote::PullRequest(GithubRepo::parse("acme/gitops").expect("owner/name"))
        );
        argv[2] = "/srv/gitops.git";
        let cli = Cli::try_parse_from(argv).expect("the flags parse");
        assert!(matches!(
            Config::from_args(&cli.args),
            Err(Error::Config(_))
        ));
    }
}
