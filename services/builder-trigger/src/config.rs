//! builder-trigger's settings: flags and environment variables (names in [`mod@env`]).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::command::CommandSpec;
use crate::error::Error;

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
}

/// Where builds and test jobs run. Only `command` exists so far; `http` (a CI system's API and
/// its callback) and `job` (a Kubernetes Job) are planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Backend {
    /// `sh -c "$FLOTILLA_BUILD_COMMAND"` on this machine.
    #[default]
    Command,
}

/// builder-trigger's flags; each also reads the environment variable it names.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "builds")]
pub struct Args {
    /// Where builds and tests run.
    #[arg(long, env = env::BACKEND, value_enum, default_value_t = Backend::Command)]
    pub backend: Backend,
    /// Shell command that builds and pushes the image of a change (run with `sh -c`; exit 0 =
    /// built). It gets FLOTILLA_REPO, FLOTILLA_SHA, FLOTILLA_VERSION, FLOTILLA_APP,
    /// FLOTILLA_CHANGE_ID, FLOTILLA_PR, FLOTILLA_REF and FLOTILLA_IMAGE.
    #[arg(long, env = env::BUILD_COMMAND, value_name = "SHELL COMMAND")]
    pub build_command: String,
    /// A build still running after this long is killed (its whole process group) and fails.
    #[arg(long, env = env::BUILD_TIMEOUT, default_value = "30m", value_parser = humantime::parse_duration)]
    pub build_timeout: Duration,
    /// Shell command testing a change in its environment (FLOTILLA_ENV set); without one,
    /// tests pass at once.
    #[arg(long, env = env::TEST_COMMAND, value_name = "SHELL COMMAND")]
    pub test_command: Option<String>,
    /// A test run still going after this long is killed and fails.
    #[arg(long, env = env::TEST_TIMEOUT, default_value = "30m", value_parser = humantime::parse_duration)]
    pub test_timeout: Duration,
    /// Images are reported as <prefix>/<app>:<version>.
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

/// Everything builder-trigger needs besides its NATS connection.
#[derive(Debug, Clone)]
pub struct Config {
    pub rules: Rules,
    pub image_prefix: String,
    pub build: CommandSpec,
    /// `None`: tests pass without running anything.
    pub test: Option<CommandSpec>,
}

impl Config {
    /// Defaults around a build command: no tests, no mapping, images under `registry/apps`.
    pub fn new(build_command: impl Into<String>) -> Config {
        Config {
            rules: Rules::default(),
            image_prefix: "registry/apps".into(),
            build: CommandSpec::new(build_command, Duration::from_secs(30 * 60)),
            test: None,
        }
    }

    pub fn from_args(args: &Args) -> Result<Config, Error> {
        let Backend::Command = args.backend;
        if args.build_command.trim().is_empty() {
            return Err(Error::Config(format!(
                "{} is empty: the command backend needs a command to build with",
                env::BUILD_COMMAND
            )));
        }
        let image_prefix = args.image_prefix.trim().trim_end_matches('/').to_owned();
        if image_prefix.is_empty() {
            return Err(Error::Config(format!("{} is empty", env::IMAGE_PREFIX)));
        }
        let test = args
            .test_command
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .map(|c| CommandSpec::new(c, args.test_timeout));
        Ok(Config {
            rules: Rules {
                apps: AppMap::parse(&args.apps)?,
                pr_label: args
                    .pr_label
                    .as_deref()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
                extra_branches: list(&args.build_branches),
            },
            image_prefix,
            build: CommandSpec::new(&args.build_command, args.build_timeout),
            test,
        })
    }
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
