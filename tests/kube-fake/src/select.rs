//! Label and field selectors, as far as tests use them.

use serde_json::Value;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

/// A parsed label or field selector; empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

impl Selector {
    /// Parses `k=v,k==v,k!=v,k,!k`.
    pub fn parse(text: &str) -> Selector {
        let requirement = |part: &str| {
            let part = part.trim();
            if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::Absent(k.trim().into())
            } else {
                Requirement::Exists(part.into())
            }
        };
        Selector(
            text.split(',')
                .filter(|p| !p.trim().is_empty())
                .map(requirement)
                .collect(),
        )
    }

    /// Whether `lookup` (a key's value, if any) satisfies every requirement.
    pub fn matches(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => lookup(k).as_deref() == Some(v.as_str()),
            Requirement::NotEquals(k, v) => lookup(k).as_deref() != Some(v.as_str()),
            Requirement::Exists(k) => lookup(k).is_some(),
            Requirement::Absent(k) => lookup(k).is_none(),
        })
    }
}

/// Label and field selectors of a list or watch.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub namespace: Option<String>,
    pub labels: Selector,
    pub fields: Selector,
}

impl Filter {
    pub fn matches(&self, object: &Value) -> bool {
        let meta = &object["metadata"];
        if let Some(ns) = &self.namespace
            && meta["namespace"].as_str() != Some(ns.as_str())
        {
            return false;
        }
        let labels = self
            .labels
            .matches(|k| meta["labels"][k].as_str().map(str::to_owned));
        let fields = self.fields.matches(|k| match k {
            "metadata.name" => meta["name"].as_str().map(str::to_owned),
            "metadata.namespace" => meta["namespace"].as_str().map(str::to_owned),
            // Other fields (e.g. status.phase) by their dotted path.
            path => path
                .split('.')
                .try_fold(object, |v, key| v.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned),
        });
        labels && fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_match_labels_and_fields() {
        let object = json!({"metadata": {"name": "b1", "namespace": "ci", "labels": {"job-name": "b1", "tier": "x"}}});
        let filter = |labels: &str, fields: &str| Filter {
            namespace: None,
            labels: Selector::parse(labels),
            fields: Selector::parse(fields),
        };
        assert!(filter("job-name=b1", "metadata.name=b1").matches(&object));
        assert!(filter("job-name==b1,tier", "").matches(&object));
        assert!(!filter("job-name=b2", "").matches(&object));
        assert!(!filter("tier!=x", "").matches(&object));
        assert!(filter("!missing", "metadata.namespace=ci").matches(&object));
        assert!(!filter("", "metadata.name=b2").matches(&object));
    }
}
