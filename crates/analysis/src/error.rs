//! Errors: a bad template (named by field, and line where the YAML parser gives one) and a
//! provider that could not produce a value.

use std::fmt;

/// What kind of template problem this is, so a caller can tell them apart without strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateErrorKind {
    /// Not YAML, or YAML of the wrong shape.
    Yaml,
    /// An argument is missing, not supported, or a `{{...}}` tag names no argument.
    Arg,
    /// A field holds a value Argo would refuse (limits, durations, counts).
    Field,
    /// `successCondition` / `failureCondition` is not a valid expression.
    Expression,
    /// The provider is unknown, unsupported, or misconfigured.
    Provider,
}

/// A template Argo would put in phase Error before measuring anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub kind: TemplateErrorKind,
    /// The field, as a path: `spec.metrics[0].successCondition`. Empty when the document as a
    /// whole is at fault.
    pub field: String,
    /// 1-based line in the YAML, where the parser knows it.
    pub line: Option<usize>,
    pub message: String,
}

impl TemplateError {
    pub fn new(
        kind: TemplateErrorKind,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        TemplateError {
            kind,
            field: field.into(),
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.field.is_empty(), self.line) {
            (false, Some(line)) => write!(f, "{} (line {line}): {}", self.field, self.message),
            (false, None) => write!(f, "{}: {}", self.field, self.message),
            (true, Some(line)) => write!(f, "line {line}: {}", self.message),
            (true, None) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for TemplateError {}

/// A measurement that produced no value: the measurement's phase is Error and this is its
/// message. Argo does not tell these apart for judgement; the kinds are for callers' logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("{0}")]
    Request(String),
    #[error("received non 2xx response code: {0}")]
    Status(u16),
    #[error("{0}")]
    Response(String),
    #[error("{0}")]
    Config(String),
}
