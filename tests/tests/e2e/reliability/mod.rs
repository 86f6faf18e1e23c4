//! The reliability suite's CI part: the six workers as separate processes on a private NATS
//! and a real GitOps repository, under faults (a clustered bus losing its stream leader,
//! workers killed with SIGKILL, a NATS restart) and hostile input (poison events, hostile
//! webhooks). The full run with 1,000 changes is `scripts/reliability`.
//!
//! Each test runs a whole fleet; they take turns, since two fleets at once on two cores would
//! measure the machine more than Flotilla.

mod cluster;
mod hostile;
mod outage;

use std::time::Duration;

use flotilla_e2e::fleet::Fleet;
use flotilla_e2e::scenario::Run;

/// One fleet at a time.
static FLEETS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Fails with the whole story when the run broke an invariant; keeps the fleet's logs then.
fn assert_clean(run: &Run, fleet: &mut Fleet, seed: u64) {
    if !run.verdict.ok() {
        let logs = fleet.keep_dir();
        panic!("{}", run.explain(seed, &logs));
    }
}

/// How long a CI run waits for its last changes after the last send.
const DRAIN: Duration = Duration::from_secs(60);
