//! The handler: `release.requested` in, checked, claimed in the lease bucket and handed to the
//! supervisor. A release another replica holds, or one already judged, starts nothing here.

use flotilla_bus::{Ctx, Event, EventType, Handler, HandlerError, Outgoing};
use flotilla_proto::v1::Release;

use crate::lease::Leases;
use crate::release::Job;
use crate::supervisor::{self, Supervisor};

/// canary-analyzer's [`Handler`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CanaryAnalyzer {
    leases: Leases,
    supervisor: Supervisor,
}

impl CanaryAnalyzer {
    pub fn new(leases: Leases, supervisor: Supervisor) -> CanaryAnalyzer {
        CanaryAnalyzer { leases, supervisor }
    }
}

impl Handler for CanaryAnalyzer {
    async fn handle(&self, event: Event, ctx: Ctx) -> Result<Vec<Outgoing>, HandlerError> {
        if event.kind() != Some(EventType::ReleaseRequested) {
            return Err(HandlerError::unhandled(event.event_type()));
        }
        let release: Release = event.decode().map_err(HandlerError::permanent)?;
        let job = Job::from_proto(release).map_err(HandlerError::permanent)?;
        if ctx.dry_run.is_some() {
            // A lease is a side effect: a dry run only says what would be judged.
            tracing::info!(release = %job.release, analysis = ?job.analysis, "would judge the release");
            return Ok(Vec::new());
        }
        let traceparent =
            flotilla_bus::trace::traceparent(Some(&event.headers)).unwrap_or_default();
        supervisor::claim(&self.leases, &self.supervisor, &job, &traceparent)
            .await
            .map_err(HandlerError::retryable)?;
        Ok(Vec::new())
    }
}
