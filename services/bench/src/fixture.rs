//! The benchmark's own streams: made for one run, deleted after it, never `FLOTILLA`.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use flotilla_bus::topology::StreamLimits;
use flotilla_bus::{Bus, Names};

use crate::error::BenchError;

/// The streams of one run: the bus's (as `flotilla init` makes them, under isolated names) and
/// a bare stream with the same settings.
pub(crate) struct Fixture {
    /// A bus on the isolated names.
    pub(crate) bus: Bus,
    /// The bare pipeline's stream and subject prefix (its other names go unused).
    pub(crate) bare: Names,
    /// Every stream this run may create, whether or not it got that far.
    streams: Vec<String>,
}

impl Fixture {
    /// Names unique to this run, so concurrent runs on one server never meet.
    pub(crate) fn new(client: async_nats::Client) -> Fixture {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let tag = format!("bench-{}", &run[..8]);
        let bus = Bus::new(client, Names::isolated(&tag));
        let bare = Names::isolated(&format!("{tag}-bare"));
        let names = bus.names();
        let streams = vec![
            names.stream.clone(),
            names.dlq_stream.clone(),
            // The buckets' streams, which `ensure_streams` makes too.
            format!("KV_{}", names.envs_bucket),
            format!("KV_{}", names.canaries_bucket),
            bare.stream.clone(),
        ];
        Fixture { bus, bare, streams }
    }

    /// The names of every stream the run may create.
    pub(crate) fn stream_names(&self) -> &[String] {
        &self.streams
    }

    /// Creates the streams; returns the bus's main stream and the bare one.
    pub(crate) async fn create(&self) -> Result<(stream::Stream, stream::Stream), BenchError> {
        // A run that is killed leaves its streams behind; a short max age bounds what they
        // hold until someone deletes them. Nothing expires during a run.
        let limits = StreamLimits {
            max_age: Duration::from_secs(3600),
            ..StreamLimits::default()
        };
        self.bus
            .ensure_streams(&limits)
            .await
            .map_err(|e| BenchError::setup("create the bus's streams", e))?;
        let main = self
            .bus
            .stream()
            .await
            .map_err(|e| BenchError::setup("read the bus's stream", e))?;
        // Same storage, retention, duplicate window and limits as the bus's stream, so the two
        // pipelines differ only in what runs on top of JetStream.
        let bare_config = stream::Config {
            name: self.bare.stream.clone(),
            description: Some("Flotilla benchmark: bare JetStream".into()),
            subjects: vec![format!("{}.>", self.bare.prefix)],
            ..main.cached_info().config.clone()
        };
        let bare = self
            .bus
            .jetstream()
            .create_stream(bare_config)
            .await
            .map_err(|e| BenchError::setup(format!("create stream {}", self.bare.stream), e))?;
        Ok((main, bare))
    }

    /// Deletes every stream of the run (and with them their consumers). Streams that were
    /// never created are fine.
    pub(crate) async fn delete(&self) -> Result<(), BenchError> {
        let js = self.bus.jetstream();
        let mut left = Vec::new();
        let mut first_error = None;
        for name in &self.streams {
            match js.delete_stream(name).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    left.push(name.as_str());
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(source) => Err(BenchError::Cleanup {
                names: left.join(", "),
                source: source.into(),
            }),
        }
    }
}

/// The result of a run whose streams were then deleted: the measurement's failure is the one
/// worth reporting; leftovers are still logged, since they are named nowhere else.
pub(crate) fn after_cleanup<T>(
    measured: Result<T, BenchError>,
    cleaned: Result<(), BenchError>,
) -> Result<T, BenchError> {
    match (measured, cleaned) {
        (Ok(report), Ok(())) => Ok(report),
        (Err(e), Ok(())) | (Ok(_), Err(e)) => Err(e),
        (Err(e), Err(cleanup)) => {
            tracing::warn!(error = %cleanup, "benchmark streams left behind");
            Err(e)
        }
    }
}

fn is_not_found(err: &jetstream::context::DeleteStreamError) -> bool {
    matches!(
        err.kind(),
        jetstream::context::DeleteStreamErrorKind::JetStream(js)
            if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}
