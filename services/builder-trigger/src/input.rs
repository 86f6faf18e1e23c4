//! What builder-trigger acts on, parsed once from an event: the handler matches this enum, so
//! an event type it does not act on is named in one place and counted by the runtime.

use flotilla_bus::{Event, EventType};
use flotilla_proto::v1::{Environment, PullRequest, Push};

use crate::error::Error;

/// An event builder-trigger acts on, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A push may start a build.
    Push(Push),
    /// A pull request's opening or new head may start a build.
    PullRequest(PullRequest),
    /// A ready environment gets its change's tests.
    EnvReady(Environment),
    /// A requested environment gets its change's provision hooks.
    EnvRequested(Environment),
    /// A torn-down environment gets the deprovision of its hooks.
    EnvDeleted(Environment),
}

impl Input {
    /// Decodes `event`; `Ok(None)` for a type builder-trigger does not act on.
    pub fn from_event(event: &Event) -> Result<Option<Input>, Error> {
        let input = match event.kind() {
            Some(EventType::SourcePush) => Input::Push(event.decode()?),
            Some(EventType::SourcePullRequest) => Input::PullRequest(event.decode()?),
            Some(EventType::EnvReady) => Input::EnvReady(event.decode()?),
            Some(EventType::EnvRequested) => Input::EnvRequested(event.decode()?),
            Some(EventType::EnvDeleted) => Input::EnvDeleted(event.decode()?),
            _ => return Ok(None),
        };
        Ok(Some(input))
    }
}
