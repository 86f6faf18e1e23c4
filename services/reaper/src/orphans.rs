//! Orphans: what the registry, the GitOps repository and the cluster disagree on. Pure: the
//! sweep reads the three and asks here.
//!
//! - a Namespace or Application labelled `flotilla.dev/env` whose env has no live record (none,
//!   or `deleted`): removable, by policy, once older than the grace;
//! - an env file with no live record: reported (env-manager is the GitOps writer);
//! - a live record with no env file: reported.
//!
//! Only preview and staging env ids count (`pr-…`, `stg-…`): production is labelled too, and is
//! never anyone's orphan. An env being deleted is not an orphan: what it leaves is "lingering",
//! the verification's business.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use flotilla_env::envid::Kind as EnvKind;
use flotilla_env::{EnvRecord, State};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::cluster::Object;

/// One orphan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphan {
    /// `Namespace`, `Application`, `file` or `record`.
    pub kind: String,
    /// The object's name, the file's path, or the env id.
    pub name: String,
    pub env: String,
    /// Why it is an orphan.
    pub why: String,
    /// `reported`, `removed`, `kept (younger than the grace)` or why removing it failed.
    pub action: String,
}

/// What the sweep compares.
pub struct Seen<'a> {
    pub records: &'a HashMap<&'a str, &'a EnvRecord>,
    /// The env files' names in the env directory, when git was read.
    pub files: Option<&'a BTreeSet<String>>,
    pub envs_dir: &'a str,
    /// The labelled objects, when the cluster was read.
    pub objects: Option<&'a [Object]>,
}

/// The orphans, and which of the cluster's objects may be removed (older than `grace` at `now`).
pub fn find(seen: &Seen<'_>, now: OffsetDateTime, grace: Duration) -> (Vec<Orphan>, Vec<Object>) {
    let live = |env: &str| {
        seen.records
            .get(env)
            .is_some_and(|r| r.state != State::Deleted)
    };
    let mut orphans = Vec::new();
    let mut removable = Vec::new();
    for object in seen.objects.unwrap_or_default() {
        if EnvKind::of(&object.env).is_none() || live(&object.env) {
            continue;
        }
        let old = object.created.is_some_and(|created| created + grace <= now);
        orphans.push(Orphan {
            kind: object.kind.as_str().into(),
            name: object.name.clone(),
            env: object.env.clone(),
            why: "labelled as an env the registry does not have".into(),
            action: if old {
                "reported".into()
            } else {
                "kept (younger than the grace)".into()
            },
        });
        if old {
            removable.push(object.clone());
        }
    }
    if let Some(files) = seen.files {
        for file in files {
            let Some(env) = file.strip_suffix(".json") else {
                continue;
            };
            if EnvKind::of(env).is_none() || seen.records.contains_key(env) && live(env) {
                continue;
            }
            orphans.push(Orphan {
                kind: "file".into(),
                name: format!("{}/{file}", seen.envs_dir),
                env: env.to_owned(),
                why: "an env file the registry does not have".into(),
                action: "reported".into(),
            });
        }
        for (env, record) in seen.records {
            let alive = matches!(
                record.state,
                State::Requested | State::Ready | State::Failed | State::Suspended
            );
            if !alive || EnvKind::of(env).is_none() || files.contains(&format!("{env}.json")) {
                continue;
            }
            orphans.push(Orphan {
                kind: "record".into(),
                name: (*env).to_owned(),
                env: (*env).to_owned(),
                why: format!(
                    "{} in the registry, with no {}/{env}.json in git",
                    record.state, seen.envs_dir
                ),
                action: "reported".into(),
            });
        }
    }
    orphans.sort_by(|a, b| (&a.env, &a.kind, &a.name).cmp(&(&b.env, &b.kind, &b.name)));
    (orphans, removable)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::cluster::Kind;

    const NOW: OffsetDateTime = datetime!(2026-03-02 09:00 UTC);
    const GRACE: Duration = Duration::from_secs(600);

    fn object(kind: Kind, name: &str, env: &str, age: Duration) -> Object {
        Object {
            kind,
            name: name.into(),
            env: env.into(),
            created: Some(NOW - age),
        }
    }

    fn record(state: State) -> EnvRecord {
        EnvRecord {
            state,
            kind: "preview".into(),
            ..Default::default()
        }
    }

    #[test]
    fn labelled_objects_of_no_live_env_are_orphans_and_production_never_is() {
        let ready = record(State::Ready);
        let deleted = record(State::Deleted);
        let deleting = record(State::Deleting);
        let records = HashMap::from([
            ("pr-a-1", &ready),
            ("pr-a-2", &deleted),
            ("pr-a-3", &deleting),
        ]);
        let hour = Duration::from_secs(3600);
        let objects = [
            object(Kind::Namespace, "pr-a-1", "pr-a-1", hour),
            object(Kind::Namespace, "pr-a-2", "pr-a-2", hour),
            object(Kind::Application, "env-pr-a-3", "pr-a-3", hour),
            object(Kind::Application, "env-pr-x-9", "pr-x-9", hour),
            object(Kind::Namespace, "pr-y-9", "pr-y-9", Duration::from_secs(5)),
            object(Kind::Application, "production", "production", hour),
        ];
        let seen = Seen {
            records: &records,
            files: None,
            envs_dir: "envs",
            objects: Some(&objects),
        };
        let (orphans, removable) = find(&seen, NOW, GRACE);
        let names: Vec<_> = orphans.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["pr-a-2", "env-pr-x-9", "pr-y-9"]);
        let removable: Vec<_> = removable.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            removable,
            ["pr-a-2", "env-pr-x-9"],
            "not the young one, not production, not the one being deleted"
        );
    }

    #[test]
    fn files_and_records_that_disagree_are_reported() {
        let ready = record(State::Ready);
        let deleting = record(State::Deleting);
        let records = HashMap::from([("pr-a-1", &ready), ("pr-a-3", &deleting)]);
        let files: BTreeSet<String> = ["pr-b-2.json", "pr-a-3.json", "README.md", "other.json"]
            .map(String::from)
            .into();
        let seen = Seen {
            records: &records,
            files: Some(&files),
            envs_dir: "envs",
            objects: None,
        };
        let (orphans, removable) = find(&seen, NOW, GRACE);
        let found: Vec<_> = orphans
            .iter()
            .map(|o| (o.kind.as_str(), o.name.as_str()))
            .collect();
        assert_eq!(found, [("record", "pr-a-1"), ("file", "envs/pr-b-2.json")]);
        assert!(removable.is_empty());
    }
}
