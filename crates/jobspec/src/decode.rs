//! The jobspec schema: walks the evaluated HCL tree and writes Nomad's API
//! JSON for it (PascalCase fields, durations in nanoseconds), rejecting
//! unknown attributes and blocks. Every field it reads is recorded in a map
//! from its human path (`job "web" → group "api" → count`) to its span, so
//! validation errors found later can point back at the source.

use crate::diag::Sink;
use crate::eval::{to_bool, to_number, to_string, type_name};
use crate::hcl::{Attr, Node};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::ops::Range;

/// Paths to spans, filled while decoding.
pub(crate) type SpanMap = BTreeMap<String, Range<usize>>;

pub(crate) struct Decoder<'s, 'a> {
    pub sink: &'s mut Sink<'a>,
    pub spans: SpanMap,
}

/// Fields Nomad knows but Drover does not model yet: named in a clearer
/// error than an unknown field.
const NOT_SUPPORTED: &[&str] = &[
    "wait",
    "error_on_missing_key",
    "change_script",
    "uid",
    "gid",
    "chown",
    "mount_options",
    "selinux_label",
    "numa",
    "secrets",
    "iops",
];

/// Reads one block, remembering which attributes and blocks were used.
struct Reader<'n> {
    attrs: &'n [Attr],
    blocks: &'n [Node],
    used_attrs: Vec<bool>,
    used_blocks: Vec<bool>,
    /// The labelled segments so far: `job "web" → group "api"`.
    seg: String,
    /// The dotted block chain below the last segment: `resources`, `network.port "http"`.
    dotted: String,
}

impl<'n> Reader<'n> {
    fn new(node: &'n Node, seg: String, dotted: String) -> Reader<'n> {
        Reader {
            attrs: &node.attrs,
            blocks: &node.blocks,
            used_attrs: vec![false; node.attrs.len()],
            used_blocks: vec![false; node.blocks.len()],
            seg,
            dotted,
        }
    }

    /// The path of a field of this block.
    fn field(&self, name: &str) -> String {
        if self.dotted.is_empty() {
            format!("{} → {name}", self.seg)
        } else {
            format!("{} → {}.{name}", self.seg, self.dotted)
        }
    }

    /// The path of this block itself.
    fn here(&self) -> String {
        if self.dotted.is_empty() {
            self.seg.clone()
        } else {
            format!("{} → {}", self.seg, self.dotted)
        }
    }

    /// A reader for a nested block that continues the dotted chain.
    fn nested(&self, d: &mut Decoder, node: &'n Node, name: &str) -> Reader<'n> {
        let dotted = if self.dotted.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.dotted)
        };
        let reader = Reader::new(node, self.seg.clone(), dotted);
        if let Some(span) = &node.span {
            d.spans.entry(reader.here()).or_insert_with(|| span.clone());
        }
        reader
    }

    /// A reader for a block that starts a new labelled segment.
    fn segment(&self, node: &'n Node, segment: String) -> Reader<'n> {
        Reader::new(node, format!("{} → {segment}", self.here()), String::new())
    }

    fn attr(&mut self, d: &mut Decoder, name: &str) -> Option<&'n Attr> {
        let idx = self.attrs.iter().position(|attr| attr.name == name)?;
        self.used_attrs[idx] = true;
        let attr = &self.attrs[idx];
        if let Some(span) = &attr.span {
            d.spans.insert(self.field(name), span.clone());
        }
        if attr.failed || attr.value.is_null() {
            return None;
        }
        Some(attr)
    }

    fn blocks(&mut self, d: &mut Decoder, name: &str) -> Vec<&'n Node> {
        let mut out = Vec::new();
        for (idx, block) in self.blocks.iter().enumerate() {
            if block.ident == name {
                self.used_blocks[idx] = true;
                out.push(block);
            }
        }
        if let Some(span) = out.first().and_then(|block| block.span.clone()) {
            d.spans.entry(self.field(name)).or_insert(span);
        }
        out
    }

    /// At most one block of a kind, with no labels.
    fn block(&mut self, d: &mut Decoder, name: &str) -> Option<&'n Node> {
        let found = self.blocks(d, name);
        if let Some(extra) = found.get(1) {
            d.sink.error(
                self.field(name),
                format!("only one {name} block is allowed here"),
                extra.span.clone(),
            );
        }
        let block = found.first().copied()?;
        if !block.labels.is_empty() {
            d.sink.error(
                self.field(name),
                format!("a {name} block takes no labels"),
                block.span.clone(),
            );
        }
        Some(block)
    }

    fn type_error(&self, d: &mut Decoder, attr: &Attr, message: String) {
        d.sink.error(self.field(&attr.name), message, attr.span.clone());
    }

    fn string(&mut self, d: &mut Decoder, name: &str) -> Option<String> {
        let attr = self.attr(d, name)?;
        match &attr.value {
            Value::Array(_) | Value::Object(_) => {
                self.type_error(
                    d,
                    attr,
                    format!("{name} must be a string, not a {}", type_name(&attr.value)),
                );
                None
            }
            value => to_string(value).ok(),
        }
    }

    fn int(&mut self, d: &mut Decoder, name: &str) -> Option<i64> {
        let attr = self.attr(d, name)?;
        match to_number(&attr.value) {
            Ok(number) if number.fract() == 0.0 && number.abs() < 9.0e15 => Some(number as i64),
            Ok(number) => {
                self.type_error(d, attr, format!("{name} must be a whole number, not {number}"));
                None
            }
            Err(message) => {
                self.type_error(d, attr, format!("{name} must be a number: {message}"));
                None
            }
        }
    }

    fn bool(&mut self, d: &mut Decoder, name: &str) -> Option<bool> {
        let attr = self.attr(d, name)?;
        match to_bool(&attr.value) {
            Ok(flag) => Some(flag),
            Err(message) => {
                self.type_error(d, attr, format!("{name} must be a bool: {message}"));
                None
            }
        }
    }

    /// A Go duration string, returned as nanoseconds.
    fn duration(&mut self, d: &mut Decoder, name: &str) -> Option<i64> {
        let attr = self.attr(d, name)?;
        let Value::String(text) = &attr.value else {
            self.type_error(
                d,
                attr,
                format!(
                    "{name} must be a duration string such as \"30s\", not a {}",
                    type_name(&attr.value)
                ),
            );
            return None;
        };
        match types::duration::parse_duration(text) {
            Ok(duration) => Some(i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)),
            Err(message) => {
                self.type_error(d, attr, format!("{name}: {message}"));
                None
            }
        }
    }

    /// A size in MiB: a number, or a string with a unit ("512MB", "1GiB").
    fn size_mb(&mut self, d: &mut Decoder, name: &str) -> Option<i64> {
        let attr = self.attr(d, name)?;
        let result = match &attr.value {
            Value::Number(_) => to_number(&attr.value).and_then(|number| {
                if number.fract() == 0.0 && number.abs() < 9.0e15 {
                    Ok(number as i64)
                } else {
                    Err(format!("{number} is not a whole number"))
                }
            }),
            Value::String(text) => parse_size_mb(text),
            other => Err(format!("a size is a number of MB, not a {}", type_name(other))),
        };
        match result {
            Ok(size) => Some(size),
            Err(message) => {
                self.type_error(d, attr, format!("{name}: {message}"));
                None
            }
        }
    }

    fn strings(&mut self, d: &mut Decoder, name: &str) -> Option<Vec<String>> {
        let attr = self.attr(d, name)?;
        let Value::Array(items) = &attr.value else {
            self.type_error(
                d,
                attr,
                format!("{name} must be a list of strings, not a {}", type_name(&attr.value)),
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::Array(_) | Value::Object(_) | Value::Null => {
                    self.type_error(
                        d,
                        attr,
                        format!("{name} must be a list of strings, but holds a {}", type_name(item)),
                    );
                    return None;
                }
                other => out.push(to_string(other).unwrap_or_default()),
            }
        }
        Some(out)
    }

    /// A map of strings, written as `name = { … }` or as a `name { … }` block.
    fn string_map(&mut self, d: &mut Decoder, name: &str) -> Option<Map<String, Value>> {
        let mut out: Option<Map<String, Value>> = None;
        if let Some(attr) = self.attr(d, name) {
            match &attr.value {
                Value::Object(map) => {
                    let mut converted = Map::new();
                    for (key, value) in map {
                        match value {
                            Value::Array(_) | Value::Object(_) => {
                                self.type_error(
                                    d,
                                    attr,
                                    format!("{name}.{key} must be a string, not a {}", type_name(value)),
                                );
                            }
                            Value::Null => {}
                            other => {
                                converted.insert(key.clone(), Value::String(to_string(other).unwrap_or_default()));
                            }
                        }
                    }
                    out = Some(converted);
                }
                other => self.type_error(
                    d,
                    attr,
                    format!("{name} must be a map of strings, not a {}", type_name(other)),
                ),
            }
        }
        for block in self.blocks(d, name) {
            if !block.labels.is_empty() {
                d.sink.error(
                    self.field(name),
                    format!("a {name} block takes no labels"),
                    block.span.clone(),
                );
            }
            if let Some(nested) = block.blocks.first() {
                d.sink.error(
                    format!("{}.{}", self.field(name), nested.ident),
                    format!("a {name} block holds only attributes"),
                    nested.span.clone(),
                );
            }
            let map = out.get_or_insert_with(Map::new);
            for attr in &block.attrs {
                let path = format!("{}.{}", self.field(name), attr.name);
                if let Some(span) = &attr.span {
                    d.spans.insert(path.clone(), span.clone());
                }
                if attr.failed {
                    continue;
                }
                match &attr.value {
                    Value::Array(_) | Value::Object(_) => d.sink.error(
                        path,
                        format!("{} must be a string, not a {}", attr.name, type_name(&attr.value)),
                        attr.span.clone(),
                    ),
                    Value::Null => {}
                    other => {
                        map.insert(attr.name.clone(), Value::String(to_string(other).unwrap_or_default()));
                    }
                }
            }
        }
        out
    }

    /// Reports every attribute and block that was never read.
    fn finish(self, d: &mut Decoder) {
        for (idx, attr) in self.attrs.iter().enumerate() {
            if !self.used_attrs[idx] {
                let message = unknown_message("attribute", &attr.name, &self.here());
                d.sink.error(self.field(&attr.name), message, attr.span.clone());
            }
        }
        for (idx, block) in self.blocks.iter().enumerate() {
            if !self.used_blocks[idx] {
                let message = unknown_message("block", &block.ident, &self.here());
                d.sink.error(self.field(&block.ident), message, block.span.clone());
            }
        }
    }
}

fn unknown_message(kind: &str, name: &str, here: &str) -> String {
    let place = here.rsplit(" → ").next().unwrap_or(here);
    if NOT_SUPPORTED.contains(&name) {
        format!("{name} is not supported by Drover yet")
    } else {
        format!("unknown {kind} {name:?} in {place}")
    }
}

/// Parses a size ("512", "512MB", "1GiB", "100KB") into MiB, rounding up.
pub fn parse_size_mb(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text
        .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("{text:?} is not a size"))?;
    let mib = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "mb" | "mib" | "m" => number,
        "gb" | "gib" | "g" => number * 1024.0,
        "tb" | "tib" | "t" => number * 1024.0 * 1024.0,
        "kb" | "kib" | "k" => number / 1024.0,
        "b" => number / (1024.0 * 1024.0),
        other => return Err(format!("unknown size unit {other:?} in {text:?}")),
    };
    if !mib.is_finite() || mib > 9.0e15 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(mib.ceil() as i64)
}

fn put(out: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(value) = value {
        out.insert(key.to_string(), value.into());
    }
}

fn string_list(items: Vec<String>) -> Value {
    Value::Array(items.into_iter().map(Value::String).collect())
}

fn label_of(d: &mut Decoder, node: &Node, path: &str, what: &str) -> Option<String> {
    match node.labels.as_slice() {
        [label] => Some(label.clone()),
        _ => {
            d.sink.error(
                path,
                format!("a {what} block needs exactly one label, its name"),
                node.span.clone(),
            );
            None
        }
    }
}

/// Decodes the `job` block into Nomad's API JSON job.
pub(crate) fn job(d: &mut Decoder, node: &Node) -> Value {
    let id = node.labels.first().cloned().unwrap_or_default();
    let mut r = Reader::new(node, format!("job {id:?}"), String::new());
    if let Some(span) = &node.span {
        d.spans.insert(r.here(), span.clone());
    }
    let mut out = Map::new();
    out.insert("ID".into(), Value::String(id.clone()));
    put(&mut out, "Name", r.string(d, "name"));
    put(&mut out, "Type", r.string(d, "type"));
    put(&mut out, "Region", r.string(d, "region"));
    put(&mut out, "Namespace", r.string(d, "namespace"));
    put(&mut out, "NodePool", r.string(d, "node_pool"));
    put(&mut out, "Datacenters", r.strings(d, "datacenters").map(string_list));
    put(&mut out, "Priority", r.int(d, "priority"));
    put(&mut out, "AllAtOnce", r.bool(d, "all_at_once"));
    put(&mut out, "Meta", r.string_map(d, "meta"));
    put(&mut out, "VaultToken", r.string(d, "vault_token"));
    put(&mut out, "ConsulToken", r.string(d, "consul_token"));
    placement(d, &mut r, &mut out, true);
    put(
        &mut out,
        "Update",
        r.block(d, "update").map(|block| update(d, &r, block)),
    );
    put(
        &mut out,
        "Reschedule",
        r.block(d, "reschedule").map(|block| reschedule(d, &r, block)),
    );
    put(
        &mut out,
        "Migrate",
        r.block(d, "migrate").map(|block| migrate(d, &r, block)),
    );
    put(
        &mut out,
        "Periodic",
        r.block(d, "periodic").map(|block| periodic(d, &r, block)),
    );
    put(
        &mut out,
        "ParameterizedJob",
        r.block(d, "parameterized").map(|block| parameterized(d, &r, block)),
    );
    put(&mut out, "UI", r.block(d, "ui").map(|block| ui(d, &r, block)));
    for (hcl_name, api_name) in [("vault", "Vault"), ("consul", "Consul"), ("multiregion", "Multiregion")] {
        put(
            &mut out,
            api_name,
            r.block(d, hcl_name).map(|block| opaque(d, &r, block, hcl_name)),
        );
    }
    let mut groups = Vec::new();
    for block in r.blocks(d, "group") {
        let path = r.field("group");
        let Some(name) = label_of(d, block, &path, "group") else {
            continue;
        };
        groups.push(group(d, &r, block, name));
    }
    // A task placed directly in the job is a group of its own, of the
    // same name and one allocation, as Nomad's HCL2 parser makes it.
    for block in r.blocks(d, "task") {
        let path = r.field("task");
        let Some(name) = label_of(d, block, &path, "task") else {
            continue;
        };
        let mut implicit = Map::new();
        implicit.insert("Name".into(), Value::String(name.clone()));
        implicit.insert("Count".into(), Value::from(1));
        implicit.insert("Tasks".into(), Value::Array(vec![task(d, &r, block, name)]));
        groups.push(Value::Object(implicit));
    }
    out.insert("TaskGroups".into(), Value::Array(groups));
    r.finish(d);
    Value::Object(out)
}

/// constraint, affinity and spread blocks, shared by job, group and task.
fn placement(d: &mut Decoder, r: &mut Reader, out: &mut Map<String, Value>, with_spread: bool) {
    let constraints: Vec<Value> = r
        .blocks(d, "constraint")
        .into_iter()
        .enumerate()
        .map(|(idx, block)| constraint(d, r, block, &format!("constraint[{idx}]")))
        .collect();
    if !constraints.is_empty() {
        out.insert("Constraints".into(), Value::Array(constraints));
    }
    let affinities: Vec<Value> = r
        .blocks(d, "affinity")
        .into_iter()
        .enumerate()
        .map(|(idx, block)| affinity(d, r, block, &format!("affinity[{idx}]")))
        .collect();
    if !affinities.is_empty() {
        out.insert("Affinities".into(), Value::Array(affinities));
    }
    if with_spread {
        let spreads: Vec<Value> = r
            .blocks(d, "spread")
            .into_iter()
            .enumerate()
            .map(|(idx, block)| spread(d, r, block, &format!("spread[{idx}]")))
            .collect();
        if !spreads.is_empty() {
            out.insert("Spreads".into(), Value::Array(spreads));
        }
    }
}

/// Attributes that name the operator directly: `regexp = "…"` means
/// operator "regexp" with that value.
const OPERATOR_SHORTHANDS: &[&str] = &[
    "version",
    "semver",
    "regexp",
    "set_contains",
    "set_contains_any",
    "set_contains_all",
];

fn constraint(d: &mut Decoder, parent: &Reader, node: &Node, name: &str) -> Value {
    let mut r = parent.nested(d, node, name);
    if let Some(span) = &node.span {
        d.spans.insert(r.here(), span.clone());
    }
    let mut out = Map::new();
    let attribute = r.string(d, "attribute");
    let mut operator = r.string(d, "operator");
    let mut value = r.string(d, "value");
    for shorthand in OPERATOR_SHORTHANDS {
        if let Some(text) = r.string(d, shorthand) {
            operator = Some((*shorthand).to_string());
            value = Some(text);
        }
    }
    if r.bool(d, "distinct_hosts") == Some(true) {
        operator = Some("distinct_hosts".to_string());
    }
    let mut ltarget = attribute;
    if let Some(property) = r.string(d, "distinct_property") {
        operator = Some("distinct_property".to_string());
        ltarget = Some(property);
    }
    put(&mut out, "LTarget", ltarget);
    put(&mut out, "RTarget", value);
    put(&mut out, "Operand", operator);
    r.finish(d);
    Value::Object(out)
}

fn affinity(d: &mut Decoder, parent: &Reader, node: &Node, name: &str) -> Value {
    let mut r = parent.nested(d, node, name);
    if let Some(span) = &node.span {
        d.spans.insert(r.here(), span.clone());
    }
    let mut out = Map::new();
    put(&mut out, "LTarget", r.string(d, "attribute"));
    let mut operator = r.string(d, "operator");
    let mut value = r.string(d, "value");
    for shorthand in OPERATOR_SHORTHANDS {
        if let Some(text) = r.string(d, shorthand) {
            operator = Some((*shorthand).to_string());
            value = Some(text);
        }
    }
    put(&mut out, "RTarget", value);
    put(&mut out, "Operand", operator);
    put(&mut out, "Weight", r.int(d, "weight"));
    r.finish(d);
    Value::Object(out)
}

fn spread(d: &mut Decoder, parent: &Reader, node: &Node, name: &str) -> Value {
    let mut r = parent.nested(d, node, name);
    let mut out = Map::new();
    put(&mut out, "Attribute", r.string(d, "attribute"));
    put(&mut out, "Weight", r.int(d, "weight"));
    let mut targets = Vec::new();
    for block in r.blocks(d, "target") {
        let path = r.field("target");
        let Some(label) = label_of(d, block, &path, "target") else {
            continue;
        };
        let mut t = r.nested(d, block, &format!("target {label:?}"));
        let mut target = Map::new();
        target.insert(
            "Value".into(),
            Value::String(t.string(d, "value").unwrap_or_else(|| label.clone())),
        );
        put(&mut target, "Percent", t.int(d, "percent"));
        t.finish(d);
        targets.push(Value::Object(target));
    }
    if !targets.is_empty() {
        out.insert("SpreadTarget".into(), Value::Array(targets));
    }
    r.finish(d);
    Value::Object(out)
}

fn update(d: &mut Decoder, parent: &Reader, node: &Node) -> Value {
    let mut r = parent.nested(d, node, "update");
    let mut out = Map::new();
    put(&mut out, "Stagger", r.duration(d, "stagger"));
    put(&mut out, "MaxParallel", r.int(d, "max_parallel"));
    put(&mut out, "HealthCheck", r.string(d, "health_check"));
    put(&mut out, "MinHealthyTime", r.duration(d, "min_healthy_time"));
    put(&mut out, "HealthyDeadline", r.duration(d, "healthy_deadline"));
    put(&mut out, "ProgressDeadline", r.duration(d, "progress_deadline"));
    put(&mut out, "AutoRevert", r.bool(d, "auto_revert"));
    put(&mut out, "AutoPromote", r.bool(d, "auto_promote"));
    put(&mut out, "Canary", r.int(d, "canary"));
    r.finish(d);
    Value::Object(out)
}

fn migrate(d: &mut Decoder, parent: &Reader, node: &Node) -> Value {
    let mut r = parent.nested(d, node, "migrate");
    let mut out = Map::new();
    put(&mut out, "MaxParallel", r.int(d, "max_parallel"));
    put(&mut out, "HealthCheck", r.string(d, "health_check"));
    put(&mut out, "MinHealthyTime", r.duration(d, "min_healthy_time"));
    put(&mut out, "HealthyDeadline", r.duration(d, "healthy_deadline"));
    r.finish(d);
    Value::Object(out)
}

fn restart(d: &mut Decoder, parent: &Reader, node: &Node) -> Value {
    let mut r = parent.nested(d, node, "restart");
    let mut out = Map::new();
    put(&mut out, "Attempts", r.int(d, "attempts"));
    put(&mut out, "Interval", r.duration(d, "interval"));
    put(&mut out, "Delay", r.duration(d, "delay"));
    put(&mut out, "Mode", r.string(d, "mode"));
    put(&mut out, "RenderTemplates", r.bool(d, "render_templates"));
    r.finish(d);
    Value::Object(out)
}

fn reschedule(d: &mut Decoder, parent: &Reader, node: &Node) -> Value {
    let mut r = parent.nested(d, node, "reschedule");
    let mut out = Map::new();
    put(&mut out, "Attempts", r.int(d, "attempts"));
    put(&mut out, "Interval", r.duration(d, "interval"));
    put(&mut out, "Delay", r.duration(d, "delay"));
    put(&mut out, "DelayFunction", r.string(d, "delay_function"));
    put(&mut out, "MaxDelay", r.duration(d, "max_delay"));
    put(&mut out, "Unlimited", r.bool(d, "unlimited"));
    r.finish(d);
    Value::Object(out)
}

fn periodic(d: &mut Decoder, parent: &Reader, node: &Node) -> Value {
    let mut r = parent.nested(d, node, "periodic");
    let mut out = Map::new();
    put(&mut out, "Spec", r.string(d, "cron"));
    put(&mut out, "Specs", r.strings(d, "crons").map(string_list));
    put(&mut out, "SpecType", r.string(d, "spec_type"));
    put(&mut out, "ProhibitOverlap", r.bool(d, "prohibit_overlap"));
    put(&mut out, "TimeZone", r.string(d, "time_zone"));
    put(&mut out, "Enabled", r.bool(d, "enabled"));
    put(&mut out, "MaxConcurrent", r.int(d, "max_concurrent"));
    r.finish(d);
    Value::Object(out)
}

fn parameterized(d: &mut Decoder, parent: &Reader, node: &Node) -> Value {
    let mut r = parent.nested(d, node, "parameterized");
    let mut out = Map::new();
    put(&mut out, "Payload", r.string(d, "payload"));
    put(&mut out, "MetaRequired", r.strings(d, "meta_required").map(string_list));
    put(&mut out, "MetaOptional", r.strings(d, "meta_optional").map(string_list));
    put(&mut out, "MaxConcurrent", r.int(d, "max_concurrent"));
    r.finish(d);
    Value::Object(out)
}

fn ui(d: &mut Decoder, parent: &Reader, node: &Node) -> Value {
    let mut r = parent.nested(d, node, "ui");
    let mut out = Map::new();
    put(&mut out, "Description", r.string(d, "description"));
    let mut links = Vec::new();
    for block in r.blocks(d, "link") {
        let mut l = r.nested(d, block, "link");
        let mut link = Map::new();
        put(&mut link, "Label", l.string(d, "label"));
        put(&mut link, "Url", l.string(d, "url"));
        l.finish(d);
        links.push(Value::Object(link));
    }
    if !links.is_empty() {
        out.insert("Links".into(), Value::Array(links));
    }
    r.finish(d);
    Value::Object(out)
}

/// snake_case to PascalCase, for blocks kept as opaque API JSON.
fn pascal(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

/// A block Drover keeps but does not interpret (vault, consul, identity…):
/// attributes and nested blocks become API JSON with PascalCase keys.
fn opaque(d: &mut Decoder, parent: &Reader, node: &Node, name: &str) -> Value {
    let path = parent.field(name);
    if let Some(span) = &node.span {
        d.spans.insert(path.clone(), span.clone());
    }
    let mut value = opaque_value(node, true);
    if let (Some(label), Value::Object(map)) = (node.labels.first(), &mut value) {
        map.insert("Name".to_string(), Value::String(label.clone()));
    }
    value
}

fn opaque_value(node: &Node, pascal_keys: bool) -> Value {
    let key = |name: &str| if pascal_keys { pascal(name) } else { name.to_string() };
    let mut out = Map::new();
    for attr in &node.attrs {
        out.insert(key(&attr.name), attr.value.clone());
    }
    let mut nested: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for block in &node.blocks {
        let mut value = opaque_value(block, pascal_keys);
        if let (Some(label), Value::Object(map)) = (block.labels.first(), &mut value) {
            map.insert(key("name"), Value::String(label.clone()));
        }
        nested.entry(key(&block.ident)).or_default().push(value);
    }
    for (name, mut values) in nested {
        let value = if values.len() == 1 {
            values.pop().unwrap_or(Value::Null)
        } else {
            Value::Array(values)
        };
        out.insert(name, value);
    }
    Value::Object(out)
}

/// A task's driver `config`: attributes as values, nested blocks as lists of
/// objects (the shape drivers decode), keys kept as written.
fn driver_config(d: &mut Decoder, node: &Node, path: &str) -> Value {
    let mut out = Map::new();
    for attr in &node.attrs {
        if let Some(span) = &attr.span {
            d.spans.insert(format!("{path}.{}", attr.name), span.clone());
        }
        out.insert(attr.name.clone(), attr.value.clone());
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for block in &node.blocks {
        let inner_path = format!("{path}.{}", block.ident);
        // Blocks become lists: the n-th `mount` block is `config.mount[n]`.
        let count = seen.entry(block.ident.as_str()).or_insert(0);
        let mut element_path = format!("{inner_path}[{count}]");
        *count += 1;
        if let Some(span) = &block.span {
            d.spans.entry(inner_path.clone()).or_insert_with(|| span.clone());
            d.spans.insert(element_path.clone(), span.clone());
        }
        for label in &block.labels {
            element_path = format!("{element_path}.{label}");
            if let Some(span) = &block.span {
                d.spans.insert(element_path.clone(), span.clone());
            }
        }
        let mut value = driver_config(d, block, &element_path);
        for label in block.labels.iter().rev() {
            let mut wrapper = Map::new();
            wrapper.insert(label.clone(), value);
            value = Value::Object(wrapper);
        }
        match out.get_mut(&block.ident) {
            Some(Value::Array(items)) if node.attrs.iter().all(|attr| attr.name != block.ident) => items.push(value),
            Some(_) => d.sink.error(
                inner_path,
                format!("{:?} is set both as an attribute and as a block", block.ident),
                block.span.clone(),
            ),
            None => {
                out.insert(block.ident.clone(), Value::Array(vec![value]));
            }
        }
    }
    Value::Object(out)
}

fn group(d: &mut Decoder, job: &Reader, node: &Node, name: String) -> Value {
    let mut r = job.segment(node, format!("group {name:?}"));
    if let Some(span) = &node.span {
        d.spans.insert(r.here(), span.clone());
    }
    let mut out = Map::new();
    out.insert("Name".into(), Value::String(name));
    put(&mut out, "Count", r.int(d, "count"));
    put(&mut out, "Meta", r.string_map(d, "meta"));
    put(&mut out, "ShutdownDelay", r.duration(d, "shutdown_delay"));
    put(
        &mut out,
        "StopAfterClientDisconnect",
        r.duration(d, "stop_after_client_disconnect"),
    );
    put(&mut out, "MaxClientDisconnect", r.duration(d, "max_client_disconnect"));
    put(
        &mut out,
        "PreventRescheduleOnLost",
        r.bool(d, "prevent_reschedule_on_lost"),
    );
    placement(d, &mut r, &mut out, true);
    put(
        &mut out,
        "RestartPolicy",
        r.block(d, "restart").map(|block| restart(d, &r, block)),
    );
    put(
        &mut out,
        "ReschedulePolicy",
        r.block(d, "reschedule").map(|block| reschedule(d, &r, block)),
    );
    put(
        &mut out,
        "Update",
        r.block(d, "update").map(|block| update(d, &r, block)),
    );
    put(
        &mut out,
        "Migrate",
        r.block(d, "migrate").map(|block| migrate(d, &r, block)),
    );
    put(
        &mut out,
        "EphemeralDisk",
        r.block(d, "ephemeral_disk").map(|block| ephemeral_disk(d, &r, block)),
    );
    put(
        &mut out,
        "Scaling",
        r.block(d, "scaling").map(|block| scaling(d, &r, block)),
    );
    put(
        &mut out,
        "Disconnect",
        r.block(d, "disconnect").map(|block| disconnect(d, &r, block)),
    );
    put(
        &mut out,
        "Consul",
        r.block(d, "consul").map(|block| opaque(d, &r, block, "consul")),
    );
    let networks: Vec<Value> = r
        .blocks(d, "network")
        .into_iter()
        .map(|block| network(d, &r, block))
        .collect();
    if !networks.is_empty() {
        out.insert("Networks".into(), Value::Array(networks));
    }
    let services = services(d, &mut r);
    if !services.is_empty() {
        out.insert("Services".into(), Value::Array(services));
    }
    let mut volumes = Map::new();
    for block in r.blocks(d, "volume") {
        let path = r.field("volume");
        let Some(label) = label_of(d, block, &path, "volume") else {
            continue;
        };
        if volumes.contains_key(&label) {
            d.sink.error(
                format!("{path} {label:?}"),
                format!("duplicate volume {label:?}"),
                block.span.clone(),
            );
            continue;
        }
        let value = volume(d, &r, block, &label);
        volumes.insert(label, value);
    }
    if !volumes.is_empty() {
        out.insert("Volumes".into(), Value::Object(volumes));
    }
    let mut tasks = Vec::new();
    for block in r.blocks(d, "task") {
        let path = r.field("task");
        let Some(name) = label_of(d, block, &path, "task") else {
            continue;
        };
        tasks.push(task(d, &r, block, name));
    }
    out.insert("Tasks".into(), Value::Array(tasks));
    r.finish(d);
    Value::Object(out)
}

fn ephemeral_disk(d: &mut Decoder, parent: &Reader, node: &Node) -> Value {
    let mut r = parent.nested(d, node, "ephemeral_disk");
    let mut out = Map::new();
    put(&mut out, "Sticky", r.bool(d, "sticky"));
    put(&mut out, "Migrate", r.bool(d, "migrate"));
    put(&mut out, "SizeMB", r.size_mb(d, "size"));
    r.finish(d);
    Value::Object(out)
}

fn scaling(d: &mut Decoder, parent: &Reader, node: &Node) -> Value {
    let mut r = parent.nested(d, node, "scaling");
    let mut out = Map::new();
    put(&mut out, "Min", r.int(d, "min"));
    put(&mut out, "Max", r.int(d, "max"));
    put(&mut out, "Enabled", r.bool(d, "enabled"));
    put(&mut out, "Type", r.string(d, "type"));
    if let Some(block) = r.block(d, "policy") {
        out.insert("Policy".into(), opaque_value(block, false));
    }
    r.finish(d);
    Value::Object(out)
}

fn disconnect(d: &mut Decoder, parent: &Reader, node: &Node) -> Value {
    let mut r = parent.nested(d, node, "disconnect");
    let mut out = Map::new();
    put(&mut out, "LostAfter", r.duration(d, "lost_after"));
    put(&mut out, "StopOnClientAfter", r.duration(d, "stop_on_client_after"));
    put(&mut out, "Replace", r.bool(d, "replace"));
    put(&mut out, "Reconcile", r.string(d, "reconcile"));
    r.finish(d);
    Value::Object(out)
}

fn network(d: &mut Decoder, parent: &Reader, node: &Node) -> Value {
    let mut r = parent.nested(d, node, "network");
    let mut out = Map::new();
    put(&mut out, "Mode", r.string(d, "mode"));
    put(&mut out, "Hostname", r.string(d, "hostname"));
    put(&mut out, "MBits", r.int(d, "mbits"));
    put(&mut out, "Device", r.string(d, "device"));
    if let Some(block) = r.block(d, "dns") {
        let mut dns_reader = r.nested(d, block, "dns");
        let mut dns = Map::new();
        put(&mut dns, "Servers", dns_reader.strings(d, "servers").map(string_list));
        put(&mut dns, "Searches", dns_reader.strings(d, "searches").map(string_list));
        put(&mut dns, "Options", dns_reader.strings(d, "options").map(string_list));
        dns_reader.finish(d);
        out.insert("DNS".into(), Value::Object(dns));
    }
    let mut reserved = Vec::new();
    let mut dynamic = Vec::new();
    for block in r.blocks(d, "port") {
        let path = r.field("port");
        let Some(label) = label_of(d, block, &path, "port") else {
            continue;
        };
        let mut p = r.nested(d, block, &format!("port {label:?}"));
        if let Some(span) = &block.span {
            d.spans.insert(p.here(), span.clone());
        }
        let mut port = Map::new();
        port.insert("Label".into(), Value::String(label));
        let static_port = p.int(d, "static");
        if let Some(value) = static_port {
            if !(0..=65535).contains(&value) {
                d.sink.error(
                    p.field("static"),
                    format!("port {value} is out of range 0..65535"),
                    block.span.clone(),
                );
            }
            port.insert("Value".into(), Value::from(value.clamp(0, 65535)));
        }
        put(&mut port, "To", p.int(d, "to"));
        put(&mut port, "HostNetwork", p.string(d, "host_network"));
        p.finish(d);
        if static_port.is_some_and(|value| value > 0) {
            reserved.push(Value::Object(port));
        } else {
            dynamic.push(Value::Object(port));
        }
    }
    if !reserved.is_empty() {
        out.insert("ReservedPorts".into(), Value::Array(reserved));
    }
    if !dynamic.is_empty() {
        out.insert("DynamicPorts".into(), Value::Array(dynamic));
    }
    r.finish(d);
    Value::Object(out)
}

fn services(d: &mut Decoder, r: &mut Reader) -> Vec<Value> {
    let mut out = Vec::new();
    for (idx, block) in r.blocks(d, "service").into_iter().enumerate() {
        let mut s = r.nested(d, block, &format!("service[{idx}]"));
        if let Some(span) = &block.span {
            d.spans.insert(s.here(), span.clone());
        }
        let mut service = Map::new();
        put(&mut service, "Name", s.string(d, "name"));
        put(&mut service, "PortLabel", s.string(d, "port"));
        put(&mut service, "Provider", s.string(d, "provider"));
        put(&mut service, "Tags", s.strings(d, "tags").map(string_list));
        put(&mut service, "CanaryTags", s.strings(d, "canary_tags").map(string_list));
        put(&mut service, "AddressMode", s.string(d, "address_mode"));
        put(&mut service, "Address", s.string(d, "address"));
        put(&mut service, "TaskName", s.string(d, "task"));
        put(&mut service, "Meta", s.string_map(d, "meta"));
        let mut checks = Vec::new();
        for (check_idx, check_block) in s.blocks(d, "check").into_iter().enumerate() {
            let mut c = s.nested(d, check_block, &format!("check[{check_idx}]"));
            let mut check = Map::new();
            put(&mut check, "Name", c.string(d, "name"));
            put(&mut check, "Type", c.string(d, "type"));
            put(&mut check, "Command", c.string(d, "command"));
            put(&mut check, "Args", c.strings(d, "args").map(string_list));
            put(&mut check, "Path", c.string(d, "path"));
            put(&mut check, "Protocol", c.string(d, "protocol"));
            put(&mut check, "PortLabel", c.string(d, "port"));
            put(&mut check, "Method", c.string(d, "method"));
            put(&mut check, "Interval", c.duration(d, "interval"));
            put(&mut check, "Timeout", c.duration(d, "timeout"));
            put(&mut check, "InitialStatus", c.string(d, "initial_status"));
            kept(
                d,
                &mut c,
                &mut check,
                CHECK_KEPT_ATTRS,
                &[("check_restart", "CheckRestart")],
            );
            if let Some(header) = c.block(d, "header") {
                check.insert("Header".into(), opaque_value(header, false));
            }
            c.finish(d);
            checks.push(Value::Object(check));
        }
        if !checks.is_empty() {
            service.insert("Checks".into(), Value::Array(checks));
        }
        kept(d, &mut s, &mut service, SERVICE_KEPT_ATTRS, SERVICE_KEPT_BLOCKS);
        s.finish(d);
        out.push(Value::Object(service));
    }
    out
}

/// Service attributes kept as written (HCL name, API name) in `Service::extra`.
const SERVICE_KEPT_ATTRS: &[(&str, &str)] = &[
    ("tagged_addresses", "TaggedAddresses"),
    ("enable_tag_override", "EnableTagOverride"),
    ("on_update", "OnUpdate"),
    ("canary_meta", "CanaryMeta"),
    ("cluster", "Cluster"),
    ("kind", "Kind"),
];
/// Service blocks kept as opaque API JSON in `Service::extra`.
const SERVICE_KEPT_BLOCKS: &[(&str, &str)] = &[
    ("connect", "Connect"),
    ("check_restart", "CheckRestart"),
    ("weights", "Weights"),
    ("identity", "Identity"),
];
/// Check attributes kept as written in `ServiceCheck::extra`.
const CHECK_KEPT_ATTRS: &[(&str, &str)] = &[
    ("address_mode", "AddressMode"),
    ("task", "TaskName"),
    ("body", "Body"),
    ("notes", "Notes"),
    ("expose", "Expose"),
    ("grpc_service", "GRPCService"),
    ("grpc_use_tls", "GRPCUseTLS"),
    ("tls_skip_verify", "TLSSkipVerify"),
    ("tls_server_name", "TLSServerName"),
    ("success_before_passing", "SuccessBeforePassing"),
    ("failures_before_critical", "FailuresBeforeCritical"),
    ("failures_before_warning", "FailuresBeforeWarning"),
    ("on_update", "OnUpdate"),
];

/// Reads fields Drover keeps without interpreting them: attributes as their
/// values, blocks as opaque API JSON.
fn kept(
    d: &mut Decoder,
    r: &mut Reader,
    out: &mut Map<String, Value>,
    attrs: &[(&str, &str)],
    blocks: &[(&str, &str)],
) {
    for (hcl_name, api_name) in attrs {
        if let Some(attr) = r.attr(d, hcl_name) {
            out.insert((*api_name).to_string(), attr.value.clone());
        }
    }
    for (hcl_name, api_name) in blocks {
        if let Some(block) = r.block(d, hcl_name) {
            let value = opaque(d, r, block, hcl_name);
            out.insert((*api_name).to_string(), value);
        }
    }
}

fn volume(d: &mut Decoder, parent: &Reader, node: &Node, label: &str) -> Value {
    let mut r = parent.nested(d, node, &format!("volume {label:?}"));
    let mut out = Map::new();
    out.insert("Name".into(), Value::String(label.to_string()));
    put(&mut out, "Type", r.string(d, "type"));
    put(&mut out, "Source", r.string(d, "source"));
    put(&mut out, "ReadOnly", r.bool(d, "read_only"));
    put(&mut out, "AccessMode", r.string(d, "access_mode"));
    put(&mut out, "AttachmentMode", r.string(d, "attachment_mode"));
    put(&mut out, "PerAlloc", r.bool(d, "per_alloc"));
    r.finish(d);
    Value::Object(out)
}

fn task(d: &mut Decoder, group: &Reader, node: &Node, name: String) -> Value {
    let mut r = group.segment(node, format!("task {name:?}"));
    if let Some(span) = &node.span {
        d.spans.insert(r.here(), span.clone());
    }
    let mut out = Map::new();
    out.insert("Name".into(), Value::String(name));
    put(&mut out, "Driver", r.string(d, "driver"));
    put(&mut out, "User", r.string(d, "user"));
    put(&mut out, "Leader", r.bool(d, "leader"));
    put(&mut out, "KillTimeout", r.duration(d, "kill_timeout"));
    put(&mut out, "KillSignal", r.string(d, "kill_signal"));
    put(&mut out, "ShutdownDelay", r.duration(d, "shutdown_delay"));
    put(&mut out, "Kind", r.string(d, "kind"));
    put(&mut out, "Env", r.string_map(d, "env"));
    put(&mut out, "Meta", r.string_map(d, "meta"));
    if let Some(block) = r.block(d, "config") {
        let path = r.field("config");
        out.insert("Config".into(), driver_config(d, block, &path));
    }
    placement(d, &mut r, &mut out, false);
    put(
        &mut out,
        "Resources",
        r.block(d, "resources").map(|block| resources(d, &r, block)),
    );
    put(
        &mut out,
        "RestartPolicy",
        r.block(d, "restart").map(|block| restart(d, &r, block)),
    );
    put(
        &mut out,
        "LogConfig",
        r.block(d, "logs").map(|block| logs(d, &r, block)),
    );
    put(
        &mut out,
        "Lifecycle",
        r.block(d, "lifecycle").map(|block| lifecycle(d, &r, block)),
    );
    if let Some(block) = r.block(d, "dispatch_payload") {
        let mut p = r.nested(d, block, "dispatch_payload");
        let mut payload = Map::new();
        put(&mut payload, "File", p.string(d, "file"));
        p.finish(d);
        out.insert("DispatchPayload".into(), Value::Object(payload));
    }
    for (hcl_name, api_name) in [
        ("vault", "Vault"),
        ("consul", "Consul"),
        ("csi_plugin", "CSIPluginConfig"),
        ("scaling", "ScalingPolicies"),
        ("action", "Actions"),
        ("schedule", "Schedule"),
    ] {
        put(
            &mut out,
            api_name,
            r.block(d, hcl_name).map(|block| opaque(d, &r, block, hcl_name)),
        );
    }
    let mut identities = Vec::new();
    for block in r.blocks(d, "identity") {
        let value = opaque(d, &r, block, "identity");
        if block.labels.is_empty() {
            out.insert("Identity".into(), value);
        } else {
            identities.push(value);
        }
    }
    if !identities.is_empty() {
        out.insert("Identities".into(), Value::Array(identities));
    }
    let services = services(d, &mut r);
    if !services.is_empty() {
        out.insert("Services".into(), Value::Array(services));
    }
    let mut artifacts = Vec::new();
    for (idx, block) in r.blocks(d, "artifact").into_iter().enumerate() {
        let mut a = r.nested(d, block, &format!("artifact[{idx}]"));
        let mut artifact = Map::new();
        put(&mut artifact, "GetterSource", a.string(d, "source"));
        put(&mut artifact, "RelativeDest", a.string(d, "destination"));
        put(&mut artifact, "GetterMode", a.string(d, "mode"));
        put(&mut artifact, "GetterOptions", a.string_map(d, "options"));
        put(&mut artifact, "GetterHeaders", a.string_map(d, "headers"));
        a.finish(d);
        artifacts.push(Value::Object(artifact));
    }
    if !artifacts.is_empty() {
        out.insert("Artifacts".into(), Value::Array(artifacts));
    }
    let mut templates = Vec::new();
    for (idx, block) in r.blocks(d, "template").into_iter().enumerate() {
        let mut t = r.nested(d, block, &format!("template[{idx}]"));
        let mut template = Map::new();
        put(&mut template, "SourcePath", t.string(d, "source"));
        put(&mut template, "DestPath", t.string(d, "destination"));
        put(&mut template, "EmbeddedTmpl", t.string(d, "data"));
        put(&mut template, "ChangeMode", t.string(d, "change_mode"));
        put(&mut template, "ChangeSignal", t.string(d, "change_signal"));
        put(&mut template, "Splay", t.duration(d, "splay"));
        put(&mut template, "Perms", t.string(d, "perms"));
        put(&mut template, "LeftDelim", t.string(d, "left_delimiter"));
        put(&mut template, "RightDelim", t.string(d, "right_delimiter"));
        put(&mut template, "Envvars", t.bool(d, "env"));
        t.finish(d);
        templates.push(Value::Object(template));
    }
    if !templates.is_empty() {
        out.insert("Templates".into(), Value::Array(templates));
    }
    let mut mounts = Vec::new();
    for (idx, block) in r.blocks(d, "volume_mount").into_iter().enumerate() {
        let mut m = r.nested(d, block, &format!("volume_mount[{idx}]"));
        let mut mount = Map::new();
        put(&mut mount, "Volume", m.string(d, "volume"));
        put(&mut mount, "Destination", m.string(d, "destination"));
        put(&mut mount, "ReadOnly", m.bool(d, "read_only"));
        put(&mut mount, "PropagationMode", m.string(d, "propagation_mode"));
        m.finish(d);
        mounts.push(Value::Object(mount));
    }
    if !mounts.is_empty() {
        out.insert("VolumeMounts".into(), Value::Array(mounts));
    }
    r.finish(d);
    Value::Object(out)
}

fn resources(d: &mut Decoder, parent: &Reader, node: &Node) -> Value {
    let mut r = parent.nested(d, node, "resources");
    if let Some(span) = &node.span {
        d.spans.insert(r.here(), span.clone());
    }
    let mut out = Map::new();
    put(&mut out, "CPU", r.int(d, "cpu"));
    put(&mut out, "Cores", r.int(d, "cores"));
    put(&mut out, "MemoryMB", r.size_mb(d, "memory"));
    put(&mut out, "MemoryMaxMB", r.size_mb(d, "memory_max"));
    if let Some(attr) = r.attr(d, "disk") {
        d.sink.error(
            r.field("disk"),
            "resources.disk is no longer supported; ask for disk with the group's ephemeral_disk block",
            attr.span.clone(),
        );
    }
    let networks: Vec<Value> = r
        .blocks(d, "network")
        .into_iter()
        .map(|block| network(d, &r, block))
        .collect();
    if !networks.is_empty() {
        out.insert("Networks".into(), Value::Array(networks));
    }
    let mut devices = Vec::new();
    for block in r.blocks(d, "device") {
        let path = r.field("device");
        let Some(label) = label_of(d, block, &path, "device") else {
            continue;
        };
        let mut dr = r.nested(d, block, &format!("device {label:?}"));
        let mut device = Map::new();
        device.insert("Name".into(), Value::String(label));
        put(&mut device, "Count", dr.int(d, "count"));
        placement(d, &mut dr, &mut device, false);
        dr.finish(d);
        devices.push(Value::Object(device));
    }
    if !devices.is_empty() {
        out.insert("Devices".into(), Value::Array(devices));
    }
    r.finish(d);
    Value::Object(out)
}

fn logs(d: &mut Decoder, parent: &Reader, node: &Node) -> Value {
    let mut r = parent.nested(d, node, "logs");
    let mut out = Map::new();
    put(&mut out, "MaxFiles", r.int(d, "max_files"));
    put(&mut out, "MaxFileSizeMB", r.size_mb(d, "max_file_size"));
    put(&mut out, "Disabled", r.bool(d, "disabled"));
    if let Some(enabled) = r.bool(d, "enabled") {
        out.insert("Disabled".into(), Value::Bool(!enabled));
    }
    r.finish(d);
    Value::Object(out)
}

fn lifecycle(d: &mut Decoder, parent: &Reader, node: &Node) -> Value {
    let mut r = parent.nested(d, node, "lifecycle");
    let mut out = Map::new();
    put(&mut out, "Hook", r.string(d, "hook"));
    put(&mut out, "Sidecar", r.bool(d, "sidecar"));
    r.finish(d);
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_mib() {
        assert_eq!(parse_size_mb("512"), Ok(512));
        assert_eq!(parse_size_mb("1GiB"), Ok(1024));
        assert_eq!(parse_size_mb("1.5 GB"), Ok(1536));
        assert_eq!(parse_size_mb("100KB"), Ok(1));
        assert!(parse_size_mb("12 parsecs").is_err());
        assert!(parse_size_mb("").is_err());
    }

    #[test]
    fn pascal_case() {
        assert_eq!(pascal("change_mode"), "ChangeMode");
        assert_eq!(pascal("policies"), "Policies");
    }
}
