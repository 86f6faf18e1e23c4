//! The part of Kubernetes' JSONPath (k8s.io/client-go/util/jsonpath) web metrics use:
//! `{$.data.ok}`, `{.data}`, `{$.items[0].value}`, `{$.items[*].value}`, `{$['a-b']}`.
//! Argo takes the first value found (webmetric.go `getValue`).

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Wildcard,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

impl JsonPath {
    /// Parses Argo's `jsonPath`; empty means `{$}`, the whole document.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let t = text.trim();
        if t.is_empty() {
            return Ok(JsonPath { steps: Vec::new() });
        }
        let inner = t
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .ok_or_else(|| {
                format!("jsonPath {text:?} must be one expression in braces, like {{$.data.ok}}")
            })?;
        let mut rest = inner.trim().strip_prefix('$').unwrap_or(inner.trim());
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("..") {
                let _ = r;
                return Err(format!(
                    "jsonPath {text:?}: recursive descent (..) is not supported"
                ));
            } else if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                let name = &r[..end];
                if name.is_empty() {
                    return Err(format!("jsonPath {text:?}: empty field name"));
                }
                steps.push(if name == "*" {
                    Step::Wildcard
                } else {
                    Step::Field(name.to_string())
                });
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = r
                    .find(']')
                    .ok_or_else(|| format!("jsonPath {text:?}: unclosed ["))?;
                let body = r[..end].trim();
                let step = if body == "*" {
                    Step::Wildcard
                } else if let Some(q) = body
                    .strip_prefix('\'')
                    .and_then(|b| b.strip_suffix('\''))
                    .or_else(|| body.strip_prefix('"').and_then(|b| b.strip_suffix('"')))
                {
                    Step::Field(q.to_string())
                } else {
                    Step::Index(body.parse().map_err(|_| {
                        format!("jsonPath {text:?}: [{body}] is not supported (fields, indexes and [*] are)")
                    })?)
                };
                steps.push(step);
                rest = &r[end + 1..];
            } else {
                return Err(format!("jsonPath {text:?}: unexpected {rest:?}"));
            }
        }
        Ok(JsonPath { steps })
    }

    /// The first value the path finds, or k8s jsonpath's error when it finds none.
    pub fn first(&self, doc: &serde_json::Value) -> Result<serde_json::Value, String> {
        let mut current = vec![doc.clone()];
        for step in &self.steps {
            let mut next = Vec::new();
            for v in &current {
                match (step, v) {
                    (Step::Field(name), serde_json::Value::Object(m)) => match m.get(name) {
                        Some(x) => next.push(x.clone()),
                        None => return Err(format!("{name} is not found")),
                    },
                    (Step::Field(name), _) => return Err(format!("{name} is not found")),
                    (Step::Index(i), serde_json::Value::Array(a)) => {
                        let j = if *i < 0 { *i + a.len() as i64 } else { *i };
                        match usize::try_from(j).ok().and_then(|j| a.get(j)) {
                            Some(x) => next.push(x.clone()),
                            None => {
                                return Err(format!(
                                    "array index out of bounds: index {i}, length {}",
                                    a.len()
                                ));
                            }
                        }
                    }
                    (Step::Index(_), other) => {
                        return Err(format!("{other} is not array or slice"));
                    }
                    (Step::Wildcard, serde_json::Value::Array(a)) => next.extend(a.iter().cloned()),
                    (Step::Wildcard, serde_json::Value::Object(m)) => {
                        next.extend(m.values().cloned())
                    }
                    (Step::Wildcard, _) => {}
                }
            }
            current = next;
        }
        current
            .into_iter()
            .next()
            .ok_or_else(|| "result of web metric produced no value".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jsonpath_finds_fields_indexes_and_wildcards() {
        let doc = json!({"data": {"ok": true, "items": [{"v": 1.5}, {"v": 2}], "a-b": "x"}});
        let get = |p: &str| JsonPath::parse(p).and_then(|jp| jp.first(&doc));
        assert_eq!(get("{$.data.ok}"), Ok(json!(true)));
        assert_eq!(get("{.data.ok}"), Ok(json!(true)));
        assert_eq!(get("{$.data.items[1].v}"), Ok(json!(2)));
        assert_eq!(get("{$.data.items[*].v}"), Ok(json!(1.5)));
        assert_eq!(get("{$.data['a-b']}"), Ok(json!("x")));
        assert_eq!(get(""), Ok(doc.clone()));
        assert_eq!(get("{$}"), Ok(doc.clone()));
        assert_eq!(get("{$.data.missing}"), Err("missing is not found".into()));
        assert!(
            get("{$.data.items[5]}")
                .expect_err("an error")
                .contains("out of bounds")
        );
        assert!(JsonPath::parse("$.data").is_err());
        assert!(JsonPath::parse("{$..ok}").is_err());
    }
}
