//! canary-analyzer's settings: flags and environment variables.

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;

/// Whether to follow Argo Rollouts through the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kube {
    /// The kubeconfig (or the pod's service account) when there is one; analysis-only without.
    Auto,
    /// Analysis-only, even where a cluster is reachable.
    Off,
}

/// How canary-analyzer judges a release.
#[derive(Debug, Clone, clap::Args)]
// Named, so that `flotilla up` can flatten it beside the other workers' `Args`.
#[group(id = "canary-analyzer")]
pub struct Args {
    /// Where `AnalysisTemplate` / `ClusterAnalysisTemplate` YAML files are read from (by
    /// `metadata.name`) when there is no cluster to read them from.
    #[arg(long, env = "FLOTILLA_ANALYSIS_DIR")]
    pub analysis_dir: Option<PathBuf>,
    /// Analysis-only: the canary weights to run the named templates at, in order, e.g.
    /// `20,50,100`; every step must pass before the next.
    #[arg(
        long,
        env = "FLOTILLA_CANARY_STEPS",
        default_value = "100",
        value_delimiter = ','
    )]
    pub canary_steps: Vec<u32>,
    /// The namespace handed to templates as the `namespace` arg (and where Rollouts are looked
    /// for with a cluster).
    #[arg(long, env = "FLOTILLA_CANARY_NAMESPACE", default_value = "default")]
    pub canary_namespace: String,
    /// Minimum-sample policy: every metric must have taken at least this many measurements that
    /// carried data (a non-empty result) before a release is promoted; 0 keeps Argo's verdicts
    /// as they are. A canary that got no traffic is then not promoted on empty data.
    #[arg(long, env = "FLOTILLA_MIN_SAMPLES", default_value_t = 0)]
    pub min_samples: u32,
    /// How long one replica holds a release before another may take it over (renewed while it
    /// judges).
    #[arg(long, env = "FLOTILLA_CANARY_LEASE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub canary_lease: Duration,
    /// How often the lease bucket is read for releases without a verdict (a restart, a replica
    /// that died).
    #[arg(long, env = "FLOTILLA_CANARY_SWEEP", default_value = "10s", value_parser = humantime::parse_duration)]
    pub canary_sweep: Duration,
    /// How long Argo CD may take to sync the new version into the Rollout.
    #[arg(long, env = "FLOTILLA_SYNC_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub sync_timeout: Duration,
    /// Follow Argo Rollouts through the Kubernetes API (`auto`), or run analysis-only (`off`).
    #[arg(long, env = "FLOTILLA_KUBE", value_enum, default_value_t = Kube::Auto)]
    pub canary_kube: Kube,
}

/// canary-analyzer's checked settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub analysis_dir: Option<PathBuf>,
    pub steps: Vec<u32>,
    pub namespace: String,
    pub min_samples: u32,
    pub lease: Duration,
    pub sweep: Duration,
    pub sync_timeout: Duration,
    pub kube: Kube,
}

impl Config {
    /// Settings with the defaults, for tests and `flotilla up`.
    pub fn new() -> Config {
        Config {
            analysis_dir: None,
            steps: vec![100],
            namespace: "default".into(),
            min_samples: 0,
            lease: Duration::from_secs(30),
            sweep: Duration::from_secs(10),
            sync_timeout: Duration::from_secs(600),
            kube: Kube::Auto,
        }
    }

    /// Checks `args`.
    pub fn from_args(args: &Args) -> Result<Config, String> {
        if args.canary_lease < Duration::from_millis(100) || args.canary_sweep.is_zero() {
            return Err(
                "FLOTILLA_CANARY_LEASE must be at least 100ms and FLOTILLA_CANARY_SWEEP more than 0"
                    .into(),
            );
        }
        if args.canary_steps.is_empty() || args.canary_steps.iter().any(|w| *w == 0 || *w > 100) {
            return Err(format!(
                "FLOTILLA_CANARY_STEPS {:?}: each weight must be from 1 to 100",
                args.canary_steps
            ));
        }
        if args.sync_timeout.is_zero() {
            return Err("FLOTILLA_SYNC_TIMEOUT must be more than 0".into());
        }
        if let Some(dir) = &args.analysis_dir
            && !dir.is_dir()
        {
            return Err(format!(
                "FLOTILLA_ANALYSIS_DIR {} is not a directory",
                dir.display()
            ));
        }
        Ok(Config {
            analysis_dir: args.analysis_dir.clone(),
            steps: args.canary_steps.clone(),
            namespace: args.canary_namespace.clone(),
            min_samples: args.min_samples,
            lease: args.canary_lease,
            sweep: args.canary_sweep,
            sync_timeout: args.sync_timeout,
            kube: args.canary_kube,
        })
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}
