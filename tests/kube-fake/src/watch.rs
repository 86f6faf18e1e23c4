//! Watch streams: history after the client's resourceVersion, then live changes, one JSON
//! object a line, open until `timeoutSeconds`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use serde_json::json;
use tokio::sync::{broadcast, watch};

use crate::select::Filter;
use crate::store::{Change, Fake, Signal};

/// The body of `GET ...?watch=true`.
pub(crate) fn body(
    fake: &Fake,
    index: usize,
    filter: Filter,
    rv: u64,
    timeout: Duration,
    initial: Vec<serde_json::Value>,
) -> Body {
    let (history, live, signals) = match fake.subscribe(index, &filter, rv) {
        Ok(parts) => parts,
        Err(too_old) => return Body::from(expired(too_old)),
    };
    let last = history.last().map_or(rv, |c| c.rv);
    let state = Stream {
        pending: initial
            .into_iter()
            .map(|object| to_line(json!({"type": "ADDED", "object": object})))
            .chain(history.iter().map(|c| line(c)))
            .collect(),
        live,
        signals,
        filter,
        index,
        last,
        deadline: tokio::time::Instant::now() + timeout,
        done: false,
    };
    Body::from_stream(futures::stream::unfold(state, |mut s| async move {
        let line = s.next().await?;
        Some((Ok::<Bytes, Infallible>(line), s))
    }))
}

struct Stream {
    pending: VecDeque<Bytes>,
    live: broadcast::Receiver<Arc<Change>>,
    signals: watch::Receiver<Signal>,
    filter: Filter,
    index: usize,
    /// The newest resourceVersion sent: live changes at or below it were in the history.
    last: u64,
    deadline: tokio::time::Instant,
    done: bool,
}

impl Stream {
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(line) = self.pending.pop_front() {
            return Some(line);
        }
        if self.done {
            return None;
        }
        loop {
            tokio::select! {
                change = self.live.recv() => match change {
                    Ok(change) => {
                        if change.rv > self.last && change.resource == self.index && self.filter.matches(&change.object) {
                            self.last = change.rv;
                            return Some(line(&change));
                        }
                    }
                    // Fell behind: as a real server would, tell the client to relist.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.done = true;
                        return Some(expired(self.last));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                changed = self.signals.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    let signal = *self.signals.borrow_and_update();
                    match signal {
                        Signal::Close => return None,
                        Signal::Expire => {
                            self.done = true;
                            return Some(expired(self.last));
                        }
                        Signal::None => {}
                    }
                }
                () = tokio::time::sleep_until(self.deadline) => return None,
            }
        }
    }
}

fn line(change: &Change) -> Bytes {
    to_line(json!({"type": change.kind, "object": change.object}))
}

fn expired(rv: u64) -> Bytes {
    let status = crate::status(
        410,
        "Expired",
        &format!("too old resource version: {rv}"),
        json!({}),
    );
    to_line(json!({"type": "ERROR", "object": status}))
}

/// One event: the client splits the stream on newlines.
fn to_line(event: serde_json::Value) -> Bytes {
    let mut text = event.to_string();
    text.push('\n');
    Bytes::from(text)
}
