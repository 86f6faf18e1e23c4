//! libgit2's network timeouts, which are process-wide.

use std::time::Duration;

use crate::error::{GitError, git};

/// Bounds libgit2's connects, and each read or write on a connection, on every network
/// transport. libgit2 waits forever by default: a remote that accepts the connection and never
/// answers would hold the caller for good.
///
/// These are process-wide options of libgit2 (one value for every repository in the process),
/// so the workers one process hosts share one value: they read it from the same
/// `FLOTILLA_GIT_TIMEOUT`. Call it before a repository's first network operation.
#[allow(unsafe_code)] // git2 exposes these options only as `unsafe fn`s.
pub fn set_network_timeout(timeout: Duration) -> Result<(), GitError> {
    let millis = i32::try_from(timeout.as_millis())
        .unwrap_or(i32::MAX)
        .max(1);
    // SAFETY: libgit2 reads these options when a connection opens; a connection opening at the
    // same time reads the old or the new value, both valid.
    unsafe {
        git2::opts::set_server_connect_timeout_in_milliseconds(millis)
            .map_err(git("set the connect timeout"))?;
        git2::opts::set_server_timeout_in_milliseconds(millis)
            .map_err(git("set the network timeout"))?;
    }
    Ok(())
}
