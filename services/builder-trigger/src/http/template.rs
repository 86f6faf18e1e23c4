//! Request templates: the JSON a user writes, with `{{placeholders}}` filled in per run.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{Poll, ResultMode};
use crate::error::Error;

/// Every placeholder a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "repo",
    "sha",
    "version",
    "app",
    "change_id",
    "pr",
    "ref",
    "image",
    "pipeline_image",
    "env",
    "env_kind",
    "env_url",
    "namespace",
    "apps",
    "hook",
    "hook_phase",
    "hook_key",
    "hook_attempt",
    "hook_rerun",
    "hook_run",
    "build_id",
    "callback_url",
    "callback_token",
    "token",
    "id",
];

/// The request that starts a run, as written in `FLOTILLA_HTTP_BUILD_REQUEST`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub url: String,
    #[serde(default = "post")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Sent as JSON; no body when absent.
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(default)]
    pub result: ResultMode,
}

fn post() -> String {
    "POST".to_owned()
}

/// A template filled in for one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl Template {
    /// Inline JSON (starting with `{`) or the path of a JSON file; `var` names the setting in
    /// errors.
    pub fn load(spec: &str, var: &str) -> Result<Template, Error> {
        let spec = spec.trim();
        let text = if spec.starts_with('{') {
            spec.to_owned()
        } else {
            std::fs::read_to_string(spec)
                .map_err(|e| Error::Config(format!("{var}: cannot read {spec}: {e}")))?
        };
        Template::parse(&text).map_err(|e| Error::Config(format!("{var}: {e}")))
    }

    /// A template given as JSON already (a hook's inline `request`).
    pub fn from_value(value: &Value) -> Result<Template, String> {
        Template::parse(&value.to_string())
    }

    /// Parses a template and checks that it uses only known placeholders.
    pub fn parse(text: &str) -> Result<Template, String> {
        let template: Template =
            serde_json::from_str(text).map_err(|e| format!("not a request template: {e}"))?;
        let every: BTreeMap<String, String> = PLACEHOLDERS
            .iter()
            .map(|p| ((*p).to_owned(), "x".to_owned()))
            .collect();
        template.render(&every)?;
        if let ResultMode::Poll(poll) = &template.result {
            template.status_request(poll, &every)?;
        }
        Ok(template)
    }

    /// The start request for `values`.
    pub fn render(&self, values: &BTreeMap<String, String>) -> Result<Request, String> {
        Ok(Request {
            url: fill_url(&self.url, values)?,
            method: self.method.to_ascii_uppercase(),
            headers: self.headers(values)?,
            body: self
                .body
                .as_ref()
                .map(|b| fill_json(b, values))
                .transpose()?,
        })
    }

    /// `GET` of the poll URL, with the template's headers (the same API token).
    pub fn status_request(
        &self,
        poll: &Poll,
        values: &BTreeMap<String, String>,
    ) -> Result<Request, String> {
        Ok(Request {
            url: fill_url(&poll.url, values)?,
            method: "GET".to_owned(),
            headers: self.headers(values)?,
            body: None,
        })
    }

    fn headers(&self, values: &BTreeMap<String, String>) -> Result<Vec<(String, String)>, String> {
        self.headers
            .iter()
            .map(|(k, v)| Ok((k.clone(), fill(v, values)?)))
            .collect()
    }
}

/// The placeholder values of a run with `vars` and id `run_id`: each variable without
/// `FLOTILLA_`, lowercased, plus `build_id`; every known placeholder is present (empty when the
/// run has no value for it).
pub fn values(vars: &[(&'static str, String)], run_id: &str) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, String> = PLACEHOLDERS
        .iter()
        .map(|p| ((*p).to_owned(), String::new()))
        .collect();
    for (name, value) in vars {
        let key = name
            .strip_prefix("FLOTILLA_")
            .unwrap_or(name)
            .to_lowercase();
        values.insert(key, value.clone());
    }
    values.insert("build_id".into(), run_id.to_owned());
    values
}

/// `text` with each `{{name}}` replaced; an unknown name is an error.
fn fill(text: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    fill_with(text, values, |_, _, value| Ok(value.to_owned()))
}

/// A URL template filled in, each value percent-encoded for the part of the URL it stands in,
/// so a value (a fork's branch named `x?a=b&c`, an id from the CI system's answer) adds no
/// query parameter, path or fragment: in the path `/` is kept (`{{repo}}` stays `owner/name`)
/// and everything but unreserved characters is encoded; in the query, fragment or host, `/`
/// too. A placeholder the URL starts with (`{{env_url}}/health`) is a base URL, taken as is.
fn fill_url(text: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    fill_with(text, values, |before, name, value| {
        if before.is_empty() {
            return Ok(value.to_owned());
        }
        match UrlPart::of(before) {
            UrlPart::Path => {
                // `%2E%2E` is a `..` segment to URL parsers too: refused, not encoded.
                if value.split('/').any(|s| s == "." || s == "..") {
                    return Err(format!(
                        "{{{{{name}}}}} is `{value}`, which would climb the URL's path"
                    ));
                }
                Ok(encode(value, true))
            }
            UrlPart::Other => Ok(encode(value, false)),
        }
    })
}

/// Where in a URL a placeholder stands, judged by the template text before it.
enum UrlPart {
    Path,
    /// Host, query or fragment.
    Other,
}

impl UrlPart {
    fn of(before: &str) -> UrlPart {
        if before.contains(['?', '#']) {
            return UrlPart::Other;
        }
        match before.find("://") {
            Some(i) if !before[i + 3..].contains('/') => UrlPart::Other,
            _ => UrlPart::Path,
        }
    }
}

/// Percent-encodes all but unreserved characters (RFC 3986), and `/` too unless `keep_slash`.
pub(super) fn encode(value: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// `text` with each `{{name}}` replaced by `value_for(text before it, name, value)`.
fn fill_with(
    text: &str,
    values: &BTreeMap<String, String>,
    value_for: impl Fn(&str, &str, &str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let before = &text[..text.len() - rest.len() + open];
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("`{{{{` without `}}}}` in `{text}`"))?;
        let name = after[..close].trim();
        let value = values.get(name).ok_or_else(|| {
            format!(
                "unknown placeholder {{{{{name}}}}} (known: {})",
                PLACEHOLDERS.join(", ")
            )
        })?;
        out.push_str(&value_for(before, name, value)?);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `value` with placeholders filled in every string (keys included).
fn fill_json(value: &Value, values: &BTreeMap<String, String>) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => Value::String(fill(s, values)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| fill_json(v, values))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((fill(k, values)?, fill_json(v, values)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}
