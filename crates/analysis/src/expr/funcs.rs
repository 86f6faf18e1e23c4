//! Functions a condition may call: expr's built-ins (builtin/builtin.go) and the ones Argo puts in
//! the environment (utils/evaluate/evaluate.go `EvalCondition`).

use crate::expr::ast::Expr;
use crate::expr::env::{Env, Eval, with_pointer};
use crate::value::Value;

type R = Result<Value, String>;

fn arity(name: &str, args: &[Expr], n: usize) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!(
            "invalid number of arguments for {name} (expected {n}, got {})",
            args.len()
        ))
    }
}

fn float_arg(name: &str, v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        other => Err(format!(
            "cannot use {} as argument (type float64) to call {name}",
            other.type_name()
        )),
    }
}

pub fn call(name: &str, args: &[Expr], env: &mut Env<'_>, eval: Eval) -> R {
    if crate::expr::parser::PREDICATE_FUNCS.contains(&name) {
        return predicate(name, args, env, eval);
    }
    let values: Vec<Value> = args
        .iter()
        .map(|a| eval(a, env))
        .collect::<Result<_, _>>()?;
    match name {
        // Argo's `default` and `isNil` ignore their first argument and look at the
        // measurement's value itself (evaluate.go defaultFunc / isNilFunc).
        "default" => {
            arity(name, args, 2)?;
            Ok(if env.result.is_nil() {
                values[1].clone()
            } else {
                env.result.clone()
            })
        }
        "isNil" => {
            arity(name, args, 1)?;
            Ok(Value::Bool(env.result.is_nil()))
        }
        "isNaN" => {
            arity(name, args, 1)?;
            Ok(Value::Bool(float_arg(name, &values[0])?.is_nan()))
        }
        "isInf" => {
            arity(name, args, 1)?;
            Ok(Value::Bool(float_arg(name, &values[0])?.is_infinite()))
        }
        "asInt" => {
            arity(name, args, 1)?;
            as_int(&values[0])
        }
        "asFloat" => {
            arity(name, args, 1)?;
            as_float(&values[0])
        }
        "len" => {
            arity(name, args, 1)?;
            match &values[0] {
                Value::Str(s) => Ok(Value::Int(s.len() as i64)),
                Value::Floats(x) => Ok(Value::Int(x.len() as i64)),
                Value::Array(x) => Ok(Value::Int(x.len() as i64)),
                Value::Map(x) => Ok(Value::Int(x.len() as i64)),
                other => Err(format!(
                    "invalid argument for len (type {})",
                    other.type_name()
                )),
            }
        }
        "abs" | "ceil" | "floor" | "round" => {
            arity(name, args, 1)?;
            if let (Value::Int(i), "abs") = (&values[0], name) {
                return Ok(Value::Int(i.wrapping_abs()));
            }
            if let Value::Int(i) = &values[0] {
                return Ok(Value::Float(*i as f64));
            }
            let f = float_arg(name, &values[0])?;
            Ok(Value::Float(match name {
                "abs" => f.abs(),
                "ceil" => f.ceil(),
                "floor" => f.floor(),
                _ => f.round(),
            }))
        }
        "int" => {
            arity(name, args, 1)?;
            match &values[0] {
                Value::Int(i) => Ok(Value::Int(*i)),
                Value::Float(f) => Ok(Value::Int(*f as i64)),
                Value::Str(s) => s
                    .trim()
                    .parse()
                    .map(Value::Int)
                    .map_err(|e| format!("strconv.Atoi: parsing {s:?}: {e}")),
                other => Err(format!("invalid operation: int({})", other.type_name())),
            }
        }
        "float" => {
            arity(name, args, 1)?;
            match &values[0] {
                Value::Str(s) => s
                    .trim()
                    .parse()
                    .map(Value::Float)
                    .map_err(|e| format!("strconv.ParseFloat: parsing {s:?}: {e}")),
                v => float_arg(name, v).map(Value::Float),
            }
        }
        "string" => {
            arity(name, args, 1)?;
            Ok(Value::Str(match &values[0] {
                Value::Str(s) => s.clone(),
                v => v.to_string(),
            }))
        }
        "sum" | "min" | "max" | "mean" | "median" => aggregate(name, &values),
        other => Err(format!("unknown func {other}")),
    }
}

fn as_int(v: &Value) -> R {
    match v {
        Value::Float(f) => Ok(Value::Int(*f as i64)),
        Value::Int(i) => Ok(Value::Int(*i)),
        Value::Str(s) => s
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| format!("strconv.ParseInt: parsing {s:?}: invalid syntax")),
        other => Err(format!(
            "asInt() not supported on {} {other}",
            other.type_name()
        )),
    }
}

fn as_float(v: &Value) -> R {
    match v {
        Value::Float(f) => Ok(Value::Float(*f)),
        Value::Int(i) => Ok(Value::Float(*i as f64)),
        Value::Str(s) => s
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax")),
        other => Err(format!(
            "asFloat() not supported on {} {other}",
            other.type_name()
        )),
    }
}

fn aggregate(name: &str, values: &[Value]) -> R {
    // One array argument, or (min/max) several numbers.
    let items = match values {
        [single] => single.list().unwrap_or_else(|| vec![single.clone()]),
        many => many.to_vec(),
    };
    let all_int = items.iter().all(|v| matches!(v, Value::Int(_)));
    let nums: Vec<f64> = items
        .iter()
        .map(|v| float_arg(name, v))
        .collect::<Result<_, _>>()?;
    let out = match name {
        "sum" => nums.iter().sum(),
        "mean" if nums.is_empty() => return Ok(Value::Float(0.0)),
        "mean" => nums.iter().sum::<f64>() / nums.len() as f64,
        "median" if nums.is_empty() => return Ok(Value::Float(0.0)),
        "median" => {
            let mut s = nums.clone();
            s.sort_by(|a, b| a.total_cmp(b));
            let n = s.len();
            if n.is_multiple_of(2) {
                (s[n / 2 - 1] + s[n / 2]) / 2.0
            } else {
                s[n / 2]
            }
        }
        _ if nums.is_empty() => return Err(format!("not enough arguments to call {name}")),
        "min" => nums.iter().copied().fold(f64::INFINITY, f64::min),
        _ => nums.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    };
    if all_int && matches!(name, "sum" | "min" | "max") {
        return Ok(Value::Int(out as i64));
    }
    Ok(Value::Float(out))
}

fn predicate(name: &str, args: &[Expr], env: &mut Env<'_>, eval: Eval) -> R {
    let list = eval(&args[0], env)?;
    let items = list
        .list()
        .ok_or_else(|| format!("cannot iterate over {} in {name}", list.type_name()))?;
    let body = &args[1];
    let test = |item: &Value, env: &mut Env<'_>| -> Result<bool, String> {
        match with_pointer(eval, body, item.clone(), env)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!(
                "predicate of {name} returned {}, not bool",
                other.type_name()
            )),
        }
    };
    match name {
        "all" => {
            for item in &items {
                if !test(item, env)? {
                    return Ok(Value::Bool(false));
                }
            }
            Ok(Value::Bool(true))
        }
        "any" => {
            for item in &items {
                if test(item, env)? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "none" => {
            for item in &items {
                if test(item, env)? {
                    return Ok(Value::Bool(false));
                }
            }
            Ok(Value::Bool(true))
        }
        "one" | "count" => {
            let mut n = 0;
            for item in &items {
                if test(item, env)? {
                    n += 1;
                }
            }
            Ok(if name == "one" {
                Value::Bool(n == 1)
            } else {
                Value::Int(n)
            })
        }
        "filter" => {
            let mut out = Vec::new();
            for item in &items {
                if test(item, env)? {
                    out.push(item.clone());
                }
            }
            Ok(Value::Array(out))
        }
        _ => {
            let mut out = Vec::new();
            for item in &items {
                out.push(with_pointer(eval, body, item.clone(), env)?);
            }
            Ok(Value::Array(out))
        }
    }
}
