//! The state of an environment in the registry, and which moves between states make sense.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where an environment is in its life. Stored as the lowercase name, so records written
/// before this type existed read back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum State {
    /// Written to git, not yet seen ready.
    Requested,
    /// Every app of the env was seen synced and healthy (or reported in).
    Ready,
    /// It failed to become ready or its tests failed; it stays, for people to look at, until
    /// it is reaped.
    Failed,
    /// Hibernating: its file is kept, its workloads are at zero.
    Suspended,
    /// Removed from git; the reaper verifies that it is gone.
    Deleting,
    /// Confirmed gone.
    Deleted,
    /// A state this version does not know (a newer worker wrote it), or none at all: kept as
    /// written, so reading a record never fails on it and writing it back preserves it.
    Unknown(String),
}

impl State {
    /// Every state this version knows, in the order of an env's life.
    pub const KNOWN: [State; 6] = [
        State::Requested,
        State::Ready,
        State::Failed,
        State::Suspended,
        State::Deleting,
        State::Deleted,
    ];

    /// The name stored in the registry and shown to people.
    pub fn as_str(&self) -> &str {
        match self {
            State::Requested => "requested",
            State::Ready => "ready",
            State::Failed => "failed",
            State::Suspended => "suspended",
            State::Deleting => "deleting",
            State::Deleted => "deleted",
            State::Unknown(other) => other,
        }
    }

    /// Whether the env is on its way out or gone (nothing should act on it but the reaper).
    pub fn is_going_away(&self) -> bool {
        matches!(self, State::Deleting | State::Deleted)
    }

    /// Whether an env in this state may move to `next`. A late or repeated event must not bring
    /// an env back from a teardown: a deleted env only comes back as a new `requested` (a new
    /// change), and one being deleted only finishes, or is requested anew. Staying put is
    /// always allowed (a redelivered event), and an unknown state is not second-guessed.
    pub fn may_become(&self, next: &State) -> bool {
        if self == next || matches!(next, State::Requested | State::Deleted) {
            return true;
        }
        !self.is_going_away()
    }
}

impl Default for State {
    /// A record without a state (older or unreadable): unknown, stored as the empty string.
    fn default() -> State {
        State::Unknown(String::new())
    }
}

impl From<&str> for State {
    fn from(name: &str) -> State {
        match name {
            "requested" => State::Requested,
            "ready" => State::Ready,
            "failed" => State::Failed,
            "suspended" => State::Suspended,
            "deleting" => State::Deleting,
            "deleted" => State::Deleted,
            other => State::Unknown(other.to_owned()),
        }
    }
}

impl From<String> for State {
    fn from(name: String) -> State {
        State::from(name.as_str())
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for State {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for State {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for State {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for State {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<State, D::Error> {
        // Owned, so that a value with escapes (not borrowable) reads as well.
        Ok(State::from(String::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_state_reads_back_from_its_stored_name() {
        for state in State::KNOWN {
            let json = serde_json::to_string(&state).expect("a state encodes");
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            let back: State = serde_json::from_str(&json).expect("a state decodes");
            assert_eq!(back, state);
            assert_eq!(state.to_string(), state.as_str());
        }
    }

    #[test]
    fn a_state_this_version_does_not_know_is_kept_as_written() {
        let state: State = serde_json::from_str("\"hibernating\"").expect("any string decodes");
        assert_eq!(state, State::Unknown("hibernating".into()));
        assert_eq!(
            serde_json::to_string(&state).expect("encodes"),
            "\"hibernating\""
        );
        assert_eq!(State::default().as_str(), "");
    }

    #[test]
    fn nothing_leaves_deleted_but_a_new_request() {
        for next in State::KNOWN {
            let allowed = State::Deleted.may_become(&next);
            assert_eq!(
                allowed,
                matches!(next, State::Requested | State::Deleted),
                "deleted -> {next}"
            );
        }
    }

    #[test]
    fn an_env_being_deleted_is_not_made_ready_or_failed_by_a_late_event() {
        assert!(!State::Deleting.may_become(&State::Ready));
        assert!(!State::Deleting.may_become(&State::Failed));
        assert!(!State::Deleting.may_become(&State::Suspended));
        assert!(State::Deleting.may_become(&State::Deleted));
        assert!(State::Deleting.may_become(&State::Requested));
    }

    #[test]
    fn live_envs_move_freely_between_live_states() {
        assert!(State::Requested.may_become(&State::Ready));
        assert!(State::Ready.may_become(&State::Failed));
        assert!(State::Ready.may_become(&State::Suspended));
        assert!(State::Suspended.may_become(&State::Ready));
        assert!(State::Failed.may_become(&State::Deleting));
        assert!(State::Unknown("x".into()).may_become(&State::Ready));
    }
}
