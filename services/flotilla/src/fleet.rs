//! The workers `flotilla up` runs in its own process, each configured from the same
//! environment variables as its own binary.

use std::path::Path;

use clap::Parser;
use flotilla_bus::{Bus, Process};

/// builder-trigger's settings, read from the environment alone.
#[derive(Debug, Parser)]
struct BuildEnv {
    #[command(flatten)]
    args: builder_trigger::Args,
}

/// env-manager's settings: the environment, plus the local repository when none is set.
#[derive(Debug, Parser)]
struct EnvsEnv {
    #[command(flatten)]
    args: env_manager::Args,
}

/// builder-trigger's config, from the same environment variables as its binary: parsing an
/// empty command line leaves every setting to its variable.
pub fn builder_trigger_config() -> Result<builder_trigger::Config, String> {
    if std::env::var_os("FLOTILLA_BUILD_COMMAND").is_none() {
        return Err("set FLOTILLA_BUILD_COMMAND to build changes".to_owned());
    }
    let env =
        BuildEnv::try_parse_from(["builder-trigger"]).map_err(|e| first_line(&e.to_string()))?;
    builder_trigger::Config::from_args(&env.args).map_err(|e| e.to_string())
}

/// env-manager on FLOTILLA_GITOPS_URL, or on a local bare repository under the data dir
/// (created with an empty production manifest) when none is configured.
async fn env_manager(
    bus: &Bus,
    data_dir: &Path,
) -> Result<(env_manager::EnvManager, String), String> {
    let config = env_manager_config(data_dir, true)?;
    let url = config.gitops.url.clone();
    let gitops = env_manager::gitops::GitOps::open(config.gitops.clone())
        .await
        .map_err(|e| format!("GitOps repository {url}: {e}"))?;
    let envs = bus.envs().await.map_err(|e| e.to_string())?;
    let registry = flotilla_env::Registry::new(envs);
    Ok((env_manager::EnvManager::new(config, gitops, registry), url))
}

/// env-manager's config, from the same environment variables as its binary; without
/// FLOTILLA_GITOPS_URL, the local bare repository under the data dir (created when missing if
/// `create`, else an error), and without FLOTILLA_GITOPS_DIR a working copy beside it.
pub fn env_manager_config(data_dir: &Path, create: bool) -> Result<env_manager::Config, String> {
    let mut argv = vec!["env-manager".to_owned()];
    if std::env::var_os("FLOTILLA_GITOPS_URL").is_none() {
        let branch = std::env::var("FLOTILLA_GITOPS_BRANCH").unwrap_or_else(|_| "main".into());
        let remote = if create {
            crate::local_gitops::ensure(data_dir, &branch)
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
        argv.extend(["--gitops-url".to_owned(), remote.display().to_string()]);
    }
    if std::env::var_os("FLOTILLA_GITOPS_DIR").is_none() {
        let work = data_dir.join("gitops-work");
        argv.extend(["--gitops-dir".to_owned(), work.display().to_string()]);
    }
    let env = EnvsEnv::try_parse_from(&argv).map_err(|e| first_line(&e.to_string()))?;
    env_manager::Config::from_args(&env.args).map_err(|e| e.to_string())
}

/// clap's message without its "error: " prefix, first line only.
fn first_line(text: &str) -> String {
    let first = text.lines().next().unwrap_or("invalid settings");
    first.trim_start_matches("error: ").to_owned()
}

/// Adds the workers this binary runs to `process` and says, one line each, what runs or why it
/// does not. The routes of each worker are served on the process's one server.
pub async fn assemble(process: &mut Process, data_dir: &Path) -> Vec<String> {
    let mut summary = vec!["source-listener  serving the webhooks".to_owned()];
    let builder = match builder_trigger_config() {
        Ok(config) => builder_trigger::runner(&config)
            .await
            .map(|(runner, routes)| (builder_trigger::BuilderTrigger::new(config, runner), routes))
            .map_err(|e| e.to_string()),
        Err(why) => Err(why),
    };
    match builder {
        Ok((handler, routes)) => {
            process
                .worker(builder_trigger::worker_config(), handler)
                .route(routes);
            summary.push("builder-trigger  building with FLOTILLA_BUILD_COMMAND".to_owned());
        }
        Err(why) => summary.push(format!("builder-trigger  off: {why}")),
    }
    match env_manager(process.bus(), data_dir).await {
        Ok((handler, gitops)) => {
            process.worker(env_manager::worker_config(), handler);
            summary.push(format!("env-manager      writing environments to {gitops}"));
        }
        Err(why) => summary.push(format!("env-manager      off: {why}")),
    }
    summary
}
