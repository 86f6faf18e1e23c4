//! `flotilla dlq`: lists dead letters, and puts them back for the worker that gave up on them.
//!
//! A dead letter is a copy of an event a worker gave up on, stored on `flotilla-dlq.<worker>`
//! with the original headers and payload plus `flotilla-dlq-*` headers saying where it came
//! from and why.

use async_nats::jetstream::stream::{RawMessageErrorKind, Stream};
use flotilla_bus::envelope::header;
use flotilla_bus::subject::sanitize_key;
use flotilla_bus::{Bus, NatsArgs};

use crate::error::CliError;
use crate::events::{self, Reader, Start, Stored};
use crate::render::Output;

mod letter;

use letter::DeadLetter;

/// List dead letters, or put them back for their worker.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    List(ListArgs),
    Retry(RetryArgs),
}

/// List dead letters: DLQ seq, worker, original subject, deliveries, time and reason.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  flotilla dlq list
  flotilla dlq list --worker env-manager --json")]
pub struct ListArgs {
    /// Only the dead letters of this worker.
    #[arg(long)]
    worker: Option<String>,
    /// Print one JSON object a line.
    #[arg(long)]
    json: bool,
}

/// Put dead letters back on their original subject, for their worker only.
///
/// Each one is republished with its payload and original headers, `flotilla-retry-for:
/// <worker>` so only that worker handles it (the others skip it), and `Nats-Msg-Id:
/// retry:<seq>` so retrying the same letter twice stores it once. Once JetStream has stored
/// it, the dead letter is deleted from FLOTILLA_DLQ.
///
/// `--all` asks for confirmation first (on a terminal) unless `--yes` is given, and refuses
/// when stdin is not a terminal; `--dry-run` shows what would be retried and changes nothing.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  flotilla dlq retry 4 7
  flotilla dlq retry --all --dry-run
  flotilla dlq retry --all --worker sync-watcher --yes")]
#[command(group(clap::ArgGroup::new("which").required(true).args(["seqs", "all"])))]
pub struct RetryArgs {
    /// DLQ sequence numbers, as `flotilla dlq list` shows them.
    #[arg(value_name = "SEQ")]
    seqs: Vec<u64>,
    /// Retry every dead letter (of --worker, when given).
    #[arg(long)]
    all: bool,
    /// Only the dead letters of this worker.
    #[arg(long)]
    worker: Option<String>,
    /// Print what would be retried, per worker with counts, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Retry --all without asking.
    #[arg(long, short = 'y')]
    yes: bool,
}

pub async fn run(nats: &NatsArgs, command: Command) -> Result<(), CliError> {
    let bus = crate::connect(nats).await?;
    match command {
        Command::List(args) => list(&bus, args).await,
        Command::Retry(args) => retry(&bus, args).await,
    }
}

/// Reads the dead letters of `worker`, or of every worker.
async fn read_letters(bus: &Bus, worker: Option<&str>) -> Result<Vec<DeadLetter>, CliError> {
    let names = bus.names();
    let filter = match worker {
        Some(worker) => format!("{}.{}", names.dlq_prefix, sanitize_key(worker)),
        None => format!("{}.>", names.dlq_prefix),
    };
    let mut reader = Reader::snapshot(bus, &names.dlq_stream, &filter, Start::All, None).await?;
    let mut letters = Vec::new();
    while let Some(stored) = reader.next().await? {
        letters.push(DeadLetter::new(stored));
    }
    Ok(letters)
}

async fn list(bus: &Bus, args: ListArgs) -> Result<(), CliError> {
    let letters = read_letters(bus, args.worker.as_deref()).await?;
    let mut out = Output::buffered();
    if args.json {
        for letter in &letters {
            out.json(&letter.json())?;
        }
    } else if letters.is_empty() {
        eprintln!("no dead letters");
    } else {
        for line in table(&letters) {
            out.line(line)?;
        }
    }
    out.finish()
}

/// Aligned columns, the reason last since it is free text of any length.
fn table(letters: &[DeadLetter]) -> Vec<String> {
    let rows: Vec<[String; 6]> = letters
        .iter()
        .map(|l| {
            [
                l.seq().to_string(),
                l.worker.clone(),
                l.subject.clone().unwrap_or_else(|| "-".into()),
                l.deliveries.map_or_else(|| "-".into(), |d| d.to_string()),
                l.time.clone(),
                l.reason.clone(),
            ]
        })
        .collect();
    let heading = ["SEQ", "WORKER", "SUBJECT", "DELIVERIES", "TIME", "REASON"].map(String::from);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&heading).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    std::iter::once(&heading)
        .chain(&rows)
        .map(|row| {
            let cells: Vec<String> = row[..5]
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            format!("{}  {}", cells.join("  "), row[5])
        })
        .collect()
}

async fn retry(bus: &Bus, args: RetryArgs) -> Result<(), CliError> {
    let dlq = events::open_stream(bus, &bus.names().dlq_stream).await?;
    let (letters, mut failed) = if args.all {
        (read_letters(bus, args.worker.as_deref()).await?, 0)
    } else {
        fetch_all(bus, &dlq, &args.seqs).await
    };
    let total = letters.len() + failed;
    if total == 0 {
        eprintln!("no dead letters to retry");
    }
    let letters: Vec<DeadLetter> = letters
        .into_iter()
        .filter(|letter| match &args.worker {
            Some(worker) if sanitize_key(worker) != sanitize_key(&letter.worker) => {
                eprintln!(
                    "skipped dlq {}: a dead letter of {}, not {worker}",
                    letter.seq(),
                    letter.worker
                );
                false
            }
            _ => true,
        })
        .collect();
    if args.dry_run {
        return dry_run(&letters, failed, total);
    }
    if args.all && !args.yes && !letters.is_empty() {
        confirm(&letters)?;
    }
    let mut out = Output::live();
    for letter in letters {
        match retry_one(bus, &dlq, &letter).await {
            Ok(line) => out.line(line)?,
            Err(e) => {
                eprintln!("error: dlq {}: {e}", letter.seq());
                failed += 1;
            }
        }
    }
    out.finish()?;
    if failed > 0 {
        return Err(CliError::Partial {
            failed,
            total,
            what: "retries",
        });
    }
    Ok(())
}

/// Prints what a retry would put back: each letter, then the count per worker.
fn dry_run(letters: &[DeadLetter], failed: usize, total: usize) -> Result<(), CliError> {
    let mut out = Output::buffered();
    for letter in letters {
        out.line(format!(
            "would retry dlq {} for {}: {} ({})",
            letter.seq(),
            letter.worker,
            letter
                .subject
                .as_deref()
                .unwrap_or("no original subject: it would fail"),
            letter.reason
        ))?;
    }
    for (worker, count) in per_worker(letters) {
        out.line(format!("{worker}: {count} would be retried"))?;
    }
    out.line(format!(
        "dry run: {} dead letters would be retried; nothing was changed",
        letters.len()
    ))?;
    out.finish()?;
    if failed > 0 {
        return Err(CliError::Partial {
            failed,
            total,
            what: "dead letters to read",
        });
    }
    Ok(())
}

/// How many of `letters` each worker has, by worker name.
fn per_worker(letters: &[DeadLetter]) -> Vec<(&str, usize)> {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for letter in letters {
        *counts.entry(letter.worker.as_str()).or_default() += 1;
    }
    counts.into_iter().collect()
}

/// Asks on the terminal before `--all` puts letters back; refuses when stdin is not one, so
/// a script never retries a whole dead-letter stream by accident.
fn confirm(letters: &[DeadLetter]) -> Result<(), CliError> {
    use std::io::{BufRead, IsTerminal, Write};
    let counts: Vec<String> = per_worker(letters)
        .into_iter()
        .map(|(worker, count)| format!("{worker}: {count}"))
        .collect();
    let what = format!("{} dead letters ({})", letters.len(), counts.join(", "));
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(format!(
            "dlq retry --all would put back {what}; stdin is not a terminal to confirm on, so pass --yes to confirm (or --dry-run to see them)"
        )));
    }
    eprint!("retry {what}? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(CliError::Usage("not confirmed; nothing was retried".into()))
    }
}

/// The letters with these sequences, and how many could not be read (each one reported).
async fn fetch_all(bus: &Bus, dlq: &Stream, seqs: &[u64]) -> (Vec<DeadLetter>, usize) {
    let mut letters = Vec::new();
    let mut failed = 0;
    for &seq in seqs {
        match fetch(bus, dlq, seq).await {
            Ok(letter) => letters.push(letter),
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
            }
        }
    }
    (letters, failed)
}

async fn fetch(bus: &Bus, dlq: &Stream, seq: u64) -> Result<DeadLetter, CliError> {
    match dlq.get_raw_message(seq).await {
        Ok(message) => Ok(DeadLetter::new(Stored {
            seq: message.sequence,
            subject: message.subject.to_string(),
            headers: Some(message.headers),
            payload: message.payload,
            stored_at: message.time,
        })),
        Err(e) if matches!(e.kind(), RawMessageErrorKind::NoMessageFound) => Err(CliError::Usage(
            format!("no dead letter {seq} in {}", bus.names().dlq_stream),
        )),
        Err(e) => Err(CliError::nats(format!("read dead letter {seq}"), e)),
    }
}

/// Republishes one letter, waits for the ack, then deletes it; says what it did.
async fn retry_one(bus: &Bus, dlq: &Stream, letter: &DeadLetter) -> Result<String, CliError> {
    let Some(subject) = letter.subject.as_deref() else {
        return Err(CliError::Usage(format!(
            "it has no {} header, so where it came from is unknown",
            header::DLQ_SUBJECT
        )));
    };
    let published = bus
        .publisher("cli")
        .publish_raw(
            subject,
            letter.retry_headers(),
            letter.stored.payload.clone(),
        )
        .await?;
    // Deleted only once the copy is stored: a crash in between leaves the letter, and a
    // second retry is then dropped as a duplicate of the first.
    dlq.delete_message(letter.seq())
        .await
        .map_err(|e| CliError::nats(format!("delete dead letter {}", letter.seq()), e))?;
    let stored = if published.duplicate {
        "already stored by an earlier retry as"
    } else {
        "stored as"
    };
    Ok(format!(
        "retried dlq {} for {}: {stored} {subject} seq {}; removed from {}",
        letter.seq(),
        letter.worker,
        published.sequence,
        bus.names().dlq_stream
    ))
}

#[cfg(test)]
mod tests;
