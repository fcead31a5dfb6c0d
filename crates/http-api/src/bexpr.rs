//! Boolean filter expressions in the go-bexpr language that Nomad's
//! `?filter=` takes, parsed and evaluated over JSON values (the objects a
//! list endpoint answers with).
//!
//! The grammar, loosest binding first:
//! `expr := and ("or" and)*`, `and := unary ("and" unary)*`,
//! `unary := "not" unary | "(" expr ")" | match`, and a match is one of
//! `Sel == V`, `Sel != V`, `Sel contains V`, `Sel not contains V`,
//! `V in Sel`, `V not in Sel`, `Sel is empty`, `Sel is not empty`,
//! `Sel matches V`, `Sel not matches V`. A selector is a name followed by
//! `.name`, `["key"]` or `[N]` steps (`Meta.owner`, `Meta["a.b"]`,
//! `TaskGroups[0]`); a value is a `"quoted"` or `` `raw` `` string, a
//! number or a bare word. The parser is pure and bounded: at most
//! [`MAX_EXPRESSION_BYTES`] of text, [`MAX_DEPTH`] levels of nesting and
//! [`MAX_MATCHES`] matches, and regular expressions are compiled with a
//! size limit, so no input can make it run long or deep. Errors carry the
//! 1-based column where the problem is.

use serde_json::Value;
use std::fmt;

/// Longest expression accepted, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4096;
/// Deepest nesting of `not` and parentheses.
pub const MAX_DEPTH: usize = 32;
/// Most match clauses in one expression.
pub const MAX_MATCHES: usize = 128;
/// Compiled size limit of one `matches` regular expression.
const MAX_REGEX_BYTES: usize = 256 * 1024;

/// A parse failure and where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// 1-based column (in characters) of the problem.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for FilterError {}

/// One step of a selector: a field (or map key) or a list index.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A match's operator and its value (`V in Sel` is `Sel contains V`).
#[derive(Debug, Clone)]
pub enum Op {
    Equal(String),
    NotEqual(String),
    Contains(String),
    NotContains(String),
    Empty,
    NotEmpty,
    Matches(regex::Regex),
    NotMatches(regex::Regex),
}

/// A parsed filter, ready to test values.
#[derive(Debug, Clone)]
pub enum Filter {
    Or(Box<Filter>, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Match { selector: Vec<Step>, op: Op },
}

impl Filter {
    /// Parses `text`; an empty (or all-blank) text is `Ok(None)`: no filter.
    pub fn parse(text: &str) -> Result<Option<Filter>, FilterError> {
        if text.len() > MAX_EXPRESSION_BYTES {
            return Err(FilterError {
                column: 1,
                message: format!(
                    "expression is {} bytes, longer than the limit of {MAX_EXPRESSION_BYTES}",
                    text.len()
                ),
            });
        }
        let tokens = lex(text)?;
        if tokens.is_empty() {
            return Ok(None);
        }
        let mut parser = Parser {
            tokens,
            position: 0,
            depth: 0,
            matches: 0,
            end_column: text.chars().count() + 1,
        };
        let filter = parser.expression()?;
        if let Some(token) = parser.tokens.get(parser.position) {
            return Err(FilterError {
                column: token.column,
                message: format!("unexpected {} after a complete expression", token.kind),
            });
        }
        Ok(Some(filter))
    }

    /// Whether `value` passes the filter.
    pub fn matches(&self, value: &Value) -> bool {
        match self {
            Filter::Or(left, right) => left.matches(value) || right.matches(value),
            Filter::And(left, right) => left.matches(value) && right.matches(value),
            Filter::Not(inner) => !inner.matches(value),
            Filter::Match { selector, op } => evaluate(select(value, selector), op),
        }
    }
}

fn select<'a>(mut value: &'a Value, selector: &[Step]) -> Option<&'a Value> {
    for step in selector {
        value = match (step, value) {
            (Step::Key(key), Value::Object(map)) => map.get(key)?,
            (Step::Index(index), Value::Array(items)) => items.get(*index)?,
            // `Meta.0` on a list reads like an index, as pointer selectors do.
            (Step::Key(key), Value::Array(items)) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// Whether a JSON value equals the expression's text value, read in the
/// value's own type (numbers numerically, booleans as Go reads them).
fn equals(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(text) => text == wanted,
        Value::Number(number) => match (number.as_f64(), wanted.parse::<f64>()) {
            (Some(have), Ok(want)) => have == want,
            _ => false,
        },
        Value::Bool(flag) => match wanted {
            "true" | "True" | "TRUE" | "t" | "T" | "1" => *flag,
            "false" | "False" | "FALSE" | "f" | "F" | "0" => !*flag,
            _ => false,
        },
        Value::Null => wanted.is_empty(),
        Value::Array(_) | Value::Object(_) => false,
    }
}

fn contains(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(text) => text.contains(wanted),
        Value::Array(items) => items.iter().any(|item| equals(item, wanted)),
        Value::Object(map) => map.contains_key(wanted),
        _ => false,
    }
}

fn is_empty(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(text)) => text.is_empty(),
        Some(Value::Array(items)) => items.is_empty(),
        Some(Value::Object(map)) => map.is_empty(),
        Some(Value::Number(_) | Value::Bool(_)) => false,
    }
}

fn regex_matches(value: Option<&Value>, regex: &regex::Regex) -> bool {
    match value {
        Some(Value::String(text)) => regex.is_match(text),
        Some(Value::Number(number)) => regex.is_match(&number.to_string()),
        Some(Value::Bool(flag)) => regex.is_match(if *flag { "true" } else { "false" }),
        _ => false,
    }
}

fn evaluate(value: Option<&Value>, op: &Op) -> bool {
    match op {
        Op::Equal(wanted) => value.is_some_and(|value| equals(value, wanted)),
        Op::NotEqual(wanted) => !value.is_some_and(|value| equals(value, wanted)),
        Op::Contains(wanted) => value.is_some_and(|value| contains(value, wanted)),
        Op::NotContains(wanted) => !value.is_some_and(|value| contains(value, wanted)),
        Op::Empty => is_empty(value),
        Op::NotEmpty => !is_empty(value),
        Op::Matches(regex) => regex_matches(value, regex),
        Op::NotMatches(regex) => !regex_matches(value, regex),
    }
}

// ----- lexer ---------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// A bare word: a keyword, a selector name or an unquoted value.
    Word(String),
    /// A quoted string (its content, escapes resolved).
    Quoted(String),
    Number(String),
    Equal,
    NotEqual,
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Dot,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Word(word) => write!(f, "{word:?}"),
            Kind::Quoted(text) => write!(f, "string {text:?}"),
            Kind::Number(number) => write!(f, "number {number}"),
            Kind::Equal => f.write_str("\"==\""),
            Kind::NotEqual => f.write_str("\"!=\""),
            Kind::Open => f.write_str("\"(\""),
            Kind::Close => f.write_str("\")\""),
            Kind::OpenBracket => f.write_str("\"[\""),
            Kind::CloseBracket => f.write_str("\"]\""),
            Kind::Dot => f.write_str("\".\""),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    column: usize,
    /// Whether whitespace came right before it (a selector's steps may not
    /// be separated by spaces).
    spaced: bool,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '/' | ':' | '*' | '@')
}

fn lex(text: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    let mut spaced = true;
    while at < chars.len() {
        let c = chars[at];
        let column = at + 1;
        if c.is_whitespace() {
            spaced = true;
            at += 1;
            continue;
        }
        let error = |message: String| FilterError { column, message };
        let kind = match c {
            '(' => Kind::Open,
            ')' => Kind::Close,
            '[' => Kind::OpenBracket,
            ']' => Kind::CloseBracket,
            '.' => Kind::Dot,
            '=' if chars.get(at + 1) == Some(&'=') => {
                at += 1;
                Kind::Equal
            }
            '!' if chars.get(at + 1) == Some(&'=') => {
                at += 1;
                Kind::NotEqual
            }
            '"' => {
                let mut content = String::new();
                at += 1;
                loop {
                    match chars.get(at) {
                        None => return Err(error("unterminated string".to_string())),
                        Some('"') => break,
                        Some('\\') => {
                            let escaped = match chars.get(at + 1) {
                                Some('"') => '"',
                                Some('\\') => '\\',
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some('r') => '\r',
                                Some(other) => {
                                    return Err(FilterError {
                                        column: at + 1,
                                        message: format!("unknown escape \\{other} in a string"),
                                    });
                                }
                                None => return Err(error("unterminated string".to_string())),
                            };
                            content.push(escaped);
                            at += 2;
                        }
                        Some(other) => {
                            content.push(*other);
                            at += 1;
                        }
                    }
                }
                Kind::Quoted(content)
            }
            '`' => {
                let start = at + 1;
                let Some(length) = chars[start..].iter().position(|c| *c == '`') else {
                    return Err(error("unterminated raw string".to_string()));
                };
                at = start + length;
                Kind::Quoted(chars[start..at].iter().collect())
            }
            c if c.is_ascii_digit() || (c == '-' && chars.get(at + 1).is_some_and(char::is_ascii_digit)) => {
                let start = at;
                at += 1;
                // Right after a selector's dot (`TaskGroups.0.Name`) a number
                // is a list index: digits only.
                let index_step = !spaced && tokens.last().is_some_and(|token: &Token| token.kind == Kind::Dot);
                while chars
                    .get(at)
                    .is_some_and(|c| c.is_ascii_digit() || (!index_step && matches!(c, '.' | 'e' | 'E' | '+' | '-')))
                {
                    at += 1;
                }
                let number: String = chars[start..at].iter().collect();
                if number.parse::<f64>().is_err() {
                    return Err(error(format!("{number:?} is not a number")));
                }
                at -= 1;
                Kind::Number(number)
            }
            c if is_word_char(c) => {
                let start = at;
                while chars.get(at + 1).copied().is_some_and(is_word_char) {
                    at += 1;
                }
                Kind::Word(chars[start..=at].iter().collect())
            }
            other => return Err(error(format!("unexpected character {other:?}"))),
        };
        tokens.push(Token { kind, column, spaced });
        spaced = false;
        at += 1;
    }
    Ok(tokens)
}

// ----- parser --------------------------------------------------------------

struct Parser {
    tokens: Vec<Token>,
    position: usize,
    depth: usize,
    matches: usize,
    end_column: usize,
}

fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "and" | "or" | "not" | "in" | "is" | "empty" | "contains" | "matches"
    )
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn peek_word(&self, offset: usize) -> Option<&str> {
        match self.tokens.get(self.position + offset) {
            Some(Token {
                kind: Kind::Word(word), ..
            }) => Some(word),
            _ => None,
        }
    }

    fn column(&self) -> usize {
        self.peek().map_or(self.end_column, |token| token.column)
    }

    fn fail<T>(&self, message: impl Into<String>) -> Result<T, FilterError> {
        Err(FilterError {
            column: self.column(),
            message: message.into(),
        })
    }

    fn found(&self) -> String {
        self.peek().map_or_else(
            || "the end of the expression".to_string(),
            |token| token.kind.to_string(),
        )
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if self.peek_word(0) == Some(word) {
            self.position += 1;
            true
        } else {
            false
        }
    }

    fn descend(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail(format!("expression nests deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn expression(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.conjunction()?;
        while self.eat_word("or") {
            let right = self.conjunction()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn conjunction(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while self.eat_word("and") {
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        if self.eat_word("not") {
            self.descend()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek().is_some_and(|token| token.kind == Kind::Open) {
            self.position += 1;
            self.descend()?;
            let inner = self.expression()?;
            self.depth -= 1;
            if !self.peek().is_some_and(|token| token.kind == Kind::Close) {
                return self.fail(format!("expected \")\", found {}", self.found()));
            }
            self.position += 1;
            return Ok(inner);
        }
        self.matching()
    }

    fn matching(&mut self) -> Result<Filter, FilterError> {
        self.matches += 1;
        if self.matches > MAX_MATCHES {
            return self.fail(format!("expression has more than {MAX_MATCHES} matches"));
        }
        // `V in Sel` / `V not in Sel`: a value first.
        let value_first = match self.peek().map(|token| &token.kind) {
            Some(Kind::Quoted(_) | Kind::Number(_)) => true,
            Some(Kind::Word(_)) => {
                self.peek_word(1) == Some("in") || (self.peek_word(1) == Some("not") && self.peek_word(2) == Some("in"))
            }
            _ => false,
        };
        if value_first {
            let value = self.value()?;
            let negated = self.eat_word("not");
            if !self.eat_word("in") {
                return self.fail(format!("expected \"in\" after a value, found {}", self.found()));
            }
            let selector = self.selector()?;
            let op = if negated {
                Op::NotContains(value)
            } else {
                Op::Contains(value)
            };
            return Ok(Filter::Match { selector, op });
        }
        let selector = self.selector()?;
        let op_column = self.column();
        let op = match self.peek().map(|token| token.kind.clone()) {
            Some(Kind::Equal) => {
                self.position += 1;
                Op::Equal(self.value()?)
            }
            Some(Kind::NotEqual) => {
                self.position += 1;
                Op::NotEqual(self.value()?)
            }
            Some(Kind::Word(word)) => {
                self.position += 1;
                match word.as_str() {
                    "contains" => Op::Contains(self.value()?),
                    "matches" => Op::Matches(self.regex()?),
                    "is" => {
                        let negated = self.eat_word("not");
                        if !self.eat_word("empty") {
                            return self.fail(format!("expected \"empty\" after \"is\", found {}", self.found()));
                        }
                        if negated { Op::NotEmpty } else { Op::Empty }
                    }
                    "not" => {
                        if self.eat_word("contains") {
                            Op::NotContains(self.value()?)
                        } else if self.eat_word("matches") {
                            Op::NotMatches(self.regex()?)
                        } else {
                            return self.fail(format!(
                                "expected \"contains\" or \"matches\" after \"not\", found {}",
                                self.found()
                            ));
                        }
                    }
                    other => {
                        return Err(FilterError {
                            column: op_column,
                            message: format!("unknown operator {other:?}"),
                        });
                    }
                }
            }
            _ => {
                return self.fail(format!(
                    "expected an operator after the selector, found {}",
                    self.found()
                ));
            }
        };
        Ok(Filter::Match { selector, op })
    }

    fn selector(&mut self) -> Result<Vec<Step>, FilterError> {
        let mut steps = match self.peek().map(|token| &token.kind) {
            Some(Kind::Word(word)) if !is_keyword(word) => vec![Step::Key(word.clone())],
            _ => return self.fail(format!("expected a selector, found {}", self.found())),
        };
        self.position += 1;
        while let Some(token) = self.peek() {
            if token.spaced {
                break;
            }
            match token.kind {
                Kind::Dot => {
                    self.position += 1;
                    match self.peek().map(|token| (&token.kind, token.spaced)) {
                        Some((Kind::Word(word), false)) => steps.push(Step::Key(word.clone())),
                        Some((Kind::Number(number), false)) if number.bytes().all(|b| b.is_ascii_digit()) => {
                            steps.push(Step::Key(number.clone()))
                        }
                        _ => return self.fail(format!("expected a field name after \".\", found {}", self.found())),
                    }
                    self.position += 1;
                }
                Kind::OpenBracket => {
                    self.position += 1;
                    let step = match self.peek().map(|token| &token.kind) {
                        Some(Kind::Quoted(key)) => Step::Key(key.clone()),
                        Some(Kind::Number(number)) => match number.parse::<usize>() {
                            Ok(index) => Step::Index(index),
                            Err(_) => return self.fail(format!("{number} is not a list index")),
                        },
                        _ => return self.fail(format!("expected a quoted key or an index, found {}", self.found())),
                    };
                    self.position += 1;
                    if !self.peek().is_some_and(|token| token.kind == Kind::CloseBracket) {
                        return self.fail(format!("expected \"]\", found {}", self.found()));
                    }
                    self.position += 1;
                    steps.push(step);
                }
                _ => break,
            }
            if steps.len() > MAX_DEPTH {
                return self.fail(format!("selector has more than {MAX_DEPTH} steps"));
            }
        }
        Ok(steps)
    }

    fn value(&mut self) -> Result<String, FilterError> {
        let value = match self.peek().map(|token| &token.kind) {
            Some(Kind::Quoted(text)) => text.clone(),
            Some(Kind::Number(number)) => number.clone(),
            Some(Kind::Word(word)) if !matches!(word.as_str(), "and" | "or" | "not") => word.clone(),
            _ => return self.fail(format!("expected a value, found {}", self.found())),
        };
        self.position += 1;
        Ok(value)
    }

    fn regex(&mut self) -> Result<regex::Regex, FilterError> {
        let column = self.column();
        let pattern = self.value()?;
        regex::RegexBuilder::new(&pattern)
            .size_limit(MAX_REGEX_BYTES)
            .dfa_size_limit(MAX_REGEX_BYTES)
            .build()
            .map_err(|error| FilterError {
                column,
                message: format!("invalid regular expression: {error}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job() -> Value {
        json!({
            "ID": "web-1",
            "Name": "web",
            "Status": "running",
            "Priority": 50,
            "Stop": false,
            "Datacenters": ["dc1", "dc2"],
            "Meta": { "owner": "team-a", "a.b": "dotted" },
            "TaskGroups": [{ "Name": "frontend", "Count": 3 }],
            "Empty": [],
            "Nothing": null,
        })
    }

    fn check(expression: &str) -> bool {
        Filter::parse(expression)
            .expect("the expression parses")
            .expect("the expression is not empty")
            .matches(&job())
    }

    fn error(expression: &str) -> FilterError {
        Filter::parse(expression).expect_err("the expression is refused")
    }

    #[test]
    fn every_operator_evaluates_as_go_bexpr_does() {
        let cases: &[(&str, bool)] = &[
            (r#"Status == "running""#, true),
            (r#"Status == running"#, true),
            (r#"Status != "running""#, false),
            ("Priority == 50", true),
            ("Priority == 50.0", true),
            ("Priority != 40", true),
            ("Stop == false", true),
            ("Stop == true", false),
            (r#"Datacenters contains "dc2""#, true),
            (r#"Datacenters not contains "dc3""#, true),
            (r#""dc1" in Datacenters"#, true),
            (r#""dc9" not in Datacenters"#, true),
            (r#"Name contains "we""#, true),
            (r#"Meta contains "owner""#, true),
            ("Meta.owner == team-a", true),
            (r#"Meta["a.b"] == "dotted""#, true),
            (r#"TaskGroups[0].Name == "frontend""#, true),
            ("TaskGroups.0.Count == 3", true),
            ("TaskGroups[1].Name is empty", true),
            ("Empty is empty", true),
            ("Nothing is empty", true),
            ("Missing is empty", true),
            ("Datacenters is not empty", true),
            (r#"Name matches "^w.b$""#, true),
            (r#"Name not matches "^x""#, true),
            ("Missing == x", false),
            ("Missing != x", true),
            (r#"Status == "running" and Priority == 40"#, false),
            (r#"Status == "dead" or Priority == 50"#, true),
            (r#"not Status == "dead""#, true),
            (r#"not (Status == "running" or Stop == true)"#, false),
            // `and` binds tighter than `or`.
            (r#"Status == "dead" and Stop == true or Priority == 50"#, true),
            (r#"Status == "dead" and (Stop == false or Priority == 50)"#, false),
            ("ID == `web-1`", true),
            (r#"Name == "w\"eb""#, false),
        ];
        for (expression, expected) in cases {
            assert_eq!(check(expression), *expected, "{expression}");
        }
    }

    #[test]
    fn a_blank_expression_is_no_filter() {
        assert!(Filter::parse("").expect("parses").is_none());
        assert!(Filter::parse("   ").expect("parses").is_none());
    }

    #[test]
    fn errors_name_the_column() {
        let cases: &[(&str, usize, &str)] = &[
            ("Status ==", 10, "expected a value"),
            (r#"Status = "x""#, 8, "unexpected character"),
            (r#"Status equals "x""#, 8, "unknown operator"),
            (r#"(Status == "x""#, 15, "expected \")\""),
            (r#"Status == "x" Name"#, 15, "unexpected"),
            (r#"Status == "x"#, 11, "unterminated string"),
            ("Status is full", 11, "expected \"empty\""),
            ("Name matches \"(\"", 14, "invalid regular expression"),
            ("and == 1", 1, "expected a selector"),
            ("Meta[x] == 1", 6, "expected a quoted key"),
            ("Meta. owner == 1", 7, "expected a field name"),
            ("== 1", 1, "expected a selector"),
            ("Status not foo", 12, "expected \"contains\" or \"matches\""),
            ("\"x\" Datacenters", 5, "expected \"in\""),
        ];
        for (expression, column, message) in cases {
            let error = error(expression);
            assert_eq!(error.column, *column, "{expression}: {error}");
            assert!(error.message.contains(message), "{expression}: {error}");
        }
    }

    #[test]
    fn hostile_input_is_refused_within_limits() {
        let long = format!("Name == \"{}\"", "x".repeat(MAX_EXPRESSION_BYTES));
        assert!(error(&long).message.contains("longer than the limit"));

        let deep = format!("{}Name == x{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
        assert!(error(&deep).message.contains("deeper than"));
        let nots = format!("{}Name == x", "not ".repeat(MAX_DEPTH + 1));
        assert!(error(&nots).message.contains("deeper than"));
        let within = format!("{}Name == web{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(check(&within));

        let many = vec!["Name == x"; MAX_MATCHES + 1].join(" or ");
        assert!(error(&many).message.contains("more than"));

        let steps = format!("Meta{} == 1", ".a".repeat(MAX_DEPTH + 1));
        assert!(error(&steps).message.contains("steps"));

        let huge_regex = "Name matches \"(a{1000}){1000}\"";
        assert!(error(huge_regex).message.contains("invalid regular expression"));

        for junk in [
            "\u{0}", "((((", "))))", "\"", "`", "[", "]", ".", "!", "not", "Name[", "Name[0", "-", "1e",
        ] {
            let _ = Filter::parse(junk).expect_err(junk);
        }
    }
}
