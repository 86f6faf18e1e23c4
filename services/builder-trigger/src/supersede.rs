//! A newer push to a pull request supersedes its running build (of another head).
//!
//! Every replica keeps, per pull request, the newest head it has heard of (by the event's
//! `ce-time`) and the builds it is running. Starting a build cancels the replica's own older
//! builds of that pull request at once, and announces the new head on the core NATS subject
//! [`SUBJECT`]; every replica hearing it cancels its older builds too and remembers the head,
//! so an older push delivered later (a redelivery, a slow replica) is refused without running.
//!
//! What holds: with one replica, always. With several, whenever the replica running the old
//! build is connected when the new build is announced; core NATS is at-most-once, so a replica
//! cut off at that moment finishes its old build, and both outcomes are published (the later
//! one carries the newer version, which is what the preview ends up with).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use flotilla_bus::Tasks;
use flotilla_bus::dry_run::{EffectKind, Recorder};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::run::Cancel;

/// Where replicas announce the newest head of a pull request. Outside `flotilla.>`, so the
/// event stream does not store it.
pub const SUBJECT: &str = "flotilla-control.builder-trigger.supersede";

/// Entries kept before heads of idle pull requests are forgotten.
const MAX_ENTRIES: usize = 4096;

/// A pull request: `owner/name` (lowercased) and number.
pub type PrKey = (String, u64);

/// The newest heads and running builds of pull requests. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Supersede {
    inner: Arc<Mutex<HashMap<PrKey, Entry>>>,
    /// Set once this replica listens on [`SUBJECT`].
    listening: Arc<AtomicBool>,
    replica: Arc<str>,
    /// Set in a dry run: announcements are recorded here instead of sent.
    recorder: Option<Recorder>,
}

#[derive(Debug)]
struct Entry {
    at: OffsetDateTime,
    sha: String,
    running: Vec<Running>,
}

#[derive(Debug)]
struct Running {
    id: u64,
    at: OffsetDateTime,
    sha: String,
    cancel: Cancel,
}

/// A running build's registration; dropping it forgets the build.
#[derive(Debug)]
pub struct Guard {
    registry: Supersede,
    key: PrKey,
    id: u64,
    pub cancel: Cancel,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut map = self.registry.lock();
        if let Some(entry) = map.get_mut(&self.key) {
            entry.running.retain(|r| r.id != self.id);
        }
    }
}

/// What a replica announces.
#[derive(Debug, Serialize, Deserialize)]
struct Announcement {
    repo: String,
    pr: u64,
    sha: String,
    at: String,
    replica: String,
}

impl Supersede {
    pub fn new() -> Supersede {
        Supersede {
            replica: Arc::from(uuid::Uuid::new_v4().to_string()),
            ..Supersede::default()
        }
    }

    /// This registry of running builds in a dry run: it tracks them as usual, and records the
    /// announcements to other replicas instead of sending them.
    pub fn recording(mut self, recorder: Recorder) -> Supersede {
        self.recorder = Some(recorder);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PrKey, Entry>> {
        // Entries are replaced whole: a panic elsewhere leaves the map usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a build of `sha`, pushed at `at`, cancelling older running builds of the pull
    /// request. `Err` names the newer head that supersedes this build before it starts.
    pub fn begin(&self, key: PrKey, at: OffsetDateTime, sha: &str) -> Result<Guard, String> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let mut map = self.lock();
        if let Some(entry) = map.get(&key)
            && entry.at > at
            && entry.sha != sha
        {
            return Err(entry.sha.clone());
        }
        observe_locked(&mut map, key.clone(), at, sha);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cancel = Cancel::new();
        if let Some(entry) = map.get_mut(&key) {
            entry.running.push(Running {
                id,
                at,
                sha: sha.to_owned(),
                cancel: cancel.clone(),
            });
        }
        drop(map);
        Ok(Guard {
            registry: self.clone(),
            key,
            id,
            cancel,
        })
    }

    /// Notes that `sha` was pushed to the pull request at `at`: older running builds of it are
    /// cancelled.
    pub fn observe(&self, key: PrKey, at: OffsetDateTime, sha: &str) {
        observe_locked(&mut self.lock(), key, at, sha);
    }

    /// Tells the other replicas (best effort; see the module's notes).
    pub async fn announce(
        &self,
        client: &async_nats::Client,
        key: &PrKey,
        at: OffsetDateTime,
        sha: &str,
    ) {
        let announcement = Announcement {
            repo: key.0.clone(),
            pr: key.1,
            sha: sha.to_owned(),
            at: at.format(&Rfc3339).unwrap_or_default(),
            replica: self.replica.to_string(),
        };
        let Ok(payload) = serde_json::to_vec(&announcement) else {
            return;
        };
        if let Some(recorder) = &self.recorder {
            recorder.record(
                EffectKind::Publish,
                format!(
                    "announce {} as the head of {}#{} on {SUBJECT}",
                    announcement.sha, announcement.repo, announcement.pr
                ),
            );
            return;
        }
        if let Err(e) = client.publish(SUBJECT, payload.into()).await {
            tracing::warn!(error = %e, "could not announce the new head to other replicas");
        }
    }

    /// Hears other replicas' announcements in a background task of the process, from now until
    /// it stops. Once; later calls do nothing.
    pub async fn listen(&self, client: &async_nats::Client, tasks: &Tasks) {
        if self.listening.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut subscription = match client.subscribe(SUBJECT).await {
            Ok(subscription) => subscription,
            Err(e) => {
                self.listening.store(false, Ordering::Release);
                tracing::warn!(error = %e, "cannot hear other replicas' pull request heads");
                return;
            }
        };
        let registry = self.clone();
        tasks.spawn("supersede-listener", |stop| async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    message = subscription.next() => match message {
                        Some(message) => registry.heard(&message.payload),
                        None => break,
                    },
                }
            }
            let _ = subscription.unsubscribe().await;
            Ok::<(), std::convert::Infallible>(())
        });
    }

    fn heard(&self, payload: &[u8]) {
        let Ok(heard) = serde_json::from_slice::<Announcement>(payload) else {
            tracing::debug!("ignoring a malformed supersede announcement");
            return;
        };
        if heard.replica == *self.replica {
            return;
        }
        let Ok(at) = OffsetDateTime::parse(&heard.at, &Rfc3339) else {
            return;
        };
        self.observe((heard.repo, heard.pr), at, &heard.sha);
    }
}

fn observe_locked(map: &mut HashMap<PrKey, Entry>, key: PrKey, at: OffsetDateTime, sha: &str) {
    if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
        map.retain(|_, entry| !entry.running.is_empty());
    }
    let entry = map.entry(key).or_insert_with(|| Entry {
        at,
        sha: sha.to_owned(),
        running: Vec::new(),
    });
    if at >= entry.at {
        entry.at = at;
        entry.sha = sha.to_owned();
    }
    let short = sha.get(..7).unwrap_or(sha);
    // A later event about the same head (e.g. a label added) brings no newer code: the
    // running build of it goes on.
    for running in entry.running.iter().filter(|r| r.at < at && r.sha != sha) {
        running.cancel.cancel(format!("superseded by {short}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn key() -> PrKey {
        ("acme/ping".into(), 42)
    }

    #[test]
    fn a_newer_head_cancels_the_running_build_and_names_itself() {
        let registry = Supersede::new();
        let old = registry
            .begin(key(), datetime!(2024-03-05 07:08:09 UTC), "aaaaaaa1")
            .expect("first build starts");
        let new = registry
            .begin(key(), datetime!(2024-03-05 07:09:00 UTC), "bbbbbbb2")
            .expect("newer build starts");
        assert!(old.cancel.is_cancelled());
        assert!(!new.cancel.is_cancelled());
        let why = futures::executor::block_on(old.cancel.cancelled());
        assert_eq!(why, "superseded by bbbbbbb");
    }

    #[test]
    fn an_older_head_arriving_late_is_refused_before_it_runs() {
        let registry = Supersede::new();
        let _new = registry.begin(key(), datetime!(2024-03-05 07:09:00 UTC), "bbbbbbb2");
        let late = registry.begin(key(), datetime!(2024-03-05 07:08:09 UTC), "aaaaaaa1");
        assert_eq!(late.err().as_deref(), Some("bbbbbbb2"));
    }

    #[test]
    fn a_redelivered_head_and_other_pull_requests_are_left_alone() {
        let registry = Supersede::new();
        let at = datetime!(2024-03-05 07:08:09 UTC);
        let first = registry.begin(key(), at, "aaaaaaa1").expect("starts");
        let again = registry
            .begin(key(), at, "aaaaaaa1")
            .expect("redelivery starts");
        let other = registry
            .begin(
                ("acme/ping".into(), 43),
                datetime!(2024-03-06 00:00:00 UTC),
                "ccccccc3",
            )
            .expect("other pr");
        assert!(!first.cancel.is_cancelled() && !again.cancel.is_cancelled());
        assert!(!other.cancel.is_cancelled());
    }

    #[test]
    fn a_later_event_about_the_same_head_does_not_cancel_its_build() {
        let registry = Supersede::new();
        let opened = registry
            .begin(key(), datetime!(2024-03-05 07:08:09 UTC), "aaaaaaa1")
            .expect("starts");
        let _labeled = registry
            .begin(key(), datetime!(2024-03-05 07:10:00 UTC), "aaaaaaa1")
            .expect("starts");
        assert!(!opened.cancel.is_cancelled());
    }

    #[test]
    fn another_replicas_announcement_cancels_older_builds_here() {
        let here = Supersede::new();
        let old = here
            .begin(key(), datetime!(2024-03-05 07:08:09 UTC), "aaaaaaa1")
            .expect("starts");
        let there = Announcement {
            repo: "acme/ping".into(),
            pr: 42,
            sha: "bbbbbbb2".into(),
            at: "2024-03-05T07:09:00Z".into(),
            replica: "another".into(),
        };
        here.heard(&serde_json::to_vec(&there).expect("serializable"));
        assert!(old.cancel.is_cancelled());
    }
}
