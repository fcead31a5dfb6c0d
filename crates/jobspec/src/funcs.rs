//! Nomad's HCL2 function library (the cty standard library plus a few of
//! Terraform's), written over `serde_json::Value`s. Functions that would need
//! the outside world (`file`, `timestamp`, `uuidv4`) use what the caller put
//! into [`FuncContext`]; nothing reads a clock, a file or the environment.

use crate::eval::{
    Budget, BudgetExceeded, FuncContext, display_number, number_value, to_bool, to_number, to_string, type_name,
    values_equal,
};
use base64::Engine;
use serde_json::{Map, Value};

type FuncResult = Result<Value, String>;

/// Why a function call failed.
#[derive(Debug)]
pub(crate) enum FuncError {
    /// The call is wrong (arguments, values): an ordinary error.
    Failed(String),
    /// The evaluation budget ran out.
    Budget(BudgetExceeded),
}

/// Turns a budget failure into the `String` error functions return; the
/// budget remembers that it ran out, so [`call`] tells the two apart.
fn spend(result: Result<(), BudgetExceeded>) -> Result<(), String> {
    result.map_err(|error| error.0)
}

/// Calls function `name` with evaluated arguments, charging the budget for
/// the work the call does on its inputs (quadratic for the set functions,
/// which compare every pair).
pub(crate) fn call(name: &str, args: Vec<Value>, ctx: &FuncContext) -> Result<Value, FuncError> {
    let items: u64 = args
        .iter()
        .map(|arg| match arg {
            Value::Array(items) => items.len() as u64,
            Value::Object(map) => map.len() as u64,
            Value::String(text) => text.len() as u64 / 64,
            _ => 0,
        })
        .sum();
    let work = if matches!(
        name,
        "distinct" | "toset" | "setunion" | "setintersection" | "setsubtract"
    ) {
        items.saturating_mul(items) / 16
    } else {
        items / 16
    };
    ctx.budget.steps(work).map_err(FuncError::Budget)?;
    call_inner(name, args, ctx).map_err(|message| {
        if ctx.budget.exceeded() {
            FuncError::Budget(BudgetExceeded(message))
        } else {
            FuncError::Failed(message)
        }
    })
}

/// Every function name the library knows, for messages and docs.
pub const FUNCTION_NAMES: &[&str] = &[
    "abs",
    "base64decode",
    "base64encode",
    "can",
    "ceil",
    "chomp",
    "chunklist",
    "cidrhost",
    "cidrnetmask",
    "cidrsubnet",
    "cidrsubnets",
    "coalesce",
    "coalescelist",
    "compact",
    "concat",
    "contains",
    "csvdecode",
    "distinct",
    "element",
    "endswith",
    "file",
    "filebase64",
    "flatten",
    "floor",
    "format",
    "formatdate",
    "formatlist",
    "indent",
    "index",
    "join",
    "jsondecode",
    "jsonencode",
    "keys",
    "length",
    "log",
    "lookup",
    "lower",
    "max",
    "md5",
    "merge",
    "min",
    "parseint",
    "pow",
    "range",
    "regex",
    "regex_replace",
    "regexall",
    "replace",
    "reverse",
    "setintersection",
    "setproduct",
    "setsubtract",
    "setunion",
    "sha1",
    "sha256",
    "sha512",
    "signum",
    "slice",
    "sort",
    "split",
    "startswith",
    "strlen",
    "strrev",
    "substr",
    "sum",
    "timeadd",
    "timestamp",
    "title",
    "tobool",
    "tolist",
    "tomap",
    "tonumber",
    "toset",
    "tostring",
    "transpose",
    "trim",
    "trimprefix",
    "trimspace",
    "trimsuffix",
    "try",
    "upper",
    "urlencode",
    "uuidv4",
    "uuidv5",
    "values",
    "yamlencode",
    "zipmap",
];

fn arity(name: &str, args: &[Value], min: usize, max: usize) -> Result<(), String> {
    if args.len() < min || args.len() > max {
        let wanted = if min == max {
            format!("{min}")
        } else if max == usize::MAX {
            format!("at least {min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(format!("{name} takes {wanted} argument(s), not {}", args.len()));
    }
    Ok(())
}

fn string_arg(args: &[Value], idx: usize) -> Result<String, String> {
    args.get(idx)
        .ok_or_else(|| "missing argument".to_string())
        .and_then(to_string)
}

fn number_arg(args: &[Value], idx: usize) -> Result<f64, String> {
    args.get(idx)
        .ok_or_else(|| "missing argument".to_string())
        .and_then(to_number)
}

fn int_arg(args: &[Value], idx: usize) -> Result<i64, String> {
    let number = number_arg(args, idx)?;
    if number.fract() != 0.0 || number.abs() > 9.0e15 {
        return Err(format!("{} is not a whole number", display_number(number)));
    }
    Ok(number as i64)
}

fn list_arg(args: &[Value], idx: usize) -> Result<Vec<Value>, String> {
    match args.get(idx) {
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(other) => Err(format!("expected a list, not a {}", type_name(other))),
        None => Err("missing argument".to_string()),
    }
}

fn map_arg(args: &[Value], idx: usize) -> Result<Map<String, Value>, String> {
    match args.get(idx) {
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(other) => Err(format!("expected a map, not a {}", type_name(other))),
        None => Err("missing argument".to_string()),
    }
}

fn strings(items: &[Value]) -> Result<Vec<String>, String> {
    items.iter().map(to_string).collect()
}

fn string_list(items: Vec<String>) -> Value {
    Value::Array(items.into_iter().map(Value::String).collect())
}

/// Sorted, deduplicated list: the form sets take.
fn to_set(items: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for item in items {
        if !out.iter().any(|existing| values_equal(existing, &item)) {
            out.push(item);
        }
    }
    if out.iter().all(Value::is_string) {
        out.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    }
    out
}

fn call_inner(name: &str, args: Vec<Value>, ctx: &FuncContext) -> FuncResult {
    match name {
        // Numbers.
        "abs" => {
            arity(name, &args, 1, 1)?;
            Ok(number_value(number_arg(&args, 0)?.abs()))
        }
        "ceil" => {
            arity(name, &args, 1, 1)?;
            Ok(number_value(number_arg(&args, 0)?.ceil()))
        }
        "floor" => {
            arity(name, &args, 1, 1)?;
            Ok(number_value(number_arg(&args, 0)?.floor()))
        }
        "signum" => {
            arity(name, &args, 1, 1)?;
            let number = number_arg(&args, 0)?;
            Ok(number_value(if number > 0.0 {
                1.0
            } else if number < 0.0 {
                -1.0
            } else {
                0.0
            }))
        }
        "log" => {
            arity(name, &args, 2, 2)?;
            let result = number_arg(&args, 0)?.log(number_arg(&args, 1)?);
            finite(result)
        }
        "pow" => {
            arity(name, &args, 2, 2)?;
            finite(number_arg(&args, 0)?.powf(number_arg(&args, 1)?))
        }
        "max" | "min" => {
            arity(name, &args, 1, usize::MAX)?;
            let mut best = number_arg(&args, 0)?;
            for idx in 1..args.len() {
                let number = number_arg(&args, idx)?;
                if (name == "max" && number > best) || (name == "min" && number < best) {
                    best = number;
                }
            }
            Ok(number_value(best))
        }
        "sum" => {
            arity(name, &args, 1, 1)?;
            let items = list_arg(&args, 0)?;
            if items.is_empty() {
                return Err("sum of an empty list".to_string());
            }
            let mut total = 0.0;
            for item in &items {
                total += to_number(item)?;
            }
            finite(total)
        }
        "parseint" => {
            arity(name, &args, 2, 2)?;
            let text = string_arg(&args, 0)?;
            let base = int_arg(&args, 1)?;
            if !(2..=62).contains(&base) {
                return Err(format!("base {base} is out of range 2..62"));
            }
            let (negative, digits) = match text.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, text.as_str()),
            };
            let parsed = i64::from_str_radix(digits, base as u32)
                .map_err(|_| format!("cannot parse {text:?} as a base {base} integer"))?;
            Ok(Value::from(if negative { -parsed } else { parsed }))
        }
        "tonumber" => {
            arity(name, &args, 1, 1)?;
            match &args[0] {
                Value::Null => Ok(Value::Null),
                value => Ok(number_value(to_number(value)?)),
            }
        }
        // Strings.
        "upper" => {
            arity(name, &args, 1, 1)?;
            Ok(Value::String(string_arg(&args, 0)?.to_uppercase()))
        }
        "lower" => {
            arity(name, &args, 1, 1)?;
            Ok(Value::String(string_arg(&args, 0)?.to_lowercase()))
        }
        "title" => {
            arity(name, &args, 1, 1)?;
            let text = string_arg(&args, 0)?;
            let mut out = String::with_capacity(text.len());
            let mut at_word_start = true;
            for ch in text.chars() {
                if at_word_start && ch.is_alphabetic() {
                    out.extend(ch.to_uppercase());
                } else {
                    out.push(ch);
                }
                at_word_start = !ch.is_alphanumeric();
            }
            Ok(Value::String(out))
        }
        "strlen" | "length" if matches!(args.first(), Some(Value::String(_))) || name == "strlen" => {
            arity(name, &args, 1, 1)?;
            Ok(Value::from(string_arg(&args, 0)?.chars().count() as u64))
        }
        "length" => {
            arity(name, &args, 1, 1)?;
            match &args[0] {
                Value::Array(items) => Ok(Value::from(items.len() as u64)),
                Value::Object(map) => Ok(Value::from(map.len() as u64)),
                other => Err(format!("cannot take the length of a {}", type_name(other))),
            }
        }
        "strrev" => {
            arity(name, &args, 1, 1)?;
            Ok(Value::String(string_arg(&args, 0)?.chars().rev().collect()))
        }
        "substr" => {
            arity(name, &args, 3, 3)?;
            let chars: Vec<char> = string_arg(&args, 0)?.chars().collect();
            let len = chars.len() as i64;
            let mut offset = int_arg(&args, 1)?;
            let length = int_arg(&args, 2)?;
            if offset < 0 {
                offset += len;
            }
            if offset < 0 || offset > len {
                return Err("offset is out of range".to_string());
            }
            let end = if length < 0 { len } else { (offset + length).min(len) };
            Ok(Value::String(chars[offset as usize..end as usize].iter().collect()))
        }
        "trim" => {
            arity(name, &args, 2, 2)?;
            let text = string_arg(&args, 0)?;
            let cutset: Vec<char> = string_arg(&args, 1)?.chars().collect();
            Ok(Value::String(text.trim_matches(|ch| cutset.contains(&ch)).to_string()))
        }
        "trimspace" => {
            arity(name, &args, 1, 1)?;
            Ok(Value::String(string_arg(&args, 0)?.trim().to_string()))
        }
        "trimprefix" => {
            arity(name, &args, 2, 2)?;
            let text = string_arg(&args, 0)?;
            let prefix = string_arg(&args, 1)?;
            Ok(Value::String(text.strip_prefix(&prefix).unwrap_or(&text).to_string()))
        }
        "trimsuffix" => {
            arity(name, &args, 2, 2)?;
            let text = string_arg(&args, 0)?;
            let suffix = string_arg(&args, 1)?;
            Ok(Value::String(text.strip_suffix(&suffix).unwrap_or(&text).to_string()))
        }
        "startswith" => {
            arity(name, &args, 2, 2)?;
            Ok(Value::Bool(string_arg(&args, 0)?.starts_with(&string_arg(&args, 1)?)))
        }
        "endswith" => {
            arity(name, &args, 2, 2)?;
            Ok(Value::Bool(string_arg(&args, 0)?.ends_with(&string_arg(&args, 1)?)))
        }
        "chomp" => {
            arity(name, &args, 1, 1)?;
            let text = string_arg(&args, 0)?;
            Ok(Value::String(text.trim_end_matches(['\n', '\r']).to_string()))
        }
        "indent" => {
            arity(name, &args, 2, 2)?;
            let spaces = int_arg(&args, 0)?;
            if !(0..=1000).contains(&spaces) {
                return Err("indent must be between 0 and 1000".to_string());
            }
            let pad = " ".repeat(spaces as usize);
            let text = string_arg(&args, 1)?;
            let lines = text.bytes().filter(|byte| *byte == b'\n').count() as u64;
            spend(ctx.budget.reserve(text.len() as u64 + lines * spaces as u64))?;
            Ok(Value::String(text.replace('\n', &format!("\n{pad}"))))
        }
        "split" => {
            arity(name, &args, 2, 2)?;
            let separator = string_arg(&args, 0)?;
            let text = string_arg(&args, 1)?;
            if text.is_empty() {
                return Ok(Value::Array(vec![Value::String(String::new())]));
            }
            if separator.is_empty() {
                return Ok(string_list(text.chars().map(String::from).collect()));
            }
            Ok(string_list(text.split(separator.as_str()).map(String::from).collect()))
        }
        "join" => {
            arity(name, &args, 2, usize::MAX)?;
            let separator = string_arg(&args, 0)?;
            let mut parts = Vec::new();
            for idx in 1..args.len() {
                parts.extend(strings(&list_arg(&args, idx)?)?);
            }
            let len: u64 = parts.iter().map(|part| part.len() as u64).sum::<u64>()
                + separator.len() as u64 * parts.len().saturating_sub(1) as u64;
            spend(ctx.budget.reserve(len))?;
            Ok(Value::String(parts.join(&separator)))
        }
        "replace" => {
            arity(name, &args, 3, 3)?;
            let text = string_arg(&args, 0)?;
            let search = string_arg(&args, 1)?;
            let replacement = string_arg(&args, 2)?;
            // Terraform's replace treats a /slashed/ search as a regex.
            if search.len() > 1 && search.starts_with('/') && search.ends_with('/') {
                let regex = compile(&search[1..search.len() - 1])?;
                return replace_bounded(&regex, &text, &go_replacement(&replacement), ctx.budget);
            }
            if search.is_empty() {
                return Ok(Value::String(text));
            }
            let matches = text.matches(search.as_str()).count() as u64;
            spend(
                ctx.budget
                    .reserve(text.len() as u64 + matches * replacement.len() as u64),
            )?;
            Ok(Value::String(text.replace(&search, &replacement)))
        }
        "regex_replace" => {
            arity(name, &args, 3, 3)?;
            let text = string_arg(&args, 0)?;
            let regex = compile(&string_arg(&args, 1)?)?;
            let replacement = string_arg(&args, 2)?;
            replace_bounded(&regex, &text, &go_replacement(&replacement), ctx.budget)
        }
        "regex" | "regexall" => {
            arity(name, &args, 2, 2)?;
            let regex = compile(&string_arg(&args, 0)?)?;
            let text = string_arg(&args, 1)?;
            let mut matches = Vec::new();
            for captures in regex.captures_iter(&text) {
                matches.push(captures_value(&regex, &captures));
                if name == "regex" {
                    break;
                }
            }
            if name == "regex" {
                matches
                    .pop()
                    .ok_or_else(|| "pattern did not match any part of the string".to_string())
            } else {
                Ok(Value::Array(matches))
            }
        }
        "format" => {
            arity(name, &args, 1, usize::MAX)?;
            let spec = string_arg(&args, 0)?;
            Ok(Value::String(format_go(&spec, &args[1..], ctx.budget, 0)?))
        }
        "formatlist" => {
            arity(name, &args, 1, usize::MAX)?;
            let spec = string_arg(&args, 0)?;
            let mut length: Option<usize> = None;
            for arg in &args[1..] {
                if let Value::Array(items) = arg {
                    match length {
                        Some(existing) if existing != items.len() => {
                            return Err("all list arguments of formatlist must have the same length".to_string());
                        }
                        _ => length = Some(items.len()),
                    }
                }
            }
            let length = length.unwrap_or(1);
            spend(ctx.budget.collection(length))?;
            let mut out = Vec::with_capacity(length);
            let mut made = 0u64;
            for idx in 0..length {
                let row: Vec<Value> = args[1..]
                    .iter()
                    .map(|arg| match arg {
                        Value::Array(items) => items.get(idx).cloned().unwrap_or(Value::Null),
                        other => other.clone(),
                    })
                    .collect();
                let text = format_go(&spec, &row, ctx.budget, made)?;
                made += text.len() as u64 + 16;
                out.push(Value::String(text));
            }
            Ok(Value::Array(out))
        }
        "tostring" => {
            arity(name, &args, 1, 1)?;
            match &args[0] {
                Value::Null => Ok(Value::Null),
                value => Ok(Value::String(to_string(value)?)),
            }
        }
        "tobool" => {
            arity(name, &args, 1, 1)?;
            match &args[0] {
                Value::Null => Ok(Value::Null),
                value => Ok(Value::Bool(to_bool(value)?)),
            }
        }
        "urlencode" => {
            arity(name, &args, 1, 1)?;
            let text = string_arg(&args, 0)?;
            let mut out = String::new();
            for byte in text.bytes() {
                if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
                    out.push(byte as char);
                } else {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
            Ok(Value::String(out))
        }
        // Encodings.
        "base64encode" => {
            arity(name, &args, 1, 1)?;
            Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(string_arg(&args, 0)?),
            ))
        }
        "base64decode" => {
            arity(name, &args, 1, 1)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(string_arg(&args, 0)?.trim())
                .map_err(|err| format!("invalid base64: {err}"))?;
            String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| "decoded base64 is not valid UTF-8".to_string())
        }
        "jsonencode" => {
            arity(name, &args, 1, 1)?;
            serde_json::to_string(&args[0])
                .map(Value::String)
                .map_err(|err| format!("cannot encode JSON: {err}"))
        }
        "jsondecode" => {
            arity(name, &args, 1, 1)?;
            serde_json::from_str(&string_arg(&args, 0)?).map_err(|err| format!("invalid JSON: {err}"))
        }
        "yamlencode" => {
            arity(name, &args, 1, 1)?;
            Ok(Value::String(yaml_encode(&args[0])))
        }
        "csvdecode" => {
            arity(name, &args, 1, 1)?;
            csv_decode(&string_arg(&args, 0)?)
        }
        "md5" | "sha1" | "sha256" | "sha512" => {
            arity(name, &args, 1, 1)?;
            let text = string_arg(&args, 0)?;
            Ok(Value::String(hash_hex(name, text.as_bytes())))
        }
        // Collections.
        "concat" => {
            let mut out = Vec::new();
            for idx in 0..args.len() {
                out.extend(list_arg(&args, idx)?);
            }
            Ok(Value::Array(out))
        }
        "contains" => {
            arity(name, &args, 2, 2)?;
            let items = list_arg(&args, 0)?;
            Ok(Value::Bool(items.iter().any(|item| values_equal(item, &args[1]))))
        }
        "index" => {
            arity(name, &args, 2, 2)?;
            let items = list_arg(&args, 0)?;
            items
                .iter()
                .position(|item| values_equal(item, &args[1]))
                .map(|idx| Value::from(idx as u64))
                .ok_or_else(|| "item not found".to_string())
        }
        "element" => {
            arity(name, &args, 2, 2)?;
            let items = list_arg(&args, 0)?;
            if items.is_empty() {
                return Err("cannot use element on an empty list".to_string());
            }
            let idx = int_arg(&args, 1)?;
            if idx < 0 {
                return Err("element index must not be negative".to_string());
            }
            Ok(items[(idx as usize) % items.len()].clone())
        }
        "slice" => {
            arity(name, &args, 3, 3)?;
            let items = list_arg(&args, 0)?;
            let start = int_arg(&args, 1)?;
            let end = int_arg(&args, 2)?;
            if start < 0 || end < start || end as usize > items.len() {
                return Err("slice indexes are out of range".to_string());
            }
            Ok(Value::Array(items[start as usize..end as usize].to_vec()))
        }
        "reverse" => {
            arity(name, &args, 1, 1)?;
            let mut items = list_arg(&args, 0)?;
            items.reverse();
            Ok(Value::Array(items))
        }
        "distinct" => {
            arity(name, &args, 1, 1)?;
            let items = list_arg(&args, 0)?;
            let mut out: Vec<Value> = Vec::new();
            for item in items {
                if !out.iter().any(|existing| values_equal(existing, &item)) {
                    out.push(item);
                }
            }
            Ok(Value::Array(out))
        }
        "compact" => {
            arity(name, &args, 1, 1)?;
            let items = list_arg(&args, 0)?;
            Ok(Value::Array(
                items
                    .into_iter()
                    .filter(|item| !item.is_null() && item.as_str() != Some(""))
                    .collect(),
            ))
        }
        "flatten" => {
            arity(name, &args, 1, 1)?;
            let mut out = Vec::new();
            flatten_into(list_arg(&args, 0)?, &mut out, 0)?;
            Ok(Value::Array(out))
        }
        "sort" => {
            arity(name, &args, 1, 1)?;
            let mut items = strings(&list_arg(&args, 0)?)?;
            items.sort();
            Ok(string_list(items))
        }
        "chunklist" => {
            arity(name, &args, 2, 2)?;
            let items = list_arg(&args, 0)?;
            let size = int_arg(&args, 1)?;
            if size < 0 {
                return Err("chunk size must not be negative".to_string());
            }
            if size == 0 {
                return Ok(Value::Array(vec![Value::Array(items)]));
            }
            Ok(Value::Array(
                items
                    .chunks(size as usize)
                    .map(|chunk| Value::Array(chunk.to_vec()))
                    .collect(),
            ))
        }
        "range" => {
            arity(name, &args, 1, 3)?;
            let (start, end, step) = match args.len() {
                1 => (0.0, number_arg(&args, 0)?, 1.0),
                2 => (number_arg(&args, 0)?, number_arg(&args, 1)?, 1.0),
                _ => (number_arg(&args, 0)?, number_arg(&args, 1)?, number_arg(&args, 2)?),
            };
            let step = if args.len() < 3 && end < start { -1.0 } else { step };
            if step == 0.0 {
                return Err("range step must not be zero".to_string());
            }
            if (step > 0.0 && end < start) || (step < 0.0 && end > start) {
                return Err("range step goes the wrong way".to_string());
            }
            let count = ((end - start) / step).ceil();
            spend(ctx.budget.collection(if count > 1e15 {
                usize::MAX
            } else {
                count.max(0.0) as usize
            }))?;
            Ok(Value::Array(
                (0..count.max(0.0) as u64)
                    .map(|idx| number_value(start + step * idx as f64))
                    .collect(),
            ))
        }
        "coalesce" => {
            for arg in &args {
                if !arg.is_null() && arg.as_str() != Some("") {
                    return Ok(arg.clone());
                }
            }
            Err("no non-null, non-empty argument".to_string())
        }
        "coalescelist" => {
            for arg in &args {
                match arg {
                    Value::Array(items) if !items.is_empty() => return Ok(arg.clone()),
                    Value::Array(_) | Value::Null => {}
                    other => return Err(format!("expected lists, not a {}", type_name(other))),
                }
            }
            Err("no non-empty list argument".to_string())
        }
        "keys" => {
            arity(name, &args, 1, 1)?;
            let map = map_arg(&args, 0)?;
            Ok(string_list(map.keys().cloned().collect()))
        }
        "values" => {
            arity(name, &args, 1, 1)?;
            let map = map_arg(&args, 0)?;
            Ok(Value::Array(map.values().cloned().collect()))
        }
        "lookup" => {
            arity(name, &args, 2, 3)?;
            let map = map_arg(&args, 0)?;
            let key = string_arg(&args, 1)?;
            match map.get(&key) {
                Some(value) => Ok(value.clone()),
                None => args
                    .get(2)
                    .cloned()
                    .ok_or_else(|| format!("the map has no key {key:?} and no default was given")),
            }
        }
        "merge" => {
            let mut out = Map::new();
            for arg in &args {
                match arg {
                    Value::Object(map) => out.extend(map.clone()),
                    Value::Null => {}
                    other => return Err(format!("merge takes maps, not a {}", type_name(other))),
                }
            }
            Ok(Value::Object(out))
        }
        "zipmap" => {
            arity(name, &args, 2, 2)?;
            let keys = strings(&list_arg(&args, 0)?)?;
            let values = list_arg(&args, 1)?;
            if keys.len() != values.len() {
                return Err("zipmap needs lists of the same length".to_string());
            }
            Ok(Value::Object(keys.into_iter().zip(values).collect()))
        }
        "transpose" => {
            arity(name, &args, 1, 1)?;
            let map = map_arg(&args, 0)?;
            let mut out: Map<String, Value> = Map::new();
            for (key, value) in map {
                let Value::Array(items) = value else {
                    return Err("transpose takes a map of lists".to_string());
                };
                for item in strings(&items)? {
                    if let Value::Array(list) = out.entry(item).or_insert_with(|| Value::Array(Vec::new())) {
                        list.push(Value::String(key.clone()));
                    }
                }
            }
            Ok(Value::Object(out))
        }
        "tolist" => {
            arity(name, &args, 1, 1)?;
            match &args[0] {
                Value::Array(_) | Value::Null => Ok(args[0].clone()),
                other => Err(format!("cannot convert a {} to a list", type_name(other))),
            }
        }
        "toset" => {
            arity(name, &args, 1, 1)?;
            Ok(Value::Array(to_set(list_arg(&args, 0)?)))
        }
        "tomap" => {
            arity(name, &args, 1, 1)?;
            match &args[0] {
                Value::Object(_) | Value::Null => Ok(args[0].clone()),
                other => Err(format!("cannot convert a {} to a map", type_name(other))),
            }
        }
        "setunion" | "setintersection" | "setsubtract" => {
            arity(name, &args, 1, usize::MAX)?;
            let mut result = to_set(list_arg(&args, 0)?);
            for idx in 1..args.len() {
                let other = list_arg(&args, idx)?;
                let in_other = |item: &Value| other.iter().any(|candidate| values_equal(candidate, item));
                match name {
                    "setunion" => result.extend(other.clone()),
                    "setintersection" => result.retain(|item| in_other(item)),
                    _ => result.retain(|item| !in_other(item)),
                }
            }
            Ok(Value::Array(to_set(result)))
        }
        "setproduct" => {
            let mut product: Vec<Vec<Value>> = vec![Vec::new()];
            for idx in 0..args.len() {
                let items = list_arg(&args, idx)?;
                let mut next = Vec::new();
                for prefix in &product {
                    for item in &items {
                        let mut row = prefix.clone();
                        row.push(item.clone());
                        next.push(row);
                        spend(ctx.budget.collection(next.len()))?;
                    }
                }
                product = next;
            }
            if args.is_empty() {
                return Ok(Value::Array(Vec::new()));
            }
            Ok(Value::Array(product.into_iter().map(Value::Array).collect()))
        }
        // Time, from the instant the caller passed in.
        "timestamp" => {
            arity(name, &args, 0, 0)?;
            Ok(Value::String(format_rfc3339(ctx.now)))
        }
        "formatdate" => {
            arity(name, &args, 2, 2)?;
            let spec = string_arg(&args, 0)?;
            let nanos = parse_rfc3339(&string_arg(&args, 1)?)?;
            Ok(Value::String(format_date(&spec, nanos)?))
        }
        "timeadd" => {
            arity(name, &args, 2, 2)?;
            let nanos = parse_rfc3339(&string_arg(&args, 0)?)?;
            let text = string_arg(&args, 1)?;
            let (negative, body) = match text.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, text.as_str()),
            };
            let duration = types::duration::parse_duration(body)?;
            let delta = i64::try_from(duration.as_nanos()).map_err(|_| "duration is too large".to_string())?;
            let result = if negative {
                nanos.checked_sub(delta)
            } else {
                nanos.checked_add(delta)
            };
            result
                .map(|nanos| Value::String(format_rfc3339(nanos)))
                .ok_or_else(|| "time is out of range".to_string())
        }
        // Identifiers, from the caller's randomness.
        "uuidv4" => {
            arity(name, &args, 0, 0)?;
            match ctx.random {
                Some(random) => Ok(Value::String(types::uuid_from_bits(random()))),
                None => Err("uuidv4 needs a source of randomness, and none was given".to_string()),
            }
        }
        "uuidv5" => {
            arity(name, &args, 2, 2)?;
            uuid_v5(&string_arg(&args, 0)?, &string_arg(&args, 1)?)
        }
        // Networks.
        "cidrhost" => {
            arity(name, &args, 2, 2)?;
            let net = Cidr::parse(&string_arg(&args, 0)?)?;
            let host = int_arg(&args, 1)?;
            Ok(Value::String(net.host(host)?))
        }
        "cidrnetmask" => {
            arity(name, &args, 1, 1)?;
            let net = Cidr::parse(&string_arg(&args, 0)?)?;
            net.netmask()
        }
        "cidrsubnet" => {
            arity(name, &args, 3, 3)?;
            let net = Cidr::parse(&string_arg(&args, 0)?)?;
            let newbits = int_arg(&args, 1)?;
            let netnum = int_arg(&args, 2)?;
            Ok(Value::String(net.subnet(newbits, netnum)?.to_string()))
        }
        "cidrsubnets" => {
            arity(name, &args, 1, usize::MAX)?;
            let net = Cidr::parse(&string_arg(&args, 0)?)?;
            let mut out = Vec::new();
            let mut next_start: u128 = net.addr;
            for idx in 1..args.len() {
                let newbits = int_arg(&args, idx)?;
                let prefix = net.prefix as i64 + newbits;
                if newbits < 1 || prefix > net.max_prefix() as i64 {
                    return Err(format!("cannot add {newbits} bits to a /{} prefix", net.prefix));
                }
                let size: u128 = 1u128 << (net.max_prefix() - prefix as u32);
                let start = next_start.div_ceil(size).saturating_mul(size);
                let subnet = Cidr {
                    addr: start,
                    prefix: prefix as u32,
                    v6: net.v6,
                };
                if !net.contains(&subnet) {
                    return Err("not enough room for the requested subnets".to_string());
                }
                next_start = start.saturating_add(size);
                out.push(Value::String(subnet.to_string()));
            }
            Ok(Value::Array(out))
        }
        // Files, only through the caller's callback.
        "file" | "filebase64" => {
            arity(name, &args, 1, 1)?;
            let path = string_arg(&args, 0)?;
            let Some(read_file) = ctx.read_file else {
                return Err(format!("{name} is not available: no file reader was given"));
            };
            let contents = read_file(&path).map_err(|err| format!("cannot read {path:?}: {err}"))?;
            if name == "filebase64" {
                Ok(Value::String(
                    base64::engine::general_purpose::STANDARD.encode(contents),
                ))
            } else {
                Ok(Value::String(contents))
            }
        }
        _ => Err(format!("unknown function {name:?}")),
    }
}

fn finite(number: f64) -> FuncResult {
    if number.is_finite() {
        Ok(number_value(number))
    } else {
        Err("result is not a finite number".to_string())
    }
}

fn flatten_into(items: Vec<Value>, out: &mut Vec<Value>, depth: usize) -> Result<(), String> {
    if depth > 64 {
        return Err("list is nested too deeply".to_string());
    }
    for item in items {
        match item {
            Value::Array(inner) => flatten_into(inner, out, depth + 1)?,
            other => out.push(other),
        }
    }
    Ok(())
}

fn compile(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|err| format!("invalid regular expression: {err}"))
}

/// Go's `$1` replacement syntax is the regex crate's, except that `${1}` is
/// needed before letters; pass it through unchanged.
fn go_replacement(replacement: &str) -> String {
    replacement.to_string()
}

fn captures_value(regex: &regex::Regex, captures: &regex::Captures) -> Value {
    let names: Vec<Option<&str>> = regex.capture_names().collect();
    if names.len() == 1 {
        return Value::String(captures.get(0).map(|m| m.as_str().to_string()).unwrap_or_default());
    }
    if names.iter().skip(1).all(Option::is_some) {
        let mut map = Map::new();
        for name in names.iter().skip(1).flatten() {
            let text = captures.name(name).map(|m| m.as_str().to_string()).unwrap_or_default();
            map.insert((*name).to_string(), Value::String(text));
        }
        return Value::Object(map);
    }
    Value::Array(
        (1..names.len())
            .map(|idx| {
                captures
                    .get(idx)
                    .map(|m| Value::String(m.as_str().to_string()))
                    .unwrap_or(Value::Null)
            })
            .collect(),
    )
}

/// Go's `fmt` verbs as cty's `format` supports them: `%s %d %f %g %e %t %v
/// %q %x %X %o %b %%`, with flags, width, precision and `%[n]` indexes.
///
/// `made` bytes are already being produced by the caller; the output is
/// checked against what is left of the budget as it grows.
fn format_go(spec: &str, args: &[Value], budget: &Budget, made: u64) -> Result<String, String> {
    let chars: Vec<char> = spec.chars().collect();
    let mut out = String::new();
    let mut next_arg = 0usize;
    let mut idx = 0;
    while idx < chars.len() {
        let ch = chars[idx];
        if ch != '%' {
            out.push(ch);
            idx += 1;
            continue;
        }
        idx += 1;
        let mut minus = false;
        let mut plus = false;
        let mut zero = false;
        let mut space = false;
        while idx < chars.len() && matches!(chars[idx], '-' | '+' | '0' | ' ' | '#') {
            match chars[idx] {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                _ => {}
            }
            idx += 1;
        }
        if idx < chars.len() && chars[idx] == '[' {
            let close = chars[idx..]
                .iter()
                .position(|&c| c == ']')
                .ok_or("unclosed argument index in format")?;
            let number: String = chars[idx + 1..idx + close].iter().collect();
            let position: usize = number.parse().map_err(|_| "invalid argument index in format")?;
            if position == 0 {
                return Err("argument indexes in format start at 1".to_string());
            }
            next_arg = position - 1;
            idx += close + 1;
        }
        let mut width = None;
        let start = idx;
        while idx < chars.len() && chars[idx].is_ascii_digit() {
            idx += 1;
        }
        if idx > start {
            let digits: String = chars[start..idx].iter().collect();
            width = Some(digits.parse::<usize>().map_err(|_| "width is too large")?.min(1000));
        }
        let mut precision = None;
        if idx < chars.len() && chars[idx] == '.' {
            idx += 1;
            let start = idx;
            while idx < chars.len() && chars[idx].is_ascii_digit() {
                idx += 1;
            }
            let digits: String = chars[start..idx].iter().collect();
            precision = Some(digits.parse::<usize>().unwrap_or(0).min(100));
        }
        let Some(&verb) = chars.get(idx) else {
            return Err("format string ends in the middle of a verb".to_string());
        };
        idx += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = args
            .get(next_arg)
            .ok_or_else(|| format!("not enough arguments for format verb %{verb}"))?;
        next_arg += 1;
        let sign = |number: f64| {
            if number < 0.0 {
                ""
            } else if plus {
                "+"
            } else if space {
                " "
            } else {
                ""
            }
        };
        let text = match verb {
            's' => {
                let text = to_string(arg)?;
                match precision {
                    Some(precision) => text.chars().take(precision).collect(),
                    None => text,
                }
            }
            'q' => serde_json::to_string(&to_string(arg)?).map_err(|err| err.to_string())?,
            'v' => match arg {
                Value::Array(_) | Value::Object(_) => serde_json::to_string(arg).map_err(|err| err.to_string())?,
                Value::Null => "null".to_string(),
                other => to_string(other)?,
            },
            't' => to_bool(arg)?.to_string(),
            'd' => {
                let number = to_number(arg)?;
                if number.fract() != 0.0 {
                    return Err(format!("%d needs a whole number, not {}", display_number(number)));
                }
                format!("{}{}", sign(number), display_number(number))
            }
            'f' | 'F' => {
                let number = to_number(arg)?;
                format!("{}{:.*}", sign(number), precision.unwrap_or(6), number)
            }
            'e' | 'E' => {
                let number = to_number(arg)?;
                let text = format!("{}{:.*e}", sign(number), precision.unwrap_or(6), number);
                let text = go_exponent(&text);
                if verb == 'E' { text.to_uppercase() } else { text }
            }
            'g' | 'G' => {
                let number = to_number(arg)?;
                format!("{}{}", sign(number), display_number(number))
            }
            'x' | 'X' | 'o' | 'b' => match arg {
                Value::String(text) if verb == 'x' || verb == 'X' => {
                    let hex: String = text.bytes().map(|byte| format!("{byte:02x}")).collect();
                    if verb == 'X' { hex.to_uppercase() } else { hex }
                }
                _ => {
                    let number = to_number(arg)?;
                    if number.fract() != 0.0 {
                        return Err(format!("%{verb} needs a whole number"));
                    }
                    let int = number as i64;
                    let magnitude = int.unsigned_abs();
                    let digits = match verb {
                        'x' => format!("{magnitude:x}"),
                        'X' => format!("{magnitude:X}"),
                        'o' => format!("{magnitude:o}"),
                        _ => format!("{magnitude:b}"),
                    };
                    format!("{}{digits}", if int < 0 { "-" } else { sign(number) })
                }
            },
            other => return Err(format!("unsupported format verb %{other}")),
        };
        let len = text.chars().count();
        spend(budget.reserve(made + (out.len() + text.len() + width.unwrap_or(0)) as u64))?;
        match width {
            Some(width) if width > len => {
                let pad = width - len;
                if minus {
                    out.push_str(&text);
                    out.push_str(&" ".repeat(pad));
                } else if zero && matches!(verb, 'd' | 'f' | 'F' | 'e' | 'E' | 'g' | 'G' | 'x' | 'X' | 'o' | 'b') {
                    let (sign_part, digits) = match text.chars().next() {
                        Some(first @ ('-' | '+' | ' ')) => (first.to_string(), text[1..].to_string()),
                        _ => (String::new(), text.clone()),
                    };
                    out.push_str(&sign_part);
                    out.push_str(&"0".repeat(pad));
                    out.push_str(&digits);
                } else {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(&text);
                }
            }
            _ => out.push_str(&text),
        }
    }
    Ok(out)
}

/// `regex.replace_all` with the output checked against the budget before
/// each replacement is added: a replacement may name captures, so one
/// match can expand to many times the input.
fn replace_bounded(regex: &regex::Regex, text: &str, replacement: &str, budget: &Budget) -> FuncResult {
    let mut out = String::new();
    let mut last = 0;
    // Each `$name` in the replacement expands to at most the whole text.
    let references = replacement.bytes().filter(|byte| *byte == b'$').count() as u64;
    let widest = replacement.len() as u64 + references * text.len() as u64;
    for captures in regex.captures_iter(text) {
        let Some(whole) = captures.get(0) else {
            continue;
        };
        spend(budget.reserve((out.len() + whole.start() - last) as u64 + widest))?;
        out.push_str(&text[last..whole.start()]);
        captures.expand(replacement, &mut out);
        last = whole.end();
    }
    out.push_str(&text[last..]);
    Ok(Value::String(out))
}

/// Rust prints `1.5e3`; Go prints `1.5e+03`.
fn go_exponent(text: &str) -> String {
    match text.split_once('e') {
        Some((mantissa, exponent)) => {
            let (sign, digits) = match exponent.strip_prefix('-') {
                Some(rest) => ('-', rest),
                None => ('+', exponent),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => text.to_string(),
    }
}

/// A small YAML emitter for `yamlencode`: block style, strings quoted when
/// they would otherwise read as another type.
pub(crate) fn yaml_encode(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Array(items) if !items.is_empty() => yaml_seq(items, 0, &mut out),
        Value::Object(map) if !map.is_empty() => yaml_map(map, 0, &mut out),
        scalar => {
            out.push_str(&yaml_scalar(scalar));
            out.push('\n');
        }
    }
    out
}

fn yaml_scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => {
            let plain = !text.is_empty()
                && !text.starts_with([
                    ' ', '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`',
                ])
                && !text.ends_with(' ')
                && !text.contains(": ")
                && !text.contains(" #")
                && !text.contains('\n')
                && !text.chars().any(char::is_control)
                && text.parse::<f64>().is_err()
                && !matches!(
                    text.to_lowercase().as_str(),
                    "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "~" | "y" | "n"
                );
            if plain {
                text.clone()
            } else {
                serde_json::to_string(text).unwrap_or_default()
            }
        }
        Value::Array(_) => "[]".to_string(),
        Value::Object(_) => "{}".to_string(),
    }
}

fn yaml_seq(items: &[Value], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for item in items {
        out.push_str(&pad);
        out.push('-');
        match item {
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                yaml_seq(inner, indent + 2, out);
            }
            Value::Object(map) if !map.is_empty() => {
                out.push('\n');
                yaml_map(map, indent + 2, out);
            }
            scalar => {
                out.push(' ');
                out.push_str(&yaml_scalar(scalar));
                out.push('\n');
            }
        }
    }
}

fn yaml_map(map: &Map<String, Value>, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for (key, value) in map {
        out.push_str(&pad);
        out.push_str(&yaml_scalar(&Value::String(key.clone())));
        out.push(':');
        match value {
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                yaml_seq(inner, indent, out);
            }
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                yaml_map(inner, indent + 2, out);
            }
            scalar => {
                out.push(' ');
                out.push_str(&yaml_scalar(scalar));
                out.push('\n');
            }
        }
    }
}

fn csv_decode(text: &str) -> FuncResult {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(ch) = chars.next() {
        any = true;
        match (ch, in_quotes) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => in_quotes = false,
            ('"', false) if field.is_empty() => in_quotes = true,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            ('\r', false) => {}
            (other, _) => field.push(other),
        }
    }
    if in_quotes {
        return Err("unterminated quoted field in CSV".to_string());
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    let mut rows = rows.into_iter();
    let Some(header) = rows.next() else {
        return Err("CSV has no header row".to_string());
    };
    let mut out = Vec::new();
    for (line, row) in rows.enumerate() {
        if row.len() != header.len() {
            return Err(format!(
                "CSV row {} has {} fields, not {}",
                line + 2,
                row.len(),
                header.len()
            ));
        }
        let object: Map<String, Value> = header.iter().cloned().zip(row.into_iter().map(Value::String)).collect();
        out.push(Value::Object(object));
    }
    Ok(Value::Array(out))
}

fn hash_hex(name: &str, bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest: Vec<u8> = match name {
        "md5" => md5::Md5::digest(bytes).to_vec(),
        "sha1" => sha1::Sha1::digest(bytes).to_vec(),
        "sha256" => sha2::Sha256::digest(bytes).to_vec(),
        _ => sha2::Sha512::digest(bytes).to_vec(),
    };
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn uuid_v5(namespace: &str, name: &str) -> FuncResult {
    use sha1::Digest;
    let namespace_id = match namespace {
        "dns" => "6ba7b810-9dad-11d1-80b4-00c04fd430c8".to_string(),
        "url" => "6ba7b811-9dad-11d1-80b4-00c04fd430c8".to_string(),
        "oid" => "6ba7b812-9dad-11d1-80b4-00c04fd430c8".to_string(),
        "x500" => "6ba7b814-9dad-11d1-80b4-00c04fd430c8".to_string(),
        other => other.to_string(),
    };
    let hex: String = namespace_id.chars().filter(|ch| *ch != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|ch| ch.is_ascii_hexdigit()) {
        return Err(format!("{namespace:?} is not a UUID namespace"));
    }
    let mut bytes = Vec::with_capacity(16 + name.len());
    for idx in 0..16 {
        let byte = u8::from_str_radix(&hex[idx * 2..idx * 2 + 2], 16).map_err(|err| err.to_string())?;
        bytes.push(byte);
    }
    bytes.extend_from_slice(name.as_bytes());
    let digest = sha1::Sha1::digest(&bytes);
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id[6] = (id[6] & 0x0f) | 0x50;
    id[8] = (id[8] & 0x3f) | 0x80;
    Ok(Value::String(types::uuid_text(u128::from_be_bytes(id))))
}

/// An IPv4 or IPv6 network, addresses held in a `u128`.
#[derive(Debug, Clone, Copy)]
struct Cidr {
    addr: u128,
    prefix: u32,
    v6: bool,
}

impl Cidr {
    fn parse(text: &str) -> Result<Cidr, String> {
        let (addr_text, prefix_text) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not in CIDR notation"))?;
        let prefix: u32 = prefix_text.parse().map_err(|_| format!("invalid prefix in {text:?}"))?;
        let addr: std::net::IpAddr = addr_text.parse().map_err(|_| format!("invalid address in {text:?}"))?;
        let (addr, v6) = match addr {
            std::net::IpAddr::V4(v4) => (u128::from(u32::from(v4)), false),
            std::net::IpAddr::V6(v6) => (u128::from(v6), true),
        };
        let cidr = Cidr { addr, prefix, v6 };
        if prefix > cidr.max_prefix() {
            return Err(format!("prefix /{prefix} is too long in {text:?}"));
        }
        Ok(Cidr {
            addr: addr & cidr.mask(),
            ..cidr
        })
    }

    fn max_prefix(&self) -> u32 {
        if self.v6 { 128 } else { 32 }
    }

    fn mask(&self) -> u128 {
        let bits = self.max_prefix();
        let all: u128 = if bits == 128 { u128::MAX } else { (1u128 << bits) - 1 };
        let host_bits = bits - self.prefix;
        if host_bits >= 128 {
            0
        } else {
            all & !((1u128 << host_bits) - 1)
        }
    }

    fn size(&self) -> u128 {
        let host_bits = self.max_prefix() - self.prefix;
        if host_bits >= 128 {
            u128::MAX
        } else {
            1u128 << host_bits
        }
    }

    fn contains(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && (other.addr & self.mask()) == self.addr
    }

    fn format_addr(&self, addr: u128) -> String {
        if self.v6 {
            std::net::Ipv6Addr::from(addr).to_string()
        } else {
            std::net::Ipv4Addr::from(addr as u32).to_string()
        }
    }

    fn host(&self, host: i64) -> Result<String, String> {
        let size = self.size();
        let offset = if host >= 0 {
            host as u128
        } else {
            size.checked_sub(host.unsigned_abs() as u128)
                .ok_or_else(|| format!("host number {host} is out of range"))?
        };
        if offset >= size {
            return Err(format!("host number {host} is out of range"));
        }
        Ok(self.format_addr(self.addr + offset))
    }

    fn netmask(&self) -> FuncResult {
        if self.v6 {
            return Err("cidrnetmask only works on IPv4 networks".to_string());
        }
        Ok(Value::String(self.format_addr(self.mask())))
    }

    fn subnet(&self, newbits: i64, netnum: i64) -> Result<Cidr, String> {
        let prefix = self.prefix as i64 + newbits;
        if newbits < 0 || prefix > self.max_prefix() as i64 {
            return Err(format!("cannot add {newbits} bits to a /{} prefix", self.prefix));
        }
        if netnum < 0 || (newbits < 127 && (netnum as u128) >= (1u128 << newbits)) {
            return Err(format!("network number {netnum} does not fit in {newbits} bits"));
        }
        let shift = self.max_prefix() - prefix as u32;
        let offset = if shift >= 128 { 0 } else { (netnum as u128) << shift };
        Ok(Cidr {
            addr: self.addr | offset,
            prefix: prefix as u32,
            v6: self.v6,
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.format_addr(self.addr), self.prefix)
    }
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let day_of_year = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    weekday: u32,
}

fn civil(nanos: i64) -> Civil {
    let secs = nanos.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let in_day = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: in_day / 3600,
        minute: in_day % 3600 / 60,
        second: in_day % 60,
        weekday: (days + 4).rem_euclid(7) as u32,
    }
}

/// Formats Unix nanoseconds as RFC 3339 in UTC, as `timestamp()` does.
pub(crate) fn format_rfc3339(nanos: i64) -> String {
    let time = civil(nanos);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        time.year, time.month, time.day, time.hour, time.minute, time.second
    )
}

fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let invalid = || format!("{text:?} is not an RFC 3339 timestamp");
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !text.is_ascii() {
        return Err(invalid());
    }
    let number = |range: std::ops::Range<usize>| -> Result<i64, String> {
        text.get(range)
            .and_then(|part| part.parse::<i64>().ok())
            .ok_or_else(invalid)
    };
    if bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return Err(invalid());
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err(invalid());
    }
    let mut rest = &text[19..];
    let mut frac_nanos = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return Err(invalid());
        }
        let padded = format!("{:0<9}", &digits[..digits.len().min(9)]);
        frac_nanos = padded.parse::<i64>().map_err(|_| invalid())?;
        rest = &frac[digits.len()..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        zone if zone.len() == 6 && (zone.starts_with('+') || zone.starts_with('-')) && &zone[3..4] == ":" => {
            let hours: i64 = zone[1..3].parse().map_err(|_| invalid())?;
            let minutes: i64 = zone[4..6].parse().map_err(|_| invalid())?;
            let total = hours * 3600 + minutes * 60;
            if zone.starts_with('-') { -total } else { total }
        }
        _ => return Err(invalid()),
    };
    let days = days_from_civil(year, month as u32, day as u32);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    secs.checked_mul(1_000_000_000)
        .and_then(|nanos| nanos.checked_add(frac_nanos))
        .ok_or_else(|| format!("{text:?} is outside the range of representable times"))
}

/// Terraform's `formatdate` spec letters over a UTC time.
fn format_date(spec: &str, nanos: i64) -> Result<String, String> {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ];
    let time = civil(nanos);
    let chars: Vec<char> = spec.chars().collect();
    let mut out = String::new();
    let mut idx = 0;
    while idx < chars.len() {
        let ch = chars[idx];
        if ch == '\'' {
            let close = chars[idx + 1..]
                .iter()
                .position(|&c| c == '\'')
                .ok_or("unterminated literal in formatdate spec")?;
            if close == 0 {
                out.push('\'');
            } else {
                out.extend(&chars[idx + 1..idx + 1 + close]);
            }
            idx += close + 2;
            continue;
        }
        if !ch.is_ascii_alphabetic() {
            out.push(ch);
            idx += 1;
            continue;
        }
        let mut run = 1;
        while idx + run < chars.len() && chars[idx + run] == ch {
            run += 1;
        }
        let hour12 = if time.hour.is_multiple_of(12) {
            12
        } else {
            time.hour % 12
        };
        let text = match (ch, run) {
            ('Y', 4) => format!("{:04}", time.year),
            ('Y', 2) => format!("{:02}", time.year.rem_euclid(100)),
            ('M', 1) => time.month.to_string(),
            ('M', 2) => format!("{:02}", time.month),
            ('M', 3) => MONTHS[time.month as usize - 1][..3].to_string(),
            ('M', 4) => MONTHS[time.month as usize - 1].to_string(),
            ('D', 1) => time.day.to_string(),
            ('D', 2) => format!("{:02}", time.day),
            ('E', 3) => DAYS[time.weekday as usize][..3].to_string(),
            ('E', 4) => DAYS[time.weekday as usize].to_string(),
            ('h', 1) => time.hour.to_string(),
            ('h', 2) => format!("{:02}", time.hour),
            ('H', 1) => hour12.to_string(),
            ('H', 2) => format!("{hour12:02}"),
            ('A', 1) | ('a', 1) => {
                let text = if time.hour < 12 { "AM" } else { "PM" };
                if ch == 'a' {
                    text.to_lowercase()
                } else {
                    text.to_string()
                }
            }
            ('m', 1) => time.minute.to_string(),
            ('m', 2) => format!("{:02}", time.minute),
            ('s', 1) => time.second.to_string(),
            ('s', 2) => format!("{:02}", time.second),
            ('Z', 1) => "Z".to_string(),
            ('Z', 3) => "UTC".to_string(),
            ('Z', 4) => "+0000".to_string(),
            ('Z', 5) => "+00:00".to_string(),
            _ => {
                let letters: String = std::iter::repeat_n(ch, run).collect();
                return Err(format!("invalid date format verb {letters:?}"));
            }
        };
        out.push_str(&text);
        idx += run;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call_with(name: &str, args: Vec<Value>, limits: crate::EvalBudget) -> Result<Value, FuncError> {
        let budget = Budget::new(limits);
        let ctx = FuncContext {
            now: 1_700_000_000_000_000_000,
            read_file: None,
            random: None,
            budget: &budget,
        };
        call(name, args, &ctx)
    }

    fn run(name: &str, args: Vec<Value>) -> Value {
        call_with(name, args, crate::EvalBudget::DEFAULT).expect("function succeeds")
    }

    /// Functions whose output can be far larger than their inputs check
    /// the budget before building it, and say that the budget ran out.
    #[test]
    fn outputs_larger_than_the_budget_are_refused_before_they_are_built() {
        let small = crate::EvalBudget {
            max_bytes: 10_000,
            ..crate::EvalBudget::DEFAULT
        };
        let newlines = "\n".repeat(100);
        let cases = [
            ("indent", vec![json!(1000), json!(newlines)]),
            (
                "format",
                vec![
                    json!("%1000d%1000d%1000d%1000d%1000d%1000d%1000d%1000d%1000d%1000d%1000d"),
                    json!(1),
                    json!(2),
                    json!(3),
                    json!(4),
                    json!(5),
                    json!(6),
                    json!(7),
                    json!(8),
                    json!(9),
                    json!(10),
                    json!(11),
                ],
            ),
            (
                "replace",
                vec![json!("a".repeat(1000)), json!("a"), json!("bbbbbbbbbbbbbbbb")],
            ),
            (
                "replace",
                vec![json!("a".repeat(1000)), json!("/a/"), json!("$0$0$0$0$0$0$0$0$0$0$0$0")],
            ),
            (
                "regex_replace",
                vec![json!("a".repeat(1000)), json!("a"), json!("$0$0$0$0$0$0$0$0$0$0$0$0")],
            ),
            (
                "join",
                vec![json!("x".repeat(1000)), Value::Array(vec![json!("a"); 20])],
            ),
            ("range", vec![json!(1e12)]),
        ];
        for (name, args) in cases {
            match call_with(name, args, small) {
                Err(FuncError::Budget(BudgetExceeded(message))) => {
                    assert!(message.contains("evaluation budget exceeded"), "{name}: {message}")
                }
                other => panic!("{name} should exceed the budget: {other:?}"),
            }
        }
        // Within the budget the same functions still work.
        assert_eq!(
            run("replace", vec![json!("aa"), json!("/a/"), json!("$0$0")]),
            json!("aaaa")
        );
        assert_eq!(
            run("regex_replace", vec![json!("a-b"), json!("(\\w)"), json!("<$1>")]),
            json!("<a>-<b>")
        );
        // Comparing every pair of a large set is work too.
        let many: Vec<Value> = (0..20_000).map(|index| json!(index)).collect();
        assert!(matches!(
            call_with("distinct", vec![Value::Array(many)], crate::EvalBudget::DEFAULT),
            Err(FuncError::Budget(_))
        ));
    }

    #[test]
    fn strings_and_formats() {
        assert_eq!(
            run("format", vec![json!("%s-%03d"), json!("web"), json!(7)]),
            json!("web-007")
        );
        assert_eq!(
            run(
                "format",
                vec![json!("%.2f|%-4s|%q"), json!(1.5), json!("a"), json!("b")]
            ),
            json!("1.50|a   |\"b\"")
        );
        assert_eq!(run("title", vec![json!("hello big world")]), json!("Hello Big World"));
        assert_eq!(run("substr", vec![json!("hello"), json!(1), json!(3)]), json!("ell"));
        assert_eq!(
            run("regex", vec![json!("(\\d+)-(\\d+)"), json!("a 10-20")]),
            json!(["10", "20"])
        );
        assert_eq!(
            run("regex_replace", vec![json!("hello"), json!("l+"), json!("L")]),
            json!("heLo")
        );
        assert_eq!(
            run("replace", vec![json!("a-b-c"), json!("-"), json!("+")]),
            json!("a+b+c")
        );
    }

    #[test]
    fn collections() {
        assert_eq!(run("flatten", vec![json!([[1, [2]], 3])]), json!([1, 2, 3]));
        assert_eq!(run("distinct", vec![json!([1, 2, 1])]), json!([1, 2]));
        assert_eq!(run("toset", vec![json!(["b", "a", "b"])]), json!(["a", "b"]));
        assert_eq!(run("range", vec![json!(3)]), json!([0, 1, 2]));
        assert_eq!(run("range", vec![json!(1), json!(10), json!(4)]), json!([1, 5, 9]));
        assert_eq!(run("element", vec![json!(["a", "b"]), json!(3)]), json!("b"));
        assert_eq!(run("lookup", vec![json!({"a": 1}), json!("b"), json!(2)]), json!(2));
        assert_eq!(
            run("merge", vec![json!({"a": 1}), json!({"b": 2, "a": 3})]),
            json!({"a": 3, "b": 2})
        );
        assert_eq!(
            run("transpose", vec![json!({"a": ["x", "y"], "b": ["x"]})]),
            json!({"x": ["a", "b"], "y": ["a"]})
        );
    }

    #[test]
    fn networks() {
        assert_eq!(run("cidrhost", vec![json!("10.1.0.0/16"), json!(5)]), json!("10.1.0.5"));
        assert_eq!(run("cidrnetmask", vec![json!("10.1.0.0/12")]), json!("255.240.0.0"));
        assert_eq!(
            run("cidrsubnet", vec![json!("10.1.0.0/16"), json!(8), json!(2)]),
            json!("10.1.2.0/24")
        );
        assert_eq!(
            run("cidrsubnets", vec![json!("10.0.0.0/8"), json!(8), json!(8), json!(16)]),
            json!(["10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/24"])
        );
        assert_eq!(
            run("cidrhost", vec![json!("fd00::/64"), json!(-1)]),
            json!("fd00::ffff:ffff:ffff:ffff")
        );
    }

    #[test]
    fn time_and_ids() {
        assert_eq!(run("timestamp", vec![]), json!("2023-11-14T22:13:20Z"));
        assert_eq!(
            run(
                "formatdate",
                vec![json!("YYYY-MM-DD hh:mm EEE"), json!("2023-11-14T22:13:20Z")]
            ),
            json!("2023-11-14 22:13 Tue")
        );
        assert_eq!(
            run("timeadd", vec![json!("2023-11-14T22:13:20Z"), json!("1h30m")]),
            json!("2023-11-14T23:43:20Z")
        );
        assert_eq!(
            run("uuidv5", vec![json!("dns"), json!("example.com")]),
            json!("cfbff0d1-9375-5685-968c-48ce8b15ae17")
        );
        assert_eq!(
            run("sha256", vec![json!("")]),
            json!("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
    }

    #[test]
    fn yaml() {
        assert_eq!(
            yaml_encode(&json!({"a": [1, "true"], "b": {"c": "x: y"}})),
            "a:\n- 1\n- \"true\"\nb:\n  c: \"x: y\"\n"
        );
    }
}
