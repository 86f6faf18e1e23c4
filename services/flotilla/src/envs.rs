//! `flotilla envs`: every environment the registry holds; `keep` extends one, `delete` ends one.
//!
//! `keep` writes the env's record (compare-and-set): its `expires_at`, and `kept_until`, before
//! which the reaper's idle timer does not fire either. `delete` publishes
//! `env.teardown.requested` with reason `manual`; env-manager removes the env file and the
//! reaper confirms it gone.

use std::time::Duration;

use flotilla_bus::{Bus, EventType, NatsArgs, Outgoing};
use flotilla_env::hooks::RunStatus;
use flotilla_env::{EnvRecord, Registry};
use flotilla_proto::v1::TeardownRequest;
use reaper::timer::{self, Claim, KEPT_UNTIL, LAST_ACTIVITY};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::error::CliError;
use crate::render::Output;

/// List environments: kind, state, age, expires in, last activity, owner, pull request, change.
/// A requested env waiting on its provision hooks says which, e.g. `requested (provisioning:
/// database running 12s, dataset pending)`; `--json` has each hook's runs.
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  flotilla envs
  flotilla envs --json
  flotilla envs keep pr-acme-web-42 --for 48h
  flotilla envs delete pr-acme-web-42"
)]
pub struct Args {
    /// Print one JSON object a line.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    Keep(KeepArgs),
    Delete(DeleteArgs),
}

/// Keep an env longer: it expires no sooner than FOR from now (and is not torn down as idle
/// before then).
#[derive(Debug, clap::Args)]
struct KeepArgs {
    /// The env id, as `flotilla envs` shows it.
    env: String,
    /// How long from now, e.g. 48h or 7d.
    #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
    keep_for: Duration,
}

/// End an env now: publishes `env.teardown.requested` (reason `manual`).
#[derive(Debug, clap::Args)]
struct DeleteArgs {
    /// The env id, as `flotilla envs` shows it.
    env: String,
}

pub async fn run(nats: &NatsArgs, args: Args) -> Result<(), CliError> {
    if let Some(Command::Keep(keep)) = &args.command
        && keep.keep_for.is_zero()
    {
        return Err(CliError::Usage("--for must be more than 0".into()));
    }
    let bus = crate::connect(nats).await?;
    let registry = Registry::new(
        bus.envs()
            .await
            .map_err(|e| CliError::Usage(format!("{e} (run `flotilla init`)")))?,
    );
    let now = OffsetDateTime::now_utc();
    match args.command {
        None => list(&registry, args.json, now).await,
        Some(Command::Keep(keep)) => keep_env(&registry, &keep, now).await,
        Some(Command::Delete(delete)) => delete_env(&bus, &registry, &delete.env).await,
    }
}

async fn list(registry: &Registry, json: bool, now: OffsetDateTime) -> Result<(), CliError> {
    let records = registry
        .list()
        .await
        .map_err(|e| CliError::nats("read the env registry", e))?;
    let mut out = Output::buffered();
    if json {
        for (env, record) in &records {
            out.json(&as_json(env, record, now))?;
        }
        return out.finish();
    }
    if records.is_empty() {
        eprintln!("no environments");
        return out.finish();
    }
    for line in table(&records, now) {
        out.line(line)?;
    }
    out.finish()
}

fn as_json(env: &str, record: &EnvRecord, now: OffsetDateTime) -> Value {
    let seconds = |at: Option<OffsetDateTime>| at.map(|at| (at - now).whole_seconds());
    let expires = expiry(env, record);
    json!({
        "env": env,
        "kind": record.kind,
        "state": record.state.as_str(),
        "created_at": record.created_at,
        "age_s": seconds(timer::parse(&record.created_at)).map(|s| -s),
        "expires_at": expires.map(timer::rfc3339),
        "expires_in_s": seconds(expires),
        "last_activity": last_activity(record).map(timer::rfc3339),
        "owner": record.owner,
        "repo": record.repo,
        "pr": record.pr,
        "change_id": record.change_id,
        "reason": record.reason,
        "lingering": record.other.get(reaper::sweep::LINGERING).cloned().unwrap_or(Value::Null),
        "hooks": record.hooks,
    })
}

/// The state column: a requested env says what its provision hooks are doing, e.g.
/// `requested (provisioning: database running 12s, dataset pending)`.
fn state_of(record: &EnvRecord, now: OffsetDateTime) -> String {
    let state = record.state.as_str();
    let hooks: Vec<_> = flotilla_env::hooks::of_change(&record.hooks, &record.change_id).collect();
    let provisioning = record.state == flotilla_env::State::Requested
        && hooks
            .iter()
            .any(|h| !matches!(h.provision.state, RunStatus::Succeeded | RunStatus::Skipped));
    if !provisioning {
        return state.to_owned();
    }
    let runs: Vec<String> = hooks
        .iter()
        .map(|hook| {
            match (
                hook.provision.state,
                timer::parse(&hook.provision.started_at),
            ) {
                (RunStatus::Running, Some(started)) => {
                    format!("{} running {}", hook.name, short(now - started))
                }
                (run, _) => format!("{} {run}", hook.name),
            }
        })
        .collect();
    format!("{state} (provisioning: {})", runs.join(", "))
}

/// When the env's TTL runs out, for a live env: its `expires_at` (what `keep` extends).
fn expiry(env: &str, record: &EnvRecord) -> Option<OffsetDateTime> {
    if !timer::applies(env, record) {
        return None;
    }
    timer::parse(&record.expires_at)
}

fn last_activity(record: &EnvRecord) -> Option<OffsetDateTime> {
    record
        .other
        .get(LAST_ACTIVITY)
        .and_then(Value::as_str)
        .and_then(timer::parse)
}

fn table(records: &[(String, EnvRecord)], now: OffsetDateTime) -> Vec<String> {
    let ago =
        |at: Option<OffsetDateTime>| at.map_or("-".into(), |at| format!("{} ago", short(now - at)));
    let rows: Vec<[String; 9]> = records
        .iter()
        .map(|(env, r)| {
            let expires = match expiry(env, r) {
                Some(at) if at > now => short(at - now),
                Some(at) => format!("expired {} ago", short(now - at)),
                None => "-".into(),
            };
            let pr = if r.pr > 0 {
                format!("{}#{}", r.repo, r.pr)
            } else {
                "-".into()
            };
            let dash = |s: &str| {
                if s.is_empty() {
                    "-".to_owned()
                } else {
                    s.to_owned()
                }
            };
            [
                env.clone(),
                dash(&r.kind),
                dash(&state_of(r, now)),
                ago(timer::parse(&r.created_at)),
                expires,
                ago(last_activity(r)),
                dash(&r.owner),
                pr,
                dash(&r.change_id),
            ]
        })
        .collect();
    let heading = [
        "ENV",
        "KIND",
        "STATE",
        "AGE",
        "EXPIRES IN",
        "LAST ACTIVITY",
        "OWNER",
        "PR",
        "CHANGE",
    ]
    .map(String::from);
    let mut widths = [0usize; 9];
    for row in std::iter::once(&heading).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    std::iter::once(&heading)
        .chain(&rows)
        .map(|row| {
            let cells: Vec<String> = row[..8]
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            format!("{}  {}", cells.join("  "), row[8])
        })
        .collect()
}

/// A duration in its largest unit (and hours beside days): `2d 18h`, `5h`, `12m`, `40s`.
fn short(duration: time::Duration) -> String {
    let s = duration.whole_seconds().max(0);
    match s {
        s if s >= 86_400 => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h", s / 3600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Why an env cannot be kept or deleted.
fn not_live(env: &str, record: Option<&EnvRecord>) -> Option<String> {
    let Some(record) = record else {
        return Some(format!(
            "no env {env} in the registry (`flotilla envs` lists them)"
        ));
    };
    if record.state.is_going_away() {
        return Some(format!(
            "{env} is {} already ({})",
            record.state,
            if record.reason.is_empty() {
                "no reason given"
            } else {
                &record.reason
            }
        ));
    }
    if !timer::applies(env, record) {
        return Some(format!(
            "{env} is a {} env in state {:?}: only preview and staging envs are kept or deleted",
            if record.kind.is_empty() {
                "unknown"
            } else {
                &record.kind
            },
            record.state.as_str()
        ));
    }
    None
}

async fn keep_env(
    registry: &Registry,
    keep: &KeepArgs,
    now: OffsetDateTime,
) -> Result<(), CliError> {
    let env = keep.env.as_str();
    let until = now + keep.keep_for;
    let mut refused: Option<String> = None;
    let mut kept: Option<OffsetDateTime> = None;
    registry
        .update(env, |current| {
            (refused, kept) = (None, None);
            if let Some(why) = not_live(env, current.as_ref()) {
                refused = Some(why);
                return None;
            }
            let mut record = current?;
            if let Some(claim) = Claim::of(&record) {
                refused = Some(format!(
                    "{env}'s teardown was requested already ({}): it cannot be kept",
                    claim.reason
                ));
                return None;
            }
            // Never shortens: an env that lives longer already keeps its expiry.
            let expires = timer::parse(&record.expires_at).map_or(until, |at| at.max(until));
            record.expires_at = timer::rfc3339(expires);
            record
                .other
                .insert(KEPT_UNTIL.into(), Value::String(timer::rfc3339(expires)));
            kept = Some(expires);
            Some(record)
        })
        .await
        .map_err(|e| CliError::nats(format!("update {env} in the env registry"), e))?;
    if let Some(why) = refused {
        return Err(CliError::Usage(why));
    }
    let Some(expires) = kept else {
        return Err(CliError::Usage(format!("{env} was not kept")));
    };
    let mut out = Output::buffered();
    out.line(format!(
        "{env} kept until {} (expires in {})",
        timer::rfc3339(expires),
        short(expires - now)
    ))?;
    out.finish()
}

async fn delete_env(bus: &Bus, registry: &Registry, env: &str) -> Result<(), CliError> {
    let record = registry
        .get(env)
        .await
        .map_err(|e| CliError::nats(format!("read {env} in the env registry"), e))?;
    if let Some(why) = not_live(env, record.as_ref()) {
        return Err(CliError::Usage(why));
    }
    let change_id = record.map(|r| r.change_id).unwrap_or_default();
    let request = TeardownRequest {
        env: env.to_owned(),
        reason: "manual".into(),
        change_id: change_id.clone(),
        message: "flotilla envs delete".into(),
    };
    // Derived: the same command repeated is stored once.
    let event = Outgoing::new(EventType::EnvTeardownRequested, env, &request)
        .map_err(|e| CliError::Data {
            context: "encode the teardown".into(),
            source: e,
        })?
        .with_change_id(&change_id)
        .with_id(format!("cli:manual:{env}:{change_id}"));
    let published = bus.publisher("cli").publish(event).await?;
    let mut out = Output::buffered();
    let already = if published.duplicate { " already" } else { "" };
    out.line(format!(
        "teardown of {env} requested{already} (seq {}); env-manager removes it, the reaper confirms it gone",
        published.sequence
    ))?;
    out.finish()
}
