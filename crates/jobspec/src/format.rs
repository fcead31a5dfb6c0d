//! `drover fmt`: canonical layout for HCL files, keeping every comment.
//!
//! The formatter changes whitespace only, and only outside strings,
//! heredocs and block comments:
//! - each line is indented two spaces per open bracket (`{`, `[`, `(`)
//!   around it, the way `terraform fmt` counts them: a line that opens
//!   several brackets indents what follows by one level only;
//! - the `=` of attributes on consecutive lines is aligned one space after
//!   the longest name (a line that opens a multi-line value ends the run);
//! - one space follows that `=`; trailing whitespace is removed, and the
//!   file ends with exactly one newline.
//!
//! A small lexer tells code from strings, template interpolations, heredocs
//! and comments. The input must parse as HCL; so must the output, and it
//! must hold the same non-whitespace text, or formatting fails instead of
//! writing something wrong.

use crate::diag::{Diagnostic, Diagnostics};

const INDENT: usize = 2;

/// Formats HCL source text canonically. Syntax errors come back as
/// diagnostics with line:column; formatted text is stable (formatting it
/// again changes nothing).
pub fn format_hcl(source: &str) -> Result<String, Diagnostics> {
    check_syntax(source)?;
    let output = layout(source);
    if strip_whitespace(source) != strip_whitespace(&output) || check_syntax(&output).is_err() {
        return Err(Diagnostics(vec![Diagnostic {
            path: String::new(),
            message: "the formatter could not lay this file out safely; it is left unchanged".to_string(),
            line: 0,
            column: 0,
        }]));
    }
    Ok(output)
}

fn strip_whitespace(text: &str) -> String {
    text.chars().filter(|ch| !ch.is_whitespace()).collect()
}

fn check_syntax(source: &str) -> Result<(), Diagnostics> {
    if let Some(offset) = crate::hcl::too_deep(source) {
        let (line, column) = crate::diag::LineIndex::new(source).position(offset);
        return Err(Diagnostics(vec![Diagnostic {
            path: String::new(),
            message: "input is nested too deeply".to_string(),
            line,
            column,
        }]));
    }
    match hcl_edit::parser::parse_body(source) {
        Ok(_) => Ok(()),
        Err(err) => {
            let location = err.location();
            Err(Diagnostics(vec![Diagnostic {
                path: String::new(),
                message: format!("syntax error: {}", err.message()),
                line: location.line() as u32,
                column: location.column() as u32,
            }]))
        }
    }
}

/// Where the lexer is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ctx {
    /// Expressions and structure.
    Code,
    /// Inside a quoted string.
    Str,
    /// Inside `${ … }` or `%{ … }`, with the number of `{` opened inside.
    Interp(usize),
    /// Inside a heredoc's text, until a line holding only its delimiter.
    Heredoc(String),
    /// Inside `/* … */`.
    BlockComment,
}

/// One source line and what the lexer learnt about it.
#[derive(Debug)]
struct Line<'a> {
    text: &'a str,
    ending: &'a str,
    /// Starts inside a string, heredoc, interpolation or block comment:
    /// left exactly as written.
    opaque: bool,
    /// Ends in code or a line comment: trailing whitespace may go.
    trim_end: bool,
    /// Brackets opened minus brackets closed, in code.
    net: i64,
}

fn is_id_start(ch: char) -> bool {
    ch.is_alphabetic() || ch == '_'
}

fn is_id_continue(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_' || ch == '-'
}

fn split_lines(source: &str) -> Vec<(&str, &str)> {
    let mut lines = Vec::new();
    let mut rest = source;
    while !rest.is_empty() {
        match rest.find('\n') {
            Some(idx) => {
                let (line, tail) = rest.split_at(idx + 1);
                let body = &line[..idx];
                match body.strip_suffix('\r') {
                    Some(text) => lines.push((text, &line[text.len()..])),
                    None => lines.push((body, &line[idx..])),
                }
                rest = tail;
            }
            None => {
                lines.push((rest, ""));
                rest = "";
            }
        }
    }
    lines
}

/// Lexes the source line by line.
fn lex(source: &str) -> Vec<Line<'_>> {
    let mut stack: Vec<Ctx> = vec![Ctx::Code];
    let mut out = Vec::new();
    for (text, ending) in split_lines(source) {
        let opaque = stack.len() > 1;
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut idx = 0;
        let mut net: i64 = 0;
        let mut pending_heredoc: Option<String> = None;
        if let Some(Ctx::Heredoc(delim)) = stack.last() {
            let trimmed = text.trim_start_matches([' ', '\t']);
            if let Some(after) = trimmed.strip_prefix(delim.as_str())
                && !after.chars().next().is_some_and(is_id_continue)
            {
                stack.pop();
                let skip = text.len() - after.len();
                idx = chars
                    .iter()
                    .position(|(offset, _)| *offset >= skip)
                    .unwrap_or(chars.len());
            }
        }
        let mut line_comment = false;
        while idx < chars.len() {
            let ch = chars[idx].1;
            let next = chars.get(idx + 1).map(|(_, ch)| *ch);
            let third = chars.get(idx + 2).map(|(_, ch)| *ch);
            let top_code = stack.len() == 1;
            match stack.last().cloned().unwrap_or(Ctx::Code) {
                Ctx::Code | Ctx::Interp(_) => match ch {
                    '"' => stack.push(Ctx::Str),
                    '#' => {
                        line_comment = true;
                        break;
                    }
                    '/' if next == Some('/') => {
                        line_comment = true;
                        break;
                    }
                    '/' if next == Some('*') => {
                        stack.push(Ctx::BlockComment);
                        idx += 1;
                    }
                    '<' if next == Some('<') => {
                        let mut start = idx + 2;
                        if chars.get(start).map(|(_, ch)| *ch) == Some('-') {
                            start += 1;
                        }
                        let mut end = start;
                        while let Some((_, ch)) = chars.get(end) {
                            let ok = if end == start {
                                is_id_start(*ch)
                            } else {
                                is_id_continue(*ch)
                            };
                            if !ok {
                                break;
                            }
                            end += 1;
                        }
                        if end > start && end == chars.len() && !ending.is_empty() {
                            let delim: String = chars[start..end].iter().map(|(_, ch)| *ch).collect();
                            pending_heredoc = Some(delim);
                            idx = end;
                            continue;
                        }
                        idx += 1;
                    }
                    '{' | '[' | '(' => {
                        if top_code {
                            net += 1;
                        } else if ch == '{'
                            && let Some(Ctx::Interp(depth)) = stack.last_mut()
                        {
                            *depth += 1;
                        }
                    }
                    '}' | ']' | ')' => {
                        if top_code {
                            net -= 1;
                        } else if ch == '}' {
                            match stack.last_mut() {
                                Some(Ctx::Interp(0)) => {
                                    stack.pop();
                                }
                                Some(Ctx::Interp(depth)) => *depth -= 1,
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                },
                Ctx::Str | Ctx::Heredoc(_) => {
                    let in_string = matches!(stack.last(), Some(Ctx::Str));
                    match ch {
                        '\\' if in_string => idx += 1,
                        '"' if in_string => {
                            stack.pop();
                        }
                        '$' | '%' if next == Some(ch) && third == Some('{') => idx += 2,
                        '$' | '%' if next == Some('{') => {
                            stack.push(Ctx::Interp(0));
                            idx += 1;
                        }
                        _ => {}
                    }
                }
                Ctx::BlockComment => {
                    if ch == '*' && next == Some('/') {
                        stack.pop();
                        idx += 1;
                    }
                }
            }
            idx += 1;
        }
        let trim_end = stack.len() == 1 || line_comment && matches!(stack.last(), Some(Ctx::Code));
        if let Some(delim) = pending_heredoc {
            stack.push(Ctx::Heredoc(delim));
        }
        out.push(Line {
            text,
            ending,
            opaque,
            trim_end,
            net,
        });
    }
    out
}

/// The byte length of an attribute's name (an identifier or a quoted key
/// without interpolation) and the byte offset of its `=` in `text`, which
/// starts at the name.
fn assignment(text: &str) -> Option<(usize, usize)> {
    let mut chars = text.char_indices().peekable();
    let (_, first) = chars.next()?;
    let name_end = if is_id_start(first) {
        let mut end = first.len_utf8();
        while let Some((offset, ch)) = chars.peek().copied() {
            if !is_id_continue(ch) {
                break;
            }
            end = offset + ch.len_utf8();
            chars.next();
        }
        end
    } else if first == '"' {
        let mut end = None;
        let mut escaped = false;
        for (offset, ch) in chars.by_ref() {
            match ch {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '$' | '%' => return None,
                '"' => {
                    end = Some(offset + 1);
                    break;
                }
                _ => {}
            }
        }
        end?
    } else {
        return None;
    };
    let rest = &text[name_end..];
    let equals = name_end + (rest.len() - rest.trim_start_matches([' ', '\t']).len());
    let after = text.get(equals..)?;
    let mut tail = after.chars();
    if tail.next() != Some('=') || matches!(tail.next(), Some('=' | '>')) {
        return None;
    }
    Some((name_end, equals))
}

/// Lays the source out; see the module documentation for the rules.
fn layout(source: &str) -> String {
    let lines = lex(source);
    // Indentation, by terraform's bracket-counting rule.
    let mut indents: Vec<i64> = Vec::new();
    let mut levels = Vec::with_capacity(lines.len());
    for line in &lines {
        if line.net < 0 {
            let mut closed = -line.net;
            while closed > 0 {
                let Some(top) = indents.last_mut() else {
                    break;
                };
                if closed >= *top {
                    closed -= *top;
                    indents.pop();
                } else {
                    *top -= closed;
                    closed = 0;
                }
            }
        }
        levels.push(indents.len());
        if line.net > 0 {
            indents.push(line.net);
        }
    }

    // The text of each line after indentation, and its `=` if it has one.
    struct Laid {
        text: String,
        name_width: Option<usize>,
        equals: usize,
    }
    let mut laid: Vec<Laid> = Vec::with_capacity(lines.len());
    for (line, level) in lines.iter().zip(&levels) {
        if line.opaque {
            laid.push(Laid {
                text: line.text.to_string(),
                name_width: None,
                equals: 0,
            });
            continue;
        }
        let mut body = line.text.trim_start_matches([' ', '\t']);
        if line.trim_end {
            body = body.trim_end_matches([' ', '\t']);
        }
        if body.is_empty() {
            laid.push(Laid {
                text: String::new(),
                name_width: None,
                equals: 0,
            });
            continue;
        }
        let indent = " ".repeat(level * INDENT);
        let assign = if line.net > 0 { None } else { assignment(body) };
        match assign {
            Some((name_end, equals)) => {
                let value = body[equals + 1..].trim_start_matches([' ', '\t']);
                let name = &body[..name_end];
                let mut text = format!("{indent}{name}");
                let width = text.chars().count();
                text.push_str(" =");
                if !value.is_empty() {
                    text.push(' ');
                    text.push_str(value);
                }
                laid.push(Laid {
                    text,
                    name_width: Some(width),
                    equals: indent.len() + name.len(),
                });
            }
            None => laid.push(Laid {
                text: format!("{indent}{body}"),
                name_width: None,
                equals: 0,
            }),
        }
    }

    // Align `=` over runs of consecutive attribute lines.
    let mut start = 0;
    while start < laid.len() {
        if laid[start].name_width.is_none() {
            start += 1;
            continue;
        }
        let mut end = start;
        let mut widest = 0;
        while let Some(width) = laid.get(end).and_then(|entry| entry.name_width) {
            widest = widest.max(width);
            end += 1;
        }
        for entry in &mut laid[start..end] {
            let width = entry.name_width.unwrap_or(widest);
            if width < widest {
                entry.text.insert_str(entry.equals, &" ".repeat(widest - width));
            }
        }
        start = end;
    }

    let mut out = String::with_capacity(source.len() + source.len() / 8);
    for (entry, line) in laid.iter().zip(&lines) {
        out.push_str(&entry.text);
        out.push_str(if line.ending.is_empty() { "\n" } else { line.ending });
    }
    // Exactly one newline at the end, none at all for an empty file.
    while out.ends_with("\n\n") || out.ends_with("\n\r\n") {
        let cut = if out.ends_with("\r\n") { 2 } else { 1 };
        out.truncate(out.len() - cut);
    }
    if out.trim().is_empty() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indents_and_aligns() {
        let input =
            "job \"x\" {\n\t\tdatacenters=[\"dc1\"]\n   type = \"batch\"   \n group \"g\" {\ncount=1\n  }\n}\n\n\n";
        let expected = "job \"x\" {\n  datacenters = [\"dc1\"]\n  type        = \"batch\"\n  group \"g\" {\n    count = 1\n  }\n}\n";
        assert_eq!(format_hcl(input).expect("formats"), expected);
    }

    #[test]
    fn heredocs_strings_and_comments_are_kept() {
        let input = "x {\n     a = <<EOT\n   keep   \n EOT\n  # note   \n      b = \"  ${ {a = 1} }  \"\n/* block\n   stays */\n}\n";
        let expected =
            "x {\n  a = <<EOT\n   keep   \n EOT\n  # note\n  b = \"  ${ {a = 1} }  \"\n  /* block\n   stays */\n}\n";
        assert_eq!(format_hcl(input).expect("formats"), expected);
    }

    #[test]
    fn multiline_values_end_an_alignment_run() {
        let input = "a = 1\nlong_name = 2\nm = {\nk = 1\nlonger = 2\n}\nz = 3\n";
        let expected = "a         = 1\nlong_name = 2\nm = {\n  k      = 1\n  longer = 2\n}\nz = 3\n";
        assert_eq!(format_hcl(input).expect("formats"), expected);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = format_hcl("job \"x\" {\n  a = \n}\n").expect_err("bad");
        assert!(err.0[0].line > 0);
    }

    #[test]
    fn comparison_is_not_an_assignment() {
        assert_eq!(assignment("a == b"), None);
        assert_eq!(assignment("k => v"), None);
        assert_eq!(assignment("\"quoted key\" = 1"), Some((12, 13)));
        assert_eq!(assignment("\"${x}\" = 1"), None);
        assert_eq!(assignment("name=1"), Some((4, 4)));
    }
}
