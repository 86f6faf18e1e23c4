//! The same names as [`super::header`], as `HeaderName`s: inserting or looking up with these
//! allocates nothing, which matters on the per-event path.

use async_nats::HeaderName;

use super::header;

pub const SPECVERSION: HeaderName = HeaderName::from_static(header::SPECVERSION);
pub const ID: HeaderName = HeaderName::from_static(header::ID);
pub const SOURCE: HeaderName = HeaderName::from_static(header::SOURCE);
pub const TYPE: HeaderName = HeaderName::from_static(header::TYPE);
pub const TIME: HeaderName = HeaderName::from_static(header::TIME);
pub const SUBJECT: HeaderName = HeaderName::from_static(header::SUBJECT);
pub const CONTENT_TYPE: HeaderName = HeaderName::from_static(header::CONTENT_TYPE);
pub const DATACONTENTTYPE: HeaderName = HeaderName::from_static(header::DATACONTENTTYPE);
pub const CHANGE_ID: HeaderName = HeaderName::from_static(header::CHANGE_ID);
pub const TRACEPARENT: HeaderName = HeaderName::from_static(header::TRACEPARENT);
pub const TRACESTATE: HeaderName = HeaderName::from_static(header::TRACESTATE);
pub const MSG_ID: HeaderName = HeaderName::from_static(header::MSG_ID);
pub const RETRY_FOR: HeaderName = HeaderName::from_static(header::RETRY_FOR);
