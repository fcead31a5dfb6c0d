//! Diagnostics: what went wrong, where in the job (a field path) and where in
//! the text (line and column), plus a rustc-like renderer with a source
//! snippet and a caret.

use std::fmt;
use std::ops::Range;

/// One problem found in a job file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where in the job, e.g. `job "web" → group "api" → task "server" → resources.memory`.
    /// Empty when the problem is not tied to a field (a syntax error).
    pub path: String,
    /// What is wrong, lowercase and without a trailing period.
    pub message: String,
    /// 1-based line, 0 when unknown.
    pub line: u32,
    /// 1-based column (in characters), 0 when unknown.
    pub column: u32,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: ", self.line, self.column)?;
        }
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a job file, in source order where known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [single] => write!(f, "{single}"),
            many => {
                write!(f, "{} errors occurred:", many.len())?;
                for diagnostic in many {
                    write!(f, "\n* {diagnostic}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostics {
    /// Whether there is no diagnostic at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Renders every diagnostic like rustc does: a header, the `file:line:col`
    /// location, the offending source line and a caret under the column.
    pub fn render(&self, source: &str, filename: &str) -> String {
        let lines: Vec<&str> = source.lines().collect();
        let mut out = String::new();
        for diagnostic in &self.0 {
            out.push_str("error: ");
            out.push_str(&diagnostic.message);
            out.push('\n');
            let line_idx = diagnostic.line as usize;
            if line_idx == 0 || line_idx > lines.len() {
                out.push_str(&format!(" --> {filename}\n"));
                if !diagnostic.path.is_empty() {
                    out.push_str(&format!("  = in {}\n", diagnostic.path));
                }
                out.push('\n');
                continue;
            }
            let number = line_idx.to_string();
            let gutter = " ".repeat(number.len());
            let text = lines[line_idx - 1].replace('\t', " ");
            let column = (diagnostic.column.max(1) as usize).min(text.chars().count() + 1);
            out.push_str(&format!(
                "{gutter}--> {filename}:{}:{}\n",
                diagnostic.line, diagnostic.column
            ));
            out.push_str(&format!("{gutter} |\n"));
            out.push_str(&format!("{number} | {text}\n"));
            out.push_str(&format!("{gutter} | {}^\n", " ".repeat(column - 1)));
            if !diagnostic.path.is_empty() {
                out.push_str(&format!("{gutter} = in {}\n", diagnostic.path));
            }
            out.push('\n');
        }
        out
    }

    /// Sorts by position (unknown positions last), keeping the order of
    /// diagnostics at the same place.
    pub(crate) fn sort(&mut self) {
        self.0
            .sort_by_key(|diagnostic| (diagnostic.line == 0, diagnostic.line, diagnostic.column));
    }
}

/// Maps byte offsets of a source text to 1-based line and column numbers.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex<'a> {
    source: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(source: &'a str) -> LineIndex<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(source.match_indices('\n').map(|(idx, _)| idx + 1));
        LineIndex { source, line_starts }
    }

    /// The 1-based line and column of a byte offset; columns count characters.
    pub(crate) fn position(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.source.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(idx) => idx,
            Err(idx) => idx.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let column = self
            .source
            .get(start..offset)
            .map(|text| text.chars().count())
            .unwrap_or(offset - start);
        (line as u32 + 1, column as u32 + 1)
    }

    pub(crate) fn span_position(&self, span: &Option<Range<usize>>) -> (u32, u32) {
        match span {
            Some(range) => self.position(range.start),
            None => (0, 0),
        }
    }
}

/// Collects diagnostics for one source text, turning spans into positions.
pub(crate) struct Sink<'a> {
    pub index: LineIndex<'a>,
    pub diags: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(source: &'a str) -> Sink<'a> {
        Sink {
            index: LineIndex::new(source),
            diags: Vec::new(),
        }
    }

    /// Records a problem at `span` (or at no known position).
    pub(crate) fn error(&mut self, path: impl Into<String>, message: impl Into<String>, span: Option<Range<usize>>) {
        let (line, column) = self.index.span_position(&span);
        self.diags.push(Diagnostic {
            path: path.into(),
            message: message.into(),
            line,
            column,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let index = LineIndex::new("ab\ncd\n\nég");
        assert_eq!(index.position(0), (1, 1));
        assert_eq!(index.position(1), (1, 2));
        assert_eq!(index.position(3), (2, 1));
        assert_eq!(index.position(6), (3, 1));
        assert_eq!(index.position(9), (4, 2));
        assert_eq!(index.position(1000), (4, 3));
    }
}
