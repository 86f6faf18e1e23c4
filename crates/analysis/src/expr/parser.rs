//! A Pratt parser for `expr`, with expr-lang's operator precedences (parser/operator).

use crate::expr::ast::{BinaryOp, Expr, UnaryOp};
use crate::expr::lexer::{ParseError, Tok, Token, lex};

/// Functions that take a predicate as their second argument.
pub const PREDICATE_FUNCS: [&str; 7] = ["all", "any", "none", "one", "filter", "map", "count"];

/// Every function a condition may call: expr's built-ins supported here, and the ones Argo adds
/// to the environment (utils/evaluate/evaluate.go `EvalCondition`).
pub const FUNCS: [&str; 25] = [
    "len", "all", "any", "none", "one", "filter", "map", "count", "sum", "min", "max", "mean",
    "median", "abs", "ceil", "floor", "round", "int", "float", "string", "asInt", "asFloat",
    "isNaN", "isInf", "isNil",
];
/// `default` is Argo's too; kept apart because it is also a Go keyword-looking name.
pub const FUNC_DEFAULT: &str = "default";

fn binary(tok: &Tok) -> Option<(BinaryOp, u8, bool)> {
    // (operator, precedence, right-associative)
    let op = match tok {
        Tok::Op("||") => (BinaryOp::Or, 10, false),
        Tok::Ident(w) if w == "or" => (BinaryOp::Or, 10, false),
        Tok::Op("&&") => (BinaryOp::And, 15, false),
        Tok::Ident(w) if w == "and" => (BinaryOp::And, 15, false),
        Tok::Op("==") => (BinaryOp::Eq, 20, false),
        Tok::Op("!=") => (BinaryOp::Ne, 20, false),
        Tok::Op("<") => (BinaryOp::Lt, 20, false),
        Tok::Op("<=") => (BinaryOp::Le, 20, false),
        Tok::Op(">") => (BinaryOp::Gt, 20, false),
        Tok::Op(">=") => (BinaryOp::Ge, 20, false),
        Tok::Ident(w) if w == "in" => (BinaryOp::In, 20, false),
        Tok::Ident(w) if w == "matches" => (BinaryOp::Matches, 20, false),
        Tok::Ident(w) if w == "contains" => (BinaryOp::Contains, 20, false),
        Tok::Ident(w) if w == "startsWith" => (BinaryOp::StartsWith, 20, false),
        Tok::Ident(w) if w == "endsWith" => (BinaryOp::EndsWith, 20, false),
        Tok::Op("+") => (BinaryOp::Add, 30, false),
        Tok::Op("-") => (BinaryOp::Sub, 30, false),
        Tok::Op("*") => (BinaryOp::Mul, 60, false),
        Tok::Op("/") => (BinaryOp::Div, 60, false),
        Tok::Op("%") => (BinaryOp::Mod, 60, false),
        Tok::Op("**") | Tok::Op("^") => (BinaryOp::Pow, 100, true),
        Tok::Op("??") => (BinaryOp::Coalesce, 200, false),
        _ => return None,
    };
    Some(op)
}

pub struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Depth of predicate bodies: `#` and `.field` are only meaningful inside one.
    predicate_depth: usize,
}

pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let mut p = Parser {
        tokens: lex(src)?,
        pos: 0,
        predicate_depth: 0,
    };
    let e = p.expression(0)?;
    match &p.peek().tok {
        Tok::Eof => Ok(e),
        other => Err(p.error(format!("unexpected token {}", describe(other)))),
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Int(i) => format!("Number(\"{i}\")"),
        Tok::Float(f) => format!("Number(\"{f}\")"),
        Tok::Str(s) => format!("String({s:?})"),
        Tok::Ident(s) => format!("Identifier(\"{s}\")"),
        Tok::Op(o) => format!("Operator(\"{o}\")"),
        Tok::Eof => "EOF".into(),
    }
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.tokens[(self.pos + n).min(self.tokens.len() - 1)].tok
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn error(&self, message: String) -> ParseError {
        ParseError {
            column: self.peek().column,
            message,
        }
    }

    fn expect(&mut self, op: &'static str) -> Result<(), ParseError> {
        if self.peek().tok == Tok::Op(op) {
            self.next();
            Ok(())
        } else {
            Err(self.error(format!(
                "unexpected token {}, expected \"{op}\"",
                describe(&self.peek().tok)
            )))
        }
    }

    fn expression(&mut self, min_prec: u8) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        loop {
            // `not in`, `not matches` ...
            let (negated, tok) = match self.peek_at(0) {
                Tok::Ident(w) if w == "not" => (true, self.peek_at(1).clone()),
                t => (false, t.clone()),
            };
            let Some((op, prec, right_assoc)) = binary(&tok) else {
                break;
            };
            if prec < min_prec {
                break;
            }
            if negated
                && !matches!(
                    op,
                    BinaryOp::In
                        | BinaryOp::Matches
                        | BinaryOp::Contains
                        | BinaryOp::StartsWith
                        | BinaryOp::EndsWith
                )
            {
                break;
            }
            if negated {
                self.next();
            }
            self.next();
            let right = self.expression(if right_assoc { prec } else { prec + 1 })?;
            left = match (negated, op) {
                (true, BinaryOp::In) => {
                    Expr::Binary(BinaryOp::NotIn, Box::new(left), Box::new(right))
                }
                (true, op) => Expr::Unary(
                    UnaryOp::Not,
                    Box::new(Expr::Binary(op, Box::new(left), Box::new(right))),
                ),
                (false, op) => Expr::Binary(op, Box::new(left), Box::new(right)),
            };
        }
        if min_prec == 0 && self.peek().tok == Tok::Op("?") {
            self.next();
            let yes = self.expression(0)?;
            self.expect(":")?;
            let no = self.expression(0)?;
            left = Expr::Conditional(Box::new(left), Box::new(yes), Box::new(no));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let (op, prec) = match &self.peek().tok {
            Tok::Op("!") => (UnaryOp::Not, 50),
            Tok::Ident(w) if w == "not" => (UnaryOp::Not, 50),
            Tok::Op("-") => (UnaryOp::Neg, 90),
            Tok::Op("+") => (UnaryOp::Plus, 90),
            _ => return self.postfix(),
        };
        self.next();
        let operand = self.expression(prec)?;
        Ok(Expr::Unary(op, Box::new(operand)))
    }

    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.primary()?;
        loop {
            match self.peek().tok {
                Tok::Op(".") | Tok::Op("?.") => {
                    let optional = self.peek().tok == Tok::Op("?.");
                    self.next();
                    let t = self.next();
                    match t.tok {
                        Tok::Ident(name) => {
                            e = Expr::Member(Box::new(e), Box::new(Expr::Str(name)), optional)
                        }
                        Tok::Op("[") if optional => {
                            let key = self.expression(0)?;
                            self.expect("]")?;
                            e = Expr::Member(Box::new(e), Box::new(key), true);
                        }
                        other => {
                            return Err(ParseError {
                                column: t.column,
                                message: format!("expected name, got {}", describe(&other)),
                            });
                        }
                    }
                }
                Tok::Op("[") => {
                    self.next();
                    if self.peek().tok == Tok::Op(":") {
                        self.next();
                        let to = if self.peek().tok == Tok::Op("]") {
                            None
                        } else {
                            Some(Box::new(self.expression(0)?))
                        };
                        self.expect("]")?;
                        e = Expr::Slice(Box::new(e), None, to);
                        continue;
                    }
                    let index = self.expression(0)?;
                    if self.peek().tok == Tok::Op(":") {
                        self.next();
                        let to = if self.peek().tok == Tok::Op("]") {
                            None
                        } else {
                            Some(Box::new(self.expression(0)?))
                        };
                        self.expect("]")?;
                        e = Expr::Slice(Box::new(e), Some(Box::new(index)), to);
                        continue;
                    }
                    self.expect("]")?;
                    e = Expr::Member(Box::new(e), Box::new(index), false);
                }
                _ => return Ok(e),
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let t = self.next();
        let column = t.column;
        match t.tok {
            Tok::Int(i) => Ok(Expr::Int(i)),
            Tok::Float(f) => Ok(Expr::Float(f)),
            Tok::Str(s) => Ok(Expr::Str(s)),
            Tok::Ident(name) => match name.as_str() {
                "true" => Ok(Expr::Bool(true)),
                "false" => Ok(Expr::Bool(false)),
                "nil" => Ok(Expr::Nil),
                _ if self.peek().tok == Tok::Op("(") => self.call(name, column),
                "result" => Ok(Expr::Ident(name)),
                _ => Err(ParseError {
                    column,
                    message: format!("unknown name {name}"),
                }),
            },
            Tok::Op("#") => {
                if self.predicate_depth == 0 {
                    return Err(ParseError {
                        column,
                        message: "cannot use pointer accessor outside predicate".into(),
                    });
                }
                Ok(Expr::Pointer)
            }
            // `.field` inside a predicate is `#.field`.
            Tok::Op(".") if self.predicate_depth > 0 => match self.next().tok {
                Tok::Ident(name) => Ok(Expr::Member(
                    Box::new(Expr::Pointer),
                    Box::new(Expr::Str(name)),
                    false,
                )),
                other => Err(ParseError {
                    column,
                    message: format!("expected name, got {}", describe(&other)),
                }),
            },
            Tok::Op("(") => {
                let e = self.expression(0)?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Op("[") => {
                let mut items = Vec::new();
                while self.peek().tok != Tok::Op("]") {
                    items.push(self.expression(0)?);
                    if self.peek().tok == Tok::Op(",") {
                        self.next();
                    } else {
                        break;
                    }
                }
                self.expect("]")?;
                Ok(Expr::Array(items))
            }
            Tok::Op("{") => {
                let mut entries = Vec::new();
                while self.peek().tok != Tok::Op("}") {
                    let key = match self.next() {
                        Token {
                            tok: Tok::Ident(k) | Tok::Str(k),
                            ..
                        } => k,
                        Token { tok, column } => {
                            return Err(ParseError {
                                column,
                                message: format!(
                                    "a map key must be a quoted string, got {}",
                                    describe(&tok)
                                ),
                            });
                        }
                    };
                    self.expect(":")?;
                    entries.push((key, self.expression(0)?));
                    if self.peek().tok == Tok::Op(",") {
                        self.next();
                    } else {
                        break;
                    }
                }
                self.expect("}")?;
                Ok(Expr::Map(entries))
            }
            other => Err(ParseError {
                column,
                message: format!("unexpected token {}", describe(&other)),
            }),
        }
    }

    fn call(&mut self, name: String, column: usize) -> Result<Expr, ParseError> {
        if !FUNCS.contains(&name.as_str()) && name != FUNC_DEFAULT {
            return Err(ParseError {
                column,
                message: format!("unknown name {name}"),
            });
        }
        self.expect("(")?;
        let mut args = Vec::new();
        let predicate = PREDICATE_FUNCS.contains(&name.as_str());
        while self.peek().tok != Tok::Op(")") {
            if predicate && args.len() == 1 {
                args.push(self.predicate()?);
            } else {
                args.push(self.expression(0)?);
            }
            if self.peek().tok == Tok::Op(",") {
                self.next();
            } else {
                break;
            }
        }
        self.expect(")")?;
        if predicate && args.len() != 2 {
            return Err(ParseError {
                column,
                message: format!(
                    "invalid number of arguments (expected 2, got {})",
                    args.len()
                ),
            });
        }
        Ok(Expr::Call(name, args))
    }

    /// `{# > 1}` or, since expr 1.15, a bare `# > 1`.
    fn predicate(&mut self) -> Result<Expr, ParseError> {
        self.predicate_depth += 1;
        let body = if self.peek().tok == Tok::Op("{") {
            self.next();
            let e = self.expression(0);
            let e = e.and_then(|e| self.expect("}").map(|_| e));
            self.predicate_depth -= 1;
            e?
        } else {
            let e = self.expression(0);
            self.predicate_depth -= 1;
            e?
        };
        Ok(body)
    }
}
