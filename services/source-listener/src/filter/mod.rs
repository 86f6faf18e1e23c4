//! Filters: rules that drop deliveries the pipeline should not see, e.g. pull requests without
//! the `preview` label.
//!
//! Rules live in the YAML file named by `FLOTILLA_CONFIG` and follow Argo Events sensor data
//! filters, so rules written for a sensor carry over:
//!
//! ```yaml
//! filters:
//!   - name: previews-need-the-label
//!     providers: [github, gitea]          # optional; every provider when absent
//!     events: [source.pull_request]       # optional; every event type when absent
//!     dataLogicalOperator: and            # optional; `and` (default) or `or`
//!     data:
//!       - path: pull_request.labels.#.name    # GJSON path into the delivery's JSON body
//!         type: string                        # string | number | bool
//!         value: ["^preview$"]                # regexes for strings
//!         comparator: "="                     # = (default), !=, and for numbers >, <, >=, <=
//! ```
//!
//! A rule applies to a delivery when its providers and event types include the delivery's. A
//! delivery is dropped (answered 200 `{"ignored": ...}`, naming the rule) when any rule that
//! applies to it does not match. How a data filter matches:
//!
//! - the path must exist in the body (a missing path never matches, as in Argo Events);
//! - a path that yields an array (`labels.#.name`) matches when any element does;
//! - strings match when any `value` regex finds a match (unanchored, as in Argo Events: write
//!   `^preview$` for an exact match); numbers and booleans compare with any value;
//! - `!=` matches when `=` would not, so `value: [wip]` with `!=` means "no label matches wip".
//!   (Argo Events applies `!=` per value; for several values that is always true, which is
//!   never what a rule means.)

mod repos;
mod spec;
#[cfg(test)]
mod tests;

use std::path::Path;

use gjson::Kind as JsonKind;
use regex::Regex;

use crate::delivery::{Delivery, Provider, Verdict};
use crate::error::ConfigError;

pub use repos::Repos;

/// The compiled rules, checked at start-up.
#[derive(Debug, Default)]
pub struct Filters {
    rules: Vec<Rule>,
    repos: Repos,
}

#[derive(Debug)]
struct Rule {
    name: String,
    providers: Vec<Provider>,
    events: Vec<&'static str>,
    /// `or` instead of `and` between the data filters.
    any: bool,
    data: Vec<DataFilter>,
}

#[derive(Debug)]
struct DataFilter {
    path: String,
    test: Test,
}

#[derive(Debug)]
enum Test {
    Text {
        patterns: Vec<Regex>,
        negate: bool,
    },
    Number {
        comparator: Comparator,
        values: Vec<f64>,
    },
    Bool {
        values: Vec<bool>,
        negate: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparator {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
}

impl Comparator {
    const ALL: [Comparator; 6] = [
        Comparator::Eq,
        Comparator::Ne,
        Comparator::Gt,
        Comparator::Lt,
        Comparator::Ge,
        Comparator::Le,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Comparator::Eq => "=",
            Comparator::Ne => "!=",
            Comparator::Gt => ">",
            Comparator::Lt => "<",
            Comparator::Ge => ">=",
            Comparator::Le => "<=",
        }
    }

    fn parse(text: &str) -> Option<Comparator> {
        Comparator::ALL
            .into_iter()
            .find(|c| c.as_str() == text.trim())
    }

    fn holds(self, actual: f64, wanted: f64) -> bool {
        match self {
            Comparator::Eq => actual == wanted,
            Comparator::Ne => actual != wanted,
            Comparator::Gt => actual > wanted,
            Comparator::Lt => actual < wanted,
            Comparator::Ge => actual >= wanted,
            Comparator::Le => actual <= wanted,
        }
    }
}

impl Filters {
    /// Reads and checks the rules of `path`.
    pub fn load(path: &Path) -> Result<Filters, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Filters::from_yaml(&text, &path.display().to_string())
    }

    /// Parses and checks rules from YAML; `origin` names the file in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Filters, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Filters::default());
        }
        let file: spec::FileSpec =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
                path: origin.to_owned(),
                reason: e.to_string(),
            })?;
        let mut rules: Vec<Rule> = Vec::with_capacity(file.filters.len());
        for (i, rule) in file.filters.into_iter().enumerate() {
            let name = rule.name.trim().to_owned();
            let fail = |reason: String| ConfigError::Rule {
                path: origin.to_owned(),
                rule: if name.is_empty() {
                    format!("#{}", i + 1)
                } else {
                    name.clone()
                },
                reason,
            };
            if name.is_empty() {
                return Err(fail("`name` is empty; every rule needs one".into()));
            }
            if rules.iter().any(|r| r.name == name) {
                return Err(fail("another rule has the same name".into()));
            }
            rules.push(rule.compile().map_err(fail)?);
        }
        let repos = Repos::compile(file.repos).map_err(|(entry, reason)| ConfigError::Repo {
            path: origin.to_owned(),
            entry,
            reason,
        })?;
        Ok(Filters { rules, repos })
    }

    /// The number of filter rules (per-repository rules not counted).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when the file had neither filters nor per-repository rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.repos.is_empty()
    }

    /// The per-repository rules, applied while deliveries are parsed.
    pub fn repos(&self) -> &Repos {
        &self.repos
    }

    /// Drops the delivery (makes it ignored) when a rule that applies to it does not match its
    /// `body`.
    pub fn apply(&self, mut delivery: Delivery, body: &[u8]) -> Delivery {
        let Verdict::Publish(events) = &delivery.verdict else {
            return delivery;
        };
        if self.rules.is_empty() {
            return delivery;
        }
        let types: Vec<&str> = events.iter().map(|e| e.spec.event_type).collect();
        // Bodies were parsed as JSON already, so they are UTF-8; if not, no rule can match.
        let json = std::str::from_utf8(body).unwrap_or_default();
        let failed = self
            .rules
            .iter()
            .filter(|rule| rule.applies(delivery.provider, &types))
            .find(|rule| !rule.matches(json));
        if let Some(rule) = failed {
            delivery.verdict = Verdict::Ignore(format!("filter `{}` did not match", rule.name));
        }
        delivery
    }
}

impl Rule {
    fn applies(&self, provider: Provider, types: &[&str]) -> bool {
        (self.providers.is_empty() || self.providers.contains(&provider))
            && (self.events.is_empty() || types.iter().any(|t| self.events.contains(t)))
    }

    fn matches(&self, json: &str) -> bool {
        if json.is_empty() {
            return false;
        }
        let mut results = self.data.iter().map(|filter| filter.matches(json));
        if self.any {
            results.any(|matched| matched)
        } else {
            results.all(|matched| matched)
        }
    }
}

impl DataFilter {
    fn matches(&self, json: &str) -> bool {
        let found = gjson::get(json, &self.path);
        if !found.exists() {
            return false;
        }
        let candidates = if found.kind() == JsonKind::Array {
            found.array()
        } else {
            vec![found]
        };
        match &self.test {
            Test::Text { patterns, negate } => {
                // `str` renders numbers, booleans and objects as their JSON text, null as "".
                let any = candidates
                    .iter()
                    .any(|value| patterns.iter().any(|re| re.is_match(value.str())));
                any != *negate
            }
            Test::Number { comparator, values } => {
                let numbers: Vec<f64> = candidates.iter().filter_map(number).collect();
                if *comparator == Comparator::Ne {
                    !numbers.iter().any(|n| values.contains(n))
                } else {
                    numbers
                        .iter()
                        .any(|n| values.iter().any(|v| comparator.holds(*n, *v)))
                }
            }
            Test::Bool { values, negate } => {
                let any = candidates
                    .iter()
                    .filter_map(boolean)
                    .any(|b| values.contains(&b));
                any != *negate
            }
        }
    }
}

/// A JSON number, or a string holding one (some providers quote ids).
fn number(value: &gjson::Value<'_>) -> Option<f64> {
    match value.kind() {
        JsonKind::Number => Some(value.f64()),
        JsonKind::String => value.str().trim().parse().ok(),
        _ => None,
    }
}

fn boolean(value: &gjson::Value<'_>) -> Option<bool> {
    match value.kind() {
        JsonKind::True => Some(true),
        JsonKind::False => Some(false),
        JsonKind::String => value.str().trim().parse().ok(),
        _ => None,
    }
}
