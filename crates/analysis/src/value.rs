//! The value a measurement produces, in the shapes Argo's providers hand to `expr`.
//!
//! Argo's providers return Go values whose *type* matters to `expr` (it type-checks against the
//! environment): Prometheus gives `float64` (scalar) or `[]float64` (vector, matrix); the web
//! provider gives whatever `encoding/json` decoded (`float64`, `string`, `bool`, `nil`,
//! `[]interface{}`, `map[string]interface{}`) or the body as a `string` when it is not JSON.
//! `Floats` keeps `[]float64` apart from `[]interface{}` so the checker can tell them apart.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// Go `[]float64`: what Prometheus vectors and matrices become.
    Floats(Vec<f64>),
    /// Go `[]interface{}`.
    Array(Vec<Value>),
    /// Go `map[string]interface{}`.
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// Go's name of the value's type, as `expr` prints it in its errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Floats(_) => "[]float64",
            Value::Array(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
        }
    }

    /// Argo's `isNil`: a nil interface, nil slice or nil map. An empty slice is not nil.
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// Elements of a list value (either slice shape).
    pub fn list(&self) -> Option<Vec<Value>> {
        match self {
            Value::Floats(f) => Some(f.iter().map(|x| Value::Float(*x)).collect()),
            Value::Array(a) => Some(a.clone()),
            _ => None,
        }
    }

    /// A JSON document decoded as Go's `encoding/json` decodes into `interface{}`: every number
    /// is a `float64`.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(a) => Value::Array(a.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(o) => Value::Map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)` as Prometheus' `SampleValue.String()` prints it.
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{f}")
    }
}

/// Go's `json.Marshal` of a float64 ('f' format, 'e' beyond 1e21 or below 1e-6).
fn json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        // Go writes a two-digit signed exponent: 1e-07, 1e+21.
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = match e.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', e),
                };
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    } else {
        format!("{f}")
    }
}

/// How a measurement's value is recorded: Prometheus' `[a,b]` for sample lists and its float
/// format for scalars; Go's `json.Marshal` for everything else (the web provider).
impl fmt::Display for Value {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Float(x) => out.write_str(&go_float(*x)),
            Value::Floats(xs) => {
                let parts: Vec<String> = xs.iter().map(|x| go_float(*x)).collect();
                write!(out, "[{}]", parts.join(","))
            }
            other => out.write_str(&to_json(other)),
        }
    }
}

fn to_json(v: &Value) -> String {
    match v {
        Value::Nil => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        // json.Marshal refuses NaN and Inf; Argo would record an error. Print them plainly.
        Value::Float(f) if !f.is_finite() => go_float(*f),
        Value::Float(f) => json_float(*f),
        Value::Str(s) => serde_json::Value::String(s.clone()).to_string(),
        Value::Floats(xs) => format!(
            "[{}]",
            xs.iter()
                .map(|x| to_json(&Value::Float(*x)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Value::Array(a) => format!("[{}]", a.iter().map(to_json).collect::<Vec<_>>().join(",")),
        Value::Map(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}:{}", serde_json::Value::String(k.clone()), to_json(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}
