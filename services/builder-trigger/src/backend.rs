//! What every backend is given and what it reports: a [`Run`] in, an [`Outcome`] out.
//!
//! The handler describes a build or test run once, the same way for every backend (the
//! `FLOTILLA_*` variables of the change, a stable id, a timeout, a way to cancel it), and turns
//! whatever the backend reports into `build.*` or `tests.*` events. A backend never fails the
//! handler: a run that cannot even start is a failed outcome with the reason.

use sha2::{Digest, Sha256};

use crate::command;
use crate::http;
use crate::job;
// The run and its outcome live in a leaf module the backends import without importing this one.
pub use crate::run::{Cancel, EXCERPT_LINES, Kind, Outcome, Run, Status, last_lines};

/// The backend builds and tests run on.
// One per process, moved rather than copied around: the size of the kube client is no cost.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Runner {
    Command(command::Backend),
    Http(http::Backend),
    Job(job::Backend),
}

impl Runner {
    /// Runs `run` to its end, its timeout or its cancellation.
    pub async fn run(&self, run: &Run, cancel: &Cancel) -> Outcome {
        match self {
            Runner::Command(backend) => backend.run(run, cancel).await,
            Runner::Http(backend) => backend.run(run, cancel).await,
            Runner::Job(backend) => backend.run(run, cancel).await,
        }
    }

    /// Lets the backend use the NATS connection: the http backend hands callbacks that reach
    /// this replica for runs waiting in another to that one, over core NATS.
    pub async fn attach(&self, client: &async_nats::Client) {
        if let Runner::Http(backend) = self {
            backend.attach(client).await;
        }
    }

    /// Whether this backend has a test run configured; without one tests pass at once.
    pub fn runs_tests(&self) -> bool {
        match self {
            Runner::Command(backend) => backend.runs_tests(),
            Runner::Http(backend) => backend.runs_tests(),
            Runner::Job(_) => true,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Runner::Command(_) => "command",
            Runner::Http(_) => "http",
            Runner::Job(_) => "job",
        }
    }
}

/// A DNS-1123 label of at most 63 characters: `<prefix>-<parts>`, lowercased, with characters
/// outside `[a-z0-9-]` made '-', shortened with a hash of the whole when longer.
pub fn dns_label(prefix: &str, parts: &[&str]) -> String {
    let mut name = String::from(prefix);
    for part in parts {
        name.push('-');
        name.push_str(part);
    }
    let clean: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    let clean = clean.trim_matches('-').to_owned();
    if clean == name && clean.len() <= 63 {
        return clean;
    }
    // Shortened (or changed) names keep a hash of the original, so two never collide.
    let hash = hex::encode(&Sha256::digest(name.as_bytes())[..4]);
    let keep = clean.len().min(63 - 9);
    format!("{}-{hash}", clean[..keep].trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_dns_labels_and_long_ones_keep_a_hash() {
        assert_eq!(
            dns_label("build", &["ping-v20240305070809-1a2b3c4"]),
            "build-ping-v20240305070809-1a2b3c4"
        );
        let long = "a".repeat(80);
        let a = dns_label("test", &[&long, "x"]);
        let b = dns_label("test", &[&long, "y"]);
        assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
        assert_ne!(a, b);
        let odd = dns_label("test", &["Acme_Ping"]);
        assert!(odd.starts_with("test-acme-ping-"), "{odd}");
    }
}
