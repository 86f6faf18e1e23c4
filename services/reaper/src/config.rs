//! The reaper's settings: flags and environment variables.

use std::time::Duration;

use crate::hibernation::Window;

use clap::ValueEnum;

/// Whether to look at the cluster through the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kube {
    /// The kubeconfig (or the pod's service account) when there is one; git alone without.
    Auto,
    /// Git alone, even where a cluster is reachable.
    Off,
}

/// What the sweep does with orphans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Orphans {
    /// Log them and show them on `GET /reaper`; touch nothing.
    Report,
    /// Also delete orphan Namespaces and Argo CD Applications labelled `flotilla.dev/env`
    /// (never anything unlabelled, never production's).
    Remove,
}

/// How the reaper decides when an env ends, and what it checks after.
#[derive(Debug, Clone, clap::Args)]
// Named, so that `flotilla up` can flatten it beside the other workers' `Args`.
#[group(id = "reaper")]
pub struct Args {
    /// Tear an env down after this long without an event about it (pushes, builds, readiness,
    /// test runs); off unless set.
    #[arg(long, env = "FLOTILLA_ENV_IDLE", value_parser = humantime::parse_duration)]
    pub env_idle: Option<Duration>,
    /// How often the registry, the GitOps repository and the cluster are read: timers that fall
    /// between sweeps fire on time, this bounds how late a change made elsewhere is seen.
    #[arg(long, env = "FLOTILLA_REAP_SWEEP", default_value = "30s", value_parser = humantime::parse_duration)]
    pub reap_sweep: Duration,
    /// How long after a teardown what lingers is reported as stuck (it is checked again at
    /// every sweep until it is gone).
    #[arg(long, env = "FLOTILLA_REAP_VERIFY_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub reap_verify_timeout: Duration,
    /// Orphans (labelled objects or files with no env, envs with no file): `report`, or
    /// `remove` the labelled Namespaces and Applications.
    #[arg(long, env = "FLOTILLA_REAP_ORPHANS", value_enum, default_value_t = Orphans::Report)]
    pub reap_orphans: Orphans,
    /// An orphan younger than this is left alone: Argo CD may be creating it for an env being
    /// recorded right now.
    #[arg(long, env = "FLOTILLA_REAP_ORPHAN_GRACE", default_value = "10m", value_parser = humantime::parse_duration)]
    pub reap_orphan_grace: Duration,
    /// Look at Argo CD Applications and Namespaces through the Kubernetes API (`auto`), or
    /// verify teardowns in git alone (`off`).
    #[arg(long, env = "FLOTILLA_REAP_KUBE", value_enum, default_value_t = Kube::Auto)]
    pub reap_kube: Kube,
    /// The namespace of Argo CD's Applications.
    #[arg(long, env = "FLOTILLA_ARGOCD_NAMESPACE", default_value = "argocd")]
    pub reap_argocd_namespace: String,
    /// A weekly window during which preview envs are suspended (file kept, workloads at zero)
    /// and after which they are resumed: entries `DAYS [HH:MM-HH:MM]` separated by `,`, e.g.
    /// `Mon-Fri 20:00-07:00, Sat-Sun` (a range ending before it starts runs past midnight).
    /// Off unless set.
    #[arg(long, env = "FLOTILLA_HIBERNATE", value_name = "WINDOW")]
    pub hibernate: Option<String>,
    /// The time zone of the hibernation window, an IANA name such as `Europe/Paris`.
    #[arg(long, env = "FLOTILLA_HIBERNATE_TZ", default_value = "UTC")]
    pub hibernate_tz: String,
}

/// The settings env-manager has too (`flotilla up` takes them from env-manager's flags; the
/// reaper's own binary reads them here).
#[derive(Debug, Clone, clap::Args)]
pub struct SharedArgs {
    /// How long an env lives after its build when its record has no `expires_at`.
    #[arg(long, env = "FLOTILLA_ENV_TTL", default_value = "72h", value_parser = humantime::parse_duration)]
    pub env_ttl: Duration,
    /// The directory of env files (`<env>.json`) in the GitOps repository.
    #[arg(long, env = "FLOTILLA_ENVS_DIR", default_value = "envs")]
    pub envs_dir: String,
}

/// The timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timers {
    /// Lifetime from `created_at` when the record has no `expires_at`.
    pub ttl: Duration,
    /// Idle time before a teardown; `None`: off.
    pub idle: Option<Duration>,
}

/// The reaper's checked settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub timers: Timers,
    pub sweep: Duration,
    pub verify_timeout: Duration,
    pub orphans: Orphans,
    pub orphan_grace: Duration,
    pub kube: Kube,
    pub argocd_namespace: String,
    pub envs_dir: String,
    /// When preview envs hibernate; never when `None`.
    pub hibernation: Option<Window>,
}

impl Config {
    /// The defaults, for tests.
    pub fn new() -> Config {
        Config {
            timers: Timers {
                ttl: Duration::from_secs(72 * 3600),
                idle: None,
            },
            sweep: Duration::from_secs(30),
            verify_timeout: Duration::from_secs(600),
            orphans: Orphans::Report,
            orphan_grace: Duration::from_secs(600),
            kube: Kube::Auto,
            argocd_namespace: "argocd".into(),
            envs_dir: "envs".into(),
            hibernation: None,
        }
    }

    /// Checks `args` and `shared`.
    pub fn from_args(args: &Args, shared: &SharedArgs) -> Result<Config, String> {
        Config::from_parts(args, shared.env_ttl, &shared.envs_dir)
    }

    /// Checks `args`, with the TTL and env directory from wherever they are set.
    pub fn from_parts(args: &Args, env_ttl: Duration, envs_dir: &str) -> Result<Config, String> {
        if env_ttl.is_zero() {
            return Err("FLOTILLA_ENV_TTL must be more than 0".into());
        }
        if args.env_idle.is_some_and(|idle| idle.is_zero()) {
            return Err("FLOTILLA_ENV_IDLE must be more than 0 (leave it unset for none)".into());
        }
        if args.reap_sweep.is_zero() {
            return Err("FLOTILLA_REAP_SWEEP must be more than 0".into());
        }
        let envs_dir = envs_dir.trim().trim_matches('/');
        if envs_dir.is_empty() || envs_dir.split('/').any(|part| part == "..") {
            return Err(format!(
                "FLOTILLA_ENVS_DIR must be a path inside the repository, not {envs_dir:?}"
            ));
        }
        let hibernation = match args.hibernate.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(window) => Some(Window::parse(window, &args.hibernate_tz)?),
        };
        Ok(Config {
            timers: Timers {
                ttl: env_ttl,
                idle: args.env_idle,
            },
            sweep: args.reap_sweep,
            verify_timeout: args.reap_verify_timeout,
            orphans: args.reap_orphans,
            orphan_grace: args.reap_orphan_grace,
            kube: args.reap_kube,
            argocd_namespace: args.reap_argocd_namespace.clone(),
            envs_dir: envs_dir.to_owned(),
            hibernation,
        })
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}
