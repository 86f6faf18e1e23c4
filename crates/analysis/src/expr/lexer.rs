//! Tokens of `expr`, each with the 1-based column it starts at.

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Int(i64),
    Float(f64),
    Str(String),
    Ident(String),
    /// Operators and punctuation: `==`, `&&`, `(`, `?.`, `#` ...
    Op(&'static str),
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub column: usize,
}

/// A syntax error at a column of the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (column {})", self.message, self.column)
    }
}

// Longest first, so `**` is not read as two `*`.
const OPS: [&str; 30] = [
    "**", "==", "!=", "<=", ">=", "&&", "||", "??", "?.", "..", "<", ">", "+", "-", "*", "/", "%",
    "^", "!", "(", ")", "[", "]", "{", "}", ",", ":", "?", ".", "#",
];

pub fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit()
            || (c == '.'
                && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())
                && !prev_is_value(&out))
        {
            let (tok, next) =
                number(&chars, i).map_err(|message| ParseError { column, message })?;
            out.push(Token { tok, column });
            i = next;
            continue;
        }
        if c == '"' || c == '\'' || c == '`' {
            let (s, next) = string(&chars, i).map_err(|message| ParseError { column, message })?;
            out.push(Token {
                tok: Tok::Str(s),
                column,
            });
            i = next;
            continue;
        }
        if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Ident(chars[start..i].iter().collect()),
                column,
            });
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        match OPS.iter().find(|op| rest.starts_with(**op)) {
            Some(op) => {
                // `a?.5:1` is a conditional, not optional chaining.
                if *op == "?." && chars.get(i + 2).is_some_and(|d| d.is_ascii_digit()) {
                    out.push(Token {
                        tok: Tok::Op("?"),
                        column,
                    });
                    i += 1;
                } else {
                    out.push(Token {
                        tok: Tok::Op(op),
                        column,
                    });
                    i += op.chars().count();
                }
            }
            None => {
                return Err(ParseError {
                    column,
                    message: format!("unrecognized character: U+{:04X} '{c}'", c as u32),
                });
            }
        }
    }
    out.push(Token {
        tok: Tok::Eof,
        column: chars.len() + 1,
    });
    Ok(out)
}

fn prev_is_value(out: &[Token]) -> bool {
    matches!(
        out.last().map(|t| &t.tok),
        Some(Tok::Ident(_)) | Some(Tok::Op(")")) | Some(Tok::Op("]"))
    )
}

fn number(chars: &[char], start: usize) -> Result<(Tok, usize), String> {
    let mut i = start;
    if chars[i] == '0' && matches!(chars.get(i + 1), Some('x') | Some('X')) {
        i += 2;
        let digits_start = i;
        while i < chars.len() && (chars[i].is_ascii_hexdigit() || chars[i] == '_') {
            i += 1;
        }
        let text: String = chars[digits_start..i]
            .iter()
            .filter(|c| **c != '_')
            .collect();
        return i64::from_str_radix(&text, 16)
            .map(|v| (Tok::Int(v), i))
            .map_err(|e| format!("invalid hex literal: {e}"));
    }
    let mut is_float = false;
    while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '_') {
        i += 1;
    }
    // A '.' followed by a digit is a fraction; `1..3` and `a.b` are not.
    if i < chars.len() && chars[i] == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
        is_float = true;
        i += 1;
        while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '_') {
            i += 1;
        }
    }
    if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
        let mut j = i + 1;
        if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
            j += 1;
        }
        if j < chars.len() && chars[j].is_ascii_digit() {
            is_float = true;
            i = j;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    let text: String = chars[start..i].iter().filter(|c| **c != '_').collect();
    if is_float {
        text.parse::<f64>()
            .map(|v| (Tok::Float(v), i))
            .map_err(|e| format!("invalid float literal: {e}"))
    } else {
        text.parse::<i64>()
            .map(|v| (Tok::Int(v), i))
            .map_err(|e| format!("invalid integer literal: {e}"))
    }
}

fn string(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let quote = chars[start];
    let mut i = start + 1;
    let mut s = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == quote {
            return Ok((s, i + 1));
        }
        if c == '\\' && quote != '`' {
            let e = chars.get(i + 1).copied().ok_or("literal not terminated")?;
            s.push(match e {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                '\\' => '\\',
                '"' => '"',
                '\'' => '\'',
                other => return Err(format!("invalid char escape \\{other}")),
            });
            i += 2;
            continue;
        }
        s.push(c);
        i += 1;
    }
    Err("literal not terminated".into())
}
