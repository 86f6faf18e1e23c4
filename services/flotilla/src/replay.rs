//! `flotilla replay`: reads stored events from a start point up to what was stored when the
//! replay began, and prints them, republishes them under another prefix, or feeds them to a
//! worker's handler in dry run.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::context::{
    GetStreamByNameErrorKind, PublishAckFuture, PublishErrorKind,
};
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use flotilla_bus::envelope::header;
use flotilla_bus::{Bus, BusError, NatsArgs, Publisher};
use time::OffsetDateTime;

use crate::error::CliError;
use crate::events::{self, Reader, Start, Stored};
use crate::render::Output;

/// Publishes in flight at once while republishing: enough to hide the ack round trip.
const WINDOW: usize = 256;
/// Progress is shown on stderr at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Replay stored events: print them, republish them under another prefix, or show what a
/// worker would do with them.
///
/// Reads the events matching SUBJECT_FILTER from the start point (the oldest stored, unless
/// --since or --from-seq says otherwise) and stops once it has caught up with what was stored
/// when the replay began, or at --until. Without --to the events are printed like `flotilla
/// tail` prints them. With --to PREFIX each one is published again as
/// `PREFIX.<subject without "flotilla.">` with its payload and headers (ce-id included), a
/// Nats-Msg-Id unique to this replay, and `flotilla-replayed-from: <original stream seq>`.
/// Progress and a summary go to stderr.
///
/// With --dry-run WORKER each event that worker consumes is handed to its handler, built from
/// the same environment variables as `flotilla up` builds it but in dry run: it reads the real
/// GitOps repository (fetched into a scratch copy), registry and stream, and writes nothing.
/// For each event it prints every side effect the handler would have (git: files written with
/// their contents or a diff, and the commit; registry: `env X: old -> new`; build, kubernetes,
/// github, publish) and every event it would emit (type, key, data as JSON); --json prints
/// one object per event. Events it does not consume are skipped and counted on stderr. Each
/// event is handled against the real state, not against what earlier events of the replay
/// would have written. Nothing is published, committed, pushed, built or stored.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  flotilla replay 'build.>' --from-seq 120
  flotilla replay 'env.*.pr-ping-42' --since 2h --until 1h --json
  flotilla replay 'flotilla.>' --since 2024-05-01T00:00:00Z --to flotilla.replay
  flotilla replay 'build.succeeded.>' --since 1h --dry-run env-manager")]
#[command(group(clap::ArgGroup::new("start").args(["since", "from_seq"])))]
#[command(group(clap::ArgGroup::new("target").args(["to", "dry_run"])))]
pub struct Args {
    /// Which events: a NATS subject pattern (quote it in a shell); `build.>` is short for
    /// `flotilla.build.>`.
    #[arg(value_name = "SUBJECT_FILTER")]
    filter: String,
    /// Start with events stored this long ago (30s, 5m, 72h) or since an RFC 3339 time.
    #[arg(long, value_name = "DUR|TIME", value_parser = events::parse_time)]
    since: Option<OffsetDateTime>,
    /// Start at this stream sequence.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    from_seq: Option<u64>,
    /// Stop before events stored after this RFC 3339 time, or after this long ago (e.g. 1h).
    #[arg(long, value_name = "TIME|DUR", value_parser = events::parse_time)]
    until: Option<OffsetDateTime>,
    /// Republish under PREFIX instead of printing (e.g. flotilla.replay). A stream must store
    /// the new subjects: a prefix under `flotilla.` lands in FLOTILLA.
    #[arg(long, value_name = "PREFIX")]
    to: Option<String>,
    /// Feed the events to WORKER's handler in dry run and print what it would do (env-manager,
    /// builder-trigger); nothing is written or published.
    #[arg(long, value_name = "WORKER")]
    dry_run: Option<String>,
    /// With --dry-run: where `flotilla up` keeps its local GitOps repository, used when
    /// FLOTILLA_GITOPS_URL is not set.
    #[arg(
        long,
        env = "FLOTILLA_DATA_DIR",
        value_name = "DIR",
        default_value = ".flotilla"
    )]
    data_dir: PathBuf,
    /// Print one JSON object a line, as `flotilla tail --json` does (with --dry-run, one per
    /// event handled).
    #[arg(long, conflicts_with = "to")]
    json: bool,
    /// With --dry-run: the worker's settings, the same flags and variables as `flotilla up`'s.
    #[command(flatten, next_help_heading = "Worker settings (with --dry-run)")]
    settings: crate::fleet::WorkerSettings,
}

impl Args {
    fn start(&self) -> Start {
        match (self.from_seq, self.since) {
            (Some(seq), _) => Start::Seq(seq),
            (_, Some(time)) => Start::Time(time),
            _ => Start::All,
        }
    }
}

pub async fn run(nats: &NatsArgs, args: Args) -> Result<(), CliError> {
    let bus = crate::connect(nats).await?;
    let filter = events::filter(bus.names(), &args.filter)?;
    if let Some(worker) = &args.dry_run {
        let target = crate::dry_run::DryRun {
            worker,
            settings: &args.settings,
            data_dir: &args.data_dir,
            json: args.json,
        };
        return crate::dry_run::replay(&bus, target, &filter, args.start(), args.until).await;
    }
    let mut target = match &args.to {
        Some(prefix) => Some(Republisher::new(&bus, prefix, &filter).await?),
        None => None,
    };
    let mut reader =
        Reader::snapshot(&bus, &bus.names().stream, &filter, args.start(), args.until).await?;
    let mut progress = Progress::new(reader.total());
    match &mut target {
        Some(target) => {
            while let Some(stored) = reader.next().await? {
                progress.record(stored.seq);
                target.send(stored).await?;
            }
            target.finish().await?;
        }
        None => {
            let mut out = Output::buffered();
            while let Some(stored) = reader.next().await? {
                progress.record(stored.seq);
                out.event(&stored, args.json)?;
            }
            out.finish()?;
        }
    }
    eprintln!("{}", progress.summary(&filter, target.as_ref()));
    Ok(())
}

/// Republishes replayed events under another prefix, pipelined but in order.
struct Republisher {
    publisher: Publisher,
    bus: Bus,
    /// `flotilla.`: what is cut from the original subjects.
    source_prefix: String,
    prefix: String,
    /// Makes this run's `Nats-Msg-Id`s unique, so a second replay of the same events is
    /// stored again rather than dropped as a duplicate.
    run: String,
    in_flight: VecDeque<InFlight>,
}

struct InFlight {
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
    ack: PublishAckFuture,
}

impl Republisher {
    async fn new(bus: &Bus, prefix: &str, filter: &str) -> Result<Republisher, CliError> {
        let names = bus.names();
        let prefix = prefix.trim().trim_end_matches('.');
        if prefix.is_empty()
            || prefix
                .split('.')
                .any(|t| t.is_empty() || t == "*" || t == ">" || t.contains(char::is_whitespace))
        {
            return Err(CliError::Usage(format!(
                "--to `{prefix}` is not a subject prefix: use dot-separated tokens without \
                 wildcards, e.g. --to {}.replay",
                names.prefix
            )));
        }
        if prefix == names.prefix {
            return Err(CliError::Usage(format!(
                "--to {prefix} would publish the events again on their own subjects, where \
                 workers act on them a second time; use a prefix such as {prefix}.replay"
            )));
        }
        let republisher = Republisher {
            publisher: bus.publisher("cli"),
            bus: bus.clone(),
            source_prefix: format!("{}.", names.prefix),
            prefix: prefix.to_owned(),
            run: uuid::Uuid::new_v4().simple().to_string(),
            in_flight: VecDeque::new(),
        };
        // Checked before anything is read: events published where no stream listens are lost.
        let targets = republisher.subject_for(filter);
        match bus.jetstream().stream_by_subject(targets.as_str()).await {
            Ok(_) => Ok(republisher),
            Err(e) if matches!(e.kind(), GetStreamByNameErrorKind::NotFound) => {
                Err(republisher.no_stream(&targets))
            }
            Err(e) => Err(CliError::nats(format!("find the stream for {targets}"), e)),
        }
    }

    /// `flotilla.build.started.k` → `<prefix>.build.started.k`.
    fn subject_for(&self, original: &str) -> String {
        let rest = original
            .strip_prefix(&self.source_prefix)
            .unwrap_or(original);
        format!("{}.{rest}", self.prefix)
    }

    fn no_stream(&self, subject: &str) -> CliError {
        CliError::Usage(format!(
            "no stream stores {subject}, so replayed events would be lost; choose a prefix \
             under `{}` (stored in {}), e.g. --to {}replay",
            self.source_prefix,
            self.bus.names().stream,
            self.source_prefix,
        ))
    }

    fn failed(&self, err: BusError) -> CliError {
        match &err {
            BusError::Publish { subject, source }
                if source.kind() == PublishErrorKind::StreamNotFound =>
            {
                self.no_stream(subject)
            }
            _ => err.into(),
        }
    }

    async fn send(&mut self, stored: Stored) -> Result<(), CliError> {
        let subject = self.subject_for(&stored.subject);
        let mut headers = stored.headers.unwrap_or_default();
        headers.insert(
            header::MSG_ID,
            format!("replay:{}:{}", self.run, stored.seq),
        );
        headers.insert(header::REPLAYED_FROM, stored.seq.to_string());
        let message = PublishMessage::build()
            .payload(stored.payload.clone())
            .headers(headers.clone());
        let ack = self
            .bus
            .jetstream()
            .send_publish(subject.clone(), message)
            .await
            .map_err(|source| {
                self.failed(BusError::Publish {
                    subject: subject.clone(),
                    source,
                })
            })?;
        self.in_flight.push_back(InFlight {
            subject,
            headers,
            payload: stored.payload,
            ack,
        });
        if self.in_flight.len() >= WINDOW {
            self.confirm_oldest().await?;
        }
        Ok(())
    }

    /// Waits for the oldest ack; `false` when nothing is in flight.
    async fn confirm_oldest(&mut self) -> Result<bool, CliError> {
        let Some(InFlight {
            subject,
            headers,
            payload,
            ack,
        }) = self.in_flight.pop_front()
        else {
            return Ok(false);
        };
        match ack.await {
            Ok(_) => Ok(true),
            // The bus publisher sends it again with the same Nats-Msg-Id until it is acked, so
            // a copy that was stored after all (a reconnect) is not stored twice.
            Err(e) if e.kind() == PublishErrorKind::TimedOut => {
                self.publisher
                    .publish_raw(&subject, headers, payload)
                    .await
                    .map_err(|e| self.failed(e))?;
                Ok(true)
            }
            Err(source) => Err(self.failed(BusError::Publish { subject, source })),
        }
    }

    async fn finish(&mut self) -> Result<(), CliError> {
        while self.confirm_oldest().await? {}
        Ok(())
    }
}

/// Counts replayed events, shows progress on long replays and sums up at the end.
struct Progress {
    total: u64,
    count: u64,
    seqs: Option<(u64, u64)>,
    started: Instant,
    shown: Instant,
}

impl Progress {
    fn new(total: u64) -> Progress {
        let now = Instant::now();
        Progress {
            total,
            count: 0,
            seqs: None,
            started: now,
            shown: now,
        }
    }

    fn record(&mut self, seq: u64) {
        self.count += 1;
        let first = self.seqs.map_or(seq, |(first, _)| first);
        self.seqs = Some((first, seq));
        if self.shown.elapsed() >= PROGRESS_EVERY {
            // `total` counted what matched at the start, which --until may cut short.
            eprintln!("replayed {}/{}", self.count, self.total.max(self.count));
            self.shown = Instant::now();
        }
    }

    fn summary(&self, filter: &str, target: Option<&Republisher>) -> String {
        let elapsed = Duration::from_millis(self.started.elapsed().as_millis() as u64);
        let noun = if self.count == 1 { "event" } else { "events" };
        let mut text = format!("replayed {} {noun} of {filter}", self.count);
        if let Some((first, last)) = self.seqs {
            text.push_str(&format!(" (seq {first}..{last})"));
        }
        if let Some(target) = target {
            text.push_str(&format!(
                " to {}.* (replay run {})",
                target.prefix, target.run
            ));
        }
        text.push_str(&format!(" in {}", humantime::format_duration(elapsed)));
        text
    }
}
