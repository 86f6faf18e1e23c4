//! The workers `flotilla up` runs in its own process, each configured from the same
//! environment variables as its own binary.

use std::path::Path;

use flotilla_bus::{Bus, Process};
use flotilla_env::{HooksArgs, PreviewArgs};

/// The settings of the workers `flotilla up` hosts, read from the same flags and environment
/// variables as their own binaries.
#[derive(Debug, clap::Args)]
pub struct WorkerSettings {
    #[command(flatten)]
    pub preview: PreviewArgs,
    /// One hooks file for builder-trigger (which runs them) and env-manager (which records them).
    #[command(flatten)]
    pub hooks: HooksArgs,
    #[command(flatten, next_help_heading = "Builds (as builder-trigger)")]
    pub builds: builder_trigger::Args,
    #[command(flatten, next_help_heading = "Environments (as env-manager)")]
    pub envs: env_manager::Args,
    #[command(flatten, next_help_heading = "Readiness (as sync-watcher)")]
    pub ready: sync_watcher::Args,
    /// FLOTILLA_ENV_TTL and FLOTILLA_ENVS_DIR are env-manager's, above.
    #[command(flatten, next_help_heading = "Teardowns (as reaper)")]
    pub reap: reaper::Args,
    #[command(flatten, next_help_heading = "Canaries (as canary-analyzer)")]
    pub canary: canary_analyzer::Args,
}

/// The build `up` runs when the command backend has no FLOTILLA_BUILD_COMMAND: it makes no
/// image and says so in the build's log, so that on a fresh machine a first change still goes
/// through build, env and readiness (the local GitOps repository's ping needs no new image).
pub const DEFAULT_BUILD: &str = "echo \"flotilla up: no FLOTILLA_BUILD_COMMAND, so nothing is \
built; a real build makes and pushes $FLOTILLA_IMAGE from $FLOTILLA_REPO at $FLOTILLA_SHA\"";

/// builder-trigger's config. With the command backend and no build command it builds with
/// [`DEFAULT_BUILD`]. Hook logs (without FLOTILLA_LOG_DIR) and hook state (without
/// FLOTILLA_HOOKS_STATE_DIR) live under the data dir.
pub fn builder_trigger_config(
    settings: &WorkerSettings,
    data_dir: &Path,
) -> Result<builder_trigger::Config, String> {
    let mut builds = settings.builds.clone();
    if default_build(&settings.builds) {
        builds.build_command = Some(DEFAULT_BUILD.to_owned());
    }
    let builds = &builds;
    let mut config = builder_trigger::Config::from_args(builds)
        .map(|config| config.with_preview(&settings.preview))
        .map_err(|e| e.to_string())?;
    // Absolute: hooks are told their state directory, and may change theirs.
    let hooks_dir = std::path::absolute(data_dir)
        .unwrap_or_else(|_| data_dir.to_owned())
        .join("hooks");
    if let Some(command) = config.command_mut() {
        command.hook_dir = Some(hooks_dir.join("logs"));
    }
    if builds.hooks_state_dir.is_none() {
        config.hooks.state_dir = hooks_dir.join("state");
    }
    let hooks = settings.hooks.load().map_err(|e| e.to_string())?;
    config.with_hooks(hooks).map_err(|e| e.to_string())
}

/// Whether builds fall back to [`DEFAULT_BUILD`]: the command backend with no build command.
fn default_build(builds: &builder_trigger::Args) -> bool {
    builds.backend == builder_trigger::args::Backend::Command
        && builds
            .build_command
            .as_deref()
            .is_none_or(|c| c.trim().is_empty())
}

/// How many environment hooks are configured, and from where.
fn hooks_summary(settings: &WorkerSettings) -> String {
    match (settings.hooks.load(), &settings.hooks.hooks_file) {
        (Ok(hooks), Some(file)) => {
            let names: Vec<&str> = hooks.all().iter().map(|h| h.name.as_str()).collect();
            format!(
                "{} environment hook{} from {} ({})",
                hooks.len(),
                if hooks.len() == 1 { "" } else { "s" },
                file.display(),
                names.join(", ")
            )
        }
        _ => "no environment hooks (FLOTILLA_HOOKS)".to_owned(),
    }
}

/// env-manager on FLOTILLA_GITOPS_URL, or on a local bare repository under the data dir
/// (created with the example app in its production manifest) when none is configured.
async fn env_manager(
    bus: &Bus,
    settings: &WorkerSettings,
    data_dir: &Path,
) -> Result<(env_manager::EnvManager, String), String> {
    let config = env_manager_config(settings, data_dir, true)?;
    let url = config.gitops.url.clone();
    let gitops = env_manager::gitops::GitOps::open(config.gitops.clone())
        .await
        .map_err(|e| format!("GitOps repository {url}: {e}"))?;
    let envs = bus.envs().await.map_err(|e| e.to_string())?;
    let registry = flotilla_env::Registry::new(envs);
    Ok((env_manager::EnvManager::new(config, gitops, registry), url))
}

/// env-manager's config; without FLOTILLA_GITOPS_URL, the local bare repository under the
/// data dir (created when missing if `create`, else an error), and without
/// FLOTILLA_GITOPS_DIR a working copy beside it.
pub fn env_manager_config(
    settings: &WorkerSettings,
    data_dir: &Path,
    create: bool,
) -> Result<env_manager::Config, String> {
    let mut args = settings.envs.clone();
    if args.gitops.gitops_url.is_none() {
        let remote = if create {
            crate::local_gitops::ensure(data_dir, &args.gitops.gitops_branch)
                .map_err(|e| format!("local GitOps repository: {e}"))?
        } else {
            let path = data_dir.join("gitops.git");
            if !path.exists() {
                return Err(format!(
                    "no GitOps repository: set FLOTILLA_GITOPS_URL (there is no local one at {})",
                    path.display()
                ));
            }
            path
        };
        args.gitops.gitops_url = Some(remote.display().to_string());
    }
    if args.gitops.gitops_dir.is_none() {
        args.gitops.gitops_dir = Some(data_dir.join("gitops-work"));
    }
    let hooks = settings.hooks.load().map_err(|e| e.to_string())?;
    Ok(env_manager::Config::from_args(&args)
        .map_err(|e| e.to_string())?
        .with_preview(&settings.preview)
        .with_hooks(hooks))
}

/// Adds the workers this binary runs to `process` and says, one line each, what runs or why it
/// does not. The routes of each worker are served on the process's one server.
pub async fn assemble(
    process: &mut Process,
    settings: &WorkerSettings,
    data_dir: &Path,
) -> Vec<String> {
    let mut summary = vec!["source-listener  serving the webhooks".to_owned()];
    let registry = match process.bus().envs().await {
        Ok(envs) => flotilla_env::Registry::new(envs),
        Err(e) => {
            summary.push(format!("every worker     off: the registry: {e}"));
            return summary;
        }
    };
    let builder = match builder_trigger_config(settings, data_dir) {
        Ok(config) => builder_trigger::runner(&config)
            .await
            .map(|(runner, routes)| {
                let handler =
                    builder_trigger::BuilderTrigger::new(config, runner, registry.clone());
                (handler, routes)
            })
            .map_err(|e| e.to_string()),
        Err(why) => Err(why),
    };
    match builder {
        Ok((handler, routes)) => {
            process
                .worker(builder_trigger::worker_config(), handler)
                .route(routes);
            let backend = clap::ValueEnum::to_possible_value(&settings.builds.backend)
                .map(|value| value.get_name().to_owned())
                .unwrap_or_default();
            let what = if default_build(&settings.builds) {
                "with no FLOTILLA_BUILD_COMMAND: builds make nothing, changes still go through"
                    .to_owned()
            } else {
                format!("building with the {backend} backend")
            };
            summary.push(format!(
                "builder-trigger  {what}; {}",
                hooks_summary(settings)
            ));
        }
        Err(why) => summary.push(format!("builder-trigger  off: {why}")),
    }
    match env_manager(process.bus(), settings, data_dir).await {
        Ok((handler, gitops)) => {
            process.worker(env_manager::worker_config(), handler);
            summary.push(format!("env-manager      writing environments to {gitops}"));
        }
        Err(why) => summary.push(format!("env-manager      off: {why}")),
    }
    summary.push(sync_watcher(process, settings, data_dir).await);
    summary.push(reaper(process, settings, data_dir, registry).await);
    summary.push(canary_analyzer(process, settings).await);
    summary
}

/// The reaper, on env-manager's TTL and GitOps repository (through a mirror of its own), and on
/// the cluster when one is reachable.
async fn reaper(
    process: &mut Process,
    settings: &WorkerSettings,
    data_dir: &Path,
    registry: flotilla_env::Registry,
) -> String {
    let envs = &settings.envs;
    let config = match reaper::Config::from_parts(&settings.reap, envs.env_ttl, &envs.envs_dir) {
        Ok(config) => config,
        Err(why) => return format!("reaper           off: {why}"),
    };
    let gitops = match env_manager_config(settings, data_dir, false) {
        Ok(envs) => envs.gitops.remote(),
        Err(why) => return format!("reaper           off: {why}"),
    };
    let dir = data_dir.join(format!("gitops-{}.git", reaper::WORKER));
    let mirror = match flotilla_gitops::Mirror::open(gitops, dir).await {
        Ok(mirror) => mirror,
        Err(e) => return format!("reaper           off: GitOps mirror: {e}"),
    };
    let (kube, where_) = match reaper::kube_client(&config).await {
        Ok(client) => (
            Some(client),
            format!("in git and in the cluster ({})", config.argocd_namespace),
        ),
        Err(why) => (None, format!("in git alone: {why}")),
    };
    reaper::install(
        process,
        &config,
        registry,
        mirror,
        kube,
        reaper::Clock::System,
    );
    let idle = config.timers.idle.map_or("idle off".to_owned(), |idle| {
        format!("idle after {}", humantime::format_duration(idle))
    });
    format!(
        "reaper           TTL {}, {idle}; teardowns verified {where_}",
        humantime::format_duration(config.timers.ttl)
    )
}

/// canary-analyzer, analysis-only: the releases' named templates from FLOTILLA_ANALYSIS_DIR run
/// against their providers, and the verdict is published; no Rollout is followed.
async fn canary_analyzer(process: &mut Process, settings: &WorkerSettings) -> String {
    let config = match canary_analyzer::Config::from_args(&settings.canary) {
        Ok(config) => config,
        Err(why) => return format!("canary-analyzer  off: {why}"),
    };
    let leases = match process.bus().canaries().await {
        Ok(leases) => leases,
        Err(e) => return format!("canary-analyzer  off: {e} (run `flotilla init`)"),
    };
    if let Err(why) = canary_analyzer::install(process, &config, leases) {
        return format!("canary-analyzer  off: {why}");
    }
    let templates = config
        .analysis_dir
        .as_ref()
        .map(|dir| format!("templates from {}", dir.display()))
        .unwrap_or_else(|| {
            "no FLOTILLA_ANALYSIS_DIR: releases without analysis are promoted".into()
        });
    format!("canary-analyzer  analysis-only, no Rollout followed: {templates}")
}

/// sync-watcher, on Argo CD when a cluster is reachable, else on PostSync reports alone; it reads
/// revision ancestry from env-manager's GitOps repository through a mirror of its own.
async fn sync_watcher(process: &mut Process, settings: &WorkerSettings, data_dir: &Path) -> String {
    let config = match sync_watcher::Config::from_args(&settings.ready) {
        Ok(config) => config,
        Err(why) => return format!("sync-watcher     off: {why}"),
    };
    let envs = match process.bus().envs().await {
        Ok(envs) => envs,
        Err(e) => return format!("sync-watcher     off: {e}"),
    };
    let history: std::sync::Arc<dyn sync_watcher::history::History> =
        match env_manager_config(settings, data_dir, false) {
            Ok(envs) => {
                let mirror = data_dir.join(format!("gitops-{}.git", sync_watcher::WORKER));
                match flotilla_gitops::Mirror::open(envs.gitops.remote(), mirror).await {
                    Ok(mirror) => std::sync::Arc::new(mirror),
                    Err(e) => return format!("sync-watcher     off: GitOps mirror: {e}"),
                }
            }
            Err(_) => std::sync::Arc::new(sync_watcher::history::SameRevisionOnly),
        };
    let (kube, sources) = sync_watcher::kube_client(&config).await;
    sync_watcher::install(
        process,
        &config,
        flotilla_env::Registry::new(envs),
        kube,
        history,
    );
    match sources {
        sync_watcher::Sources::ArgoCdAndReports { namespace } => {
            format!("sync-watcher     following Argo CD Applications in {namespace}, and reports")
        }
        sync_watcher::Sources::ReportsOnly { why } => {
            format!("sync-watcher     on reports alone (POST /report/{{env}}/{{app}}): {why}")
        }
    }
}
