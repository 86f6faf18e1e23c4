//! `flotilla init`: creates or updates the streams, the env registry bucket and the durable
//! consumers of the workers. Safe to run any number of times.

use std::time::Duration;

use flotilla_bus::runtime::WorkerConfig;
use flotilla_bus::topology::{Reconciled, StreamLimits, WORKERS};
use flotilla_bus::{Bus, NatsArgs};

use crate::error::CliError;
use crate::render::Output;

/// Create or update streams, consumers and KV buckets (idempotent).
///
/// Creates what is missing and updates what differs from the flags: stream FLOTILLA
/// (`flotilla.>`), stream FLOTILLA_DLQ (`flotilla-dlq.>`), the KV bucket `flotilla-envs` and one
/// durable consumer per worker. Prints one line per object: created, updated (with what
/// changed) or unchanged.
#[derive(Debug, clap::Args)]
#[group(id = "stream-limits")]
#[command(after_help = "Examples:
  flotilla init
  flotilla init --max-age 14d --max-bytes 10GiB
  flotilla init --replicas 3          # on a three-node JetStream cluster
  FLOTILLA_DUPLICATE_WINDOW=30m flotilla init")]
pub struct Args {
    /// How long FLOTILLA keeps events.
    #[arg(long, env = "FLOTILLA_MAX_AGE", value_name = "DUR", default_value = "7d", value_parser = humantime::parse_duration)]
    max_age: Duration,
    /// How long a `Nats-Msg-Id` is remembered: a republished event with the same id within
    /// this window is dropped as a duplicate.
    #[arg(long, env = "FLOTILLA_DUPLICATE_WINDOW", value_name = "DUR", default_value = "10m", value_parser = humantime::parse_duration)]
    duplicate_window: Duration,
    /// Size limit of FLOTILLA (e.g. `500MiB`, `10GB`); the oldest events go first. Unlimited
    /// when unset or 0.
    #[arg(long, env = "FLOTILLA_MAX_BYTES", value_name = "SIZE", value_parser = parse_bytes)]
    max_bytes: Option<u64>,
    /// How long FLOTILLA_DLQ keeps dead letters.
    #[arg(long, env = "FLOTILLA_DLQ_MAX_AGE", value_name = "DUR", default_value = "30d", value_parser = humantime::parse_duration)]
    dlq_max_age: Duration,
    /// Copies of every stream and bucket: 1 on a single server, 3 on a production JetStream
    /// cluster (at most the number of its servers; changing it later moves the data).
    #[arg(long, env = "FLOTILLA_STREAM_REPLICAS", value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    replicas: u8,
}

impl Args {
    pub fn limits(&self) -> Result<StreamLimits, CliError> {
        // The server refuses a duplicate window longer than the stream keeps messages (0 keeps
        // them forever); saying so here names the flags involved.
        for (flag, age) in [
            ("--max-age", self.max_age),
            ("--dlq-max-age", self.dlq_max_age),
        ] {
            if !age.is_zero() && self.duplicate_window > age {
                return Err(CliError::Usage(format!(
                    "--duplicate-window ({}) must not be longer than {flag} ({})",
                    humantime::format_duration(self.duplicate_window),
                    humantime::format_duration(age),
                )));
            }
        }
        let max_bytes = match self.max_bytes {
            None | Some(0) => -1,
            Some(bytes) => i64::try_from(bytes)
                .map_err(|_| CliError::Usage(format!("--max-bytes {bytes} is too large")))?,
        };
        Ok(StreamLimits {
            max_age: self.max_age,
            duplicate_window: self.duplicate_window,
            max_bytes,
            dlq_max_age: self.dlq_max_age,
            replicas: usize::from(self.replicas),
            ..StreamLimits::default()
        })
    }
}

pub async fn run(nats: &NatsArgs, args: Args) -> Result<(), CliError> {
    let limits = args.limits()?;
    let bus = crate::connect(nats).await?;
    let mut out = Output::live();
    for line in reconcile(&bus, &limits).await? {
        out.line(line)?;
    }
    out.finish()
}

/// Creates or updates everything the bus needs; says what it did, one line per object.
pub async fn reconcile(bus: &Bus, limits: &StreamLimits) -> Result<Vec<String>, CliError> {
    let mut lines = Vec::new();
    let buckets = [&bus.names().envs_bucket, &bus.names().canaries_bucket];
    for reconciled in bus.ensure_streams(limits).await? {
        // A bucket is stored as a stream, but people know it by its bucket name.
        let name = name_of(&reconciled);
        let bucket = buckets
            .iter()
            .find(|bucket| name.strip_prefix("KV_") == Some(bucket.as_str()));
        let line = match bucket {
            Some(bucket) => describe("kv bucket", bucket, &reconciled),
            None => describe("stream", name, &reconciled),
        };
        lines.push(line);
    }
    for (worker, subjects) in WORKERS {
        // What `WorkerConfig::for_worker` builds, without an impossible "unknown worker" case.
        let spec = WorkerConfig::new(*worker, subjects).consumer_spec();
        let (_, reconciled) = bus.ensure_consumer(&spec).await?;
        lines.push(describe("consumer", worker, &reconciled));
    }
    Ok(lines)
}

fn name_of(reconciled: &Reconciled) -> &str {
    match reconciled {
        Reconciled::Created(name) | Reconciled::Updated(name, _) | Reconciled::Unchanged(name) => {
            name
        }
    }
}

/// `created   stream FLOTILLA`, `updated   stream FLOTILLA (max_age 7days -> 14days)`, ...
fn describe(kind: &str, name: &str, reconciled: &Reconciled) -> String {
    match reconciled {
        Reconciled::Created(_) => format!("created   {kind} {name}"),
        Reconciled::Updated(_, changes) => {
            format!("updated   {kind} {name} ({})", changes.join(", "))
        }
        Reconciled::Unchanged(_) => format!("unchanged {kind} {name}"),
    }
}

/// Parses a size: a number of bytes, optionally with a unit (`KB`, `MB`, `GB`, `TB` are
/// powers of 1000; `KiB`, `MiB`, `GiB`, `TiB` powers of 1024).
fn parse_bytes(value: &str) -> Result<u64, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{value}` is not a size (e.g. 1073741824, 500MiB, 10GB)"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (use KB, MB, GB, TB, KiB, MiB, GiB or TiB)"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("`{value}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(max_age: u64, duplicate_window: u64) -> Args {
        Args {
            max_age: Duration::from_secs(max_age),
            duplicate_window: Duration::from_secs(duplicate_window),
            max_bytes: None,
            dlq_max_age: Duration::from_secs(30 * 86_400),
            replicas: 1,
        }
    }

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("500MiB"), Ok(500 << 20));
        assert_eq!(parse_bytes("10GB"), Ok(10_000_000_000));
        assert_eq!(parse_bytes("2 kib"), Ok(2048));
        assert!(parse_bytes("10 parsecs").is_err());
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("99999999999TiB").is_err());
    }

    #[test]
    fn a_duplicate_window_longer_than_the_max_age_is_refused() {
        let err = args(60, 600).limits().expect_err("window > age");
        assert!(err.to_string().contains("--max-age"), "{err}");
        assert!(args(0, 600).limits().is_ok(), "0 keeps events forever");
    }

    #[test]
    fn no_max_bytes_means_unlimited() {
        let limits = args(3600, 60).limits().expect("valid");
        assert_eq!(limits.max_bytes, -1);
    }
}
