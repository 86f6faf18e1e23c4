//! Reading what a stream stored, through an ordered push consumer: either following new
//! messages (`tail`) or reading up to what was stored when the read began (`replay`, `dlq`).
//!
//! Push ordered consumers, not pull ones: on nats-server 2.9 a pull ordered consumer stalls for
//! about 80 s after a server restart, while a push ordered one picks up again at once.

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{DeliverPolicy, push};
use async_nats::jetstream::stream;
use bytes::Bytes;
use flotilla_bus::topology::is_stream_not_found;
use flotilla_bus::{Bus, Names};
use futures::StreamExt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::CliError;

/// Where reading starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Only what is stored from now on.
    New,
    /// The oldest message the stream still holds.
    All,
    /// This stream sequence.
    Seq(u64),
    /// The first message stored at or after this time.
    Time(OffsetDateTime),
}

impl Start {
    fn deliver_policy(self) -> DeliverPolicy {
        match self {
            Start::New => DeliverPolicy::New,
            Start::All => DeliverPolicy::All,
            Start::Seq(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
            Start::Time(start_time) => DeliverPolicy::ByStartTime { start_time },
        }
    }
}

/// Parses a `--since` / `--until` value: an RFC 3339 time, or a duration meaning that long ago.
pub fn parse_time(value: &str) -> Result<OffsetDateTime, String> {
    if let Ok(time) = OffsetDateTime::parse(value, &Rfc3339) {
        return Ok(time);
    }
    let not_a_time = |why: String| {
        format!(
            "`{value}` is neither an RFC 3339 time (2024-05-01T12:00:00Z) nor a duration \
             (30s, 5m, 72h): {why}"
        )
    };
    let ago = humantime::parse_duration(value).map_err(|e| not_a_time(e.to_string()))?;
    time::Duration::try_from(ago)
        .ok()
        .and_then(|ago| OffsetDateTime::now_utc().checked_sub(ago))
        .ok_or_else(|| not_a_time("too long ago".into()))
}

/// The full subject pattern of a filter given on the command line: `build.>` means
/// `flotilla.build.>`.
pub fn filter(names: &Names, pattern: &str) -> Result<String, CliError> {
    let full = names.subject(pattern.trim());
    let tokens: Vec<&str> = full.split('.').collect();
    let bad_token = tokens.iter().enumerate().find(|(i, token)| {
        token.is_empty()
            || token.contains(char::is_whitespace)
            || (**token == ">" && *i + 1 != tokens.len())
    });
    match bad_token {
        None => Ok(full),
        Some(_) => Err(CliError::Usage(format!(
            "`{pattern}` is not a subject filter: tokens are separated by single dots, `*` \
             matches one token and `>` the rest (e.g. `build.>`, `env.*.pr-ping-42`)"
        ))),
    }
}

/// One message as the stream stored it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub seq: u64,
    pub subject: String,
    pub headers: Option<HeaderMap>,
    pub payload: Bytes,
    /// When the server stored it.
    pub stored_at: OffsetDateTime,
}

impl Stored {
    /// The value of header `name`, when present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str())
    }
}

/// Looks a stream up, saying what to do when it was never created.
pub async fn open_stream(bus: &Bus, name: &str) -> Result<stream::Stream, CliError> {
    bus.jetstream().get_stream(name).await.map_err(|e| {
        if is_stream_not_found(&e) {
            CliError::Usage(format!(
                "stream {name} does not exist; create it with `flotilla init`"
            ))
        } else {
            CliError::nats(format!("look up stream {name}"), e)
        }
    })
}

/// Reads a stream in order through an ephemeral ordered consumer.
pub struct Reader {
    messages: push::Ordered,
    /// The last stream sequence that is not (or no longer) to be returned. After a reconnect
    /// async-nats recreates the consumer from the last sequence it delivered, but from the
    /// very start of the stream when it delivered none yet, whatever the start asked for.
    floor: u64,
    total: u64,
    /// Set for a snapshot: where reading stops.
    end: Option<End>,
    done: bool,
}

#[derive(Debug, Clone, Copy)]
struct End {
    /// The stream's last sequence when the read began.
    seq: u64,
    /// Messages stored after this time end the read too.
    until: Option<OffsetDateTime>,
}

impl Reader {
    /// Follows `filter` on stream `stream_name` from `start`, for as long as the caller reads.
    pub async fn follow(
        bus: &Bus,
        stream_name: &str,
        filter: &str,
        start: Start,
    ) -> Result<Reader, CliError> {
        let stream = open_stream(bus, stream_name).await?;
        Reader::open(bus, &stream, filter, start, None).await
    }

    /// Reads `filter` on stream `stream_name` from `start` up to what was stored when it
    /// began, or up to the last message stored at or before `until`.
    pub async fn snapshot(
        bus: &Bus,
        stream_name: &str,
        filter: &str,
        start: Start,
        until: Option<OffsetDateTime>,
    ) -> Result<Reader, CliError> {
        let mut stream = open_stream(bus, stream_name).await?;
        // Read before the consumer exists: anything stored later is not part of the snapshot
        // (replaying into the same stream would otherwise never catch up with itself).
        let last = stream
            .info()
            .await
            .map_err(|e| CliError::nats(format!("read stream {stream_name}"), e))?
            .state
            .last_sequence;
        let end = End { seq: last, until };
        Reader::open(bus, &stream, filter, start, Some(end)).await
    }

    async fn open(
        bus: &Bus,
        stream: &stream::Stream,
        filter: &str,
        start: Start,
        end: Option<End>,
    ) -> Result<Reader, CliError> {
        let consumer = stream
            .create_consumer(push::OrderedConfig {
                deliver_subject: bus.client().new_inbox(),
                filter_subject: filter.to_owned(),
                deliver_policy: start.deliver_policy(),
                ..Default::default()
            })
            .await
            .map_err(|e| CliError::nats(format!("read {filter}"), e))?;
        let info = consumer.cached_info();
        // The server reports a new consumer as having delivered up to just before its start.
        let (floor, total) = (info.delivered.stream_sequence, info.num_pending);
        let messages = consumer
            .messages()
            .await
            .map_err(|e| CliError::nats(format!("subscribe to {filter}"), e))?;
        Ok(Reader {
            messages,
            floor,
            total,
            end,
            // A snapshot with nothing to read must not wait for a first message.
            done: end.is_some() && total == 0,
        })
    }

    /// How many messages matched when the reader began (a snapshot may stop earlier at `until`).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The next message; `None` once a snapshot is complete. Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<Stored>, CliError> {
        while !self.done {
            let (stored, pending) = self.receive().await?;
            if stored.seq <= self.floor {
                continue;
            }
            self.floor = stored.seq;
            if let Some(end) = self.end {
                let late = end.until.is_some_and(|until| stored.stored_at > until);
                if stored.seq > end.seq || late {
                    self.done = true;
                    return Ok(None);
                }
                // `pending` counts what still matches, so 0 means the read has caught up even
                // when the stream's last message is on another subject.
                self.done = stored.seq == end.seq || pending == 0;
            }
            return Ok(Some(stored));
        }
        Ok(None)
    }

    /// The next message the consumer delivers, and how many matching ones are left after it.
    async fn receive(&mut self) -> Result<(Stored, u64), CliError> {
        loop {
            let message = match self.messages.next().await {
                Some(Ok(message)) => message,
                // The consumer went quiet (e.g. the server restarted) and is being recreated;
                // `floor` drops whatever it delivers a second time.
                Some(Err(e)) if e.kind() == push::OrderedErrorKind::MissingHeartbeat => {
                    tracing::debug!("ordered consumer missed a heartbeat; it is recreated");
                    continue;
                }
                Some(Err(e)) => return Err(CliError::nats("read the stream", e)),
                None => {
                    return Err(CliError::nats(
                        "read the stream",
                        "the subscription ended: the NATS connection was closed",
                    ));
                }
            };
            let (seq, stored_at, pending) = match message.info() {
                Ok(info) => (info.stream_sequence, info.published, info.pending),
                Err(e) => return Err(CliError::nats("read the message metadata", e)),
            };
            let message = message.message;
            let stored = Stored {
                seq,
                subject: message.subject.to_string(),
                headers: message.headers,
                payload: message.payload,
                stored_at,
            };
            return Ok((stored, pending));
        }
    }
}

/// An RFC 3339 rendering of `time`.
pub fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_else(|_| time.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_shorthand_below_the_prefix() {
        let names = Names::default();
        assert_eq!(
            filter(&names, "build.>").ok().as_deref(),
            Some("flotilla.build.>")
        );
        assert_eq!(
            filter(&names, "flotilla.env.*.pr-1").ok().as_deref(),
            Some("flotilla.env.*.pr-1")
        );
        assert_eq!(filter(&names, ">").ok().as_deref(), Some("flotilla.>"));
    }

    #[test]
    fn malformed_filters_are_usage_errors() {
        let names = Names::default();
        for bad in ["build..x", "build.>.x", "build.a b", "build."] {
            let err = filter(&names, bad).expect_err(bad);
            assert_eq!(err.exit_code(), crate::error::EX_USAGE, "{bad}");
        }
    }

    #[test]
    fn times_are_rfc3339_or_durations_ago() {
        let at = parse_time("2024-05-01T12:00:00Z").expect("rfc3339");
        assert_eq!(rfc3339(at), "2024-05-01T12:00:00Z");

        let ago = parse_time("90m").expect("duration");
        let elapsed = OffsetDateTime::now_utc() - ago;
        assert!(
            elapsed >= time::Duration::minutes(90) && elapsed < time::Duration::minutes(91),
            "{elapsed}"
        );

        let err = parse_time("yesterday").expect_err("neither");
        assert!(err.contains("RFC 3339"), "{err}");
    }
}
