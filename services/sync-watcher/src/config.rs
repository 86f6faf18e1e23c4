//! sync-watcher's settings: flags and environment variables.

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;

use crate::tracker::Settings;

/// Whether to follow Argo CD through the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kube {
    /// The kubeconfig (or the pod's service account) when there is one; reports alone without.
    Auto,
    /// Reports alone, even where a cluster is reachable.
    Off,
}

/// How sync-watcher decides that an env is ready.
#[derive(Debug, Clone, clap::Args)]
// Named, so that `flotilla up` can flatten it beside the other workers' `Args`.
#[group(id = "sync-watcher")]
pub struct Args {
    /// How long an env may take to become ready before it is failed.
    #[arg(long, env = "FLOTILLA_READY_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub ready_timeout: Duration,
    /// How long every app must stay Synced and Healthy at the pushed revision before it counts
    /// (Argo CD can report a stale Healthy right after a sync).
    #[arg(long, env = "FLOTILLA_READY_STABLE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub ready_stable: Duration,
    /// How often the registry is read for envs to wait on (a restart, another replica's envs).
    #[arg(long, env = "FLOTILLA_READY_SWEEP", default_value = "10s", value_parser = humantime::parse_duration)]
    pub ready_sweep: Duration,
    /// Follow Argo CD Applications through the Kubernetes API (`auto`), or take PostSync
    /// reports alone (`off`).
    #[arg(long, env = "FLOTILLA_KUBE", value_enum, default_value_t = Kube::Auto)]
    pub kube: Kube,
    /// The namespace of Argo CD's Applications.
    #[arg(long, env = "FLOTILLA_ARGOCD_NAMESPACE", default_value = "argocd")]
    pub argocd_namespace: String,
    /// The bearer token `POST /report/{env}/{app}` must carry; unset, reports are not
    /// authenticated (keep the route inside the cluster then).
    #[arg(long, env = "FLOTILLA_REPORT_TOKEN", hide_env_values = true)]
    pub report_token: Option<String>,
    /// A file holding the report token.
    #[arg(
        long,
        env = "FLOTILLA_REPORT_TOKEN_FILE",
        conflicts_with = "report_token"
    )]
    pub report_token_file: Option<PathBuf>,
    /// Where an env answers, for `env.ready`'s `url`: `{env}` is replaced by the env id, e.g.
    /// `https://{env}.preview.example.com`.
    #[arg(long, env = "FLOTILLA_ENV_URL")]
    pub env_url: Option<String>,
}

/// sync-watcher's checked settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub tracker: Settings,
    pub kube: Kube,
    pub argocd_namespace: String,
    pub report_token: Option<String>,
}

impl Config {
    /// Settings with the defaults, for tests and `flotilla up`.
    pub fn new() -> Config {
        Config {
            tracker: Settings {
                timeout: Duration::from_secs(600),
                stable: Duration::from_secs(5),
                sweep: Duration::from_secs(10),
                env_url: None,
            },
            kube: Kube::Auto,
            argocd_namespace: "argocd".into(),
            report_token: None,
        }
    }

    /// Checks `args`.
    pub fn from_args(args: &Args) -> Result<Config, String> {
        if args.ready_timeout.is_zero() || args.ready_sweep.is_zero() {
            return Err(
                "FLOTILLA_READY_TIMEOUT and FLOTILLA_READY_SWEEP must be more than 0".into(),
            );
        }
        if let Some(url) = &args.env_url
            && !url.contains("{env}")
        {
            return Err(format!(
                "FLOTILLA_ENV_URL {url:?} has no {{env}} to replace"
            ));
        }
        let report_token = match (&args.report_token, &args.report_token_file) {
            (Some(token), _) => Some(token.trim().to_owned()),
            (None, Some(file)) => Some(
                flotilla_env::SecretFile::new("FLOTILLA_REPORT_TOKEN_FILE", file.clone())
                    .read_one()
                    .map_err(|e| e.to_string())?,
            ),
            (None, None) => None,
        };
        if report_token.as_deref() == Some("") {
            return Err("the report token is empty".into());
        }
        Ok(Config {
            tracker: Settings {
                timeout: args.ready_timeout,
                stable: args.ready_stable,
                sweep: args.ready_sweep,
                env_url: args.env_url.clone(),
            },
            kube: args.kube,
            argocd_namespace: args.argocd_namespace.clone(),
            report_token,
        })
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}
