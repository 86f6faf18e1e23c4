//! `flotilla tail`: follows events as they are stored, until Ctrl-C or SIGTERM.

use flotilla_bus::NatsArgs;
use time::OffsetDateTime;

use crate::error::CliError;
use crate::events::{self, Reader, Start};
use crate::render::Output;
use crate::signals::Stop;

/// Follow events as they are stored.
///
/// Prints each event as it arrives: stream sequence, time, subject, type, id, change id and the
/// data as compact JSON; with --json one object a line:
/// {"seq","subject","type","id","time","change_id","data"} (`type` is the CloudEvents type,
/// e.g. `dev.flotilla.build.started.v1`, in both forms).
/// Messages without a valid envelope are shown with what is known and an "error" field.
/// Starts with new events unless told to start earlier; stops on Ctrl-C or SIGTERM.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  flotilla tail
  flotilla tail 'build.>' --since 10m
  flotilla tail 'env.*.pr-ping-42' --all --json | jq .data")]
#[command(group(clap::ArgGroup::new("start").args(["since", "from_seq", "all"])))]
pub struct Args {
    /// Which events: a NATS subject pattern (quote it in a shell); `build.>` is short for
    /// `flotilla.build.>`.
    #[arg(value_name = "SUBJECT_FILTER", default_value = "flotilla.>")]
    filter: String,
    /// Print one JSON object a line.
    #[arg(long)]
    json: bool,
    /// Start with events stored this long ago (30s, 5m, 72h) or since an RFC 3339 time.
    #[arg(long, value_name = "DUR|TIME", value_parser = events::parse_time)]
    since: Option<OffsetDateTime>,
    /// Start at this stream sequence.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    from_seq: Option<u64>,
    /// Start with the oldest event the stream still holds.
    #[arg(long)]
    all: bool,
}

impl Args {
    fn start(&self) -> Start {
        match (self.from_seq, self.since) {
            (Some(seq), _) => Start::Seq(seq),
            (_, Some(time)) => Start::Time(time),
            _ if self.all => Start::All,
            _ => Start::New,
        }
    }
}

pub async fn run(nats: &NatsArgs, args: Args) -> Result<(), CliError> {
    // Installed first, so a signal that arrives while connecting still ends the command cleanly.
    let mut stop = Stop::install()?;
    let bus = crate::connect(nats).await?;
    let filter = events::filter(bus.names(), &args.filter)?;
    let mut reader = Reader::follow(&bus, &bus.names().stream, &filter, args.start()).await?;
    eprintln!("following {filter} (Ctrl-C to stop)");
    let mut out = Output::live();
    loop {
        tokio::select! {
            () = stop.wait() => return out.finish(),
            next = reader.next() => match next? {
                Some(stored) => out.event(&stored, args.json)?,
                None => return out.finish(),
            },
        }
    }
}
