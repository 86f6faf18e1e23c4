//! Evaluation of a parsed condition against a measurement's value, with expr-lang's runtime
//! rules (vm/runtime): numbers compare across int and float, `==` on mismatched types is false,
//! `/` always gives a float, indexing out of range and ordering mismatched types are errors.

use std::collections::BTreeMap;

use crate::expr::ast::{BinaryOp, Expr, UnaryOp};
pub use crate::expr::env::Env;
use crate::value::Value;

type R = Result<Value, String>;

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn mismatched(op: &str, a: &Value, b: &Value) -> String {
    format!(
        "invalid operation: {op} (mismatched types {} and {})",
        a.type_name(),
        b.type_name()
    )
}

/// expr's `runtime.Equal`.
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x == y,
        (x, y) if num(x).is_some() && num(y).is_some() => num(x) == num(y),
        (Value::Floats(x), Value::Floats(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        (Value::Nil, Value::Nil) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        _ => false,
    }
}

fn compare(op: BinaryOp, a: &Value, b: &Value) -> R {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (x, y) => match (num(x), num(y)) {
            (Some(p), Some(q)) => {
                // NaN compares false both ways, as in Go.
                let r = match op {
                    BinaryOp::Lt => p < q,
                    BinaryOp::Le => p <= q,
                    BinaryOp::Gt => p > q,
                    _ => p >= q,
                };
                return Ok(Value::Bool(r));
            }
            _ => return Err(mismatched(op.symbol(), a, b)),
        },
    };
    let o = ord.unwrap_or(Ordering::Equal);
    Ok(Value::Bool(match op {
        BinaryOp::Lt => o.is_lt(),
        BinaryOp::Le => o.is_le(),
        BinaryOp::Gt => o.is_gt(),
        _ => o.is_ge(),
    }))
}

fn arith(op: BinaryOp, a: &Value, b: &Value) -> R {
    if let (BinaryOp::Add, Value::Str(x), Value::Str(y)) = (op, a, b) {
        return Ok(Value::Str(format!("{x}{y}")));
    }
    if let (Value::Int(x), Value::Int(y)) = (a, b) {
        return match op {
            BinaryOp::Add => Ok(Value::Int(x.wrapping_add(*y))),
            BinaryOp::Sub => Ok(Value::Int(x.wrapping_sub(*y))),
            BinaryOp::Mul => Ok(Value::Int(x.wrapping_mul(*y))),
            BinaryOp::Div => Ok(Value::Float(*x as f64 / *y as f64)),
            BinaryOp::Mod if *y == 0 => Err("integer divide by zero".into()),
            BinaryOp::Mod => Ok(Value::Int(x.wrapping_rem(*y))),
            _ => Ok(Value::Float((*x as f64).powf(*y as f64))),
        };
    }
    match (num(a), num(b)) {
        (Some(x), Some(y)) => match op {
            BinaryOp::Add => Ok(Value::Float(x + y)),
            BinaryOp::Sub => Ok(Value::Float(x - y)),
            BinaryOp::Mul => Ok(Value::Float(x * y)),
            BinaryOp::Div => Ok(Value::Float(x / y)),
            BinaryOp::Mod => Err(mismatched("%", a, b)),
            _ => Ok(Value::Float(x.powf(y))),
        },
        _ => Err(mismatched(op.symbol(), a, b)),
    }
}

fn truthy(v: &Value, what: &str) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => Err(format!(
            "interface conversion: interface {{}} is {}, not bool ({what})",
            other.type_name()
        )),
    }
}

fn index_of(len: usize, idx: &Value) -> Result<usize, String> {
    let i = match idx {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        other => {
            return Err(format!(
                "cannot use {} as index to array",
                other.type_name()
            ));
        }
    };
    // expr accepts negative indexes, counted from the end.
    let j = if i < 0 { i + len as i64 } else { i };
    if j < 0 || j >= len as i64 {
        return Err(format!("index out of range: {i} (array length is {len})"));
    }
    Ok(j as usize)
}

/// expr's `runtime.Fetch`.
pub fn fetch(from: &Value, key: &Value) -> R {
    match (from, key) {
        (Value::Floats(xs), k) => Ok(Value::Float(xs[index_of(xs.len(), k)?])),
        (Value::Array(xs), k) => Ok(xs[index_of(xs.len(), k)?].clone()),
        (Value::Str(s), k) => {
            let chars: Vec<char> = s.chars().collect();
            Ok(Value::Str(chars[index_of(chars.len(), k)?].to_string()))
        }
        // A key a map does not have is nil, not an error.
        (Value::Map(m), Value::Str(k)) => Ok(m.get(k).cloned().unwrap_or(Value::Nil)),
        (from, key) => Err(format!(
            "cannot fetch {} from {}",
            plain(key),
            from.type_name()
        )),
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn eval(e: &Expr, env: &mut Env<'_>) -> R {
    match e {
        Expr::Nil => Ok(Value::Nil),
        Expr::Bool(b) => Ok(Value::Bool(*b)),
        Expr::Int(i) => Ok(Value::Int(*i)),
        Expr::Float(f) => Ok(Value::Float(*f)),
        Expr::Str(s) => Ok(Value::Str(s.clone())),
        Expr::Ident(_) => Ok(env.result.clone()),
        Expr::Pointer => env
            .pointers
            .last()
            .cloned()
            .ok_or_else(|| "pointer outside predicate".to_string()),
        Expr::Array(items) => Ok(Value::Array(
            items
                .iter()
                .map(|i| eval(i, env))
                .collect::<Result<_, _>>()?,
        )),
        Expr::Map(entries) => {
            let mut m = BTreeMap::new();
            for (k, v) in entries {
                m.insert(k.clone(), eval(v, env)?);
            }
            Ok(Value::Map(m))
        }
        Expr::Unary(op, inner) => {
            let v = eval(inner, env)?;
            match (op, &v) {
                (UnaryOp::Not, v) => Ok(Value::Bool(!truthy(v, "!")?)),
                (UnaryOp::Neg, Value::Int(i)) => Ok(Value::Int(i.wrapping_neg())),
                (UnaryOp::Neg, Value::Float(f)) => Ok(Value::Float(-f)),
                (UnaryOp::Plus, Value::Int(_) | Value::Float(_)) => Ok(v),
                (_, other) => Err(format!(
                    "invalid operation: unary operator on {}",
                    other.type_name()
                )),
            }
        }
        Expr::Binary(op, l, r) => binary(*op, l, r, env),
        Expr::Conditional(c, yes, no) => {
            if truthy(&eval(c, env)?, "?:")? {
                eval(yes, env)
            } else {
                eval(no, env)
            }
        }
        Expr::Member(obj, key, optional) => {
            let o = eval(obj, env)?;
            if *optional && o.is_nil() {
                return Ok(Value::Nil);
            }
            let k = eval(key, env)?;
            fetch(&o, &k)
        }
        Expr::Slice(obj, from, to) => {
            let o = eval(obj, env)?;
            let items = o
                .list()
                .ok_or_else(|| format!("cannot slice {}", o.type_name()))?;
            let bound = |b: &Option<Box<Expr>>,
                         default: usize,
                         env: &mut Env<'_>|
             -> Result<usize, String> {
                match b {
                    None => Ok(default),
                    Some(e) => match eval(e, env)? {
                        Value::Int(i) => Ok((if i < 0 { i + items.len() as i64 } else { i })
                            .clamp(0, items.len() as i64)
                            as usize),
                        other => Err(format!("cannot use {} as slice index", other.type_name())),
                    },
                }
            };
            let a = bound(from, 0, env)?;
            let b = bound(to, items.len(), env)?;
            let part = if a <= b {
                items[a..b].to_vec()
            } else {
                Vec::new()
            };
            Ok(match o {
                Value::Floats(_) => Value::Floats(part.iter().filter_map(num).collect()),
                _ => Value::Array(part),
            })
        }
        Expr::Call(name, args) => crate::expr::funcs::call(name, args, env, eval),
    }
}

fn binary(op: BinaryOp, l: &Expr, r: &Expr, env: &mut Env<'_>) -> R {
    let a = eval(l, env)?;
    match op {
        // Short-circuit; the right side is returned as is (expr checks bool only when jumping).
        BinaryOp::And => {
            return if truthy(&a, "&&")? {
                eval(r, env)
            } else {
                Ok(Value::Bool(false))
            };
        }
        BinaryOp::Or => {
            return if truthy(&a, "||")? {
                Ok(Value::Bool(true))
            } else {
                eval(r, env)
            };
        }
        BinaryOp::Coalesce => return if a.is_nil() { eval(r, env) } else { Ok(a) },
        _ => {}
    }
    let b = eval(r, env)?;
    match op {
        BinaryOp::Eq => Ok(Value::Bool(equal(&a, &b))),
        BinaryOp::Ne => Ok(Value::Bool(!equal(&a, &b))),
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => compare(op, &a, &b),
        BinaryOp::In | BinaryOp::NotIn => {
            let found = match &b {
                Value::Floats(_) | Value::Array(_) => {
                    b.list().unwrap_or_default().iter().any(|x| equal(&a, x))
                }
                Value::Map(m) => match &a {
                    Value::Str(k) => m.contains_key(k),
                    other => return Err(format!("cannot use {} as map key", other.type_name())),
                },
                Value::Nil => false,
                other => {
                    return Err(format!(
                        "operator \"in\" not defined on {}",
                        other.type_name()
                    ));
                }
            };
            Ok(Value::Bool(found == (op == BinaryOp::In)))
        }
        BinaryOp::Contains | BinaryOp::StartsWith | BinaryOp::EndsWith | BinaryOp::Matches => {
            match (&a, &b) {
                (Value::Str(x), Value::Str(y)) => Ok(Value::Bool(match op {
                    BinaryOp::Contains => x.contains(y.as_str()),
                    BinaryOp::StartsWith => x.starts_with(y.as_str()),
                    BinaryOp::EndsWith => x.ends_with(y.as_str()),
                    _ => regex::Regex::new(y).map_err(|e| e.to_string())?.is_match(x),
                })),
                _ => Err(mismatched(op.symbol(), &a, &b)),
            }
        }
        _ => arith(op, &a, &b),
    }
}
