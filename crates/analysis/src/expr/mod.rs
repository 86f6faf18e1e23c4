//! The subset of `expr` (expr-lang/expr, as Argo's `utils/evaluate` uses it) that conditions
//! are written in: literals, `result` and indexing/members, comparisons, `&&`/`and`,
//! `||`/`or`, `!`/`not`, arithmetic, `in`, string operators, `?:`, `??`, predicates
//! (`all`/`any`/`none`/`one`/`filter`/`map`/`count`, with `{# ...}` or bare), a set of
//! built-ins, and Argo's `asInt`, `asFloat`, `isNaN`, `isInf`, `isNil`, `default`.

mod ast;
mod check;
mod env;
mod eval;
mod funcs;
mod lexer;
mod parser;

pub use lexer::ParseError;

use crate::value::Value;

/// A parsed condition. Unknown names and syntax errors are found here, before any
/// measurement (Argo finds them at every measurement, as errors).
#[derive(Debug, Clone)]
pub struct Program {
    ast: ast::Expr,
}

impl Program {
    pub fn parse(src: &str) -> Result<Program, ParseError> {
        Ok(Program {
            ast: parser::parse(src)?,
        })
    }

    /// Argo's `EvalCondition`: type-check against the value's Go type, run, and require a bool.
    pub fn eval_condition(&self, result: &Value) -> Result<bool, String> {
        check::Checker::new(check::Ty::of(result)).check(&self.ast)?;
        let mut env = eval::Env::new(result);
        match eval::eval(&self.ast, &mut env)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!("expected bool, but got {}", other.type_name())),
        }
    }

    /// Evaluates to a value (for tests and tools).
    pub fn eval(&self, result: &Value) -> Result<Value, String> {
        check::Checker::new(check::Ty::of(result)).check(&self.ast)?;
        eval::eval(&self.ast, &mut eval::Env::new(result))
    }
}

#[cfg(test)]
mod tests;
