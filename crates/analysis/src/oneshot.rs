//! One call for a command line: template text and `--arg` values in, a verdict out. A template
//! that cannot be read or bound is a verdict of phase Error whose message names the field (and
//! line), as Argo puts such a run in Error before measuring.

use std::time::Duration;

use crate::phase::Phase;
use crate::result::{Summary, Verdict};
use crate::run::{Event, Provider, RunOptions, run};
use crate::template::Template;

/// Reads, binds and runs `yaml`, reporting each measurement through `on_event`.
pub async fn run_yaml(
    yaml: &str,
    args: &[(String, String)],
    provider: &dyn Provider,
    options: RunOptions,
    on_event: &mut (dyn FnMut(Event<'_>) + Send),
) -> Verdict {
    let analysis = match Template::from_yaml(yaml).and_then(|t| t.bind(args)) {
        Ok(a) => a,
        Err(e) => {
            return Verdict {
                phase: Phase::Error,
                message: e.to_string(),
                metrics: Vec::new(),
                summary: Summary::default(),
                dry_run_summary: Summary::default(),
                elapsed: Duration::ZERO,
            };
        }
    };
    run(&analysis, provider, options, on_event).await
}

impl Verdict {
    /// The exit status `flotilla analysis run` uses: 0 Successful, 1 Failed, 2 Inconclusive,
    /// 3 Error (and anything unfinished).
    pub fn exit_code(&self) -> i32 {
        match self.phase {
            Phase::Successful => 0,
            Phase::Failed => 1,
            Phase::Inconclusive => 2,
            _ => 3,
        }
    }
}
