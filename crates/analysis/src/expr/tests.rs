use super::Program;
use crate::value::Value;
use std::collections::BTreeMap;

fn eval(src: &str, result: Value) -> Result<bool, String> {
    Program::parse(src)
        .map_err(|e| e.to_string())?
        .eval_condition(&result)
}

fn vector(xs: &[f64]) -> Value {
    Value::Floats(xs.to_vec())
}

#[test]
fn prometheus_style_conditions_evaluate_like_argo() {
    assert_eq!(eval("result[0] >= 0.95", vector(&[0.97])), Ok(true));
    assert_eq!(eval("result[0] >= 0.95", vector(&[0.5])), Ok(false));
    assert_eq!(
        eval("len(result) == 0 || result[0] >= 0.95", vector(&[])),
        Ok(true)
    );
    assert_eq!(
        eval("len(result) > 0 && result[0] >= 0.95", vector(&[])),
        Ok(false)
    );
    assert_eq!(
        eval("all(result, {# < 0.05})", vector(&[0.01, 0.02])),
        Ok(true)
    );
    assert_eq!(
        eval("all(result, # < 1000)", vector(&[10.0, 2000.0])),
        Ok(false)
    );
    assert_eq!(eval("any(result, {# > 1})", vector(&[0.5, 2.0])), Ok(true));
    assert_eq!(
        eval("none(result, {# > 1})", vector(&[0.5, 2.0])),
        Ok(false)
    );
    assert_eq!(
        eval("len(filter(result, {# > 1})) == 1", vector(&[0.5, 2.0])),
        Ok(true)
    );
    assert_eq!(
        eval("map(result, {# * 2})[1] == 4", vector(&[0.5, 2.0])),
        Ok(true)
    );
    assert_eq!(
        eval("count(result, # > 0) == 2", vector(&[0.5, 2.0])),
        Ok(true)
    );
    assert_eq!(eval("2 in result", vector(&[2.0, 2.0])), Ok(true));
    assert_eq!(eval("3 not in result", vector(&[2.0])), Ok(true));
    assert_eq!(eval("result[-1] == 2", vector(&[1.0, 2.0])), Ok(true));
    assert_eq!(eval("isNaN(result[0])", vector(&[f64::NAN])), Ok(true));
    assert_eq!(eval("isInf(result)", Value::Float(f64::INFINITY)), Ok(true));
    assert_eq!(eval("result > 1", Value::Float(5.0)), Ok(true));
}

#[test]
fn nan_compares_false_both_ways() {
    assert_eq!(eval("result >= 0.95", Value::Float(f64::NAN)), Ok(false));
    assert_eq!(eval("result < 0.95", Value::Float(f64::NAN)), Ok(false));
    assert_eq!(
        eval("isNaN(result) || result >= 0.95", Value::Float(f64::NAN)),
        Ok(true)
    );
}

#[test]
fn operators_precedence_and_words() {
    assert_eq!(eval("1 + 2 * 3 == 7", Value::Nil), Ok(true));
    assert_eq!(eval("(1 + 2) * 3 == 9", Value::Nil), Ok(true));
    assert_eq!(eval("2 ** 3 ** 2 == 512", Value::Nil), Ok(true));
    assert_eq!(eval("-2 ** 2 == -4", Value::Nil), Ok(true));
    assert_eq!(eval("7 / 2 == 3.5", Value::Nil), Ok(true));
    assert_eq!(eval("7 % 4 == 3", Value::Nil), Ok(true));
    assert_eq!(eval("true and not false", Value::Nil), Ok(true));
    assert_eq!(eval("false or !false", Value::Nil), Ok(true));
    assert_eq!(eval("1 < 2 ? true : false", Value::Nil), Ok(true));
    assert_eq!(
        eval(
            "'abc' contains 'b' && 'abc' startsWith 'a' && 'abc' endsWith 'c'",
            Value::Nil
        ),
        Ok(true)
    );
    assert_eq!(eval("'abc' matches '^a.c$'", Value::Nil), Ok(true));
    assert_eq!(eval("'a' + 'b' == 'ab'", Value::Nil), Ok(true));
    assert_eq!(eval("nil ?? true", Value::Nil), Ok(true));
}

#[test]
fn web_style_results_and_members() {
    let mut data = BTreeMap::new();
    data.insert("ok".to_string(), Value::Bool(true));
    data.insert("successPercent".to_string(), Value::Float(0.95));
    let doc = Value::Map(data);
    assert_eq!(
        eval("result.ok && result.successPercent >= 0.90", doc.clone()),
        Ok(true)
    );
    assert_eq!(eval("result['ok'] == true", doc.clone()), Ok(true));
    // A missing key is nil, and comparing nil to a number is false, not an error.
    assert_eq!(eval("result.missing == 1", doc.clone()), Ok(false));
    assert_eq!(
        eval("result?.missing?.deeper == nil", doc.clone()),
        Ok(true)
    );
    assert!(
        eval("result.missing.deeper == 1", doc)
            .expect_err("an error")
            .contains("cannot fetch deeper")
    );
    assert_eq!(
        eval("result == \"I am OK\"", Value::Str("I am OK".into())),
        Ok(true)
    );
    assert_eq!(eval("result == true", Value::Bool(true)), Ok(true));
}

#[test]
fn argo_functions_as_int_as_float_default_is_nil() {
    assert_eq!(eval("asInt(result) == 1", Value::Str("1".into())), Ok(true));
    assert_eq!(eval("asInt(result) == 1", Value::Float(1.123)), Ok(true));
    assert!(
        eval("asInt(result) == 1.1", Value::Str("1.1".into()))
            .expect_err("an error")
            .contains("ParseInt")
    );
    assert_eq!(
        eval("asFloat(result) >= 1.1", Value::Str("1.1".into())),
        Ok(true)
    );
    assert!(
        eval("asFloat(result) == 1.1", Value::Str("NotANum".into()))
            .expect_err("an error")
            .contains("ParseFloat")
    );
    // Compile-time check: float64 and string never compare.
    assert!(
        eval("asFloat(result) == \"1.1\"", Value::Str("1.1".into()))
            .expect_err("an error")
            .contains("mismatched types float64 and string")
    );
    assert_eq!(eval("default(result, 0) < 0.05", Value::Nil), Ok(true));
    assert_eq!(
        eval("default(result, 0) < 0.05", Value::Float(0.5)),
        Ok(false)
    );
    assert_eq!(eval("isNil(result)", Value::Nil), Ok(true));
    assert_eq!(eval("isNil(result)", Value::Floats(vec![])), Ok(false));
}

#[test]
fn errors_argo_would_report() {
    // Index out of range on an empty vector.
    assert!(
        eval("result[0] >= 0.95", vector(&[]))
            .expect_err("an error")
            .contains("index out of range")
    );
    // Not a bool.
    assert_eq!(
        eval("1", Value::Bool(true)),
        Err("expected bool, but got int".into())
    );
    // The value's type is known when compiling: a vector is never equal to a number, and the
    // comparison is an error rather than false.
    assert!(
        eval("result == 1", vector(&[1.0]))
            .expect_err("an error")
            .contains("mismatched types []float64 and int")
    );
    assert!(
        eval("result > 0.5", vector(&[1.0]))
            .expect_err("an error")
            .contains("mismatched types")
    );
    // A string is never compared with a number either.
    assert!(eval("result == 1", Value::Str("x".into())).is_err());
    assert!(eval("result < 'a'", Value::Array(vec![])).is_err());
}

#[test]
fn parse_errors_carry_the_column() {
    let err = Program::parse("result[0] >= ").expect_err("an error");
    assert_eq!(err.column, 14);
    let err = Program::parse("invalidVariable").expect_err("an error");
    assert_eq!(err.message, "unknown name invalidVariable");
    assert_eq!(err.column, 1);
    let err = Program::parse("result[0] >= 0.95 )").expect_err("an error");
    assert_eq!(err.column, 19);
    let err = Program::parse("nosuchfunc(result)").expect_err("an error");
    assert!(err.message.contains("unknown name nosuchfunc"));
    assert!(
        Program::parse("# > 1")
            .expect_err("an error")
            .message
            .contains("predicate")
    );
    assert!(
        Program::parse("'open")
            .expect_err("an error")
            .message
            .contains("not terminated")
    );
    assert!(Program::parse("all(result)").is_err());
}
