//! The HCL2 front end: parses the text with `hcl-edit`, resolves `variable`
//! blocks (defaults, var files, `--var` values, validation), `locals` and
//! `dynamic` blocks, and evaluates every attribute. The result is a plain
//! tree of blocks and values that still knows the span of each piece.

use crate::ParseOptions;
use crate::diag::{LineIndex, Sink};
use crate::eval::{Budget, EvalError, Evaluator, FuncContext, Scope, to_bool, to_string, type_name};
use crate::ty::Ty;
use hcl_edit::Span;
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Block, Body, Structure};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::ops::Range;

/// Deepest block nesting accepted.
const MAX_BLOCK_DEPTH: usize = 64;
/// Deepest bracket nesting the parser is given, so it cannot overflow.
const MAX_BRACKET_DEPTH: usize = 128;

/// An evaluated attribute.
#[derive(Debug, Clone)]
pub(crate) struct Attr {
    pub name: String,
    pub value: Value,
    /// The whole `name = value`, whose start is the name.
    pub span: Option<Range<usize>>,
    /// Evaluation failed (already reported): decoders skip it quietly.
    pub failed: bool,
}

/// An evaluated block.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub ident: String,
    pub labels: Vec<String>,
    pub span: Option<Range<usize>>,
    pub attrs: Vec<Attr>,
    pub blocks: Vec<Node>,
}

/// Parses HCL text and evaluates it down to the `job` block.
pub(crate) fn evaluate(source: &str, opts: &ParseOptions, sink: &mut Sink) -> Option<Node> {
    if let Some(offset) = too_deep(source) {
        sink.error("", "input is nested too deeply", Some(offset..offset));
        return None;
    }
    let body = match hcl_edit::parser::parse_body(source) {
        Ok(body) => body,
        Err(err) => {
            let location = err.location();
            sink.diags.push(crate::Diagnostic {
                path: String::new(),
                message: format!("syntax error: {}", err.message()),
                line: location.line() as u32,
                column: location.column() as u32,
            });
            return None;
        }
    };
    let random = opts.random;
    let budget = Budget::new(opts.budget);
    let mut evaluator = Evaluator {
        source,
        globals: BTreeMap::new(),
        funcs: FuncContext {
            now: opts.now,
            read_file: opts.read_file,
            random,
            budget: &budget,
        },
    };

    let mut variable_blocks = Vec::new();
    let mut locals_blocks = Vec::new();
    let mut job_blocks = Vec::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => sink.error(
                "",
                format!("unexpected attribute {:?} at the top level; only job, variable and locals blocks may appear here", attr.key.as_str()),
                attr.span(),
            ),
            Structure::Block(block) => match block.ident.as_str() {
                "variable" => variable_blocks.push(block),
                "locals" => locals_blocks.push(block),
                "job" => job_blocks.push(block),
                other => sink.error(
                    "",
                    format!("unexpected block {other:?} at the top level; only job, variable and locals blocks may appear here"),
                    block.ident.span(),
                ),
            },
        }
    }

    let variables = resolve_variables(&evaluator, &variable_blocks, opts, sink);
    evaluator.globals.insert("var".to_string(), Value::Object(variables));
    resolve_locals(&mut evaluator, &locals_blocks, sink);

    let job_block = match job_blocks.as_slice() {
        [] => {
            sink.error("", "no job block found", None);
            return None;
        }
        [job] => *job,
        [_, second, ..] => {
            sink.error("", "only one job block may appear in a file", second.ident.span());
            return None;
        }
    };
    let labels = block_labels(job_block);
    if labels.len() != 1 {
        sink.error(
            "job",
            "a job block needs exactly one label, its ID",
            job_block.ident.span(),
        );
        return None;
    }
    let path = format!("job {:?}", labels[0]);
    let root = Scope::root();
    let (attrs, blocks) = convert_body(&evaluator, &job_block.body, &root, sink, &path, false, 0);
    if budget.exceeded() {
        // The one diagnostic naming the limit is in the sink; what was
        // evaluated before it is incomplete and not worth decoding.
        return None;
    }
    Some(Node {
        ident: "job".to_string(),
        labels,
        span: job_block.span(),
        attrs,
        blocks,
    })
}

/// The first offset where brackets nest deeper than the parser may recurse.
pub(crate) fn too_deep(source: &str) -> Option<usize> {
    let mut depth: usize = 0;
    for (offset, byte) in source.bytes().enumerate() {
        match byte {
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_BRACKET_DEPTH {
                    return Some(offset);
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

fn block_labels(block: &Block) -> Vec<String> {
    block.labels.iter().map(|label| label.as_str().to_string()).collect()
}

fn resolve_variables(
    evaluator: &Evaluator,
    blocks: &[&Block],
    opts: &ParseOptions,
    sink: &mut Sink,
) -> Map<String, Value> {
    struct Declared<'b> {
        block: &'b Block,
        ty: Ty,
        value: Option<(Value, Option<Range<usize>>)>,
    }
    let mut declared: BTreeMap<String, Declared> = BTreeMap::new();
    let root = Scope::root();
    for block in blocks {
        let labels = block_labels(block);
        let [name] = labels.as_slice() else {
            sink.error(
                "variable",
                "a variable block needs exactly one label, its name",
                block.ident.span(),
            );
            continue;
        };
        let path = format!("variable {name:?}");
        if declared.contains_key(name) {
            sink.error(&path, "duplicate variable declaration", block.ident.span());
            continue;
        }
        let mut ty = Ty::Any;
        let mut default = None;
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attr) => match attr.key.as_str() {
                    "type" => match Ty::parse(&attr.value) {
                        Ok(parsed) => ty = parsed,
                        Err(message) => sink.error(format!("{path} → type"), message, attr.value.span()),
                    },
                    "default" => match evaluator.eval(&attr.value, &root) {
                        Ok(value) => default = Some((value, attr.value.span())),
                        Err(error) => report(sink, &format!("{path} → default"), error),
                    },
                    "description" | "sensitive" | "nullable" => {}
                    other => sink.error(
                        format!("{path} → {other}"),
                        format!("unknown attribute {other:?} in a variable block"),
                        attr.key.span(),
                    ),
                },
                Structure::Block(inner) if inner.ident.as_str() == "validation" => {}
                Structure::Block(inner) => sink.error(
                    format!("{path} → {}", inner.ident.as_str()),
                    format!("unknown block {:?} in a variable block", inner.ident.as_str()),
                    inner.ident.span(),
                ),
            }
        }
        declared.insert(
            name.clone(),
            Declared {
                block,
                ty,
                value: default,
            },
        );
    }

    // Var files, in order, then the options map (--var and NOMAD_VAR_*).
    for (file_name, contents) in &opts.var_files {
        for (name, value) in read_var_file(evaluator, file_name, contents, sink) {
            match declared.get_mut(&name) {
                Some(variable) => variable.value = Some((value, None)),
                None => sink.diags.push(crate::Diagnostic {
                    path: format!("var file {file_name:?}"),
                    message: format!("variable {name:?} is set but not declared in the job file"),
                    line: 0,
                    column: 0,
                }),
            }
        }
    }
    for (name, text) in &opts.variables {
        let Some(variable) = declared.get_mut(name) else {
            // Environment variables may set values the job does not use.
            continue;
        };
        if variable.ty.takes_raw_string() {
            variable.value = Some((Value::String(text.clone()), None));
            continue;
        }
        let parsed = hcl_edit::parser::parse_expr(text)
            .map_err(|err| err.message().to_string())
            .and_then(|expr| {
                let inner = Evaluator {
                    source: text,
                    globals: BTreeMap::new(),
                    funcs: FuncContext {
                        now: evaluator.funcs.now,
                        read_file: None,
                        random: None,
                        budget: evaluator.funcs.budget,
                    },
                };
                inner.eval(&expr, &Scope::root()).map_err(|error| error.message)
            });
        match parsed {
            Ok(value) => variable.value = Some((value, None)),
            // A value that does not parse as an expression is taken as text.
            Err(_) => variable.value = Some((Value::String(text.clone()), None)),
        }
    }

    let mut values = Map::new();
    for (name, variable) in &declared {
        let path = format!("variable {name:?}");
        let Some((value, span)) = variable.value.clone() else {
            values.insert(name.clone(), Value::Null);
            sink.error(
                &path,
                format!("no value for required variable {name:?}; set a default, or pass one with --var"),
                variable.block.ident.span(),
            );
            continue;
        };
        match variable.ty.convert(value) {
            Ok(converted) => {
                values.insert(name.clone(), converted);
            }
            Err(message) => {
                values.insert(name.clone(), Value::Null);
                sink.error(
                    &path,
                    format!("invalid value for variable {name:?}: {message}"),
                    span.or_else(|| variable.block.ident.span()),
                );
            }
        }
    }

    // Validation rules see only their own variable.
    for (name, variable) in &declared {
        let Some(value) = values.get(name) else { continue };
        let mut var_object = Map::new();
        var_object.insert(name.clone(), value.clone());
        let checker = Evaluator {
            source: evaluator.source,
            globals: BTreeMap::from([("var".to_string(), Value::Object(var_object))]),
            funcs: FuncContext {
                now: evaluator.funcs.now,
                read_file: evaluator.funcs.read_file,
                random: None,
                budget: evaluator.funcs.budget,
            },
        };
        if value.is_null() {
            continue;
        }
        for structure in variable.block.body.iter() {
            let Structure::Block(validation) = structure else {
                continue;
            };
            if validation.ident.as_str() != "validation" {
                continue;
            }
            let path = format!("variable {name:?} → validation");
            let condition = validation.body.get_attribute("condition");
            let message = validation.body.get_attribute("error_message");
            let Some(condition) = condition else {
                sink.error(&path, "a validation block needs a condition", validation.ident.span());
                continue;
            };
            let passed = match checker.eval(&condition.value, &root) {
                Ok(result) => match to_bool(&result) {
                    Ok(flag) => flag,
                    Err(message) => {
                        sink.error(
                            &path,
                            format!("condition must be a bool: {message}"),
                            condition.value.span(),
                        );
                        continue;
                    }
                },
                Err(error) => {
                    report(sink, &path, error);
                    continue;
                }
            };
            if !passed {
                let text = message
                    .and_then(|attr| checker.eval(&attr.value, &root).ok())
                    .and_then(|value| to_string(&value).ok())
                    .unwrap_or_else(|| "validation failed".to_string());
                sink.error(
                    format!("variable {name:?}"),
                    format!("invalid value for variable {name:?}: {text}"),
                    condition.value.span(),
                );
            }
        }
    }
    values
}

fn read_var_file(evaluator: &Evaluator, file_name: &str, contents: &str, sink: &mut Sink) -> Vec<(String, Value)> {
    let path = format!("var file {file_name:?}");
    let index = LineIndex::new(contents);
    let push = |message: String, span: Option<Range<usize>>, sink: &mut Sink| {
        let (line, column) = index.span_position(&span);
        sink.diags.push(crate::Diagnostic {
            path: path.clone(),
            message,
            line,
            column,
        });
    };
    if file_name.ends_with(".json") {
        return match serde_json::from_str::<Value>(contents) {
            Ok(Value::Object(map)) => map.into_iter().collect(),
            Ok(other) => {
                push(
                    format!("a JSON var file must hold an object, not a {}", type_name(&other)),
                    None,
                    sink,
                );
                Vec::new()
            }
            Err(err) => {
                let (line, column) = (err.line() as u32, err.column() as u32);
                sink.diags.push(crate::Diagnostic {
                    path: path.clone(),
                    message: format!("invalid JSON: {err}"),
                    line,
                    column,
                });
                Vec::new()
            }
        };
    }
    if too_deep(contents).is_some() {
        push("input is nested too deeply".to_string(), None, sink);
        return Vec::new();
    }
    let body = match hcl_edit::parser::parse_body(contents) {
        Ok(body) => body,
        Err(err) => {
            sink.diags.push(crate::Diagnostic {
                path: path.clone(),
                message: format!("syntax error: {}", err.message()),
                line: err.location().line() as u32,
                column: err.location().column() as u32,
            });
            return Vec::new();
        }
    };
    let file_evaluator = Evaluator {
        source: contents,
        globals: BTreeMap::new(),
        funcs: FuncContext {
            now: evaluator.funcs.now,
            read_file: evaluator.funcs.read_file,
            random: None,
            budget: evaluator.funcs.budget,
        },
    };
    let mut out = Vec::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => match file_evaluator.eval(&attr.value, &Scope::root()) {
                Ok(value) => out.push((attr.key.as_str().to_string(), value)),
                Err(error) => push(error.message, error.span, sink),
            },
            Structure::Block(block) => push(
                format!(
                    "a var file may only set variables, not hold a {:?} block",
                    block.ident.as_str()
                ),
                block.ident.span(),
                sink,
            ),
        }
    }
    out
}

fn resolve_locals(evaluator: &mut Evaluator, blocks: &[&Block], sink: &mut Sink) {
    evaluator.globals.insert("local".to_string(), Value::Object(Map::new()));
    let mut pending: Vec<&hcl_edit::structure::Attribute> = Vec::new();
    let mut seen = BTreeMap::new();
    for block in blocks {
        if !block.labels.is_empty() {
            sink.error("locals", "a locals block takes no labels", block.ident.span());
        }
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attr) => {
                    if seen.insert(attr.key.as_str().to_string(), ()).is_some() {
                        sink.error(
                            format!("local {:?}", attr.key.as_str()),
                            "duplicate local value",
                            attr.key.span(),
                        );
                        continue;
                    }
                    pending.push(attr);
                }
                Structure::Block(inner) => sink.error(
                    "locals",
                    format!(
                        "a locals block holds only attributes, not a {:?} block",
                        inner.ident.as_str()
                    ),
                    inner.ident.span(),
                ),
            }
        }
    }
    // Evaluate in dependency order: keep going while something resolves.
    loop {
        let mut progress = false;
        let mut still_pending = Vec::new();
        let mut last_errors = Vec::new();
        for attr in pending {
            match evaluator.eval(&attr.value, &Scope::root()) {
                Ok(value) => {
                    if let Some(Value::Object(locals)) = evaluator.globals.get_mut("local") {
                        locals.insert(attr.key.as_str().to_string(), value);
                    }
                    progress = true;
                }
                Err(error) if error.fatal => {
                    report(sink, &format!("local {:?}", attr.key.as_str()), error);
                    return;
                }
                Err(error) if error.missing_local => {
                    still_pending.push(attr);
                    last_errors.push((attr, error));
                }
                Err(error) => {
                    report(sink, &format!("local {:?}", attr.key.as_str()), error);
                    if let Some(Value::Object(locals)) = evaluator.globals.get_mut("local") {
                        locals.insert(attr.key.as_str().to_string(), Value::Null);
                    }
                    progress = true;
                }
            }
        }
        pending = still_pending;
        if pending.is_empty() {
            break;
        }
        if !progress {
            for (attr, error) in last_errors {
                if let Some(Value::Object(locals)) = evaluator.globals.get_mut("local") {
                    locals.insert(attr.key.as_str().to_string(), Value::Null);
                }
                let message = format!("{} (or a cycle between local values)", error.message);
                report(
                    sink,
                    &format!("local {:?}", attr.key.as_str()),
                    EvalError::new(message, error.span),
                );
            }
            break;
        }
    }
}

fn report(sink: &mut Sink, path: &str, error: EvalError) {
    // The budget's error is reported once, where it ran out; every later
    // evaluation fails the same way and adds nothing.
    if error.fatal && sink.diags.iter().any(|diag| diag.message == error.message) {
        return;
    }
    sink.error(path, error.message, error.span);
}

/// Evaluates a block body: attributes to values, `dynamic` blocks expanded.
pub(crate) fn convert_body(
    evaluator: &Evaluator,
    body: &Body,
    scope: &Scope,
    sink: &mut Sink,
    path: &str,
    dotted: bool,
    depth: usize,
) -> (Vec<Attr>, Vec<Node>) {
    let mut attrs: Vec<Attr> = Vec::new();
    let mut blocks = Vec::new();
    if depth > MAX_BLOCK_DEPTH {
        sink.error(path, "blocks are nested too deeply", body.span());
        return (attrs, blocks);
    }
    for structure in body.iter() {
        if let Err(error) = evaluator.funcs.budget.steps(1) {
            report(sink, path, EvalError::new(error.0, structure.span()).into_fatal());
            return (attrs, blocks);
        }
        match structure {
            Structure::Attribute(attr) => {
                let name = attr.key.as_str().to_string();
                let attr_path = join_path(path, &name, dotted);
                if attrs.iter().any(|existing| existing.name == name) {
                    sink.error(
                        attr_path,
                        format!("attribute {name:?} is set more than once"),
                        attr.key.span(),
                    );
                    continue;
                }
                let (value, failed) = match evaluator.eval(&attr.value, scope) {
                    Ok(value) => (value, false),
                    Err(error) => {
                        report(sink, &attr_path, error);
                        (Value::Null, true)
                    }
                };
                attrs.push(Attr {
                    name,
                    value,
                    span: attr.span(),
                    failed,
                });
            }
            Structure::Block(block) if block.ident.as_str() == "dynamic" => {
                expand_dynamic(evaluator, block, scope, sink, (path, dotted), depth, &mut blocks);
            }
            Structure::Block(block) => {
                let labels = block_labels(block);
                let (child_path, child_dotted) = block_path(path, dotted, block.ident.as_str(), &labels);
                let (child_attrs, child_blocks) = convert_body(
                    evaluator,
                    &block.body,
                    scope,
                    sink,
                    &child_path,
                    child_dotted,
                    depth + 1,
                );
                blocks.push(Node {
                    ident: block.ident.as_str().to_string(),
                    labels,
                    span: block.span(),
                    attrs: child_attrs,
                    blocks: child_blocks,
                });
            }
        }
    }
    (attrs, blocks)
}

/// A field's path: `… → name` under a job, group or task, `….name` inside
/// any other block, matching the paths validation uses.
fn join_path(path: &str, name: &str, dotted: bool) -> String {
    if dotted {
        format!("{path}.{name}")
    } else {
        format!("{path} → {name}")
    }
}

/// A block's path, and whether fields below it are dotted.
fn block_path(path: &str, dotted: bool, ident: &str, labels: &[String]) -> (String, bool) {
    let mut name = ident.to_string();
    for label in labels {
        name.push_str(&format!(" {label:?}"));
    }
    if !dotted && matches!(ident, "group" | "task") {
        (format!("{path} → {name}"), false)
    } else {
        (join_path(path, &name, dotted), true)
    }
}

fn expand_dynamic(
    evaluator: &Evaluator,
    block: &Block,
    scope: &Scope,
    sink: &mut Sink,
    (path, dotted): (&str, bool),
    depth: usize,
    out: &mut Vec<Node>,
) {
    let labels = block_labels(block);
    let [kind] = labels.as_slice() else {
        sink.error(
            join_path(path, "dynamic", dotted),
            "a dynamic block needs exactly one label: the type of block to generate",
            block.ident.span(),
        );
        return;
    };
    let dyn_path = join_path(path, &format!("dynamic {kind:?}"), dotted);
    let mut iterator = kind.clone();
    let mut for_each = None;
    let mut labels_expr: Option<&Expression> = None;
    let mut content = None;
    for structure in block.body.iter() {
        match structure {
            Structure::Attribute(attr) => match attr.key.as_str() {
                "for_each" => for_each = Some(attr),
                "iterator" => match &attr.value {
                    Expression::Variable(ident) => iterator = ident.as_str().to_string(),
                    other => sink.error(
                        format!("{dyn_path}.iterator"),
                        "iterator must be a plain name",
                        other.span(),
                    ),
                },
                "labels" => labels_expr = Some(&attr.value),
                other => sink.error(
                    format!("{dyn_path}.{other}"),
                    format!("unknown attribute {other:?} in a dynamic block"),
                    attr.key.span(),
                ),
            },
            Structure::Block(inner) if inner.ident.as_str() == "content" => {
                if content.is_some() {
                    sink.error(
                        &dyn_path,
                        "a dynamic block takes only one content block",
                        inner.ident.span(),
                    );
                }
                content = Some(inner);
            }
            Structure::Block(inner) => sink.error(
                format!("{dyn_path}.{}", inner.ident.as_str()),
                format!("unknown block {:?} in a dynamic block", inner.ident.as_str()),
                inner.ident.span(),
            ),
        }
    }
    let Some(for_each) = for_each else {
        sink.error(&dyn_path, "a dynamic block needs for_each", block.ident.span());
        return;
    };
    let Some(content) = content else {
        sink.error(&dyn_path, "a dynamic block needs a content block", block.ident.span());
        return;
    };
    let collection = match evaluator.eval(&for_each.value, scope) {
        Ok(value) => value,
        Err(error) => {
            report(sink, &format!("{dyn_path}.for_each"), error);
            return;
        }
    };
    let pairs = match crate::eval::iteration_pairs(collection) {
        Ok(pairs) => pairs,
        Err(other) => {
            sink.error(
                format!("{dyn_path}.for_each"),
                format!("for_each must be a list, set or map, not a {}", type_name(&other)),
                for_each.value.span(),
            );
            return;
        }
    };
    for (key, value) in pairs {
        if evaluator.funcs.budget.exceeded() {
            return;
        }
        let mut iterator_value = Map::new();
        iterator_value.insert("key".to_string(), key);
        iterator_value.insert("value".to_string(), value);
        let inner = scope.child(vec![(iterator.clone(), Value::Object(iterator_value))]);
        let mut generated_labels = Vec::new();
        if let Some(expr) = labels_expr {
            match evaluator.eval(expr, &inner) {
                Ok(Value::Array(items)) => {
                    for item in items {
                        match to_string(&item) {
                            Ok(text) => generated_labels.push(text),
                            Err(message) => {
                                sink.error(format!("{dyn_path}.labels"), message, expr.span());
                                return;
                            }
                        }
                    }
                }
                Ok(other) => {
                    sink.error(
                        format!("{dyn_path}.labels"),
                        format!("labels must be a list of strings, not a {}", type_name(&other)),
                        expr.span(),
                    );
                    return;
                }
                Err(error) => {
                    report(sink, &format!("{dyn_path}.labels"), error);
                    return;
                }
            }
        }
        let (child_path, child_dotted) = block_path(path, dotted, kind, &generated_labels);
        let (attrs, blocks) = convert_body(
            evaluator,
            &content.body,
            &inner,
            sink,
            &child_path,
            child_dotted,
            depth + 1,
        );
        out.push(Node {
            ident: kind.clone(),
            labels: generated_labels,
            span: content.span().or_else(|| block.span()),
            attrs,
            blocks,
        });
    }
}
