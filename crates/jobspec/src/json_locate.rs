//! Where each value of a JSON document is written. A small scanner walks the
//! text (already accepted by serde_json) and maps every JSON pointer
//! (`/Job/TaskGroups/0/Count`) to a byte span: the key of an object member,
//! or the first character of an array element. The API decoder then names
//! the fields it reads with their HCL paths through a [`Locator`], so the
//! JSON route gets the same line:column diagnostics as the HCL route.

use crate::decode::SpanMap;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Range;

/// JSON pointers to spans, and the HCL field paths recorded while decoding.
#[derive(Debug, Default)]
pub(crate) struct Locator {
    positions: BTreeMap<String, Range<usize>>,
    spans: RefCell<SpanMap>,
}

impl Locator {
    /// Scans a JSON text. Text that is not valid JSON gives fewer positions,
    /// never a panic.
    pub(crate) fn scan(source: &str) -> Locator {
        let mut scanner = Scanner {
            bytes: source.as_bytes(),
            source,
            pos: 0,
            out: BTreeMap::new(),
        };
        scanner.skip_ws();
        let start = scanner.pos;
        scanner.out.insert(String::new(), start..start);
        scanner.value(&mut String::new(), 0);
        Locator {
            positions: scanner.out,
            spans: RefCell::new(SpanMap::new()),
        }
    }

    /// The span of the value at a JSON pointer.
    #[cfg(test)]
    pub(crate) fn position(&self, pointer: &str) -> Option<Range<usize>> {
        self.positions.get(pointer).cloned()
    }

    /// Records that the field `path` is written at `pointer` (first wins).
    pub(crate) fn record(&self, path: &str, pointer: &str) {
        if let Some(span) = self.positions.get(pointer) {
            self.spans
                .borrow_mut()
                .entry(path.to_string())
                .or_insert_with(|| span.clone());
        }
    }

    /// Records `path` and, below it, every nested key and element of the
    /// value at `pointer` (`path.key`, `path[0]`), for driver `config`.
    pub(crate) fn record_tree(&self, path: &str, pointer: &str, value: &serde_json::Value) {
        self.record(path, pointer);
        match value {
            serde_json::Value::Object(map) => {
                for (key, item) in map {
                    self.record_tree(&format!("{path}.{key}"), &child(pointer, key), item);
                }
            }
            serde_json::Value::Array(items) => {
                for (idx, item) in items.iter().enumerate() {
                    self.record_tree(&format!("{path}[{idx}]"), &child(pointer, &idx.to_string()), item);
                }
            }
            _ => {}
        }
    }

    /// The recorded field paths and their spans.
    pub(crate) fn into_spans(self) -> SpanMap {
        self.spans.into_inner()
    }
}

/// The pointer of a member or element below `pointer` (RFC 6901 escaping).
pub(crate) fn child(pointer: &str, key: &str) -> String {
    let mut out = String::with_capacity(pointer.len() + key.len() + 1);
    out.push_str(pointer);
    out.push('/');
    for ch in key.chars() {
        match ch {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            other => out.push(other),
        }
    }
    out
}

/// serde_json refuses deeper documents; the scanner stops there too.
const MAX_DEPTH: usize = 256;

struct Scanner<'a> {
    bytes: &'a [u8],
    source: &'a str,
    pos: usize,
    out: BTreeMap<String, Range<usize>>,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Scans one value; `pointer` is its JSON pointer (restored on return).
    fn value(&mut self, pointer: &mut String, depth: usize) {
        self.skip_ws();
        if depth > MAX_DEPTH {
            self.pos = self.bytes.len();
            return;
        }
        match self.peek() {
            Some(b'{') => self.object(pointer, depth),
            Some(b'[') => self.array(pointer, depth),
            Some(b'"') => {
                self.string();
            }
            Some(_) => {
                while let Some(byte) = self.peek() {
                    if matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.pos += 1;
                }
            }
            None => {}
        }
    }

    fn object(&mut self, pointer: &mut String, depth: usize) {
        self.pos += 1;
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return;
                }
                Some(b',') => {
                    self.pos += 1;
                    continue;
                }
                Some(b'"') => {}
                _ => {
                    self.pos = self.bytes.len();
                    return;
                }
            }
            let key_start = self.pos;
            let Some(raw) = self.string() else {
                return;
            };
            let key: String = serde_json::from_str(raw).unwrap_or_default();
            self.skip_ws();
            if self.peek() != Some(b':') {
                self.pos = self.bytes.len();
                return;
            }
            self.pos += 1;
            let saved = pointer.len();
            *pointer = child(pointer, &key);
            self.out.insert(pointer.clone(), key_start..self.pos);
            self.value(pointer, depth + 1);
            pointer.truncate(saved);
        }
    }

    fn array(&mut self, pointer: &mut String, depth: usize) {
        self.pos += 1;
        let mut idx: usize = 0;
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b']') => {
                    self.pos += 1;
                    return;
                }
                Some(b',') => {
                    self.pos += 1;
                    continue;
                }
                Some(_) => {}
                None => return,
            }
            let start = self.pos;
            let saved = pointer.len();
            *pointer = child(pointer, &idx.to_string());
            self.out.insert(pointer.clone(), start..start + 1);
            self.value(pointer, depth + 1);
            pointer.truncate(saved);
            idx += 1;
            if self.pos == start {
                // Not a value the scanner understands: give up rather than loop.
                self.pos = self.bytes.len();
                return;
            }
        }
    }

    /// Scans a string starting at its opening quote; returns its raw text,
    /// quotes included.
    fn string(&mut self) -> Option<&str> {
        let start = self.pos;
        self.pos += 1;
        while let Some(byte) = self.peek() {
            match byte {
                b'\\' => self.pos += 2,
                b'"' => {
                    self.pos += 1;
                    return self.source.get(start..self.pos);
                }
                _ => self.pos += 1,
            }
        }
        self.pos = self.bytes.len();
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_map_to_keys_and_elements() {
        let text = "{\n  \"Job\": {\"ID\": \"x\", \"a/b\": [1, {\"K\\u0041\": true}]}\n}";
        let locator = Locator::scan(text);
        let at = |pointer: &str| locator.position(pointer).map(|span| span.start);
        assert_eq!(at(""), Some(0));
        assert_eq!(at("/Job"), Some(4));
        assert_eq!(at("/Job/ID"), Some(12));
        assert_eq!(at("/Job/a~1b/0"), Some(31));
        assert_eq!(at("/Job/a~1b/1"), Some(34));
        assert_eq!(at("/Job/a~1b/1/KA"), Some(35));
        assert_eq!(at("/Job/missing"), None);
    }

    #[test]
    fn broken_text_does_not_panic() {
        for text in ["", "{", "{\"a\"", "[1,", "{\"a\": [", "\"abc", "{\"a\\", "[}", "{]"] {
            let _ = Locator::scan(text);
        }
    }
}
