//! builder-trigger's settings: flags and environment variables (names in [`mod@env`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;
use crate::{command, http, job};

/// The environment variables builder-trigger reads, in one place.
pub mod env {
    pub const BACKEND: &str = "FLOTILLA_BUILD_BACKEND";
    pub const BUILD_COMMAND: &str = "FLOTILLA_BUILD_COMMAND";
    pub const BUILD_TIMEOUT: &str = "FLOTILLA_BUILD_TIMEOUT";
    pub const TEST_COMMAND: &str = "FLOTILLA_TEST_COMMAND";
    pub const TEST_TIMEOUT: &str = "FLOTILLA_TEST_TIMEOUT";
    pub const IMAGE_PREFIX: &str = "FLOTILLA_IMAGE_PREFIX";
    pub const APPS: &str = "FLOTILLA_APPS";
    pub const PR_LABEL: &str = "FLOTILLA_PR_LABEL";
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
    /// Build pull requests only when they carry this label (and when it is added).
    #[arg(long, env = env::PR_LABEL)]
    pub pr_label: Option<String>,
    /// Branches whose pushes are built besides each repo's default branch, comma separated.
    #[arg(long, env = env::BUILD_BRANCHES, default_value = "", value_name = "BRANCH,...")]
    pub build_branches: String,
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
}

/// Which source events become builds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub apps: AppMap,
    /// When set, pull requests build only while labelled with it.
    pub pr_label: Option<String>,
    /// Branches built besides the default branch.
    pub extra_branches: Vec<String>,
}

/// The chosen backend and its settings.
// Read once at start-up: boxing the largest variant would only burden its users.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum BackendConfig {
    Command(command::Settings),
    Http(http::Settings),
    Job(job::Settings),
}

/// Everything builder-trigger needs besides its NATS connection.
#[derive(Debug, Clone)]
pub struct Config {
    pub rules: Rules,
    pub image_prefix: String,
    pub build_timeout: Duration,
    pub test_timeout: Duration,
    pub backend: BackendConfig,
}

impl Config {
    /// The command backend around a build command: no tests, no mapping, images under
    /// `registry/apps`, 30 minute timeouts.
    pub fn new(build_command: impl Into<String>) -> Config {
        Config::with_backend(BackendConfig::Command(command::Settings::new(
            build_command,
        )))
    }

    /// Defaults around `backend`.
    pub fn with_backend(backend: BackendConfig) -> Config {
        Config {
            rules: Rules::default(),
            image_prefix: "registry/apps".into(),
            build_timeout: Duration::from_secs(30 * 60),
            test_timeout: Duration::from_secs(30 * 60),
            backend,
        }
    }

    pub fn from_args(args: &Args) -> Result<Config, Error> {
        let image_prefix = args.image_prefix.trim().trim_end_matches('/').to_owned();
        if image_prefix.is_empty() {
            return Err(Error::Config(format!("{} is empty", env::IMAGE_PREFIX)));
        }
        let test_command = nonblank(args.test_command.as_deref());
        let backend = match args.backend {
            Backend::Command => BackendConfig::Command(command::Settings {
                build: nonblank(args.build_command.as_deref()).ok_or_else(|| {
                    Error::Config(format!(
                        "{} is not set: the command backend needs a command to build with",
                        env::BUILD_COMMAND
                    ))
                })?,
                test: test_command,
                shell: PathBuf::from("sh"),
                log_dir: args.log_dir.clone(),
            }),
            Backend::Http => BackendConfig::Http(http::Settings::from_args(args)?),
            Backend::Job => BackendConfig::Job(job::Settings {
                namespace: nonblank(args.job_namespace.as_deref()),
                build_image: nonblank(args.job_build_image.as_deref()).ok_or_else(|| {
                    Error::Config(format!(
                        "{} is not set: the job backend needs an image to build in",
                        env::JOB_BUILD_IMAGE
                    ))
                })?,
                build_command: nonblank(args.build_command.as_deref()),
                test_command,
                service_account: nonblank(args.job_service_account.as_deref()),
                cleanup: args.job_cleanup,
                ttl: args.job_ttl,
                log_dir: args.log_dir.clone(),
            }),
        };
        Ok(Config {
            rules: Rules {
                apps: AppMap::parse(&args.apps)?,
                pr_label: nonblank(args.pr_label.as_deref()),
                extra_branches: list(&args.build_branches),
            },
            image_prefix,
            build_timeout: args.build_timeout,
            test_timeout: args.test_timeout,
            backend,
        })
    }

    /// The command backend's settings, to adjust in tests and embedders.
    pub fn command_mut(&mut self) -> Option<&mut command::Settings> {
        match &mut self.backend {
            BackendConfig::Command(settings) => Some(settings),
            _ => None,
        }
    }
}

/// The trimmed value, `None` when unset or blank.
pub(crate) fn nonblank(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Which app a repository builds. Repos are matched case-insensitively, as forges name them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppMap(BTreeMap<String, String>);

impl AppMap {
    /// Parses `owner/repo=app,owner/other=app2`; blank entries are ignored.
    pub fn parse(spec: &str) -> Result<AppMap, Error> {
        let mut map = BTreeMap::new();
        for entry in list(spec) {
            let (repo, app) = entry
                .split_once('=')
                .map(|(r, a)| (r.trim(), a.trim()))
                .filter(|(r, a)| !r.is_empty() && !a.is_empty())
                .ok_or_else(|| {
                    Error::Config(format!(
                        "{}: `{entry}` is not REPO=APP (e.g. acme/ping=ping)",
                        env::APPS
                    ))
                })?;
            if !is_app_name(app) {
                return Err(Error::Config(format!(
                    "{}: app `{app}` must be lowercase letters, digits and '-', starting with a letter or digit",
                    env::APPS
                )));
            }
            if map.insert(repo.to_lowercase(), app.to_owned()).is_some() {
                return Err(Error::Config(format!(
                    "{}: repo `{repo}` is mapped twice",
                    env::APPS
                )));
            }
        }
        Ok(AppMap(map))
    }

    /// The app of `repo` (`owner/name`): the mapped one, else the repo's name made a valid app
    /// name (lowercase; other characters become '-').
    pub fn app_for(&self, repo: &str) -> String {
        if let Some(app) = self.0.get(&repo.to_lowercase()) {
            return app.clone();
        }
        let name = repo.rsplit('/').next().unwrap_or(repo);
        let app: String = name
            .chars()
            .map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9') => c,
                _ => '-',
            })
            .collect();
        app.trim_matches('-').to_owned()
    }
}

/// Lowercase letters, digits and '-', starting with a letter or digit: fit for image names and
/// the DNS labels env ids are made of.
fn is_app_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn list(spec: &str) -> Vec<String> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_repos_build_their_app_and_others_build_the_repo_name() {
        let apps = AppMap::parse("acme/ping=ping, acme/API-server=api").expect("valid mapping");
        assert_eq!(apps.app_for("acme/ping"), "ping");
        assert_eq!(apps.app_for("Acme/api-server"), "api");
        assert_eq!(apps.app_for("acme/web"), "web");
        assert_eq!(apps.app_for("acme/My_Service.rs"), "my-service-rs");
    }

    #[test]
    fn malformed_app_mappings_are_refused_with_the_entry_named() {
        for bad in [
            "acme/ping",
            "=ping",
            "acme/ping=",
            "acme/ping=Ping",
            "a/b=x,A/B=y",
        ] {
            let err = AppMap::parse(bad).expect_err(bad);
            assert!(err.to_string().contains(env::APPS), "{bad}: {err}");
        }
        assert_eq!(
            AppMap::parse(" , ").expect("blank is empty"),
            AppMap::default()
        );
    }
}
