//! The changes a run sends: pushes to the default branch and pull requests over several
//! repositories, each with the change id, env id and deliveries Flotilla will make of it.
//! Generated from a seed, so a run can be repeated.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::{datetime, format_description};

use crate::webhook::Delivery;

/// A small deterministic generator (SplitMix64): the suite needs repeatable choices, not
/// cryptographic ones.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An integer in `[low, high)`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low).max(1)
    }

    fn sha(&mut self) -> String {
        format!(
            "{:016x}{:016x}{:08x}",
            self.next_u64(),
            self.next_u64(),
            self.next_u64() as u32
        )
    }
}

/// What kind of change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A push to the default branch: a staging env, tests, a release, the staging env torn down.
    Push,
    /// A pull request opened: a preview env and tests; then closed, and the preview torn down.
    PullRequest { number: u64 },
}

/// One change of the run.
#[derive(Debug, Clone)]
pub struct Change {
    pub index: usize,
    pub kind: Kind,
    pub repo: String,
    pub app: String,
    pub sha: String,
    /// The commit's (or the pull request's `updated_at`) time: the version's.
    pub at: OffsetDateTime,
    /// `<app>-<version>`, as builder-trigger decides it.
    pub change_id: String,
    pub version: String,
    /// The env Flotilla makes for it.
    pub env: String,
}

impl Change {
    pub fn is_push(&self) -> bool {
        self.kind == Kind::Push
    }

    /// The delivery that starts it: the push, or the pull request opened.
    pub fn delivery(&self) -> Delivery {
        let at = rfc3339(self.at);
        match self.kind {
            Kind::Push => Delivery::push(&self.repo, "main", &self.sha, &at),
            Kind::PullRequest { number } => {
                Delivery::pull_request(&self.repo, number, "opened", &self.sha, &at)
            }
        }
    }

    /// A pull request's `closed` delivery (a push has none).
    pub fn close(&self) -> Option<Delivery> {
        match self.kind {
            Kind::Push => None,
            Kind::PullRequest { number } => {
                let at = rfc3339(self.at + time::Duration::seconds(1));
                Some(Delivery::pull_request(
                    &self.repo, number, "closed", &self.sha, &at,
                ))
            }
        }
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// The changes of a run, in the order they are sent.
#[derive(Debug, Clone)]
pub struct Plan {
    pub changes: Vec<Change>,
}

impl Plan {
    /// `count` changes spread over `repos` in turn, a share `pull_requests` of them pull
    /// requests. Each change's time is a second after the previous one's, so the versions of
    /// an app increase in the order they are sent (a later push is the newer release).
    pub fn new(count: usize, repos: &[String], pull_requests: f64, seed: u64) -> Plan {
        let mut rng = Rng::new(seed);
        // Times a run never reuses: each seed starts its own day.
        let base = datetime!(2025-01-01 0:00 UTC) + time::Duration::days((seed % 3650) as i64);
        let mut numbers = vec![0u64; repos.len()];
        let changes = (0..count)
            .map(|index| {
                let slot = index % repos.len().max(1);
                let repo = repos[slot].clone();
                let app = repo.rsplit('/').next().unwrap_or(&repo).to_lowercase();
                let sha = rng.sha();
                let at = base + time::Duration::seconds(index as i64);
                let version = version(at, &sha);
                let (kind, env) = if rng.unit() < pull_requests {
                    numbers[slot] += 1;
                    let number = numbers[slot];
                    (
                        Kind::PullRequest { number },
                        flotilla_env::envid::preview(&repo, number),
                    )
                } else {
                    (Kind::Push, flotilla_env::envid::staging(&app, &version))
                };
                Change {
                    index,
                    kind,
                    change_id: format!("{app}-{version}"),
                    repo,
                    app,
                    sha,
                    at,
                    version,
                    env,
                }
            })
            .collect();
        Plan { changes }
    }

    pub fn pushes(&self) -> usize {
        self.changes.iter().filter(|c| c.is_push()).count()
    }
}

/// `v<UTC yyyyMMddHHmmss>-<sha7>`, builder-trigger's version.
pub fn version(at: OffsetDateTime, sha: &str) -> String {
    let stamp = at
        .format(format_description!(
            "[year][month][day][hour][minute][second]"
        ))
        .unwrap_or_default();
    format!("v{stamp}-{}", &sha[..7])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_is_repeatable_and_names_envs_as_flotilla_does() {
        let repos = vec!["acme/ping".to_owned(), "acme/pong".to_owned()];
        let a = Plan::new(50, &repos, 0.4, 7);
        let b = Plan::new(50, &repos, 0.4, 7);
        assert_eq!(
            a.changes.iter().map(|c| &c.change_id).collect::<Vec<_>>(),
            b.changes.iter().map(|c| &c.change_id).collect::<Vec<_>>()
        );
        let prs = a.changes.len() - a.pushes();
        assert!(prs > 5 && a.pushes() > 5, "{prs} pull requests");
        let push = a.changes.iter().find(|c| c.is_push()).expect("a push");
        assert_eq!(push.env, format!("stg-{}", push.change_id));
        let pr = a.changes.iter().find(|c| !c.is_push()).expect("a PR");
        assert!(
            pr.env.starts_with(&format!("pr-acme-{}-", pr.app)),
            "{}",
            pr.env
        );
        assert_eq!(
            version(datetime!(2025-01-02 3:04:05 UTC), "1a2b3c4d"),
            "v20250102030405-1a2b3c4"
        );
    }
}
