//! Header names of the envelope and of Flotilla's own extensions.

pub const SPECVERSION: &str = "ce-specversion";
pub const ID: &str = "ce-id";
pub const SOURCE: &str = "ce-source";
pub const TYPE: &str = "ce-type";
pub const TIME: &str = "ce-time";
pub const SUBJECT: &str = "ce-subject";
pub const CONTENT_TYPE: &str = "content-type";
/// The binding maps every attribute to `ce-<name>`, `datacontenttype` included; Flotilla
/// sends it beside `content-type` and reads either.
pub const DATACONTENTTYPE: &str = "ce-datacontenttype";
pub const CHANGE_ID: &str = "flotilla-change-id";
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
pub const MSG_ID: &str = "Nats-Msg-Id";
/// Set by `flotilla dlq retry`: only the named worker handles the message.
pub const RETRY_FOR: &str = "flotilla-retry-for";
/// Set by `flotilla replay --to`: the stream sequence the event was copied from.
pub const REPLAYED_FROM: &str = "flotilla-replayed-from";
pub const DLQ_SUBJECT: &str = "flotilla-dlq-subject";
pub const DLQ_REASON: &str = "flotilla-dlq-reason";
pub const DLQ_WORKER: &str = "flotilla-dlq-worker";
pub const DLQ_DELIVERIES: &str = "flotilla-dlq-deliveries";
pub const DLQ_STREAM_SEQ: &str = "flotilla-dlq-stream-seq";
pub const DLQ_TIME: &str = "flotilla-dlq-time";
