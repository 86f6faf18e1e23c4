//! What env-manager acts on, parsed once from an event: the handler matches this enum, so an
//! event type it does not act on is named in one place and counted by the runtime.

use flotilla_bus::{Event, EventType};
use flotilla_proto::v1::{Build, Canary, Environment, PullRequest, TeardownRequest, TestResult};

use crate::error::Error;

/// An event env-manager acts on, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A built change gets its environment.
    BuildSucceeded(Build),
    /// Passed staging tests promote the change.
    TestsPassed(TestResult),
    /// Failed tests mark the environment failed.
    TestsFailed(TestResult),
    /// A closed or unlabelled pull request tears its preview down.
    PullRequest(PullRequest),
    /// A teardown removes the environment.
    TeardownRequested(TeardownRequest),
    /// Hibernation: a preview env suspended, or resumed as it was.
    SuspendRequested(TeardownRequest),
    ResumeRequested(TeardownRequest),
    /// sync-watcher's verdict on an environment, reported on the change's commit.
    EnvReady(Environment),
    EnvFailed(Environment),
    /// A canary's end: reported, and an aborted one rolls production back.
    CanaryPromoted(Canary),
    CanaryAborted(Canary),
}

impl Input {
    /// Decodes `event`; `Ok(None)` for a type env-manager does not act on.
    pub fn from_event(event: &Event) -> Result<Option<Input>, Error> {
        let input = match event.kind() {
            Some(EventType::BuildSucceeded) => Input::BuildSucceeded(event.decode()?),
            Some(EventType::TestsPassed) => Input::TestsPassed(event.decode()?),
            Some(EventType::TestsFailed) => Input::TestsFailed(event.decode()?),
            Some(EventType::SourcePullRequest) => Input::PullRequest(event.decode()?),
            Some(EventType::EnvTeardownRequested) => Input::TeardownRequested(event.decode()?),
            Some(EventType::EnvSuspendRequested) => Input::SuspendRequested(event.decode()?),
            Some(EventType::EnvResumeRequested) => Input::ResumeRequested(event.decode()?),
            Some(EventType::EnvReady) => Input::EnvReady(event.decode()?),
            Some(EventType::EnvFailed) => Input::EnvFailed(event.decode()?),
            Some(EventType::CanaryPromoted) => Input::CanaryPromoted(event.decode()?),
            Some(EventType::CanaryAborted) => Input::CanaryAborted(event.decode()?),
            _ => return Ok(None),
        };
        Ok(Some(input))
    }
}
