//! builder-trigger's flags and the environment variables they read, in one place: a leaf that the
//! assembled settings and the backends both read.

use std::path::PathBuf;
use std::time::Duration;

/// The environment variables builder-trigger reads, in one place.
pub mod env {
    pub const BACKEND: &str = "FLOTILLA_BUILD_BACKEND";
    pub const BUILD_COMMAND: &str = "FLOTILLA_BUILD_COMMAND";
    pub const BUILD_TIMEOUT: &str = "FLOTILLA_BUILD_TIMEOUT";
    pub const TEST_COMMAND: &str = "FLOTILLA_TEST_COMMAND";
    pub const TEST_TIMEOUT: &str = "FLOTILLA_TEST_TIMEOUT";
    pub const IMAGE_PREFIX: &str = "FLOTILLA_IMAGE_PREFIX";
    pub const APPS: &str = "FLOTILLA_APPS";
    pub const BUILD_BRANCHES: &str = "FLOTILLA_BUILD_BRANCHES";
    pub const LOG_DIR: &str = "FLOTILLA_LOG_DIR";
    pub const HTTP_BUILD_REQUEST: &str = "FLOTILLA_HTTP_BUILD_REQUEST";
    pub const HTTP_TEST_REQUEST: &str = "FLOTILLA_HTTP_TEST_REQUEST";
    pub const HTTP_TOKEN: &str = "FLOTILLA_HTTP_TOKEN";
    pub const HTTP_TOKEN_FILE: &str = "FLOTILLA_HTTP_TOKEN_FILE";
    pub const CALLBACK_URL: &str = "FLOTILLA_CALLBACK_URL";
    pub const CALLBACK_SECRET: &str = "FLOTILLA_CALLBACK_SECRET";
    pub const JOB_NAMESPACE: &str = "FLOTILLA_JOB_NAMESPACE";
    pub const JOB_BUILD_IMAGE: &str = "FLOTILLA_JOB_BUILD_IMAGE";
    pub const JOB_SERVICE_ACCOUNT: &str = "FLOTILLA_JOB_SERVICE_ACCOUNT";
    pub const JOB_CLEANUP: &str = "FLOTILLA_JOB_CLEANUP";
    pub const JOB_TTL: &str = "FLOTILLA_JOB_TTL";
    pub const COMMAND_ENV: &str = "FLOTILLA_COMMAND_ENV";
    pub const BUILD_FORKS: &str = "FLOTILLA_BUILD_FORKS";
    pub const HOOKS_STATE_DIR: &str = "FLOTILLA_HOOKS_STATE_DIR";
}

/// Where builds and test runs happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Backend {
    /// `sh -c "$FLOTILLA_BUILD_COMMAND"` on this machine.
    #[default]
    Command,
    /// A CI system's API (FLOTILLA_HTTP_BUILD_REQUEST), which reports back on
    /// POST /callbacks/builds/{id} or is polled.
    Http,
    /// A Kubernetes Job per run, watched until it completes.
    Job,
}

/// What happens to a finished Job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum JobCleanup {
    /// Deleted with its pods once its outcome and log excerpt are read.
    #[default]
    Delete,
    /// Left for Kubernetes to delete FLOTILLA_JOB_TTL after it finished (its log stays
    /// readable until then).
    Keep,
}

/// builder-trigger's flags; each also reads the environment variable it names.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "builds")]
pub struct Args {
    /// Where builds and tests run: `command` (a shell command here), `http` (a CI system's
    /// API, with a callback or polling) or `job` (a Kubernetes Job).
    #[arg(long, env = env::BACKEND, value_enum, default_value_t = Backend::Command)]
    pub backend: Backend,
    /// Shell command that builds and pushes the images of a change (`sh -c`; exit 0 = built).
    /// Required by the command backend; the job backend runs it in FLOTILLA_JOB_BUILD_IMAGE.
    /// It gets FLOTILLA_REPO, FLOTILLA_SHA, FLOTILLA_VERSION, FLOTILLA_APP, FLOTILLA_CHANGE_ID,
    /// FLOTILLA_PR, FLOTILLA_REF, FLOTILLA_IMAGE and FLOTILLA_PIPELINE_IMAGE.
    #[arg(long, env = env::BUILD_COMMAND, value_name = "SHELL COMMAND")]
    pub build_command: Option<String>,
    /// A build still running after this long is stopped and fails.
    #[arg(long, env = env::BUILD_TIMEOUT, default_value = "30m", value_parser = humantime::parse_duration)]
    pub build_timeout: Duration,
    /// Shell command testing a change in its environment (migrations, then functional tests;
    /// FLOTILLA_ENV set). Command backend: without one, tests pass at once. Job backend: run in
    /// the change's pipeline image; without one, the image's own entrypoint runs.
    #[arg(long, env = env::TEST_COMMAND, value_name = "SHELL COMMAND")]
    pub test_command: Option<String>,
    /// A test run still going after this long is stopped and fails.
    #[arg(long, env = env::TEST_TIMEOUT, default_value = "30m", value_parser = humantime::parse_duration)]
    pub test_timeout: Duration,
    /// Images are reported as <prefix>/<app>:<version> and <prefix>/<app>-pipeline:<version>.
    #[arg(long, env = env::IMAGE_PREFIX, default_value = "registry/apps")]
    pub image_prefix: String,
    /// Repo to app mapping, e.g. `acme/ping=ping,acme/api=api`; other repos build the app named
    /// like the repo.
    #[arg(long, env = env::APPS, default_value = "", value_name = "REPO=APP,...")]
    pub apps: String,
    /// Branches whose pushes are built besides each repo's default branch, comma separated.
    #[arg(long, env = env::BUILD_BRANCHES, default_value = "", value_name = "BRANCH,...")]
    pub build_branches: String,
    /// Build pull requests whose head is in a fork. Off by default: a fork's owner decides what
    /// its build runs (the build command's inputs) and so could reach the build's credentials.
    #[arg(long, env = env::BUILD_FORKS, default_value_t = false, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub build_forks: bool,
    /// Command backend: variables of this worker's environment a build or test command gets
    /// besides the basics (PATH, HOME, LANG, LC_*, TZ, TMPDIR, USER, LOGNAME, SHELL, TERM) and
    /// the change's FLOTILLA_* variables; nothing else of the worker's environment reaches it.
    #[arg(long, env = env::COMMAND_ENV, default_value = "", value_name = "NAME,...")]
    pub command_env: String,
    /// Command and job backends: also write each run's whole output (a Job's pod log, read
    /// before the Job is deleted) to <dir>/<run id>.log; the path is the outcome's log_url.
    #[arg(long, env = env::LOG_DIR, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Http backend: the request that starts a build, as a JSON file or inline JSON
    /// ({"url","method","headers","body","result"}; placeholders like {{sha}}, see the README).
    #[arg(long, env = env::HTTP_BUILD_REQUEST, value_name = "FILE|JSON")]
    pub http_build_request: Option<String>,
    /// Http backend: the request that starts a test run; without one, tests pass at once.
    #[arg(long, env = env::HTTP_TEST_REQUEST, value_name = "FILE|JSON")]
    pub http_test_request: Option<String>,
    /// Http backend: the CI API token, for {{token}} in requests.
    #[arg(long, env = env::HTTP_TOKEN, hide_env_values = true)]
    pub http_token: Option<String>,
    /// Http backend: a file holding the CI API token (e.g. a mounted secret).
    #[arg(long, env = env::HTTP_TOKEN_FILE, value_name = "FILE")]
    pub http_token_file: Option<PathBuf>,
    /// Http backend: this worker's URL as the CI system reaches it ({{callback_url}} is
    /// <this>/callbacks/builds/<run id>).
    #[arg(long, env = env::CALLBACK_URL, value_name = "URL")]
    pub callback_url: Option<String>,
    /// Http backend: a shared secret callbacks may send as `Authorization: Bearer <secret>`
    /// instead of their run's own {{callback_token}}.
    #[arg(long, env = env::CALLBACK_SECRET, hide_env_values = true)]
    pub callback_secret: Option<String>,
    /// Job backend: the namespace Jobs run in (default: the kubeconfig's or the pod's).
    #[arg(long, env = env::JOB_NAMESPACE)]
    pub job_namespace: Option<String>,
    /// Job backend: the image builds run in (FLOTILLA_BUILD_COMMAND runs in it with `sh -c`).
    #[arg(long, env = env::JOB_BUILD_IMAGE, value_name = "IMAGE")]
    pub job_build_image: Option<String>,
    /// Job backend: the service account of build and test pods.
    #[arg(long, env = env::JOB_SERVICE_ACCOUNT)]
    pub job_service_account: Option<String>,
    /// Job backend: what happens to a finished Job.
    #[arg(long, env = env::JOB_CLEANUP, value_enum, default_value_t = JobCleanup::Delete)]
    pub job_cleanup: JobCleanup,
    /// Job backend, with `--job-cleanup keep`: Kubernetes deletes a finished Job this long after
    /// it finished (ttlSecondsAfterFinished).
    #[arg(long, env = env::JOB_TTL, default_value = "1h", value_parser = humantime::parse_duration)]
    pub job_ttl: Duration,
    /// Command backend: environment hooks keep their state (a Terraform state, say) in
    /// <dir>/<env> (FLOTILLA_HOOK_STATE_DIR), kept across the env's changes and removed once
    /// every deprovision succeeded [default: flotilla-hook-state in the temporary directory].
    #[arg(long, env = env::HOOKS_STATE_DIR, value_name = "DIR")]
    pub hooks_state_dir: Option<PathBuf>,
}

/// The trimmed value, `None` when unset or blank.
pub(crate) fn nonblank(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}
