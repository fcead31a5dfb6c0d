//! The HCL2 expression evaluator over `hcl-edit`'s syntax tree, which keeps
//! byte spans so every error points at its source.
//!
//! Values are `serde_json::Value`s (objects are sorted maps, as in cty).
//! Template interpolations that name a variable unknown at parse time
//! (`${node.unique.name}`, `${attr.kernel.name}`, `${NOMAD_ALLOC_DIR}`,
//! `${env["HOME"]}`…) are kept as their exact source text, for the client to
//! interpolate at run time, as Nomad does.

use crate::funcs;
use hcl_edit::Span;
use hcl_edit::expr::{BinaryOperator, Expression, ObjectKey, TraversalOperator, UnaryOperator};
use hcl_edit::template::{Directive, Element, Template};
use serde_json::{Map, Value};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::Range;

/// Deepest expression nesting evaluated before giving up, so hostile input
/// cannot overflow the stack.
const MAX_DEPTH: usize = 200;

/// An evaluation failure with the span it is about.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EvalError {
    pub message: String,
    pub span: Option<Range<usize>>,
    /// Set when the failure is a reference to a `local.*` not yet evaluated,
    /// so locals can be resolved in dependency order.
    pub missing_local: bool,
    /// Set when the evaluation budget ran out: nothing may catch it (not
    /// `try`, not `can`) and evaluation stops.
    pub fatal: bool,
}

impl EvalError {
    pub(crate) fn new(message: impl Into<String>, span: Option<Range<usize>>) -> EvalError {
        EvalError {
            message: message.into(),
            span,
            missing_local: false,
            fatal: false,
        }
    }

    /// The same error, marked as the budget running out.
    pub(crate) fn into_fatal(mut self) -> EvalError {
        self.fatal = true;
        self
    }

    fn exhausted(error: BudgetExceeded, span: Option<Range<usize>>) -> EvalError {
        EvalError {
            message: error.0,
            span,
            missing_local: false,
            fatal: true,
        }
    }
}

/// The evaluation budget ran out; the message names the limit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BudgetExceeded(pub String);

/// Deepest nesting of a value (lists in lists…) that evaluation produces.
const MAX_VALUE_DEPTH: usize = 128;

/// What one parse has spent of its [`crate::EvalBudget`], shared by every
/// evaluator of the parse (variables, var files, locals, the job).
pub(crate) struct Budget {
    limits: crate::EvalBudget,
    steps: Cell<u64>,
    bytes: Cell<u64>,
    /// The first limit passed; every later charge fails with it too.
    exceeded: std::cell::RefCell<Option<String>>,
}

impl Budget {
    pub(crate) fn new(limits: crate::EvalBudget) -> Budget {
        Budget {
            limits,
            steps: Cell::new(0),
            bytes: Cell::new(0),
            exceeded: std::cell::RefCell::new(None),
        }
    }

    /// Whether the budget has run out (evaluation is stopping).
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded.borrow().is_some()
    }

    /// Records the first limit passed and fails with it.
    fn fail(&self, message: String) -> BudgetExceeded {
        let mut exceeded = self.exceeded.borrow_mut();
        BudgetExceeded(exceeded.get_or_insert(message).clone())
    }

    /// Spends `count` steps.
    pub(crate) fn steps(&self, count: u64) -> Result<(), BudgetExceeded> {
        let spent = self.steps.get().saturating_add(count);
        self.steps.set(spent);
        if spent > self.limits.max_steps || self.exceeded() {
            return Err(self.fail(format!(
                "evaluation budget exceeded: more than {} steps (expressions, loop iterations and generated blocks); the job file does too much work",
                self.limits.max_steps
            )));
        }
        Ok(())
    }

    /// Spends `count` bytes of produced values.
    pub(crate) fn bytes(&self, count: u64) -> Result<(), BudgetExceeded> {
        let spent = self.bytes.get().saturating_add(count);
        self.bytes.set(spent);
        if spent > self.limits.max_bytes || self.exceeded() {
            return Err(self.fail(format!(
                "evaluation budget exceeded: more than {} bytes of values produced; the job file builds values that are too large",
                self.limits.max_bytes
            )));
        }
        Ok(())
    }

    /// Checks that a list or object of `len` elements is allowed.
    pub(crate) fn collection(&self, len: usize) -> Result<(), BudgetExceeded> {
        if len > self.limits.max_collection {
            return Err(self.fail(format!(
                "evaluation budget exceeded: a list or object of more than {} elements",
                self.limits.max_collection
            )));
        }
        Ok(())
    }

    /// The bytes still to spend, for functions that check an output's size
    /// before building it.
    pub(crate) fn bytes_left(&self) -> u64 {
        self.limits.max_bytes.saturating_sub(self.bytes.get())
    }

    /// Checks, without spending, that a value of `len` bytes could still be
    /// made: functions whose output can be far larger than their inputs
    /// call it before building the output.
    pub(crate) fn reserve(&self, len: u64) -> Result<(), BudgetExceeded> {
        if len > self.bytes_left() {
            return Err(self.fail(format!(
                "evaluation budget exceeded: a value of {len} bytes would pass the limit of {} bytes of values produced",
                self.limits.max_bytes
            )));
        }
        Ok(())
    }

    /// Spends what a value just made costs: its size in bytes, with every
    /// list and object checked against the collection limit and the value's
    /// nesting bounded. The walk is iterative, so a deep value cannot
    /// overflow the stack here.
    pub(crate) fn value(&self, value: &Value) -> Result<(), BudgetExceeded> {
        let mut size: u64 = 0;
        let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
        while let Some((value, depth)) = stack.pop() {
            if depth > MAX_VALUE_DEPTH {
                return Err(self.fail(format!(
                    "evaluation budget exceeded: a value nested more than {MAX_VALUE_DEPTH} levels deep"
                )));
            }
            size += 16;
            match value {
                Value::Null | Value::Bool(_) | Value::Number(_) => {}
                Value::String(text) => size += text.len() as u64,
                Value::Array(items) => {
                    self.collection(items.len())?;
                    stack.extend(items.iter().map(|item| (item, depth + 1)));
                }
                Value::Object(map) => {
                    self.collection(map.len())?;
                    for (key, item) in map {
                        size += 32 + key.len() as u64;
                        stack.push((item, depth + 1));
                    }
                }
            }
            // Charge as the walk goes, so a huge value stops the walk early.
            if size >= 1 << 16 {
                self.bytes(size)?;
                size = 0;
            }
        }
        self.bytes(size)
    }
}

type EvalResult<T> = Result<T, EvalError>;

/// Everything the functions may need from outside: all passed in by the
/// caller so the crate stays pure.
pub(crate) struct FuncContext<'a> {
    pub now: types::UnixNanos,
    pub read_file: Option<crate::ReadFile<'a>>,
    pub random: Option<&'a dyn Fn() -> u128>,
    /// The parse's evaluation budget.
    pub budget: &'a Budget,
}

/// The evaluation context: global variables (`var`, `local`) and functions.
pub(crate) struct Evaluator<'a> {
    pub source: &'a str,
    pub globals: BTreeMap<String, Value>,
    pub funcs: FuncContext<'a>,
}

/// Variables bound by `for` expressions and `dynamic` iterators, chained.
pub(crate) struct Scope<'s> {
    vars: Vec<(String, Value)>,
    parent: Option<&'s Scope<'s>>,
}

impl<'s> Scope<'s> {
    pub(crate) fn root() -> Scope<'static> {
        Scope {
            vars: Vec::new(),
            parent: None,
        }
    }

    pub(crate) fn child(&'s self, vars: Vec<(String, Value)>) -> Scope<'s> {
        Scope {
            vars,
            parent: Some(self),
        }
    }

    fn lookup(&self, name: &str) -> Option<&Value> {
        self.vars
            .iter()
            .rev()
            .find(|(var_name, _)| var_name == name)
            .map(|(_, value)| value)
            .or_else(|| self.parent.and_then(|parent| parent.lookup(name)))
    }
}

impl<'a> Evaluator<'a> {
    /// Whether `name` resolves in `scope` or the globals.
    fn is_known(&self, name: &str, scope: &Scope) -> bool {
        scope.lookup(name).is_some() || self.globals.contains_key(name)
    }

    /// Evaluates an expression to a value.
    pub(crate) fn eval(&self, expr: &Expression, scope: &Scope) -> EvalResult<Value> {
        self.eval_depth(expr, scope, 0)
    }

    /// Spends `count` steps of the budget for `expr`.
    fn step(&self, count: u64, span: Option<Range<usize>>) -> EvalResult<()> {
        self.funcs
            .budget
            .steps(count)
            .map_err(|error| EvalError::exhausted(error, span))
    }

    /// Spends the bytes of a value just made (a copy, a function result).
    fn made(&self, value: Value, span: Option<Range<usize>>) -> EvalResult<Value> {
        self.funcs
            .budget
            .value(&value)
            .map_err(|error| EvalError::exhausted(error, span))?;
        Ok(value)
    }

    fn eval_depth(&self, expr: &Expression, scope: &Scope, depth: usize) -> EvalResult<Value> {
        if depth > MAX_DEPTH {
            return Err(EvalError::new("expression is nested too deeply", expr.span()));
        }
        self.step(1, expr.span())?;
        let depth = depth + 1;
        match expr {
            Expression::Null(_) => Ok(Value::Null),
            Expression::Bool(value) => Ok(Value::Bool(*value.value())),
            Expression::Number(number) => {
                let number = number.value();
                if let Some(int) = number.as_i64() {
                    Ok(Value::from(int))
                } else if let Some(uint) = number.as_u64() {
                    Ok(Value::from(uint))
                } else {
                    Ok(number_value(number.as_f64().unwrap_or(0.0)))
                }
            }
            Expression::String(value) => Ok(Value::String(value.value().clone())),
            Expression::Array(array) => {
                let mut items = Vec::with_capacity(array.len());
                for item in array.iter() {
                    items.push(self.eval_depth(item, scope, depth)?);
                }
                Ok(Value::Array(items))
            }
            Expression::Object(object) => {
                let mut map = Map::new();
                for (key, value) in object.iter() {
                    let key_text = match key {
                        ObjectKey::Ident(ident) => ident.as_str().to_string(),
                        ObjectKey::Expression(Expression::Variable(ident)) => ident.as_str().to_string(),
                        ObjectKey::Expression(key_expr) => {
                            let key_value = self.eval_depth(key_expr, scope, depth)?;
                            to_string(&key_value).map_err(|message| EvalError::new(message, key_expr.span()))?
                        }
                    };
                    map.insert(key_text, self.eval_depth(value.expr(), scope, depth)?);
                }
                Ok(Value::Object(map))
            }
            Expression::StringTemplate(template) => self.eval_template_expr(template, scope, depth, None),
            Expression::HeredocTemplate(heredoc) => {
                let indent = self.flush_heredoc_indent(heredoc.span());
                self.eval_template_expr(&heredoc.template, scope, depth, indent)
            }
            Expression::Parenthesis(inner) => self.eval_depth(inner.inner(), scope, depth),
            Expression::Variable(ident) => {
                let name = ident.as_str();
                if let Some(value) = scope.lookup(name) {
                    return self.made(value.clone(), ident.span());
                }
                match self.globals.get(name) {
                    Some(value) => self.made(value.clone(), ident.span()),
                    None => Err(EvalError::new(format!("unknown variable {name:?}"), ident.span())),
                }
            }
            Expression::Conditional(cond) => {
                let test = self.eval_depth(&cond.cond_expr, scope, depth)?;
                match to_bool(&test) {
                    Ok(true) => self.eval_depth(&cond.true_expr, scope, depth),
                    Ok(false) => self.eval_depth(&cond.false_expr, scope, depth),
                    Err(message) => Err(EvalError::new(
                        format!("condition must be a bool: {message}"),
                        cond.cond_expr.span(),
                    )),
                }
            }
            Expression::FuncCall(call) => {
                let name = call.name.name.as_str();
                if !call.name.namespace.is_empty() {
                    return Err(EvalError::new(
                        format!(
                            "unknown function {:?}",
                            call.name
                                .namespace
                                .iter()
                                .map(|part| part.as_str())
                                .chain(std::iter::once(name))
                                .collect::<Vec<_>>()
                                .join("::")
                        ),
                        call.span(),
                    ));
                }
                // `try` and `can` look at errors, so they evaluate lazily.
                if name == "try" || name == "can" {
                    return self.eval_try(name, call, scope, depth);
                }
                let mut args = Vec::with_capacity(call.args.len());
                for arg in call.args.iter() {
                    args.push(self.eval_depth(arg, scope, depth)?);
                }
                if call.args.expand_final() {
                    match args.pop() {
                        Some(Value::Array(items)) => args.extend(items),
                        Some(_) => {
                            return Err(EvalError::new(
                                "the final argument before \"...\" must be a list",
                                call.args.iter().last().and_then(|arg| arg.span()),
                            ));
                        }
                        None => {}
                    }
                }
                let value = funcs::call(name, args, &self.funcs).map_err(|error| match error {
                    funcs::FuncError::Failed(message) => EvalError::new(message, call.span()),
                    funcs::FuncError::Budget(error) => EvalError::exhausted(error, call.span()),
                })?;
                self.made(value, call.span())
            }
            Expression::Traversal(traversal) => {
                // A reference to a local not evaluated yet is deferred.
                if let Expression::Variable(root) = &traversal.expr
                    && root.as_str() == "local"
                    && scope.lookup("local").is_none()
                    && let Some(TraversalOperator::GetAttr(attr)) = traversal.operators.first().map(|op| op.value())
                {
                    let known = self
                        .globals
                        .get("local")
                        .and_then(|locals| locals.get(attr.as_str()))
                        .is_some();
                    if !known {
                        let mut error =
                            EvalError::new(format!("unknown local value {:?}", attr.as_str()), traversal.span());
                        error.missing_local = true;
                        return Err(error);
                    }
                }
                // Walk plain attribute and index steps on a variable by
                // reference, so `local.x` does not copy every local.
                if let Expression::Variable(root) = &traversal.expr {
                    let name = root.as_str();
                    if let Some(mut current) = scope.lookup(name).or_else(|| self.globals.get(name)) {
                        let mut idx = 0;
                        while let Some(operator) = traversal.operators.get(idx) {
                            let next = match (operator.value(), current) {
                                (TraversalOperator::GetAttr(attr), Value::Object(map)) => map.get(attr.as_str()),
                                (TraversalOperator::LegacyIndex(index), Value::Array(items)) => {
                                    usize::try_from(*index.value()).ok().and_then(|index| items.get(index))
                                }
                                _ => None,
                            };
                            match next {
                                Some(value) => current = value,
                                None => break,
                            }
                            idx += 1;
                        }
                        let current = self.made(current.clone(), traversal.span())?;
                        return self.traverse(current, &traversal.operators[idx..], scope, depth);
                    }
                }
                let base = self.eval_depth(&traversal.expr, scope, depth)?;
                self.traverse(base, &traversal.operators, scope, depth)
            }
            Expression::UnaryOp(op) => {
                let value = self.eval_depth(&op.expr, scope, depth)?;
                match op.operator.value() {
                    UnaryOperator::Neg => {
                        let number = to_number(&value).map_err(|message| EvalError::new(message, op.expr.span()))?;
                        Ok(number_value(-number))
                    }
                    UnaryOperator::Not => {
                        let flag = to_bool(&value).map_err(|message| EvalError::new(message, op.expr.span()))?;
                        Ok(Value::Bool(!flag))
                    }
                }
            }
            Expression::BinaryOp(op) => {
                let operator = *op.operator.value();
                let lhs = self.eval_depth(&op.lhs_expr, scope, depth)?;
                // Short-circuit the logical operators.
                if matches!(operator, BinaryOperator::And | BinaryOperator::Or) {
                    let left = to_bool(&lhs).map_err(|message| EvalError::new(message, op.lhs_expr.span()))?;
                    if operator == BinaryOperator::And && !left {
                        return Ok(Value::Bool(false));
                    }
                    if operator == BinaryOperator::Or && left {
                        return Ok(Value::Bool(true));
                    }
                    let rhs = self.eval_depth(&op.rhs_expr, scope, depth)?;
                    let right = to_bool(&rhs).map_err(|message| EvalError::new(message, op.rhs_expr.span()))?;
                    return Ok(Value::Bool(right));
                }
                let rhs = self.eval_depth(&op.rhs_expr, scope, depth)?;
                binary(operator, &lhs, &rhs).map_err(|message| EvalError::new(message, op.span()))
            }
            Expression::ForExpr(for_expr) => {
                let collection = self.eval_depth(&for_expr.intro.collection_expr, scope, depth)?;
                let pairs = iteration_pairs(collection).map_err(|other| {
                    EvalError::new(
                        format!("cannot iterate over a {}", type_name(&other)),
                        for_expr.intro.collection_expr.span(),
                    )
                })?;
                let key_var = for_expr.intro.key_var.as_ref().map(|ident| ident.as_str().to_string());
                let value_var = for_expr.intro.value_var.as_str().to_string();
                let mut list = Vec::new();
                let mut object = Map::new();
                for (key, value) in pairs {
                    self.step(1, for_expr.span())?;
                    let produced = list.len().max(object.len()) + 1;
                    self.funcs
                        .budget
                        .collection(produced)
                        .map_err(|error| EvalError::exhausted(error, for_expr.span()))?;
                    let mut vars = Vec::new();
                    if let Some(key_var) = &key_var {
                        vars.push((key_var.clone(), key));
                    }
                    vars.push((value_var.clone(), value));
                    let inner = scope.child(vars);
                    if let Some(cond) = &for_expr.cond {
                        let keep = self.eval_depth(&cond.expr, &inner, depth)?;
                        let keep = to_bool(&keep).map_err(|message| EvalError::new(message, cond.expr.span()))?;
                        if !keep {
                            continue;
                        }
                    }
                    let item = self.eval_depth(&for_expr.value_expr, &inner, depth)?;
                    match &for_expr.key_expr {
                        None => list.push(item),
                        Some(key_expr) => {
                            let key = self.eval_depth(key_expr, &inner, depth)?;
                            let key = to_string(&key).map_err(|message| EvalError::new(message, key_expr.span()))?;
                            if for_expr.grouping {
                                if let Value::Array(group) =
                                    object.entry(key).or_insert_with(|| Value::Array(Vec::new()))
                                {
                                    group.push(item);
                                }
                            } else if object.contains_key(&key) {
                                return Err(EvalError::new(
                                    format!("duplicate key {key:?} in for expression; use \"...\" to group"),
                                    key_expr.span(),
                                ));
                            } else {
                                object.insert(key, item);
                            }
                        }
                    }
                }
                Ok(if for_expr.key_expr.is_some() {
                    Value::Object(object)
                } else {
                    Value::Array(list)
                })
            }
        }
    }

    fn eval_try(&self, name: &str, call: &hcl_edit::expr::FuncCall, scope: &Scope, depth: usize) -> EvalResult<Value> {
        if name == "can" {
            let Some(arg) = call.args.iter().next() else {
                return Err(EvalError::new("can needs one argument", call.span()));
            };
            return match self.eval_depth(arg, scope, depth) {
                Ok(_) => Ok(Value::Bool(true)),
                Err(error) if error.fatal || error.missing_local => Err(error),
                Err(_) => Ok(Value::Bool(false)),
            };
        }
        let mut last_error = EvalError::new("try needs at least one argument", call.span());
        for arg in call.args.iter() {
            match self.eval_depth(arg, scope, depth) {
                Ok(value) => return Ok(value),
                Err(error) if error.missing_local || error.fatal => return Err(error),
                Err(error) => last_error = error,
            }
        }
        Err(EvalError::new(
            format!("no argument of try could be evaluated: {}", last_error.message),
            call.span(),
        ))
    }

    fn traverse(
        &self,
        mut value: Value,
        operators: &[hcl_edit::Decorated<TraversalOperator>],
        scope: &Scope,
        depth: usize,
    ) -> EvalResult<Value> {
        let mut idx = 0;
        while idx < operators.len() {
            let operator = &operators[idx];
            match operator.value() {
                TraversalOperator::GetAttr(attr) => {
                    value = get_attr(value, attr.as_str()).map_err(|message| EvalError::new(message, attr.span()))?;
                }
                TraversalOperator::LegacyIndex(index) => {
                    value = index_value(value, &Value::from(*index.value()))
                        .map_err(|message| EvalError::new(message, operator.span()))?;
                }
                TraversalOperator::Index(index_expr) => {
                    let key = self.eval_depth(index_expr, scope, depth)?;
                    value = index_value(value, &key).map_err(|message| EvalError::new(message, index_expr.span()))?;
                }
                TraversalOperator::AttrSplat(_) | TraversalOperator::FullSplat(_) => {
                    let full = matches!(operator.value(), TraversalOperator::FullSplat(_));
                    // The splat applies the following operators to each element:
                    // all of them for `[*]`, only attribute accesses for `.*`.
                    let mut end = idx + 1;
                    while end < operators.len() {
                        let is_attr = matches!(operators[end].value(), TraversalOperator::GetAttr(_));
                        if !full && !is_attr {
                            break;
                        }
                        end += 1;
                    }
                    let items = match value {
                        Value::Array(items) => items,
                        Value::Null => Vec::new(),
                        other => vec![other],
                    };
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        out.push(self.traverse(item, &operators[idx + 1..end], scope, depth)?);
                    }
                    value = Value::Array(out);
                    idx = end;
                    continue;
                }
            }
            idx += 1;
        }
        Ok(value)
    }

    /// For a `<<-` heredoc, the indent to strip from every line: the
    /// smallest leading whitespace of the body's non-blank lines, measured
    /// on the source text so that lines inside template directives count.
    fn flush_heredoc_indent(&self, span: Option<Range<usize>>) -> Option<usize> {
        let text = self.source.get(span?)?;
        let rest = text.strip_prefix("<<-")?;
        let (_, body) = rest.split_once('\n')?;
        // The last line holds the closing delimiter.
        let body = match body.rfind('\n') {
            Some(idx) => &body[..idx],
            None => "",
        };
        body.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| line.chars().take_while(|ch| *ch == ' ' || *ch == '\t').count())
            .min()
            .or(Some(0))
    }

    /// A heredoc literal from the source text, unescaped and dedented.
    fn heredoc_literal(&self, literal: &hcl_edit::Spanned<String>, indent: usize) -> String {
        let Some(span) = literal.span() else {
            return literal.value().clone();
        };
        let Some(raw) = self.source.get(span.clone()) else {
            return literal.value().clone();
        };
        let raw = raw.replace("$${", "${").replace("%%{", "%{");
        let mut at_line_start = span.start == 0 || self.source.as_bytes().get(span.start - 1) == Some(&b'\n');
        let mut out = String::with_capacity(raw.len());
        for line in raw.split_inclusive('\n') {
            let mut line = line;
            if at_line_start {
                let mut stripped = 0;
                while stripped < indent && (line.starts_with(' ') || line.starts_with('\t')) {
                    line = &line[1..];
                    stripped += 1;
                }
            }
            out.push_str(line);
            at_line_start = true;
        }
        out
    }

    fn eval_template_expr(
        &self,
        template: &Template,
        scope: &Scope,
        depth: usize,
        indent: Option<usize>,
    ) -> EvalResult<Value> {
        // A template that is a single interpolation yields the value itself,
        // not its string form (HCL's "unwrapping").
        if let Some(Element::Interpolation(interpolation)) = template.as_single_element() {
            if self.is_runtime(&interpolation.expr, scope) {
                return Ok(Value::String(self.source_text(interpolation.span())));
            }
            return self.eval_depth(&interpolation.expr, scope, depth);
        }
        let mut out = String::new();
        self.render_template(template, scope, depth, &mut out, (false, false), indent)?;
        self.made(Value::String(out), template.span())
    }

    fn source_text(&self, span: Option<Range<usize>>) -> String {
        span.and_then(|range| self.source.get(range))
            .unwrap_or_default()
            .to_string()
    }

    /// Whether an interpolation names a variable only the client knows, so
    /// it must be kept as text.
    fn is_runtime(&self, expr: &Expression, scope: &Scope) -> bool {
        let mut unknown = false;
        visit_roots(expr, &mut |name| {
            if !self.is_known(name, scope) {
                unknown = true;
            }
        });
        unknown
    }

    fn render_template(
        &self,
        template: &Template,
        scope: &Scope,
        depth: usize,
        out: &mut String,
        (trim_leading, trim_trailing): (bool, bool),
        indent: Option<usize>,
    ) -> EvalResult<()> {
        let elements: Vec<&Element> = template.iter().collect();
        let mut trim_next = trim_leading;
        for (idx, element) in elements.iter().enumerate() {
            // Whether the next element asks to strip the whitespace before it.
            let strip_before_next = match elements.get(idx + 1) {
                Some(Element::Interpolation(next)) => next.strip.strip_start(),
                Some(Element::Directive(directive)) => match directive.as_ref() {
                    Directive::If(if_directive) => if_directive.if_expr.strip.strip_start(),
                    Directive::For(for_directive) => for_directive.for_expr.strip.strip_start(),
                },
                Some(Element::Literal(_)) => false,
                None => trim_trailing,
            };
            match element {
                Element::Literal(literal) => {
                    let owned;
                    let mut text: &str = match indent {
                        Some(indent) => {
                            owned = self.heredoc_literal(literal, indent);
                            &owned
                        }
                        None => literal.value(),
                    };
                    if trim_next {
                        text = text.trim_start();
                    }
                    if strip_before_next {
                        text = text.trim_end();
                    }
                    out.push_str(text);
                    trim_next = false;
                }
                Element::Interpolation(interpolation) => {
                    if self.is_runtime(&interpolation.expr, scope) {
                        out.push_str(&self.source_text(interpolation.span()));
                    } else {
                        let value = self.eval_depth(&interpolation.expr, scope, depth)?;
                        let text =
                            to_string(&value).map_err(|message| EvalError::new(message, interpolation.expr.span()))?;
                        out.push_str(&text);
                    }
                    // The rendered text grows with every loop iteration.
                    if out.len() as u64 > self.funcs.budget.bytes_left() {
                        self.funcs
                            .budget
                            .bytes(out.len() as u64)
                            .map_err(|error| EvalError::exhausted(error, interpolation.span()))?;
                    }
                    trim_next = interpolation.strip.strip_end();
                }
                Element::Directive(directive) => match directive.as_ref() {
                    Directive::If(if_directive) => {
                        let cond_expr = &if_directive.if_expr.cond_expr;
                        let cond = self.eval_depth(cond_expr, scope, depth)?;
                        let cond = to_bool(&cond).map_err(|message| EvalError::new(message, cond_expr.span()))?;
                        if cond {
                            self.render_template(
                                &if_directive.if_expr.template,
                                scope,
                                depth,
                                out,
                                (
                                    if_directive.if_expr.strip.strip_end(),
                                    match &if_directive.else_expr {
                                        Some(else_expr) => else_expr.strip.strip_start(),
                                        None => if_directive.endif_expr.strip.strip_start(),
                                    },
                                ),
                                indent,
                            )?;
                        } else if let Some(else_expr) = &if_directive.else_expr {
                            self.render_template(
                                &else_expr.template,
                                scope,
                                depth,
                                out,
                                (else_expr.strip.strip_end(), if_directive.endif_expr.strip.strip_start()),
                                indent,
                            )?;
                        }
                        trim_next = if_directive.endif_expr.strip.strip_end();
                    }
                    Directive::For(for_directive) => {
                        let for_expr = &for_directive.for_expr;
                        let collection = self.eval_depth(&for_expr.collection_expr, scope, depth)?;
                        let pairs = iteration_pairs(collection).map_err(|other| {
                            EvalError::new(
                                format!("cannot iterate over a {}", type_name(&other)),
                                for_expr.collection_expr.span(),
                            )
                        })?;
                        for (key, value) in pairs {
                            self.step(1, for_directive.span())?;
                            if out.len() as u64 > self.funcs.budget.bytes_left() {
                                self.funcs
                                    .budget
                                    .bytes(out.len() as u64)
                                    .map_err(|error| EvalError::exhausted(error, for_directive.span()))?;
                            }
                            let mut vars = Vec::new();
                            if let Some(key_var) = &for_expr.key_var {
                                vars.push((key_var.as_str().to_string(), key));
                            }
                            vars.push((for_expr.value_var.as_str().to_string(), value));
                            let inner = scope.child(vars);
                            self.render_template(
                                &for_expr.template,
                                &inner,
                                depth,
                                out,
                                (
                                    for_expr.strip.strip_end(),
                                    for_directive.endfor_expr.strip.strip_start(),
                                ),
                                indent,
                            )?;
                        }
                        trim_next = for_directive.endfor_expr.strip.strip_end();
                    }
                },
            }
        }
        Ok(())
    }
}

/// Calls `visit` with the name of every root variable an expression reads,
/// skipping those bound by its own `for` expressions.
pub(crate) fn visit_roots(expr: &Expression, visit: &mut dyn FnMut(&str)) {
    visit_roots_bound(expr, &mut Vec::new(), visit, 0);
}

fn visit_roots_bound(expr: &Expression, bound: &mut Vec<String>, visit: &mut dyn FnMut(&str), depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let depth = depth + 1;
    match expr {
        Expression::Variable(ident) => {
            if !bound.iter().any(|name| name == ident.as_str()) {
                visit(ident.as_str());
            }
        }
        Expression::Array(array) => {
            for item in array.iter() {
                visit_roots_bound(item, bound, visit, depth);
            }
        }
        Expression::Object(object) => {
            for (key, value) in object.iter() {
                if let ObjectKey::Expression(key_expr) = key
                    && !matches!(key_expr, Expression::Variable(_))
                {
                    visit_roots_bound(key_expr, bound, visit, depth);
                }
                visit_roots_bound(value.expr(), bound, visit, depth);
            }
        }
        Expression::StringTemplate(template) => visit_template_roots(template, bound, visit, depth),
        Expression::HeredocTemplate(heredoc) => visit_template_roots(&heredoc.template, bound, visit, depth),
        Expression::Parenthesis(inner) => visit_roots_bound(inner.inner(), bound, visit, depth),
        Expression::Conditional(cond) => {
            visit_roots_bound(&cond.cond_expr, bound, visit, depth);
            visit_roots_bound(&cond.true_expr, bound, visit, depth);
            visit_roots_bound(&cond.false_expr, bound, visit, depth);
        }
        Expression::FuncCall(call) => {
            for arg in call.args.iter() {
                visit_roots_bound(arg, bound, visit, depth);
            }
        }
        Expression::Traversal(traversal) => {
            visit_roots_bound(&traversal.expr, bound, visit, depth);
            for operator in &traversal.operators {
                if let TraversalOperator::Index(index) = operator.value() {
                    visit_roots_bound(index, bound, visit, depth);
                }
            }
        }
        Expression::UnaryOp(op) => visit_roots_bound(&op.expr, bound, visit, depth),
        Expression::BinaryOp(op) => {
            visit_roots_bound(&op.lhs_expr, bound, visit, depth);
            visit_roots_bound(&op.rhs_expr, bound, visit, depth);
        }
        Expression::ForExpr(for_expr) => {
            visit_roots_bound(&for_expr.intro.collection_expr, bound, visit, depth);
            let before = bound.len();
            if let Some(key_var) = &for_expr.intro.key_var {
                bound.push(key_var.as_str().to_string());
            }
            bound.push(for_expr.intro.value_var.as_str().to_string());
            if let Some(key_expr) = &for_expr.key_expr {
                visit_roots_bound(key_expr, bound, visit, depth);
            }
            visit_roots_bound(&for_expr.value_expr, bound, visit, depth);
            if let Some(cond) = &for_expr.cond {
                visit_roots_bound(&cond.expr, bound, visit, depth);
            }
            bound.truncate(before);
        }
        Expression::Null(_) | Expression::Bool(_) | Expression::Number(_) | Expression::String(_) => {}
    }
}

fn visit_template_roots(template: &Template, bound: &mut Vec<String>, visit: &mut dyn FnMut(&str), depth: usize) {
    for element in template.iter() {
        match element {
            Element::Literal(_) => {}
            Element::Interpolation(interpolation) => visit_roots_bound(&interpolation.expr, bound, visit, depth),
            Element::Directive(directive) => match directive.as_ref() {
                Directive::If(if_directive) => {
                    visit_roots_bound(&if_directive.if_expr.cond_expr, bound, visit, depth);
                    visit_template_roots(&if_directive.if_expr.template, bound, visit, depth);
                    if let Some(else_expr) = &if_directive.else_expr {
                        visit_template_roots(&else_expr.template, bound, visit, depth);
                    }
                }
                Directive::For(for_directive) => {
                    let for_expr = &for_directive.for_expr;
                    visit_roots_bound(&for_expr.collection_expr, bound, visit, depth);
                    let before = bound.len();
                    if let Some(key_var) = &for_expr.key_var {
                        bound.push(key_var.as_str().to_string());
                    }
                    bound.push(for_expr.value_var.as_str().to_string());
                    visit_template_roots(&for_expr.template, bound, visit, depth);
                    bound.truncate(before);
                }
            },
        }
    }
}

fn get_attr(value: Value, name: &str) -> Result<Value, String> {
    match value {
        Value::Object(mut map) => map
            .remove(name)
            .ok_or_else(|| format!("object has no attribute {name:?}")),
        Value::Null => Err(format!("cannot read attribute {name:?} of null")),
        other => Err(format!("cannot read attribute {name:?} of a {}", type_name(&other))),
    }
}

fn index_value(value: Value, key: &Value) -> Result<Value, String> {
    match value {
        Value::Array(mut items) => {
            let number = to_number(key)?;
            if number.fract() != 0.0 || number < 0.0 {
                return Err(format!("invalid index {}", display_number(number)));
            }
            let idx = number as usize;
            if idx >= items.len() {
                return Err(format!("index {idx} out of range for a list of {}", items.len()));
            }
            Ok(items.swap_remove(idx))
        }
        Value::Object(mut map) => {
            let key = to_string(key)?;
            map.remove(&key).ok_or_else(|| format!("object has no key {key:?}"))
        }
        Value::Null => Err("cannot index null".to_string()),
        other => Err(format!("cannot index a {}", type_name(&other))),
    }
}

fn binary(operator: BinaryOperator, lhs: &Value, rhs: &Value) -> Result<Value, String> {
    use BinaryOperator::*;
    match operator {
        Eq => Ok(Value::Bool(values_equal(lhs, rhs))),
        NotEq => Ok(Value::Bool(!values_equal(lhs, rhs))),
        Less | LessEq | Greater | GreaterEq => {
            let (left, right) = (to_number(lhs)?, to_number(rhs)?);
            Ok(Value::Bool(match operator {
                Less => left < right,
                LessEq => left <= right,
                Greater => left > right,
                _ => left >= right,
            }))
        }
        Plus | Minus | Mul | Div | Mod => {
            let (left, right) = (to_number(lhs)?, to_number(rhs)?);
            let result = match operator {
                Plus => left + right,
                Minus => left - right,
                Mul => left * right,
                Div => {
                    if right == 0.0 {
                        return Err("division by zero".to_string());
                    }
                    left / right
                }
                _ => {
                    if right == 0.0 {
                        return Err("modulo by zero".to_string());
                    }
                    left % right
                }
            };
            if !result.is_finite() {
                return Err("arithmetic result is out of range".to_string());
            }
            Ok(number_value(result))
        }
        And | Or => Err("logical operators are evaluated elsewhere".to_string()),
    }
}

/// Deep equality where numbers compare by value (1 == 1.0).
pub(crate) fn values_equal(lhs: &Value, rhs: &Value) -> bool {
    match (lhs, rhs) {
        (Value::Number(left), Value::Number(right)) => left.as_f64() == right.as_f64(),
        (Value::Array(left), Value::Array(right)) => {
            left.len() == right.len() && left.iter().zip(right).all(|(a, b)| values_equal(a, b))
        }
        (Value::Object(left), Value::Object(right)) => {
            left.len() == right.len()
                && left
                    .iter()
                    .all(|(key, value)| right.get(key).is_some_and(|other| values_equal(value, other)))
        }
        _ => lhs == rhs,
    }
}

/// A number as a value: an integer when it is one, otherwise a float.
pub(crate) fn number_value(number: f64) -> Value {
    if number.fract() == 0.0 && number.abs() < 9.0e15 {
        Value::from(number as i64)
    } else {
        serde_json::Number::from_f64(number)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// Formats a number as HCL prints it: no trailing `.0` on integers.
pub(crate) fn display_number(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 9.0e15 {
        format!("{}", number as i64)
    } else {
        format!("{number}")
    }
}

/// HCL's name for a value's type, for messages.
/// The (key, value) pairs a `for` expression, a template `for` directive or
/// a `dynamic` block's `for_each` iterates over: index and item of a list,
/// key and value of an object, nothing for null. Any other value comes
/// back as the error, for the caller to report where it belongs.
pub(crate) fn iteration_pairs(collection: Value) -> Result<Vec<(Value, Value)>, Value> {
    match collection {
        Value::Array(items) => Ok(items
            .into_iter()
            .enumerate()
            .map(|(idx, item)| (Value::from(idx as u64), item))
            .collect()),
        Value::Object(map) => Ok(map
            .into_iter()
            .map(|(key, value)| (Value::String(key), value))
            .collect()),
        Value::Null => Ok(Vec::new()),
        other => Err(other),
    }
}

pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// Converts a primitive to a string, as HCL's automatic conversion does.
pub(crate) fn to_string(value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number
            .as_i64()
            .map(|int| int.to_string())
            .or_else(|| number.as_u64().map(|uint| uint.to_string()))
            .unwrap_or_else(|| display_number(number.as_f64().unwrap_or(0.0)))),
        Value::Bool(flag) => Ok(flag.to_string()),
        Value::Null => Err("a null value cannot be used as a string".to_string()),
        other => Err(format!("a {} cannot be used as a string", type_name(other))),
    }
}

/// Converts a value to a number, accepting numeric strings.
pub(crate) fn to_number(value: &Value) -> Result<f64, String> {
    match value {
        Value::Number(number) => Ok(number.as_f64().unwrap_or(0.0)),
        Value::String(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|number| number.is_finite())
            .ok_or_else(|| format!("{text:?} is not a number")),
        Value::Null => Err("a null value cannot be used as a number".to_string()),
        other => Err(format!("a {} cannot be used as a number", type_name(other))),
    }
}

/// Converts a value to a bool, accepting "true" and "false".
pub(crate) fn to_bool(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        Value::String(text) if text == "true" => Ok(true),
        Value::String(text) if text == "false" => Ok(false),
        Value::Null => Err("a null value cannot be used as a bool".to_string()),
        other => Err(format!("a {} cannot be used as a bool", type_name(other))),
    }
}
