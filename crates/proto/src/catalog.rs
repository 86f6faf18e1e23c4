//! The v1 event catalog: which message each event type carries and which fields it must set.
//!
//! An event type is `<domain>.<event>` as it appears in subjects (`build.succeeded`,
//! `env.teardown.requested`). The subject is `flotilla.<type>.<key>` and the CloudEvents type is
//! `dev.flotilla.<type>.v1`.

/// What the catalog knows about one event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSpec {
    /// The typed name of this entry.
    pub kind: EventType,
    /// `<domain>.<event>`, e.g. `build.succeeded`.
    pub event_type: &'static str,
    /// Fully qualified protobuf message name, e.g. `flotilla.v1.Build`.
    pub message: &'static str,
    /// proto field names (snake_case) that must not be empty.
    pub required: &'static [&'static str],
    /// What the key token of the subject is.
    pub key: &'static str,
    /// The CloudEvents `type` attribute: `dev.flotilla.<domain>.<event>.v1`.
    pub ce_type: &'static str,
}

/// Generates, from one list, both [`EVENTS`] and the [`EventType`] enum, so that the table and
/// the names code may use cannot drift apart and a misspelled type does not compile.
macro_rules! catalog {
    ($(
        $(#[$doc:meta])*
        $variant:ident = $event_type:literal, $message:literal, $required:expr, $key:literal;
    )*) => {
        /// A v1 event type. Its variants are generated from the catalog, in the order of
        /// [`EVENTS`]; `as_str()` gives the `<domain>.<event>` name used in subjects.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($(#[$doc])* $variant,)*
        }

        impl EventType {
            /// Every event type, in catalog order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// `<domain>.<event>`, e.g. `build.succeeded`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $event_type,)*
                }
            }
        }

        /// Every event type of v1, in the order of the flow.
        pub const EVENTS: &[EventSpec] = &[
            $(EventSpec {
                kind: EventType::$variant,
                event_type: $event_type,
                message: $message,
                required: $required,
                key: $key,
                ce_type: concat!("dev.flotilla.", $event_type, ".v1"),
            },)*
        ];
    };
}

const BUILD: &[&str] = &["change_id", "app", "version"];
const ENV: &[&str] = &["env"];
const TESTS: &[&str] = &["env", "change_id"];
const HOOK: &[&str] = &["env", "change_id", "hook", "phase"];
const CANARY: &[&str] = &["release"];

catalog! {
    SourcePush = "source.push", "flotilla.v1.Push", &["repo", "sha"], "repo";
    SourcePullRequest = "source.pull_request", "flotilla.v1.PullRequest",
        &["repo", "number", "action"], "repo";
    /// The generic webhook's event.
    SourceCustom = "source.custom", "flotilla.v1.Custom", &["kind"], "key";
    BuildStarted = "build.started", "flotilla.v1.Build", BUILD, "change";
    BuildSucceeded = "build.succeeded", "flotilla.v1.Build", BUILD, "change";
    BuildFailed = "build.failed", "flotilla.v1.Build", BUILD, "change";
    EnvRequested = "env.requested", "flotilla.v1.Environment", ENV, "env";
    EnvReady = "env.ready", "flotilla.v1.Environment", ENV, "env";
    EnvFailed = "env.failed", "flotilla.v1.Environment", ENV, "env";
    EnvDeleted = "env.deleted", "flotilla.v1.Environment", ENV, "env";
    EnvTeardownRequested = "env.teardown.requested", "flotilla.v1.TeardownRequest",
        &["env", "reason"], "env";
    /// Hibernation: a preview env is to be suspended (file kept, workloads at zero). Never a
    /// teardown.
    EnvSuspendRequested = "env.suspend.requested", "flotilla.v1.TeardownRequest",
        &["env", "reason"], "env";
    /// A suspended env is to be brought back as it was.
    EnvResumeRequested = "env.resume.requested", "flotilla.v1.TeardownRequest",
        &["env", "reason"], "env";
    EnvSuspended = "env.suspended", "flotilla.v1.Environment", ENV, "env";
    EnvResumed = "env.resumed", "flotilla.v1.Environment", ENV, "env";
    /// An environment hook's run began (builder-trigger).
    EnvHookStarted = "env.hook.started", "flotilla.v1.HookRun", HOOK, "env";
    EnvHookSucceeded = "env.hook.succeeded", "flotilla.v1.HookRun", HOOK, "env";
    EnvHookFailed = "env.hook.failed", "flotilla.v1.HookRun", HOOK, "env";
    TestsPassed = "tests.passed", "flotilla.v1.TestResult", TESTS, "env";
    TestsFailed = "tests.failed", "flotilla.v1.TestResult", TESTS, "env";
    ReleaseRequested = "release.requested", "flotilla.v1.Release",
        &["change_id", "app", "version"], "app";
    ReleaseRolledBack = "release.rolled_back", "flotilla.v1.Rollback",
        &["app", "version", "restored_version"], "app";
    CanaryStep = "canary.step", "flotilla.v1.Canary", CANARY, "release";
    CanaryMeasurement = "canary.measurement", "flotilla.v1.Canary", CANARY, "release";
    CanaryPromoted = "canary.promoted", "flotilla.v1.Canary", CANARY, "release";
    CanaryAborted = "canary.aborted", "flotilla.v1.Canary", CANARY, "release";
}

/// Looks an event type up by its `<domain>.<event>` name.
pub fn lookup(event_type: &str) -> Option<&'static EventSpec> {
    EventType::parse(event_type).ok().map(EventType::spec)
}

/// Looks an event type up by its CloudEvents type (`dev.flotilla.<type>.v1`).
pub fn lookup_ce_type(ce_type: &str) -> Option<&'static EventSpec> {
    EVENTS.iter().find(|spec| spec.ce_type == ce_type)
}

/// Finds the event type and key of a subject below `prefix` (`flotilla` on the main stream).
///
/// Keys are a single token (they are sanitized), so the type is everything between the prefix
/// and the last token.
pub fn parse_subject<'a>(prefix: &str, subject: &'a str) -> Option<(&'static EventSpec, &'a str)> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    let (event_type, key) = rest.rsplit_once('.')?;
    Some((lookup(event_type)?, key))
}

/// The names of every event type, for error messages and `--help`.
pub fn event_type_names() -> impl Iterator<Item = &'static str> {
    EVENTS.iter().map(|spec| spec.event_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor_pool;

    #[test]
    fn every_catalog_message_and_required_field_exists_in_the_schemas() {
        for spec in EVENTS {
            let message = descriptor_pool()
                .get_message_by_name(spec.message)
                .unwrap_or_else(|| panic!("{} names unknown {}", spec.event_type, spec.message));
            for field in spec.required {
                assert!(
                    message.get_field_by_name(field).is_some(),
                    "{}: required field {field} is not in {}",
                    spec.event_type,
                    spec.message
                );
            }
        }
    }

    #[test]
    fn subjects_parse_into_type_and_key() {
        let (spec, key) = parse_subject("flotilla", "flotilla.env.teardown.requested.pr-ping-42")
            .expect("known subject");
        assert_eq!(spec.event_type, "env.teardown.requested");
        assert_eq!(key, "pr-ping-42");
        assert!(parse_subject("flotilla", "flotilla.nope.x.key").is_none());
        assert!(parse_subject("flotilla", "other.build.started.k").is_none());
    }

    #[test]
    fn the_enum_and_the_table_agree_entry_by_entry() {
        assert_eq!(EventType::ALL.len(), EVENTS.len());
        for (kind, spec) in EventType::ALL.iter().zip(EVENTS) {
            assert_eq!(spec.kind, *kind);
            assert_eq!(kind.as_str(), spec.event_type);
            assert_eq!(kind.spec(), spec);
            assert_eq!(EventType::parse(spec.event_type), Ok(*kind));
        }
        assert_eq!(EventType::BuildSucceeded.as_str(), "build.succeeded");
        assert_eq!(
            EventType::EnvTeardownRequested.spec().message,
            "flotilla.v1.TeardownRequest"
        );
    }

    #[test]
    fn ce_type_round_trips() {
        let spec = lookup("canary.aborted").expect("in catalog");
        assert_eq!(spec.ce_type, "dev.flotilla.canary.aborted.v1");
        assert_eq!(lookup_ce_type(spec.ce_type), Some(spec));
    }
}
