//! `flotilla dlq`: lists dead letters, and puts them back for the worker that gave up on them.
//!
//! A dead letter is a copy of an event a worker gave up on, stored on `flotilla-dlq.<worker>`
//! with the original headers and payload plus `flotilla-dlq-*` headers saying where it came
//! from and why.

use async_nats::HeaderMap;
use async_nats::jetstream::stream::{RawMessageErrorKind, Stream};
use flotilla_bus::envelope::header;
use flotilla_bus::subject::sanitize_key;
use flotilla_bus::{Bus, NatsArgs};
use serde::Serialize;

use crate::error::CliError;
use crate::events::{self, Reader, Start, Stored};
use crate::render::Output;

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
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  flotilla dlq retry 4 7
  flotilla dlq retry --all --worker sync-watcher")]
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
}

pub async fn run(nats: &NatsArgs, command: Command) -> Result<(), CliError> {
    let bus = crate::connect(nats).await?;
    match command {
        Command::List(args) => list(&bus, args).await,
        Command::Retry(args) => retry(&bus, args).await,
    }
}

/// A dead letter as FLOTILLA_DLQ stores it.
#[derive(Debug, Clone)]
struct DeadLetter {
    stored: Stored,
    worker: String,
    /// The subject the event was consumed from, where a retry puts it back.
    subject: Option<String>,
    deliveries: Option<u64>,
    time: String,
    reason: String,
}

/// The JSON line of `dlq list --json`.
#[derive(Debug, Serialize)]
struct LetterJson<'a> {
    seq: u64,
    worker: &'a str,
    subject: Option<&'a str>,
    deliveries: Option<u64>,
    time: &'a str,
    reason: &'a str,
    /// The event's `ce-id`.
    id: Option<&'a str>,
    /// Its sequence in FLOTILLA.
    stream_seq: Option<u64>,
}

impl DeadLetter {
    fn new(stored: Stored) -> DeadLetter {
        let text = |name| stored.header(name).map(str::to_owned);
        // A letter without the worker header still names it in its subject.
        let worker = text(header::DLQ_WORKER).unwrap_or_else(|| {
            let token = stored.subject.rsplit('.').next().unwrap_or_default();
            token.to_owned()
        });
        DeadLetter {
            worker,
            subject: text(header::DLQ_SUBJECT),
            deliveries: text(header::DLQ_DELIVERIES).and_then(|d| d.parse().ok()),
            time: text(header::DLQ_TIME).unwrap_or_else(|| events::rfc3339(stored.stored_at)),
            reason: text(header::DLQ_REASON).unwrap_or_default(),
            stored,
        }
    }

    fn seq(&self) -> u64 {
        self.stored.seq
    }

    fn json(&self) -> LetterJson<'_> {
        LetterJson {
            seq: self.seq(),
            worker: &self.worker,
            subject: self.subject.as_deref(),
            deliveries: self.deliveries,
            time: &self.time,
            reason: &self.reason,
            id: self.stored.header(header::ID),
            stream_seq: self
                .stored
                .header(header::DLQ_STREAM_SEQ)
                .and_then(|s| s.parse().ok()),
        }
    }

    /// The original headers, with the dead-letter ones replaced by the retry markers.
    fn retry_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, values) in self.stored.headers.iter().flat_map(HeaderMap::iter) {
            let name_str: &str = name.as_ref();
            if name_str.starts_with("flotilla-dlq-")
                || name_str == header::RETRY_FOR
                || name_str == header::MSG_ID
            {
                continue;
            }
            for value in values {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(header::RETRY_FOR, self.worker.as_str());
        headers.insert(header::MSG_ID, format!("retry:{}", self.seq()));
        headers
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
    let mut out = Output::live();
    for letter in letters {
        if let Some(worker) = &args.worker
            && sanitize_key(worker) != sanitize_key(&letter.worker)
        {
            eprintln!(
                "skipped dlq {}: a dead letter of {}, not {worker}",
                letter.seq(),
                letter.worker
            );
            continue;
        }
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
mod tests {
    use bytes::Bytes;
    use time::macros::datetime;

    use super::*;

    fn letter() -> DeadLetter {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("ce-id", "e-1"),
            ("ce-type", "dev.flotilla.env.requested.v1"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            (header::RETRY_FOR, "someone-else"),
            (header::DLQ_SUBJECT, "flotilla.env.requested.pr-1"),
            (header::DLQ_REASON, "no such app"),
            (header::DLQ_WORKER, "sync-watcher"),
            (header::DLQ_DELIVERIES, "5"),
            (header::DLQ_STREAM_SEQ, "42"),
            (header::DLQ_TIME, "2024-05-01T12:00:00Z"),
            (header::MSG_ID, "dlq:sync-watcher:42"),
        ] {
            headers.insert(name, value);
        }
        DeadLetter::new(Stored {
            seq: 3,
            subject: "flotilla-dlq.sync-watcher".into(),
            headers: Some(headers),
            payload: Bytes::from_static(b"\x0a\x04pr-1"),
            stored_at: datetime!(2024-05-01 12:00:01 UTC),
        })
    }

    #[test]
    fn a_retry_keeps_the_original_headers_and_is_marked_for_its_worker() {
        let headers = letter().retry_headers();
        let get = |name| headers.get(name).map(|v| v.as_str().to_owned());
        assert_eq!(get("ce-id").as_deref(), Some("e-1"));
        assert!(get("traceparent").is_some());
        assert_eq!(get(header::RETRY_FOR).as_deref(), Some("sync-watcher"));
        assert_eq!(get(header::MSG_ID).as_deref(), Some("retry:3"));
        for dlq_header in [header::DLQ_SUBJECT, header::DLQ_REASON, header::DLQ_WORKER] {
            assert_eq!(get(dlq_header), None, "{dlq_header} left on the retry");
        }
    }

    #[test]
    fn the_list_shows_where_a_letter_came_from_and_why() {
        let lines = table(&[letter()]);
        assert!(lines[0].starts_with("SEQ  WORKER"), "{}", lines[0]);
        let row = &lines[1];
        for part in [
            "3",
            "sync-watcher",
            "flotilla.env.requested.pr-1",
            "5",
            "no such app",
        ] {
            assert!(row.contains(part), "{part} missing from {row}");
        }
    }
}
