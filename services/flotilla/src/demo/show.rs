//! The demo's main loop: follows the bus, prints each event, lets the cluster answer it, and
//! does what the script says next (webhooks, a look at git) until every scenario ran, one
//! cannot finish, the time is up or Ctrl-C.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use flotilla_bus::Bus;
use flotilla_bus::envelope::header;
use serde_json::json;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::demo::cluster::Cluster;
use crate::demo::screen::{Entry, Screen};
use crate::demo::script::{Action, Script, Shas};
use crate::demo::seen::Seen;
use crate::demo::summary;
use crate::error::CliError;
use crate::events::{Reader, Start, Stored};
use crate::signals::Stop;
use crate::webhook::{Forge, Kind, SendArgs};

/// The pull request the demo opens.
const PULL_REQUEST: u64 = 7;

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Finished,
    TimedOut,
    Interrupted,
    FleetStopped,
}

/// What the loop needs.
pub struct Show<'a> {
    pub screen: &'a mut Screen,
    pub bus: &'a Bus,
    pub dir: &'a Path,
    /// The fleet's base URL, where webhooks go.
    pub webhooks: String,
    pub secret: &'a str,
    pub nats_url: &'a str,
    /// Production's `/ping`, through the ingress.
    pub production: &'a str,
}

impl Show<'_> {
    pub async fn run(
        mut self,
        shas: Shas,
        cluster: &mut Cluster,
        stop: &mut Stop,
        shutdown: &CancellationToken,
        timeout: Duration,
        stay: bool,
    ) -> Result<(), CliError> {
        let names = self.bus.names().clone();
        let mut events = Reader::follow(
            self.bus,
            &names.stream,
            &format!("{}.>", names.prefix),
            Start::New,
        )
        .await?;
        let mut letters = Reader::follow(
            self.bus,
            &names.dlq_stream,
            &format!("{}.>", names.dlq_prefix),
            Start::New,
        )
        .await?;
        let mut script = Script::new(shas);
        let started = Instant::now();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut pending: VecDeque<Action> = script.start().into();
        let end = loop {
            while let Some(action) = pending.pop_front() {
                pending.extend(self.perform(action, &mut script).await?);
            }
            if script.finished() {
                break End::Finished;
            }
            tokio::select! {
                () = stop.wait() => break End::Interrupted,
                () = &mut deadline => break End::TimedOut,
                () = shutdown.cancelled() => break End::FleetStopped,
                next = events.next() => {
                    let Some(stored) = next? else { break End::FleetStopped };
                    let seen = self.event(&stored, cluster).await?;
                    pending.extend(script.observe(&seen));
                }
                next = letters.next() => {
                    let Some(stored) = next? else { break End::FleetStopped };
                    self.dead_letter(&stored, &mut script)?;
                }
            }
        };
        let ok = self.outcome(&script, end, started.elapsed(), timeout)?;
        if stay && end != End::Interrupted {
            self.stay(&script, &mut events, cluster, stop).await?;
        }
        if ok {
            Ok(())
        } else {
            Err(CliError::Verdict {
                code: 1,
                summary: "the demo did not complete".into(),
            })
        }
    }

    /// Prints an event and lets the cluster answer it.
    async fn event(&mut self, stored: &Stored, cluster: &mut Cluster) -> Result<Seen, CliError> {
        let seen = Seen::of(stored);
        let summary = seen.summary();
        self.screen.entry(
            &Entry {
                // When the demo saw it: the timeline reads in the order things were printed.
                at: OffsetDateTime::now_utc(),
                stage: &seen.event_type,
                worker: &seen.worker,
                key: &seen.key,
                summary: &summary,
                change_id: seen.change_id.as_deref(),
            },
            false,
        )?;
        for (who, line) in cluster.observe(&seen).await {
            self.played("cluster", who, &seen.key, &line, seen.change_id.as_deref())?;
        }
        Ok(seen)
    }

    /// A dead letter: printed, and the end of the demo (on a fresh bus, none is expected).
    fn dead_letter(&mut self, stored: &Stored, script: &mut Script) -> Result<(), CliError> {
        let worker = stored.header(header::DLQ_WORKER).unwrap_or("?").to_owned();
        let subject = stored.header(header::DLQ_SUBJECT).unwrap_or("?").to_owned();
        let reason = stored.header(header::DLQ_REASON).unwrap_or("").to_owned();
        let key = subject.rsplit('.').next().unwrap_or_default().to_owned();
        self.screen.entry(
            &Entry {
                at: OffsetDateTime::now_utc(),
                stage: "dead letter",
                worker: &worker,
                key: &key,
                summary: &format!("{subject}: {reason}"),
                change_id: stored.header(header::CHANGE_ID),
            },
            false,
        )?;
        script.fail(format!("{worker} dead-lettered {subject}: {reason}"));
        Ok(())
    }

    /// Does one action of the script; what follows from it.
    async fn perform(
        &mut self,
        action: Action,
        script: &mut Script,
    ) -> Result<Vec<Action>, CliError> {
        match action {
            Action::Heading(scenario) => {
                self.screen.heading(scenario as u8, scenario.title())?;
                Ok(Vec::new())
            }
            Action::Push(sha) => self.deliver(script, Kind::Push, &sha, None).await,
            Action::OpenPullRequest(sha) => {
                self.deliver(script, Kind::PullRequest, &sha, Some("opened"))
                    .await
            }
            Action::ClosePullRequest(sha) => {
                self.deliver(script, Kind::PullRequest, &sha, Some("closed"))
                    .await
            }
            Action::CheckProduction => {
                let version = super::setup::production_version(self.dir);
                let line = match &version {
                    Ok(version) => format!("apps/production.json on main: ping {version}"),
                    Err(why) => format!("apps/production.json could not be read: {why}"),
                };
                self.played("git", "demo: git", "gitops.git", &line, None)?;
                Ok(script.production(version))
            }
        }
    }

    /// Sends a signed GitHub delivery to the fleet's source-listener, as GitHub would.
    async fn deliver(
        &mut self,
        script: &mut Script,
        kind: Kind,
        sha: &str,
        action: Option<&str>,
    ) -> Result<Vec<Action>, CliError> {
        let args = SendArgs {
            forge: Forge::Github,
            kind,
            url: self.webhooks.clone(),
            repo: "acme/ping".into(),
            branch: Some(match kind {
                Kind::Push => "main".into(),
                Kind::PullRequest => "json-answer".into(),
            }),
            sha: Some(sha.to_owned()),
            number: PULL_REQUEST,
            action: action.map(str::to_owned),
            labels: Vec::new(),
            merged: false,
            github_secret: Some(self.secret.to_owned()),
            github_secret_file: None,
            gitlab_token: None,
            gitlab_token_file: None,
            dry_run: false,
        };
        let what = match (kind, action) {
            (Kind::Push, _) => format!("push of {} to main", &sha[..7]),
            (Kind::PullRequest, action) => format!(
                "pull request #{PULL_REQUEST} {} (json-answer at {})",
                action.unwrap_or("opened"),
                &sha[..7]
            ),
        };
        let delivery = crate::webhook::build(&args)?;
        let (status, answer) = delivery.post().await?;
        let line = format!("signed {what}: POST /webhooks/github answered {status}");
        self.played("webhook", "demo: github", "acme/ping", &line, None)?;
        if !(200..300).contains(&status) {
            script.fail(format!(
                "source-listener refused the {what}: {status} {}",
                answer.trim()
            ));
        }
        Ok(Vec::new())
    }

    /// A line of what the demo played.
    fn played(
        &mut self,
        stage: &str,
        who: &str,
        key: &str,
        line: &str,
        change_id: Option<&str>,
    ) -> Result<(), CliError> {
        let worker = if who.starts_with("demo") {
            who.to_owned()
        } else {
            format!("demo: {who}")
        };
        self.screen.entry(
            &Entry {
                at: OffsetDateTime::now_utc(),
                stage,
                worker: &worker,
                key,
                summary: line,
                change_id,
            },
            true,
        )
    }

    /// Prints the outcome; whether all three happened.
    fn outcome(
        &mut self,
        script: &Script,
        end: End,
        took: Duration,
        timeout: Duration,
    ) -> Result<bool, CliError> {
        let outcomes = script.outcomes();
        let all = outcomes.iter().all(|o| o.ok);
        let why = match (end, script.failure()) {
            (_, Some(failure)) => Some(failure.to_owned()),
            (End::TimedOut, None) => Some(format!(
                "not done within {} (--timeout)",
                humantime::format_duration(timeout)
            )),
            (End::Interrupted, None) if !all => Some("stopped (Ctrl-C)".into()),
            (End::FleetStopped, None) => Some("a worker of the fleet stopped".into()),
            _ => None,
        };
        let (text, json) = summary::render(&outcomes, why.as_deref(), took, script.good_change());
        self.screen.outcome(text, json)?;
        Ok(all)
    }

    /// Keeps everything up until Ctrl-C, printing what still happens.
    async fn stay(
        &mut self,
        script: &Script,
        events: &mut Reader,
        cluster: &mut Cluster,
        stop: &mut Stop,
    ) -> Result<(), CliError> {
        let good = script.good_change().unwrap_or("<change-id>");
        self.screen.outcome(
            format!(
                "\nStaying up until Ctrl-C. In another terminal:\n  export NATS_URL={}\n  flotilla runs; flotilla run {good}; flotilla envs\n  production's ping: {}",
                self.nats_url, self.production
            ),
            json!({"kind": "staying", "nats": self.nats_url, "production": self.production}),
        )?;
        loop {
            tokio::select! {
                () = stop.wait() => return Ok(()),
                next = events.next() => match next? {
                    Some(stored) => {
                        self.event(&stored, cluster).await?;
                    }
                    None => return Ok(()),
                },
            }
        }
    }
}
