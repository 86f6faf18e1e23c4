//! The hooks file (`FLOTILLA_HOOKS`, `--hooks`): parsed and checked at start-up, so a typo
//! stops the worker with the file, the hook and the field named rather than surfacing when an
//! env is requested.
//!
//! ```yaml
//! hooks:
//!   - name: database            # a DNS label, unique
//!     kinds: [preview, staging] # default: both
//!     apps: [ping]              # optional: only envs holding one of these apps
//!     timeout: 15m              # default 30m
//!     provision:
//!       command: ./examples/hooks/infra.sh create
//!     deprovision:
//!       command: ./examples/hooks/infra.sh destroy
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::envid::{Kind, is_dns_label};
use crate::error::Error;

/// The variable naming the hooks file.
pub const HOOKS_VAR: &str = "FLOTILLA_HOOKS";
/// How long a hook run may take unless its `timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// `FLOTILLA_HOOKS`, a flag of every binary that reads the hooks (builder-trigger, env-manager,
/// and `flotilla up` once for both).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HooksArgs {
    /// A YAML file of environment hooks: commands (or CI requests, or Jobs) run when an env is
    /// requested (`provision`, before it can be ready) and after it is torn down
    /// (`deprovision`). Unset: no hooks.
    #[arg(long = "hooks", env = HOOKS_VAR, value_name = "FILE")]
    pub hooks_file: Option<PathBuf>,
}

impl HooksArgs {
    /// The hooks of the file, none when unset.
    pub fn load(&self) -> Result<Hooks, Error> {
        match &self.hooks_file {
            Some(path) => Hooks::load(path),
            None => Ok(Hooks::default()),
        }
    }
}

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// When the env is requested, before it can be ready.
    Provision,
    /// After its teardown is confirmed (`env.deleted`).
    Deprovision,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Provision => "provision",
            Phase::Deprovision => "deprovision",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every hook of the file, in its order: provision runs in it, deprovision in reverse.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hooks {
    file: Option<PathBuf>,
    hooks: Vec<Hook>,
}

/// One hook.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    pub name: String,
    /// Env kinds it applies to (`preview`, `staging`).
    pub kinds: Vec<String>,
    /// When not empty, it applies only to envs holding one of these apps.
    pub apps: Vec<String>,
    pub timeout: Duration,
    pub provision: Option<Action>,
    pub deprovision: Option<Action>,
}

/// What one phase of a hook runs; which field counts depends on the build backend (`command`
/// for the command backend, `request` for http, `image` and/or `command` for job).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Action {
    /// Run with `sh -c` (command backend; in the Job's image for the job backend).
    pub command: Option<String>,
    /// The CI request (http backend), in the format of `FLOTILLA_HTTP_BUILD_REQUEST`.
    pub request: Option<Request>,
    /// The Job's image (job backend; default `FLOTILLA_JOB_BUILD_IMAGE`).
    pub image: Option<String>,
}

/// An http backend request template, written inline or as a file.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Inline(serde_json::Value),
    /// A JSON file, relative to the worker's directory (as commands are).
    File(PathBuf),
}

impl Hooks {
    /// The hooks in `path`.
    pub fn load(path: &Path) -> Result<Hooks, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::HooksUnreadable {
            path: path.to_owned(),
            source,
        })?;
        Hooks::parse(&text, path)
    }

    /// The hooks in `text`, read from `path` (named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Hooks, Error> {
        let invalid = |reason: String| Error::HooksInvalid {
            path: path.to_owned(),
            reason,
        };
        let file: FileSpec = if text.trim().is_empty() {
            FileSpec::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| invalid(e.to_string()))?
        };
        let mut hooks: Vec<Hook> = Vec::with_capacity(file.hooks.len());
        for (index, value) in file.hooks.into_iter().enumerate() {
            let hook = Hook::from_value(value, index).map_err(&invalid)?;
            if hooks.iter().any(|h| h.name == hook.name) {
                return Err(invalid(format!("hook `{}` is defined twice", hook.name)));
            }
            hooks.push(hook);
        }
        Ok(Hooks {
            file: Some(path.to_owned()),
            hooks,
        })
    }

    /// Hooks given in code (tests, embedders).
    pub fn new(hooks: Vec<Hook>) -> Hooks {
        Hooks { file: None, hooks }
    }

    /// The file they were read from.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    pub fn all(&self) -> &[Hook] {
        &self.hooks
    }

    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    pub fn len(&self) -> usize {
        self.hooks.len()
    }

    pub fn get(&self, name: &str) -> Option<&Hook> {
        self.hooks.iter().find(|h| h.name == name)
    }

    /// Where `name` stands in the file, for ordering.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.hooks.iter().position(|h| h.name == name)
    }

    /// The hooks that apply to an env of `kind` holding `apps`, in file order.
    pub fn applicable<'a, 'b>(
        &'a self,
        kind: &str,
        apps: impl IntoIterator<Item = &'b str> + Clone,
    ) -> Vec<&'a Hook> {
        self.hooks
            .iter()
            .filter(|hook| hook.applies(kind, apps.clone()))
            .collect()
    }
}

impl Hook {
    /// A hook with the defaults (both kinds, every app, 30 minutes) and nothing to run yet.
    pub fn new(name: impl Into<String>) -> Hook {
        Hook {
            name: name.into(),
            kinds: default_kinds(),
            apps: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            provision: None,
            deprovision: None,
        }
    }

    /// The action of `phase`, if the hook has one.
    pub fn action(&self, phase: Phase) -> Option<&Action> {
        match phase {
            Phase::Provision => self.provision.as_ref(),
            Phase::Deprovision => self.deprovision.as_ref(),
        }
    }

    /// Whether the hook applies to an env of `kind` holding `apps`.
    pub fn applies<'b>(&self, kind: &str, apps: impl IntoIterator<Item = &'b str>) -> bool {
        self.kinds.iter().any(|k| k == kind)
            && (self.apps.is_empty() || apps.into_iter().any(|a| self.apps.iter().any(|h| h == a)))
    }

    /// Checks one entry of the file (`hooks[index]`).
    fn from_value(value: serde_yaml_ng::Value, index: usize) -> Result<Hook, String> {
        // Named in errors by its name when it has one, by its place otherwise.
        let named = value
            .get("name")
            .and_then(serde_yaml_ng::Value::as_str)
            .map(|name| format!("hook `{name}` (hooks[{index}])"))
            .unwrap_or_else(|| format!("hooks[{index}]"));
        let spec: HookSpec = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                format!("{named}: {}", e.inner())
            } else {
                format!("{named}: {path}: {}", e.inner())
            }
        })?;
        let at = |what: String| format!("hook `{}`: {what}", spec.name);
        if !is_dns_label(&spec.name) {
            return Err(format!(
                "{named}: name must be a DNS-1123 label (lowercase letters, digits and '-'), not {:?}",
                spec.name
            ));
        }
        let kinds = spec.kinds.clone().unwrap_or_else(default_kinds);
        if kinds.is_empty() {
            return Err(at("kinds is empty: the hook would never run".into()));
        }
        if let Some(kind) = kinds
            .iter()
            .find(|k| *k != Kind::Preview.as_str() && *k != Kind::Staging.as_str())
        {
            return Err(at(format!(
                "kinds: `{kind}` is not an env kind (preview, staging)"
            )));
        }
        let timeout = match &spec.timeout {
            None => DEFAULT_TIMEOUT,
            Some(text) => humantime::parse_duration(text)
                .map_err(|e| at(format!("timeout: {text:?} is not a duration like 15m: {e}")))?,
        };
        if timeout.is_zero() {
            return Err(at("timeout must be more than 0".into()));
        }
        if spec.provision.is_none() && spec.deprovision.is_none() {
            return Err(at("has neither `provision` nor `deprovision`".into()));
        }
        let action = |phase: Phase, spec: Option<ActionSpec>| {
            spec.map(|a| a.check().map_err(|e| at(format!("{phase}: {e}"))))
                .transpose()
        };
        Ok(Hook {
            provision: action(Phase::Provision, spec.provision)?,
            deprovision: action(Phase::Deprovision, spec.deprovision)?,
            name: spec.name,
            kinds,
            apps: spec.apps,
            timeout,
        })
    }
}

fn default_kinds() -> Vec<String> {
    vec![
        Kind::Preview.as_str().to_owned(),
        Kind::Staging.as_str().to_owned(),
    ]
}

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    hooks: Vec<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HookSpec {
    name: String,
    #[serde(default)]
    kinds: Option<Vec<String>>,
    #[serde(default)]
    apps: Vec<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    provision: Option<ActionSpec>,
    #[serde(default)]
    deprovision: Option<ActionSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionSpec {
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    request: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    image: Option<String>,
}

impl ActionSpec {
    fn check(self) -> Result<Action, String> {
        let blank = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let request = match self.request {
            None => None,
            Some(serde_yaml_ng::Value::String(path)) if !path.trim().is_empty() => {
                Some(Request::File(PathBuf::from(path.trim())))
            }
            Some(value @ serde_yaml_ng::Value::Mapping(_)) => Some(Request::Inline(
                serde_json::to_value(&value).map_err(|e| format!("request: {e}"))?,
            )),
            Some(_) => {
                return Err(
                    "request must be a mapping (the request template) or a file name".into(),
                );
            }
        };
        let action = Action {
            command: blank(self.command),
            request,
            image: blank(self.image),
        };
        if action.command.is_none() && action.request.is_none() && action.image.is_none() {
            return Err("nothing to run: give `command`, `request` or `image`".into());
        }
        Ok(action)
    }
}
