//! Ending long-running commands (`tail`, `up`) cleanly on Ctrl-C or SIGTERM.

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::error::CliError;

/// Ctrl-C or SIGTERM: both end the command normally (exit 0).
pub struct Stop {
    interrupt: Signal,
    terminate: Signal,
}

impl Stop {
    pub fn install() -> Result<Stop, CliError> {
        let listen = |kind| {
            signal(kind).map_err(|source| CliError::System {
                what: "install signal handlers",
                source,
            })
        };
        Ok(Stop {
            interrupt: listen(SignalKind::interrupt())?,
            terminate: listen(SignalKind::terminate())?,
        })
    }

    pub async fn wait(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
