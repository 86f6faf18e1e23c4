//! The fleet the demo runs: `flotilla up`'s six workers, in this process, on the demo's private
//! NATS and GitOps repository, configured by the demo alone.
//!
//! The workers read their settings from flags and environment variables; the demo passes flags
//! and ignores the environment, so that nothing of the user's set-up (a `FLOTILLA_GITOPS_URL`,
//! a GitHub token, a kubeconfig setting) reaches a demo meant to touch nothing outside its
//! temporary directory.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use flotilla_bus::{Bus, Process, Running, WorkerArgs};
use source_listener::{Config, SourceListener};

use crate::error::CliError;

/// The settings of the hosted workers, as `flotilla up` takes them.
#[derive(Debug, clap::Parser)]
#[command(name = "flotilla demo")]
pub struct Hosted {
    #[command(flatten)]
    webhooks: source_listener::Args,
    #[command(flatten)]
    workers: WorkerArgs,
    #[command(flatten)]
    settings: crate::fleet::WorkerSettings,
}

/// What the demo decides about the fleet.
#[derive(Debug)]
pub struct Plan<'a> {
    pub github_secret: &'a str,
    /// FLOTILLA_ENV_URL.
    pub env_url: &'a str,
    pub analysis_dir: &'a Path,
    /// FLOTILLA_ANALYSIS.
    pub analysis: &'a str,
    pub build_command: &'a str,
    pub test_command: &'a str,
}

impl Plan<'_> {
    /// The flags: short timers, so that the demo takes seconds where a real fleet waits for a
    /// cluster; no cluster (reports alone, analysis-only, teardowns verified in git).
    fn flags(&self) -> Vec<String> {
        let flags = [
            ("--github-webhook-secret", self.github_secret),
            ("--backoff", "200ms"),
            ("--build-command", self.build_command),
            ("--test-command", self.test_command),
            ("--build-timeout", "1m"),
            ("--test-timeout", "1m"),
            ("--apps", "acme/ping=ping"),
            ("--analysis", self.analysis),
            ("--kube", "off"),
            ("--ready-sweep", "1s"),
            ("--ready-timeout", "1m"),
            ("--env-url", self.env_url),
            ("--reap-kube", "off"),
            ("--reap-sweep", "1s"),
            ("--canary-kube", "off"),
            ("--canary-sweep", "2s"),
        ];
        let mut args = vec!["flotilla demo".to_owned()];
        for (flag, value) in flags {
            args.push(flag.to_owned());
            args.push(value.to_owned());
        }
        args.push("--analysis-dir".to_owned());
        args.push(self.analysis_dir.display().to_string());
        args
    }
}

/// The hosted workers' command line with no environment variable behind any flag.
fn command() -> clap::Command {
    Hosted::command().mut_args(|arg| arg.env(None::<&str>))
}

/// The workers' settings from `plan` alone: no environment variable is read.
pub fn settings(plan: &Plan<'_>) -> Result<Hosted, CliError> {
    let matches = command()
        .try_get_matches_from(plan.flags())
        .map_err(|e| CliError::Usage(format!("the demo's worker settings: {e}")))?;
    Hosted::from_arg_matches(&matches)
        .map_err(|e| CliError::Usage(format!("the demo's worker settings: {e}")))
}

/// Starts the six workers on `bus`, their routes and the webhooks served on a free loopback
/// port, and waits until every one has bound its consumer. What runs, one line each.
pub async fn start(
    bus: &Bus,
    hosted: &Hosted,
    data_dir: &Path,
) -> Result<(Running, Vec<String>), CliError> {
    let config = Config::from_args(&hosted.webhooks).map_err(|e| CliError::Usage(e.to_string()))?;
    let mut process = Process::new(bus.clone());
    process
        .grace(Duration::from_secs(5))
        .worker_args(&hosted.workers);
    let listener = SourceListener::new(bus, config, process.health());
    process.route(listener.router());
    let summary = crate::fleet::assemble(&mut process, &hosted.settings, data_dir).await;
    let off: Vec<&String> = summary
        .iter()
        .filter(|line| line.contains(" off:"))
        .collect();
    if !off.is_empty() {
        process.abandon().await;
        let off: Vec<&str> = off.iter().map(|s| s.as_str()).collect();
        return Err(CliError::Usage(format!(
            "the demo needs all six workers: {}",
            off.join("; ")
        )));
    }
    let running = process.serve(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    if let Err(why) = running.ready(Duration::from_secs(20)).await {
        let _ = running.stop().await;
        return Err(CliError::Usage(format!(
            "the fleet did not get ready: {why}"
        )));
    }
    Ok((running, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_come_from_the_plan_not_the_environment() {
        let dir = std::path::PathBuf::from("/tmp/demo/analysis");
        let plan = Plan {
            github_secret: "s3cret",
            env_url: "http://127.0.0.1:1/envs/{env}",
            analysis_dir: &dir,
            analysis: "ping=success-rate",
            build_command: "true",
            test_command: "true",
        };
        let hosted = settings(&plan).expect("valid settings");
        assert_eq!(
            hosted.webhooks.github_webhook_secret.as_deref(),
            Some("s3cret")
        );
        assert_eq!(hosted.settings.envs.gitops.gitops_url, None);
        assert_eq!(
            hosted.settings.canary.analysis_dir.as_deref(),
            Some(dir.as_path())
        );
        assert_eq!(hosted.workers.backoff, Duration::from_millis(200));
    }

    #[test]
    fn no_flag_of_the_hosted_workers_reads_the_environment() {
        let reads = |command: &clap::Command| {
            command
                .get_arguments()
                .filter(|arg| arg.get_env().is_some())
                .count()
        };
        assert!(reads(&Hosted::command()) > 20, "the workers' own flags do");
        assert_eq!(reads(&command()), 0);
    }
}
