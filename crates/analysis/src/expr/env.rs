//! What a condition evaluates against: `result`, and the stack of `#` elements of the
//! predicates being evaluated.

use crate::expr::ast::Expr;
use crate::value::Value;

pub struct Env<'a> {
    pub result: &'a Value,
    pub pointers: Vec<Value>,
}

impl<'a> Env<'a> {
    pub fn new(result: &'a Value) -> Self {
        Env {
            result,
            pointers: Vec::new(),
        }
    }
}

/// The evaluator, handed to the functions so they need not import it.
pub type Eval = fn(&Expr, &mut Env<'_>) -> Result<Value, String>;

/// Evaluates a predicate body with `#` bound to `item`.
pub fn with_pointer(eval: Eval, e: &Expr, item: Value, env: &mut Env<'_>) -> Result<Value, String> {
    env.pointers.push(item);
    let out = eval(e, env);
    env.pointers.pop();
    out
}
