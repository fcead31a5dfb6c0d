//! Nomad job files to `types::Job`: HCL2 (with variables, locals, functions
//! and `dynamic` blocks) or Nomad's API JSON, with Nomad's defaults applied
//! and every problem reported with its field path and line:column.
//!
//! **Architecture invariant:** the crate is pure. It does no IO, reads no
//! clock, no environment and no global RNG: the caller passes variable
//! values, var files, the current time, a file reader for `file()` and a
//! source of randomness for `uuidv4()` in [`ParseOptions`].
//!
//! Both routes meet in one place: the HCL front end writes Nomad's API JSON
//! for the job, and one decoder turns API JSON into `types::Job`. So a job
//! written in HCL and the same job written as JSON give equal values.

mod api;
mod cron;
mod decode;
mod diag;
mod drivers;
mod eval;
mod format;
mod funcs;
mod hcl;
mod json_locate;
mod ty;

pub use api::job_to_api;
pub use cron::{normalize_cron, validate_cron};
pub use decode::parse_size_mb;
pub use diag::{Diagnostic, Diagnostics};
pub use drivers::{check_driver_config, is_builtin_driver};
pub use format::format_hcl;
pub use funcs::FUNCTION_NAMES;

use decode::SpanMap;
use diag::Sink;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use types::{Job, JobType};

/// A file reader for `file()`: a path in, the contents or a message out.
pub type ReadFile<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// How much work evaluating one HCL file may do. A job file is a program
/// (`for` expressions, `dynamic` blocks, functions), and a few hundred bytes
/// can ask for 10^8 iterations or gigabytes of values; past any of these
/// limits parsing stops with one diagnostic that names the limit. The
/// defaults are far above what real job files use (the examples and the
/// test corpus use under 1% of each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalBudget {
    /// Expression evaluations, loop iterations and generated blocks.
    pub max_steps: u64,
    /// Bytes of values produced (function results, copies of variables,
    /// rendered templates, generated lists), counted as they are made.
    pub max_bytes: u64,
    /// Most elements any one list or object may hold.
    pub max_collection: usize,
}

impl EvalBudget {
    /// The default budget, for job files from users and untrusted requests
    /// alike.
    pub const DEFAULT: EvalBudget = EvalBudget {
        max_steps: 1_000_000,
        max_bytes: 64 * 1024 * 1024,
        max_collection: 100_000,
    };
}

impl Default for EvalBudget {
    fn default() -> Self {
        EvalBudget::DEFAULT
    }
}

/// Everything from outside that parsing may use. The CLI gathers it.
#[derive(Default)]
pub struct ParseOptions<'a> {
    /// Variable values from `--var k=v` and `NOMAD_VAR_*` / `DROVER_VAR_*`,
    /// as text. Values for non-string variables are parsed as HCL
    /// expressions (`--var 'ports=[80, 443]'`). Names the job does not
    /// declare are ignored.
    pub variables: BTreeMap<String, String>,
    /// Var files as `(name, contents)`, applied in order before `variables`.
    /// A name ending in `.json` is read as JSON, any other as HCL.
    pub var_files: Vec<(String, String)>,
    /// The time `timestamp()` returns, in Unix nanoseconds.
    pub now: types::UnixNanos,
    /// Reads a file for `file()` and `filebase64()`; without it they fail.
    pub read_file: Option<ReadFile<'a>>,
    /// 128 random bits for `uuidv4()`; without it `uuidv4()` fails.
    pub random: Option<&'a dyn Fn() -> u128>,
    /// The limits on evaluation work ([`EvalBudget::DEFAULT`] by default).
    pub budget: EvalBudget,
}

impl fmt::Debug for ParseOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParseOptions")
            .field("variables", &self.variables)
            .field(
                "var_files",
                &self.var_files.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field("now", &self.now)
            .field("read_file", &self.read_file.is_some())
            .field("random", &self.random.is_some())
            .field("budget", &self.budget)
            .finish()
    }
}

/// Parses a job file, JSON when its first non-blank character is `{`,
/// HCL2 otherwise.
pub fn parse(source: &str, filename: &str, opts: &ParseOptions) -> Result<Job, Diagnostics> {
    if source.trim_start().starts_with('{') {
        parse_json(source)
    } else {
        parse_hcl(source, filename, opts)
    }
}

/// Parses an HCL2 job file into a canonicalized, validated job.
pub fn parse_hcl(source: &str, _filename: &str, opts: &ParseOptions) -> Result<Job, Diagnostics> {
    let mut sink = Sink::new(source);
    let Some(node) = hcl::evaluate(source, opts, &mut sink) else {
        return Err(finish(sink.diags));
    };
    let mut decoder = decode::Decoder {
        sink: &mut sink,
        spans: SpanMap::new(),
    };
    let api_job = decode::job(&mut decoder, &node);
    let spans = std::mem::take(&mut decoder.spans);
    let (job, problems) = api::job_from_api(&api_job);
    for problem in problems {
        let span = lookup_span(&spans, &problem.path);
        sink.error(problem.path, problem.message, span);
    }
    check(job, &mut sink, &spans)
}

/// Reads an HCL job the way `POST /v1/jobs/parse` does and returns its API
/// JSON (the bare job). With `canonicalize` false the job is as written:
/// only the fields the file sets, plus `Name` from the job's label as
/// Nomad's parser fills it. With `canonicalize` true Nomad's defaults are
/// applied as for a submitted job. Neither validates the job: errors are
/// syntax, evaluation and schema errors (unknown blocks, wrong types).
pub fn parse_hcl_to_api(
    source: &str,
    _filename: &str,
    opts: &ParseOptions,
    canonicalize: bool,
) -> Result<Value, Diagnostics> {
    let mut sink = Sink::new(source);
    let Some(node) = hcl::evaluate(source, opts, &mut sink) else {
        return Err(finish(sink.diags));
    };
    let mut decoder = decode::Decoder {
        sink: &mut sink,
        spans: SpanMap::new(),
    };
    let mut api_job = decode::job(&mut decoder, &node);
    let spans = std::mem::take(&mut decoder.spans);
    if !sink.diags.is_empty() {
        return Err(finish(sink.diags));
    }
    if !canonicalize {
        if let Value::Object(map) = &mut api_job
            && !map.contains_key("Name")
        {
            let id = map.get("ID").cloned().unwrap_or(Value::Null);
            map.insert("Name".to_string(), id);
        }
        return Ok(api_job);
    }
    let (mut job, problems) = api::job_from_api(&api_job);
    for problem in problems {
        let span = lookup_span(&spans, &problem.path);
        sink.error(problem.path, problem.message, span);
    }
    if !sink.diags.is_empty() {
        return Err(finish(sink.diags));
    }
    job.canonicalize();
    fill_service_names(&mut job);
    Ok(job_to_api(&job))
}

/// Parses Nomad's API JSON (`{"Job": {…}}` or the bare job) into a
/// canonicalized, validated job.
pub fn parse_json(source: &str) -> Result<Job, Diagnostics> {
    let mut sink = Sink::new(source);
    let value: Value = match serde_json::from_str(source) {
        Ok(value) => value,
        Err(err) => {
            return Err(Diagnostics(vec![Diagnostic {
                path: String::new(),
                message: format!("invalid JSON: {}", json_message(&err)),
                line: err.line() as u32,
                column: err.column() as u32,
            }]));
        }
    };
    let locator = json_locate::Locator::scan(source);
    let (job, problems) = api::job_from_api_located(&value, Some(&locator));
    let spans = locator.into_spans();
    let fatal = problems
        .iter()
        .any(|problem| problem.path.is_empty() || problem.path == "Job");
    for problem in problems {
        let span = lookup_span(&spans, &problem.path);
        sink.error(problem.path, problem.message, span);
    }
    if fatal {
        return Err(finish(sink.diags));
    }
    check(job, &mut sink, &spans)
}

/// Decodes Nomad's API JSON (`{"Job": {…}}` or the bare job) into a job
/// without canonicalizing or validating it: the inverse of [`job_to_api`].
pub fn decode_api_job(value: &Value) -> Result<Job, Diagnostics> {
    let (job, problems) = api::job_from_api(value);
    if problems.is_empty() {
        return Ok(job);
    }
    Err(Diagnostics(
        problems
            .into_iter()
            .map(|problem| Diagnostic {
                path: problem.path,
                message: problem.message,
                line: 0,
                column: 0,
            })
            .collect(),
    ))
}

/// Renders a job as `nomad job run -output` does: `{"Job": {…}}`, pretty.
pub fn render_json(job: &Job) -> String {
    let mut wrapper = serde_json::Map::new();
    wrapper.insert("Job".to_string(), job_to_api(job));
    serde_json::to_string_pretty(&Value::Object(wrapper)).unwrap_or_default()
}

/// A syntactically valid HCL job of about `target_bytes` bytes (many groups
/// and tasks), for benchmarks and the fuzzer's seed corpus.
pub fn generate_large_job(target_bytes: usize) -> String {
    let mut out = String::from(
        "variable \"image\" {\n  type    = string\n  default = \"busybox:1.36\"\n}\n\nlocals {\n  common_env = { LOG_LEVEL = \"info\" }\n}\n\njob \"bench\" {\n  datacenters = [\"dc1\", \"dc2\"]\n  type        = \"service\"\n",
    );
    let mut idx = 0;
    while out.len() < target_bytes {
        out.push_str(&format!(
            r#"
  group "g{idx}" {{
    count = {count}
    network {{
      port "http" {{ to = 8080 }}
    }}
    constraint {{
      attribute = "${{attr.kernel.name}}"
      value     = "linux"
    }}
    task "t{idx}" {{
      driver = "docker"
      config {{
        image = var.image
        args  = ["--port", "${{NOMAD_PORT_http}}", "--id", "{idx}"]
        ports = ["http"]
      }}
      env = merge(local.common_env, {{ INDEX = "{idx}" }})
      resources {{
        cpu    = {cpu}
        memory = {memory}
      }}
      template {{
        destination = "local/app.conf"
        data        = <<-EOT
          listen = {{{{ env "NOMAD_PORT_http" }}}}
          index  = {idx}
        EOT
      }}
    }}
  }}
"#,
            count = 1 + idx % 5,
            cpu = 100 + idx % 7 * 50,
            memory = 128 + idx % 3 * 64,
        ));
        idx += 1;
    }
    out.push_str("}\n");
    out
}

fn json_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    // serde_json appends " at line L column C"; the diagnostic carries both.
    match text.rfind(" at line ") {
        Some(idx) => text[..idx].to_string(),
        None => text,
    }
}

/// Canonicalizes and validates, reporting every problem at its source.
fn check(mut job: Job, sink: &mut Sink, spans: &SpanMap) -> Result<Job, Diagnostics> {
    job.canonicalize();
    fill_service_names(&mut job);
    let reported: BTreeSet<String> = sink.diags.iter().map(|diag| diag.path.clone()).collect();
    let mut errors: Vec<(String, String)> = Vec::new();
    if let Err(validation) = job.validate() {
        for error in validation.0 {
            errors.push((error.path_text(), error.message));
        }
    }
    extra_checks(&job, &mut errors);
    for (path, message) in errors {
        if reported.contains(&path) {
            continue;
        }
        let span = lookup_span(spans, &path);
        sink.error(path, message, span);
    }
    if sink.diags.is_empty() {
        Ok(job)
    } else {
        Err(finish(std::mem::take(&mut sink.diags)))
    }
}

fn finish(diags: Vec<Diagnostic>) -> Diagnostics {
    let mut diagnostics = Diagnostics(diags);
    diagnostics.sort();
    diagnostics
}

/// Nomad names a service without a name after its job, group and task.
fn fill_service_names(job: &mut Job) {
    let job_name = job.name.clone();
    for group in &mut job.task_groups {
        for service in &mut group.services {
            if service.name.is_empty() {
                service.name = format!("{job_name}-{}", group.name);
            }
        }
        for task in &mut group.tasks {
            for service in &mut task.services {
                if service.name.is_empty() {
                    service.name = format!("{job_name}-{}-{}", group.name, task.name);
                }
            }
        }
    }
}

/// What Nomad rejects at registration that `Job::validate` does not check.
fn extra_checks(job: &Job, errors: &mut Vec<(String, String)>) {
    let job_path = format!("job {:?}", job.id);
    if let Some(periodic) = &job.periodic {
        let field = if periodic.specs.len() > 1 { "crons" } else { "cron" };
        for spec in &periodic.specs {
            if let Err(message) = validate_cron(spec) {
                errors.push((format!("{job_path} → periodic.{field}"), message));
            }
        }
        if periodic.spec_type != "cron" {
            errors.push((
                format!("{job_path} → periodic.spec_type"),
                format!(
                    "unknown periodic spec type {:?}; only \"cron\" is supported",
                    periodic.spec_type
                ),
            ));
        }
        let zone_ok = !periodic.time_zone.is_empty()
            && periodic
                .time_zone
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '+' | '/'));
        if !zone_ok {
            errors.push((
                format!("{job_path} → periodic.time_zone"),
                format!("{:?} is not a time zone name", periodic.time_zone),
            ));
        }
    }
    if let Some(update) = &job.update {
        check_update(update, &format!("{job_path} → update"), errors);
    }
    for affinity_idx in job.affinities.iter().enumerate().filter(|(_, a)| a.weight == 0) {
        errors.push((
            format!("{job_path} → affinity[{}].weight", affinity_idx.0),
            "affinity weight must not be zero".into(),
        ));
    }
    check_spreads(&job.spreads, &job_path, errors);
    for group in &job.task_groups {
        let group_path = format!("{job_path} → group {:?}", group.name);
        if let Some(update) = &group.update {
            check_update(update, &format!("{group_path} → update"), errors);
        }
        check_spreads(&group.spreads, &group_path, errors);
        for (idx, affinity) in group.affinities.iter().enumerate() {
            if affinity.weight == 0 {
                errors.push((
                    format!("{group_path} → affinity[{idx}].weight"),
                    "affinity weight must not be zero".into(),
                ));
            }
        }
        if group.scaling.as_ref().is_some_and(|scaling| scaling.max == 0) {
            errors.push((
                format!("{group_path} → scaling.max"),
                "scaling needs a max greater than zero".into(),
            ));
        }
        let mut port_labels: BTreeSet<&str> = BTreeSet::new();
        for network in &group.networks {
            for port in network.reserved_ports.iter().chain(&network.dynamic_ports) {
                port_labels.insert(port.label.as_str());
            }
        }
        for task in &group.tasks {
            for network in &task.resources.networks {
                for port in network.reserved_ports.iter().chain(&network.dynamic_ports) {
                    port_labels.insert(port.label.as_str());
                }
            }
        }
        check_services(&group.services, &group_path, &port_labels, errors);
        for task in &group.tasks {
            let task_path = format!("{group_path} → task {:?}", task.name);
            for (field, message) in check_driver_config(&task.driver, &task.config) {
                errors.push((format!("{task_path} → {field}"), message));
            }
            check_services(&task.services, &task_path, &port_labels, errors);
            for (idx, template) in task.templates.iter().enumerate() {
                let path = format!("{task_path} → template[{idx}]");
                if template.dest_path.is_empty() {
                    errors.push((format!("{path}.destination"), "template needs a destination".into()));
                }
                if template.source_path.is_empty() && template.embedded_tmpl.is_empty() {
                    errors.push((path.clone(), "template needs a source or data".into()));
                }
                if !matches!(template.change_mode.as_str(), "noop" | "restart" | "signal" | "script") {
                    errors.push((
                        format!("{path}.change_mode"),
                        format!("unknown template change_mode {:?}", template.change_mode),
                    ));
                }
                if template.change_mode == "signal" && template.change_signal.is_empty() {
                    errors.push((
                        format!("{path}.change_signal"),
                        "change_mode \"signal\" needs a change_signal".into(),
                    ));
                }
            }
            for (idx, artifact) in task.artifacts.iter().enumerate() {
                let path = format!("{task_path} → artifact[{idx}]");
                if artifact.source.is_empty() {
                    errors.push((format!("{path}.source"), "artifact needs a source".into()));
                }
                if !matches!(artifact.mode.as_str(), "any" | "file" | "dir") {
                    errors.push((
                        format!("{path}.mode"),
                        format!(
                            "artifact mode must be \"any\", \"file\" or \"dir\", not {:?}",
                            artifact.mode
                        ),
                    ));
                }
            }
            for (idx, mount) in task.volume_mounts.iter().enumerate() {
                if !group.volumes.contains_key(&mount.volume) {
                    errors.push((
                        format!("{task_path} → volume_mount[{idx}].volume"),
                        format!("volume {:?} is not defined in group {:?}", mount.volume, group.name),
                    ));
                }
            }
            for (idx, affinity) in task.affinities.iter().enumerate() {
                if affinity.weight == 0 {
                    errors.push((
                        format!("{task_path} → affinity[{idx}].weight"),
                        "affinity weight must not be zero".into(),
                    ));
                }
            }
        }
    }
    if let Some(parameterized) = &job.parameterized {
        let required: BTreeSet<&String> = parameterized.meta_required.iter().collect();
        for key in &parameterized.meta_optional {
            if required.contains(key) {
                errors.push((
                    format!("{job_path} → parameterized.meta_optional"),
                    format!("meta key {key:?} is both required and optional"),
                ));
            }
        }
    }
    if job.job_type == JobType::System || job.job_type == JobType::Sysbatch {
        for group in &job.task_groups {
            if group.scaling.is_some() {
                errors.push((
                    format!("{job_path} → group {:?} → scaling", group.name),
                    format!("{} jobs cannot be scaled", job.job_type.as_str()),
                ));
            }
        }
    }
}

fn check_update(update: &types::UpdateStrategy, path: &str, errors: &mut Vec<(String, String)>) {
    if !matches!(update.health_check.as_str(), "checks" | "task_states" | "manual") {
        errors.push((
            format!("{path}.health_check"),
            format!(
                "health_check must be \"checks\", \"task_states\" or \"manual\", not {:?}",
                update.health_check
            ),
        ));
    }
    if update.healthy_deadline < update.min_healthy_time {
        errors.push((
            format!("{path}.healthy_deadline"),
            "healthy_deadline must be longer than min_healthy_time".into(),
        ));
    }
    if !update.progress_deadline.is_zero() && update.progress_deadline < update.healthy_deadline {
        errors.push((
            format!("{path}.progress_deadline"),
            "progress_deadline must be zero or at least healthy_deadline".into(),
        ));
    }
}

fn check_spreads(spreads: &[types::Spread], path: &str, errors: &mut Vec<(String, String)>) {
    for (idx, spread) in spreads.iter().enumerate() {
        let total: u32 = spread.targets.iter().map(|target| u32::from(target.percent)).sum();
        if total > 100 {
            errors.push((
                format!("{path} → spread[{idx}]"),
                format!("spread target percentages add up to {total}, more than 100"),
            ));
        }
        if spread.attribute.is_empty() {
            errors.push((
                format!("{path} → spread[{idx}].attribute"),
                "spread needs an attribute".into(),
            ));
        }
    }
}

fn check_services(
    services: &[types::Service],
    path: &str,
    port_labels: &BTreeSet<&str>,
    errors: &mut Vec<(String, String)>,
) {
    for (idx, service) in services.iter().enumerate() {
        let service_path = format!("{path} → service[{idx}]");
        if !matches!(service.provider.as_str(), "consul" | "nomad") {
            errors.push((
                format!("{service_path}.provider"),
                format!(
                    "service provider must be \"consul\" or \"nomad\", not {:?}",
                    service.provider
                ),
            ));
        }
        let label = service.port_label.as_str();
        if !label.is_empty() && label.parse::<u16>().is_err() && !port_labels.contains(label) {
            errors.push((
                format!("{service_path}.port"),
                format!("port label {label:?} is not defined in the group's network"),
            ));
        }
        for (check_idx, check) in service.checks.iter().enumerate() {
            let check_path = format!("{service_path}.check[{check_idx}]");
            if !matches!(check.check_type.as_str(), "http" | "tcp" | "grpc" | "script") {
                errors.push((
                    format!("{check_path}.type"),
                    format!(
                        "check type must be http, tcp, grpc or script, not {:?}",
                        check.check_type
                    ),
                ));
            }
            if check.interval.is_zero() {
                errors.push((format!("{check_path}.interval"), "check needs an interval".into()));
            }
            if check.timeout.is_zero() {
                errors.push((format!("{check_path}.timeout"), "check needs a timeout".into()));
            }
            if check.check_type == "http" && check.path.is_empty() {
                errors.push((format!("{check_path}.path"), "http check needs a path".into()));
            }
            if check.check_type == "script" && check.command.is_empty() {
                errors.push((format!("{check_path}.command"), "script check needs a command".into()));
            }
        }
    }
}

/// Finds the span for a field path, falling back to the closest enclosing
/// field or block that was written in the source.
fn lookup_span(spans: &SpanMap, path: &str) -> Option<std::ops::Range<usize>> {
    let mut key = path.to_string();
    loop {
        if let Some(span) = spans.get(&key) {
            return Some(span.clone());
        }
        if key.ends_with(']')
            && let Some(open) = key.rfind('[')
            && key[open + 1..key.len() - 1].bytes().all(|byte| byte.is_ascii_digit())
        {
            key.truncate(open);
            continue;
        }
        let (head, tail) = match key.rsplit_once(" → ") {
            Some((head, tail)) => (head.to_string(), tail.to_string()),
            None => return spans.get("").cloned(),
        };
        key = match last_dot_outside_quotes(&tail) {
            Some(idx) => format!("{head} → {}", &tail[..idx]),
            None => head,
        };
    }
}

fn last_dot_outside_quotes(text: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    let mut last = None;
    for (idx, ch) in text.char_indices() {
        match ch {
            '\\' if in_quotes && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => in_quotes = !in_quotes,
            '.' if !in_quotes => last = Some(idx),
            _ => {}
        }
        escaped = false;
    }
    last
}
