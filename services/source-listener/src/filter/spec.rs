//! The filter rules as written in `FLOTILLA_CONFIG`, and their compilation into checked rules.
//!
//! Everything that can be wrong with a rule is found here, at start-up: an unknown provider or
//! event type, a regex that does not compile, a number that is not one, a comparator the type
//! cannot use. The listener then never meets a rule it cannot evaluate.

use flotilla_proto::catalog;
use regex::Regex;
use serde::Deserialize;

use super::{Comparator, DataFilter, Rule, Test};
use crate::delivery::Provider;

/// The whole file: the source-listener's filters and per-repository rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    #[serde(default)]
    pub filters: Vec<RuleSpec>,
    /// Per-repository rules; see [`super::repos`].
    #[serde(default)]
    pub repos: Vec<super::repos::RepoSpec>,
    /// The generic endpoint's scoped tokens: read and checked by [`crate::tokens`].
    #[serde(default, rename = "genericTokens")]
    pub _generic_tokens: Option<serde::de::IgnoredAny>,
}

/// One rule, in the spirit of an Argo Events sensor dependency's `filters.data`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleSpec {
    pub name: String,
    /// Providers the rule applies to (`github`, `gitea`, `gitlab`, `generic`); all when empty.
    #[serde(default)]
    pub providers: Vec<String>,
    /// Event types the rule applies to (`source.push`, `source.pull_request`, ...); all when empty.
    #[serde(default)]
    pub events: Vec<String>,
    /// `and` (every data filter must match, the default) or `or` (one is enough).
    #[serde(default)]
    pub data_logical_operator: Logic,
    pub data: Vec<DataSpec>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Logic {
    #[default]
    And,
    Or,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// GJSON path into the delivery's JSON body.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub value: Vec<String>,
    #[serde(default)]
    pub comparator: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    String,
    Number,
    Bool,
}

impl RuleSpec {
    /// Checks the rule and compiles its regexes and numbers. The error is the reason alone; the
    /// caller adds the file and the rule's name.
    pub fn compile(self) -> Result<Rule, String> {
        if self.data.is_empty() {
            return Err("`data` lists no filters".into());
        }
        let providers = self
            .providers
            .iter()
            .map(|name| {
                Provider::from_name(name).ok_or_else(|| {
                    let known: Vec<_> = Provider::ALL.iter().map(|p| p.as_str()).collect();
                    format!("unknown provider `{name}`; known: {}", known.join(", "))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let events = self
            .events
            .iter()
            .map(|name| {
                catalog::lookup(name)
                    .map(|spec| spec.event_type)
                    .ok_or_else(|| {
                        let known: Vec<_> = catalog::event_type_names().collect();
                        format!("unknown event type `{name}`; known: {}", known.join(", "))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let data = self
            .data
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                spec.compile()
                    .map_err(|reason| format!("data[{i}]: {reason}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Rule {
            name: self.name.trim().to_owned(),
            providers,
            events,
            any: self.data_logical_operator == Logic::Or,
            data,
        })
    }
}

impl DataSpec {
    fn compile(self) -> Result<DataFilter, String> {
        if self.path.trim().is_empty() {
            return Err("`path` is empty".into());
        }
        if self.value.is_empty() {
            return Err("`value` lists nothing to compare with".into());
        }
        let comparator = match self.comparator.as_deref() {
            None | Some("") => Comparator::Eq,
            Some(text) => Comparator::parse(text)
                .ok_or_else(|| format!("unknown comparator `{text}`; use =, !=, >, <, >= or <="))?,
        };
        let ordered = !matches!(comparator, Comparator::Eq | Comparator::Ne);
        let negate = comparator == Comparator::Ne;
        let test = match self.kind {
            Kind::String | Kind::Bool if ordered => {
                return Err(format!(
                    "comparator `{}` works only with type number",
                    comparator.as_str()
                ));
            }
            Kind::String => Test::Text {
                patterns: self
                    .value
                    .iter()
                    .map(|v| Regex::new(v).map_err(|e| format!("regex `{v}`: {e}")))
                    .collect::<Result<_, _>>()?,
                negate,
            },
            Kind::Number => Test::Number {
                comparator,
                values: self
                    .value
                    .iter()
                    .map(|v| {
                        v.trim()
                            .parse::<f64>()
                            .map_err(|_| format!("`{v}` is not a number"))
                    })
                    .collect::<Result<_, _>>()?,
            },
            Kind::Bool => Test::Bool {
                values: self
                    .value
                    .iter()
                    .map(|v| {
                        v.trim()
                            .parse::<bool>()
                            .map_err(|_| format!("`{v}` is not true or false"))
                    })
                    .collect::<Result<_, _>>()?,
                negate,
            },
        };
        Ok(DataFilter {
            path: self.path,
            test,
        })
    }
}
