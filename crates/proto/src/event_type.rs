//! What an [`EventType`] offers beyond its name: its catalog entry, parsing and display.
//!
//! The enum itself is generated from the catalog's one list in [`crate::catalog`].

use std::fmt;
use std::str::FromStr;

use crate::catalog::{EVENTS, EventSpec, EventType};

impl EventType {
    /// The catalog entry of this type.
    pub const fn spec(self) -> &'static EventSpec {
        // The enum and the table are generated in the same order from the same list.
        &EVENTS[self as usize]
    }

    /// The CloudEvents type, `dev.flotilla.<domain>.<event>.v1`.
    pub const fn ce_type(self) -> &'static str {
        self.spec().ce_type
    }

    /// Parses a `<domain>.<event>` name, e.g. one a user typed.
    pub fn parse(name: &str) -> Result<EventType, UnknownEventType> {
        EventType::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| UnknownEventType(name.to_owned()))
    }

    /// The type named by a CloudEvents type (`dev.flotilla.<type>.v1`).
    pub fn from_ce_type(ce_type: &str) -> Option<EventType> {
        EventType::ALL
            .iter()
            .copied()
            .find(|kind| kind.ce_type() == ce_type)
    }
}

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        EventType::parse(name)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a v1 event type; its message lists the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type `{0}`; known types: {known}", known = known_names())]
pub struct UnknownEventType(pub String);

fn known_names() -> String {
    let names: Vec<&str> = EventType::ALL.iter().map(|kind| kind.as_str()).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_string_parses_or_names_the_known_types() {
        assert_eq!(
            "env.teardown.requested".parse::<EventType>(),
            Ok(EventType::EnvTeardownRequested)
        );
        let err = EventType::parse("build.succeded").expect_err("misspelled");
        let text = err.to_string();
        assert!(text.contains("`build.succeded`"), "{text}");
        assert!(text.contains("build.succeeded"), "{text}");
    }

    #[test]
    fn ce_types_map_back_to_their_type() {
        assert_eq!(
            EventType::from_ce_type("dev.flotilla.canary.aborted.v1"),
            Some(EventType::CanaryAborted)
        );
        assert_eq!(EventType::from_ce_type("dev.other.x.v1"), None);
    }
}
