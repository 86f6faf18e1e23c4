//! builder-trigger's settings, checked and assembled from its flags ([`Args`], environment
//! variables named in [`mod@env`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flotilla_env::hooks::{Action, Hook, Hooks, Phase, Request};

// The flags live in a leaf module the backends read without importing this one.
use crate::args::nonblank;
pub use crate::args::{Args, Backend, JobCleanup, env};
use crate::error::Error;
use crate::http::template::Template;
use crate::run::Exec;
use crate::{command, http, job};

/// Which source events become builds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub apps: AppMap,
    /// When set, pull requests build only while labelled with it.
    pub pr_label: Option<String>,
    /// Branches built besides the default branch.
    pub extra_branches: Vec<String>,
    /// Whether pull requests from forks build (`FLOTILLA_BUILD_FORKS`).
    pub build_forks: bool,
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
    pub hooks: HookSettings,
}

/// Environment hooks: what each step runs on the chosen backend, checked at start-up, and
/// where their state lives.
#[derive(Debug, Clone)]
pub struct HookSettings {
    pub hooks: Arc<Hooks>,
    /// What each hook's step runs, by hook and phase.
    pub exec: BTreeMap<(String, Phase), Exec>,
    /// Command backend: `<dir>/<env>` is a hook's `FLOTILLA_HOOK_STATE_DIR`.
    pub state_dir: PathBuf,
    /// How often a run waiting on another run of its env looks again.
    pub poll: Duration,
}

impl Default for HookSettings {
    fn default() -> HookSettings {
        HookSettings {
            hooks: Arc::new(Hooks::default()),
            exec: BTreeMap::new(),
            state_dir: std::env::temp_dir().join("flotilla-hook-state"),
            poll: Duration::from_millis(500),
        }
    }
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
            hooks: HookSettings::default(),
        }
    }

    /// These settings with environment hooks: each step must have what the backend runs
    /// (`command` for command, `request` for http, `image` or `command` for job), or start-up
    /// fails naming the file, the hook and the field.
    pub fn with_hooks(mut self, hooks: Hooks) -> Result<Config, Error> {
        let mut exec = BTreeMap::new();
        for hook in hooks.all() {
            for phase in [Phase::Provision, Phase::Deprovision] {
                let Some(action) = hook.action(phase) else {
                    continue;
                };
                let step = self
                    .step(action)
                    .map_err(|e| hooks_error(&hooks, hook, phase, &e))?;
                exec.insert((hook.name.clone(), phase), step);
            }
        }
        self.hooks.hooks = Arc::new(hooks);
        self.hooks.exec = exec;
        Ok(self)
    }

    /// What `action` runs on this backend; why it cannot run there.
    fn step(&self, action: &Action) -> Result<Exec, String> {
        match &self.backend {
            BackendConfig::Command(_) => match &action.command {
                Some(command) => Ok(Exec {
                    command: Some(command.clone()),
                    ..Exec::default()
                }),
                None => Err("`command` is required by the command backend".into()),
            },
            BackendConfig::Http(settings) => {
                let template = match &action.request {
                    Some(Request::Inline(value)) => {
                        Template::from_value(value).map_err(|e| format!("request: {e}"))?
                    }
                    Some(Request::File(path)) => {
                        let text = std::fs::read_to_string(path)
                            .map_err(|e| format!("request: cannot read {}: {e}", path.display()))?;
                        Template::parse(&text)
                            .map_err(|e| format!("request {}: {e}", path.display()))?
                    }
                    None => return Err("`request` is required by the http backend".into()),
                };
                if template.result == http::ResultMode::Callback && settings.callback_url.is_none()
                {
                    return Err(format!(
                        "request: a callback request needs {} (this worker's URL as the CI system reaches it)",
                        env::CALLBACK_URL
                    ));
                }
                Ok(Exec {
                    request: Some(template),
                    ..Exec::default()
                })
            }
            BackendConfig::Job(_) => {
                if action.command.is_none() && action.image.is_none() {
                    return Err("`image` or `command` is required by the job backend".into());
                }
                Ok(Exec {
                    command: action.command.clone(),
                    image: action.image.clone(),
                    ..Exec::default()
                })
            }
        }
    }

    /// Builds pull requests only while they carry the preview label, when one is set.
    pub fn with_preview(mut self, preview: &flotilla_env::PreviewArgs) -> Config {
        self.rules.pr_label = preview.label();
        self
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
                pass_env: command::parse_env_list(&args.command_env)
                    .map_err(|e| Error::Config(format!("{}: {e}", env::COMMAND_ENV)))?,
                hook_dir: None,
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
                pr_label: None,
                extra_branches: list(&args.build_branches),
                build_forks: args.build_forks,
            },
            image_prefix,
            build_timeout: args.build_timeout,
            test_timeout: args.test_timeout,
            backend,
            hooks: HookSettings {
                state_dir: args
                    .hooks_state_dir
                    .clone()
                    .unwrap_or_else(|| HookSettings::default().state_dir),
                ..HookSettings::default()
            },
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

/// `FLOTILLA_HOOKS <file>: hook `<name>`: <phase>: <why>`, as the hooks file's own errors read.
fn hooks_error(hooks: &Hooks, hook: &Hook, phase: Phase, why: &str) -> Error {
    let file = hooks
        .file()
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| "(hooks)".into());
    Error::Config(format!(
        "{} {file}: hook `{}`: {phase}: {why}",
        flotilla_env::hooks::config::HOOKS_VAR,
        hook.name
    ))
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
