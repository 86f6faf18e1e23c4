//! env-manager's flags and the environment variables they read, in one place.

use std::path::PathBuf;
use std::time::Duration;

use flotilla_gitops::GitopsArgs;

use crate::github;

/// Writes grouped into one commit at most, by default.
pub(super) const GROUP_MAX: usize = 32;

/// The environment variables env-manager reads, in one place.
pub mod env {
    // The GitOps repository's own variables are shared with the other workers that reach it.
    pub use flotilla_gitops::env::{
        GIT_TIMEOUT, GITOPS_BRANCH, GITOPS_DIR, GITOPS_KNOWN_HOSTS, GITOPS_SSH_KEY,
        GITOPS_SSH_PASSPHRASE_FILE, GITOPS_TOKEN, GITOPS_TOKEN_FILE, GITOPS_URL, GITOPS_USERNAME,
    };

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

/// Where the working copy lives unless `FLOTILLA_GITOPS_DIR` says otherwise.
pub use flotilla_gitops::args::DEFAULT_GITOPS_DIR;

/// env-manager's flags; each also reads the environment variable it names.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "envs")]
pub struct Args {
    // The GitOps repository, its credentials and timeout, read as every worker reaching it
    // reads them.
    #[command(flatten)]
    pub gitops: GitopsArgs,
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
