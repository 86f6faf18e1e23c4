//! The part of expr's type checker that changes verdicts. Argo compiles each condition against
//! an environment holding the actual value, so `result`'s Go type is known at compile time:
//! `result == 1` on a Prometheus vector (`[]float64`) is a compile error (the measurement is an
//! Error), where at run time the same comparison would merely be false (a Failed measurement).
//! Types inside JSON documents are `interface{}` and are only checked at run time.

use crate::expr::ast::{BinaryOp, Expr, UnaryOp};
use crate::value::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    Unknown,
    Nil,
    Bool,
    Int,
    Float,
    Str,
    Array(Box<Ty>),
    Map,
}

impl Ty {
    pub fn of(v: &Value) -> Ty {
        match v {
            // A nil interface in the environment is typed as interface{}.
            Value::Nil => Ty::Unknown,
            Value::Bool(_) => Ty::Bool,
            Value::Int(_) => Ty::Int,
            Value::Float(_) => Ty::Float,
            Value::Str(_) => Ty::Str,
            Value::Floats(_) => Ty::Array(Box::new(Ty::Float)),
            Value::Array(_) => Ty::Array(Box::new(Ty::Unknown)),
            Value::Map(_) => Ty::Map,
        }
    }

    fn name(&self) -> String {
        match self {
            Ty::Unknown => "interface {}".into(),
            Ty::Nil => "nil".into(),
            Ty::Bool => "bool".into(),
            Ty::Int => "int".into(),
            Ty::Float => "float64".into(),
            Ty::Str => "string".into(),
            Ty::Array(t) => format!("[]{}", t.name()),
            Ty::Map => "map[string]interface {}".into(),
        }
    }

    fn known(&self) -> bool {
        !matches!(self, Ty::Unknown | Ty::Nil)
    }

    fn numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Float)
    }
}

fn mismatch(op: &str, a: &Ty, b: &Ty) -> String {
    format!(
        "invalid operation: {op} (mismatched types {} and {})",
        a.name(),
        b.name()
    )
}

pub struct Checker {
    result: Ty,
    pointers: Vec<Ty>,
}

impl Checker {
    pub fn new(result: Ty) -> Self {
        Checker {
            result,
            pointers: Vec::new(),
        }
    }

    pub fn check(&mut self, e: &Expr) -> Result<Ty, String> {
        Ok(match e {
            Expr::Nil => Ty::Nil,
            Expr::Bool(_) => Ty::Bool,
            Expr::Int(_) => Ty::Int,
            Expr::Float(_) => Ty::Float,
            Expr::Str(_) => Ty::Str,
            Expr::Ident(_) => self.result.clone(),
            Expr::Pointer => self.pointers.last().cloned().unwrap_or(Ty::Unknown),
            Expr::Array(items) => {
                for i in items {
                    self.check(i)?;
                }
                Ty::Array(Box::new(Ty::Unknown))
            }
            Expr::Map(entries) => {
                for (_, v) in entries {
                    self.check(v)?;
                }
                Ty::Map
            }
            Expr::Unary(op, inner) => {
                let t = self.check(inner)?;
                match op {
                    UnaryOp::Not if t.known() && t != Ty::Bool => {
                        return Err(format!("invalid operation: ! ({})", t.name()));
                    }
                    UnaryOp::Not => Ty::Bool,
                    _ if t.known() && !t.numeric() => {
                        return Err(format!("invalid operation: - ({})", t.name()));
                    }
                    _ => t,
                }
            }
            Expr::Binary(op, l, r) => {
                let a = self.check(l)?;
                let b = self.check(r)?;
                self.binary(*op, &a, &b)?
            }
            Expr::Conditional(c, y, n) => {
                self.check(c)?;
                let a = self.check(y)?;
                let b = self.check(n)?;
                if a == b { a } else { Ty::Unknown }
            }
            Expr::Member(obj, key, _) => {
                let o = self.check(obj)?;
                self.check(key)?;
                match o {
                    Ty::Array(t) => *t,
                    Ty::Str => Ty::Str,
                    Ty::Map | Ty::Unknown | Ty::Nil => Ty::Unknown,
                    other => {
                        let k = match key.as_ref() {
                            Expr::Str(s) => s.clone(),
                            _ => "[]".into(),
                        };
                        return Err(format!("type {} has no field {k}", other.name()));
                    }
                }
            }
            Expr::Slice(obj, a, b) => {
                for x in [a, b].into_iter().flatten() {
                    self.check(x)?;
                }
                self.check(obj)?
            }
            Expr::Call(name, args) => self.call(name, args)?,
        })
    }

    fn binary(&self, op: BinaryOp, a: &Ty, b: &Ty) -> Result<Ty, String> {
        let both = a.known() && b.known();
        match op {
            BinaryOp::Eq | BinaryOp::Ne => {
                if both && !(a.numeric() && b.numeric()) && a != b {
                    return Err(mismatch(op.symbol(), a, b));
                }
                Ok(Ty::Bool)
            }
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                if both && !((a.numeric() && b.numeric()) || (a == &Ty::Str && b == &Ty::Str)) {
                    return Err(mismatch(op.symbol(), a, b));
                }
                Ok(Ty::Bool)
            }
            BinaryOp::And | BinaryOp::Or => {
                if (a.known() && a != &Ty::Bool) || (b.known() && b != &Ty::Bool) {
                    return Err(mismatch(op.symbol(), a, b));
                }
                Ok(Ty::Bool)
            }
            BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Div
            | BinaryOp::Mod
            | BinaryOp::Pow => {
                if op == BinaryOp::Add && a == &Ty::Str && b == &Ty::Str {
                    return Ok(Ty::Str);
                }
                if both && !(a.numeric() && b.numeric()) {
                    return Err(mismatch(op.symbol(), a, b));
                }
                Ok(match (op, a, b) {
                    (BinaryOp::Div | BinaryOp::Pow, _, _) => Ty::Float,
                    (_, Ty::Int, Ty::Int) => Ty::Int,
                    (_, x, y) if x.numeric() && y.numeric() => Ty::Float,
                    _ => Ty::Unknown,
                })
            }
            BinaryOp::In | BinaryOp::NotIn => {
                if b.known() && !matches!(b, Ty::Array(_) | Ty::Map) {
                    return Err(format!(
                        "invalid operation: {} (mismatched types {} and {})",
                        op.symbol(),
                        a.name(),
                        b.name()
                    ));
                }
                Ok(Ty::Bool)
            }
            BinaryOp::Matches | BinaryOp::Contains | BinaryOp::StartsWith | BinaryOp::EndsWith => {
                if (a.known() && a != &Ty::Str) || (b.known() && b != &Ty::Str) {
                    return Err(mismatch(op.symbol(), a, b));
                }
                Ok(Ty::Bool)
            }
            BinaryOp::Coalesce => Ok(if a == b { a.clone() } else { Ty::Unknown }),
        }
    }

    fn call(&mut self, name: &str, args: &[Expr]) -> Result<Ty, String> {
        if crate::expr::parser::PREDICATE_FUNCS.contains(&name) {
            let list = self.check(&args[0])?;
            let elem = match &list {
                Ty::Array(t) => (**t).clone(),
                t if t.known() => {
                    return Err(format!(
                        "builtin {name} takes only array (got {})",
                        t.name()
                    ));
                }
                _ => Ty::Unknown,
            };
            self.pointers.push(elem);
            let body = self.check(&args[1]);
            self.pointers.pop();
            let body = body?;
            return Ok(match name {
                "filter" => list,
                "map" => Ty::Array(Box::new(body)),
                "count" => Ty::Int,
                _ => Ty::Bool,
            });
        }
        let tys: Vec<Ty> = args
            .iter()
            .map(|a| self.check(a))
            .collect::<Result<_, _>>()?;
        Ok(match name {
            "isNaN" | "isInf" => {
                if let Some(t) = tys.first().filter(|t| t.known() && !t.numeric()) {
                    return Err(format!(
                        "cannot use {} as argument (type float64) to call {name}",
                        t.name()
                    ));
                }
                Ty::Bool
            }
            "isNil" => Ty::Bool,
            "len" => {
                if let Some(t) = tys
                    .first()
                    .filter(|t| matches!(t, Ty::Bool | Ty::Int | Ty::Float))
                {
                    return Err(format!("invalid argument for len (type {})", t.name()));
                }
                Ty::Int
            }
            "asInt" | "int" => Ty::Int,
            "asFloat" | "float" | "mean" | "median" | "ceil" | "floor" | "round" => Ty::Float,
            "string" => Ty::Str,
            _ => Ty::Unknown,
        })
    }
}
