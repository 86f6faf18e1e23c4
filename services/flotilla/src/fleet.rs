//! The workers `flotilla up` runs in its own process, each configured from the same
//! environment variables as its own binary.

use clap::Parser;
use flotilla_bus::{Bus, BusError, Health, Worker};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// builder-trigger's settings, read from the environment alone.
#[derive(Debug, Parser)]
struct BuildEnv {
    #[command(flatten)]
    args: builder_trigger::Args,
}

/// builder-trigger's config, from the same environment variables as its binary: parsing an
/// empty command line leaves every setting to its variable.
fn builder_trigger_config() -> Result<builder_trigger::Config, String> {
    if std::env::var_os("FLOTILLA_BUILD_COMMAND").is_none() {
        return Err("set FLOTILLA_BUILD_COMMAND to build changes".to_owned());
    }
    let env = BuildEnv::try_parse_from(["builder-trigger"]).map_err(|e| {
        // clap's message starts with "error: "; the line is ours to prefix.
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("invalid settings");
        first.trim_start_matches("error: ").to_owned()
    })?;
    builder_trigger::Config::from_args(&env.args).map_err(|e| e.to_string())
}

/// Workers running as tasks until `shutdown` is cancelled.
pub struct Fleet {
    tasks: JoinSet<Result<(), BusError>>,
    /// One line per worker: what runs, or why it does not.
    pub summary: Vec<String>,
}

impl Fleet {
    pub fn start(bus: &Bus, health: &Health, shutdown: &CancellationToken) -> Fleet {
        let mut fleet = Fleet {
            tasks: JoinSet::new(),
            summary: vec!["source-listener  serving the webhooks".to_owned()],
        };
        match builder_trigger_config() {
            Ok(config) => {
                let worker = Worker::new(
                    bus.clone(),
                    builder_trigger::worker_config(),
                    builder_trigger::BuilderTrigger::new(config),
                    health.clone(),
                );
                fleet
                    .tasks
                    .spawn(worker.run(shutdown.clone().cancelled_owned()));
                fleet
                    .summary
                    .push("builder-trigger  building with FLOTILLA_BUILD_COMMAND".to_owned());
            }
            Err(why) => fleet.summary.push(format!("builder-trigger  off: {why}")),
        }
        fleet
    }

    /// Waits for every worker to drain (they stop when the shutdown token is cancelled).
    pub async fn stopped(mut self) {
        while let Some(result) = self.tasks.join_next().await {
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "worker failed"),
                Err(e) => tracing::error!(error = %e, "worker task ended abnormally"),
            }
        }
    }
}
