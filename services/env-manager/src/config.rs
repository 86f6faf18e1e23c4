//! env-manager's settings: flags and environment variables (names in [`mod@env`]).

use std::path::PathBuf;
use std::time::Duration;

use flotilla_env::SecretFile;

use crate::error::Error;
use crate::github::{Github, GithubRepo};
use crate::gitops::{Author, Credentials, Secret, Settings};

pub use analysis::AnalysisMap;
use args::GROUP_MAX;

pub use args::{Args, DEFAULT_GITOPS_DIR, env};
/// libgit2's network timeout unless `FLOTILLA_GIT_TIMEOUT` says otherwise.
pub use flotilla_gitops::DEFAULT_GIT_TIMEOUT as GIT_TIMEOUT;

mod analysis;
mod args;

/// Pushes tried before a write gives up on a busy remote (and the event is retried later).
const PUSH_ATTEMPTS: u32 = 8;

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
    /// Environment hooks (`FLOTILLA_HOOKS`): the ones that apply to an env are recorded
    /// `pending` for its change when it is requested.
    pub hooks: std::sync::Arc<flotilla_env::Hooks>,
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
                network_timeout: GIT_TIMEOUT,
            },
            production_manifest: "apps/production.json".into(),
            envs_dir: "envs".into(),
            env_ttl: Duration::from_secs(72 * 3600),
            preview_label: None,
            promote: Promote::Commit,
            analysis: AnalysisMap::default(),
            github: None,
            hooks: Default::default(),
        }
    }

    /// Records the hooks of `hooks` that apply to each requested env.
    pub fn with_hooks(mut self, hooks: flotilla_env::Hooks) -> Config {
        self.hooks = std::sync::Arc::new(hooks);
        self
    }

    /// Tears a preview down when the label that gave it is removed, when one is set.
    pub fn with_preview(mut self, preview: &flotilla_env::PreviewArgs) -> Config {
        self.preview_label = preview.label();
        self
    }

    pub fn from_args(args: &Args) -> Result<Config, Error> {
        let invalid = |what: &str| Err(Error::Config(what.to_owned()));
        let remote = args
            .gitops
            .remote()
            .map_err(|e| Error::Config(e.to_string()))?;
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
        let mut config = Config::new(remote.url.clone(), args.gitops.dir());
        config.gitops.branch = remote.branch;
        config.gitops.credentials = remote.credentials;
        config.gitops.network_timeout = remote.network_timeout;
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
                None => GithubRepo::from_url(&config.gitops.url),
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
    fn the_help_lists_every_variable_including_the_shared_gitops_ones() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for variable in [
            env::GITOPS_URL,
            env::GITOPS_BRANCH,
            env::GITOPS_DIR,
            env::GITOPS_SSH_KEY,
            env::GITOPS_TOKEN,
            env::GITOPS_TOKEN_FILE,
            env::GITOPS_USERNAME,
            env::GITOPS_SSH_PASSPHRASE_FILE,
            env::GITOPS_KNOWN_HOSTS,
            env::GIT_TIMEOUT,
            env::GITOPS_AUTHOR_NAME,
            env::GITOPS_GROUP_MAX,
            env::PROMOTE,
            env::ENV_TTL,
        ] {
            assert!(help.contains(variable), "{variable} missing from\n{help}");
        }
    }

    #[test]
    fn the_shared_gitops_settings_reach_the_working_copy() {
        let config = parse(&[
            "--gitops-branch",
            "deploy",
            "--gitops-dir",
            "/data/work",
            "--git-timeout",
            "5s",
            "--gitops-token-file",
            "/run/token",
        ])
        .expect("valid");
        assert_eq!(config.gitops.branch, "deploy");
        assert_eq!(config.gitops.dir, PathBuf::from("/data/work"));
        assert_eq!(config.gitops.network_timeout, Duration::from_secs(5));
        assert!(matches!(
            config.gitops.credentials.token,
            Some(Secret::File(_))
        ));
        assert!(matches!(
            parse(&["--gitops-branch", "a..b"]),
            Err(Error::Config(why)) if why.contains(env::GITOPS_BRANCH)
        ));
        assert!(matches!(
            parse(&["--git-timeout", "0s"]),
            Err(Error::Config(why)) if why.contains(env::GIT_TIMEOUT)
        ));
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
