//! Task templates: Go text/template (the `gtmpl` crate) rendered into the
//! task directory before the task starts, and again whenever what they read
//! (their `source` file, files read with `file`) changes.
//!
//! Paths a template names (`source`, `destination`, `file "…"`) are
//! relative to the task directory and may not leave the allocation's
//! directory, lexically or through a symlink. Every input is bounded: the
//! template text, each file it reads, its output, and the number of
//! environment variables an `env = true` template may set.
//!
//! `gtmpl` calls functions through plain `fn` pointers, so the task's
//! environment and directories reach `env` and `file` through a
//! thread-local scope set for the length of one (synchronous) render.

use crate::sandbox::{confine, still_inside};
use base64::Engine as _;
use gtmpl::{FuncError, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use types::ServiceRegistration;

/// Longest template text (inline `data` or a `source` file).
pub const MAX_TEMPLATE_BYTES: usize = types::runtime_support::MAX_TEMPLATE_BYTES;
/// Longest output of one template.
pub const MAX_OUTPUT_BYTES: usize = 4 << 20;
/// Longest file the `file` function reads.
pub const MAX_FILE_READ_BYTES: u64 = 1 << 20;
/// Most variables an `env = true` template may set.
pub const MAX_ENV_VARS: usize = 1024;

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderTemplateError {
    /// A file it reads does not exist yet: wait and try again.
    #[error("missing: {}", .0.display())]
    Missing(PathBuf),
    #[error("template {index}: {message}")]
    Failed { index: usize, message: String },
}

/// What a template does when its output changes while the task runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeAction {
    /// Nothing: the file is rewritten and the task reads it when it will.
    Noop,
    /// The task gets this signal.
    Signal(String),
    /// The task is restarted.
    Restart,
}

/// One template, prepared for a task: its paths resolved.
#[derive(Debug, Clone)]
struct Prepared {
    spec: types::Template,
    destination: PathBuf,
    source: Option<PathBuf>,
}

/// The templates of one task and what they last rendered.
#[derive(Debug, Clone)]
pub struct TaskTemplates {
    templates: Vec<Prepared>,
    /// The allocation's directory: nothing is read or written outside it.
    sandbox: PathBuf,
    task_dir: PathBuf,
    /// The task's environment, for the `env` function.
    env: BTreeMap<String, String>,
    last: Vec<Option<String>>,
    /// The node's service catalog and the job's namespace, for
    /// `nomadService` and `nomadServices`.
    services: Option<(crate::services::ServiceCatalog, String)>,
}

/// Which templates changed in one render.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rendered {
    /// Indices of templates whose output differs from the last render.
    pub changed: Vec<usize>,
}

impl TaskTemplates {
    /// Prepares `templates` of a task whose directory is `task_dir` inside
    /// the allocation directory `sandbox`. `env` is the task's environment;
    /// template fields have been interpolated already.
    pub fn new(
        templates: &[types::Template],
        sandbox: &Path,
        task_dir: &Path,
        env: BTreeMap<String, String>,
    ) -> Result<TaskTemplates, RenderTemplateError> {
        let mut prepared = Vec::new();
        for (index, spec) in templates.iter().enumerate() {
            let failed = |message: String| RenderTemplateError::Failed { index, message };
            let destination = confine(sandbox, task_dir, &spec.dest_path).map_err(failed)?;
            let source = if spec.source_path.is_empty() {
                None
            } else {
                Some(confine(sandbox, task_dir, &spec.source_path).map_err(failed)?)
            };
            prepared.push(Prepared {
                spec: spec.clone(),
                destination,
                source,
            });
        }
        Ok(TaskTemplates {
            last: vec![None; prepared.len()],
            templates: prepared,
            sandbox: sandbox.to_path_buf(),
            task_dir: task_dir.to_path_buf(),
            env,
            services: None,
        })
    }

    /// Lets the templates read the node's service catalog (instances of
    /// the job's `namespace` unless a name says `@other`).
    pub fn with_services(mut self, catalog: crate::services::ServiceCatalog, namespace: String) -> TaskTemplates {
        self.services = Some((catalog, namespace));
        self
    }

    /// Whether the task has any templates.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// Renders every template and writes those whose output changed.
    pub fn render(&mut self) -> Result<Rendered, RenderTemplateError> {
        let mut outputs = Vec::with_capacity(self.templates.len());
        for (index, template) in self.templates.iter().enumerate() {
            let failed = |message: String| RenderTemplateError::Failed { index, message };
            let text = match &template.source {
                Some(source) => {
                    read_bounded(&self.sandbox, source, MAX_TEMPLATE_BYTES as u64).map_err(|error| match error {
                        RenderTemplateError::Failed { message, .. } => failed(message),
                        missing => missing,
                    })?
                }
                None => template.spec.embedded_tmpl.clone(),
            };
            if text.len() > MAX_TEMPLATE_BYTES {
                return Err(failed(format!(
                    "template is {} bytes, more than the limit of {MAX_TEMPLATE_BYTES}",
                    text.len()
                )));
            }
            let services = self
                .services
                .as_ref()
                .map(|(catalog, namespace)| (catalog.all(), namespace.clone()));
            let output =
                render_text(&text, &self.env, &self.sandbox, &self.task_dir, services).map_err(
                    |error| match error {
                        RenderError::Missing(path) => RenderTemplateError::Missing(path),
                        RenderError::Failed(message) => failed(message),
                    },
                )?;
            if template.spec.env {
                parse_env(&output).map_err(failed)?;
            }
            outputs.push(output);
        }
        let mut rendered = Rendered::default();
        for (index, output) in outputs.into_iter().enumerate() {
            let template = &self.templates[index];
            let on_disk_differs = std::fs::read(&template.destination).map_or(true, |bytes| bytes != output.as_bytes());
            if self.last[index].as_deref() != Some(output.as_str()) || on_disk_differs {
                write_confined(&self.sandbox, &template.destination, &output, &template.spec.perms).map_err(
                    |message| RenderTemplateError::Failed {
                        index,
                        message: format!("write {}: {message}", template.destination.display()),
                    },
                )?;
                if self.last[index].as_deref().is_some_and(|last| last != output) {
                    rendered.changed.push(index);
                }
                self.last[index] = Some(output);
            }
        }
        Ok(rendered)
    }

    /// The variables of the `env = true` templates, as last rendered.
    pub fn env_vars(&self) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        for (template, last) in self.templates.iter().zip(&self.last) {
            if template.spec.env
                && let Some(output) = last
                && let Ok(parsed) = parse_env(output)
            {
                vars.extend(parsed);
            }
        }
        vars
    }

    /// What the task must do after `changed` templates re-rendered: a
    /// restart wins over a signal, a signal over nothing.
    pub fn action(&self, rendered: &Rendered) -> ChangeAction {
        let mut action = ChangeAction::Noop;
        for index in &rendered.changed {
            let spec = &self.templates[*index].spec;
            match spec.change_mode.as_str() {
                "noop" => {}
                "signal" => {
                    if action == ChangeAction::Noop {
                        action = ChangeAction::Signal(spec.change_signal.clone());
                    }
                }
                // "restart" is Nomad's default.
                _ => action = ChangeAction::Restart,
            }
        }
        action
    }

    /// The longest splay of the changed templates.
    pub fn splay(&self, rendered: &Rendered) -> std::time::Duration {
        rendered
            .changed
            .iter()
            .map(|index| self.templates[*index].spec.splay)
            .max()
            .unwrap_or_default()
    }
}

/// `KEY=value` lines (blank lines and `#` comments skipped), as Nomad reads
/// an `env = true` template.
pub fn parse_env(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("env line {} is not KEY=value: {line:?}", number + 1));
        };
        let key = key.trim();
        if key.is_empty() || key.contains(|ch: char| ch.is_whitespace() || ch == '\0') {
            return Err(format!("env line {} has an invalid name {key:?}", number + 1));
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|inner| inner.strip_suffix('"'))
            .unwrap_or(value);
        vars.insert(key.to_string(), value.to_string());
        if vars.len() > MAX_ENV_VARS {
            return Err(format!("more than {MAX_ENV_VARS} environment variables"));
        }
    }
    Ok(vars)
}

/// Reads at most `limit` bytes of a file inside the sandbox.
fn read_bounded(sandbox: &Path, path: &Path, limit: u64) -> Result<String, RenderTemplateError> {
    use std::io::Read as _;
    let failed = |message: String| RenderTemplateError::Failed { index: 0, message };
    if !path.exists() {
        return Err(RenderTemplateError::Missing(path.to_path_buf()));
    }
    match still_inside(sandbox, path) {
        Ok(true) => {}
        Ok(false) => return Err(failed(format!("{} leaves the allocation directory", path.display()))),
        Err(error) => return Err(failed(format!("{}: {error}", path.display()))),
    }
    let file = std::fs::File::open(path).map_err(|error| failed(format!("open {}: {error}", path.display())))?;
    let mut text = String::new();
    file.take(limit + 1)
        .read_to_string(&mut text)
        .map_err(|error| failed(format!("read {}: {error}", path.display())))?;
    if text.len() as u64 > limit {
        return Err(failed(format!("{} is larger than {limit} bytes", path.display())));
    }
    Ok(text)
}

/// Writes `content` to `destination` atomically (a temporary file renamed
/// over it, so a symlink at the destination is replaced, not followed),
/// after checking that its directory, symlinks resolved, is in the sandbox.
fn write_confined(sandbox: &Path, destination: &Path, content: &str, perms: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let parent = destination
        .parent()
        .ok_or_else(|| "destination has no directory".to_string())?;
    std::fs::create_dir_all(parent).map_err(|error| error.to_string())?;
    if !still_inside(sandbox, parent).map_err(|error| error.to_string())? {
        return Err("the destination's directory leaves the allocation directory".to_string());
    }
    let mode = if perms.is_empty() {
        0o644
    } else {
        u32::from_str_radix(perms, 8).map_err(|_| format!("perms {perms:?} is not an octal mode"))?
    };
    let name = destination
        .file_name()
        .ok_or_else(|| "destination has no file name".to_string())?;
    let temporary = parent.join(format!(".{}.drover-tmp", name.to_string_lossy()));
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)
        .map_err(|error| error.to_string())?;
    file.write_all(content.as_bytes()).map_err(|error| error.to_string())?;
    file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|error| error.to_string())?;
    drop(file);
    std::fs::rename(&temporary, destination).map_err(|error| error.to_string())
}

enum RenderError {
    Missing(PathBuf),
    Failed(String),
}

/// What the template functions see during one render.
struct Scope {
    env: BTreeMap<String, String>,
    sandbox: PathBuf,
    task_dir: PathBuf,
    missing: Option<PathBuf>,
    /// Every registration the node knows, and the job's namespace.
    services: Option<(Arc<Vec<ServiceRegistration>>, String)>,
}

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// An output that refuses to grow past [`MAX_OUTPUT_BYTES`].
struct Bounded {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl Write for Bounded {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + data.len() > MAX_OUTPUT_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("template output too large"));
        }
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn render_text(
    text: &str,
    env: &BTreeMap<String, String>,
    sandbox: &Path,
    task_dir: &Path,
    services: Option<(Arc<Vec<ServiceRegistration>>, String)>,
) -> Result<String, RenderError> {
    let mut template = gtmpl::Template::default();
    template.add_funcs(FUNCTIONS);
    template
        .parse(text)
        .map_err(|error| RenderError::Failed(format!("parse: {error}")))?;
    SCOPE.with(|scope| {
        *scope.borrow_mut() = Some(Scope {
            env: env.clone(),
            sandbox: sandbox.to_path_buf(),
            task_dir: task_dir.to_path_buf(),
            missing: None,
            services,
        })
    });
    let mut out = Bounded {
        bytes: Vec::new(),
        overflowed: false,
    };
    let result = template.execute(&mut out, &gtmpl::Context::empty());
    let scope = SCOPE.with(|scope| scope.borrow_mut().take());
    if let Some(missing) = scope.and_then(|scope| scope.missing) {
        return Err(RenderError::Missing(missing));
    }
    if out.overflowed {
        return Err(RenderError::Failed(format!(
            "output is larger than the limit of {MAX_OUTPUT_BYTES} bytes"
        )));
    }
    result.map_err(|error| RenderError::Failed(format!("execute: {error}")))?;
    String::from_utf8(out.bytes).map_err(|_| RenderError::Failed("output is not UTF-8".to_string()))
}

const FUNCTIONS: &[(&str, gtmpl::Func)] = &[
    ("env", env_func),
    ("file", file_func),
    ("base64Encode", base64_encode),
    ("base64Decode", base64_decode),
    ("toJSON", to_json),
    ("parseJSON", parse_json),
    ("split", split),
    ("join", join),
    ("replaceAll", replace_all),
    ("toLower", to_lower),
    ("toUpper", to_upper),
    ("trimSpace", trim_space),
    ("contains", contains),
    ("timestamp", timestamp),
    ("nomadService", nomad_service),
    ("nomadServices", nomad_services),
];

/// The catalog and namespace of the render in progress.
fn scope_services(name: &str) -> Result<(Arc<Vec<ServiceRegistration>>, String), FuncError> {
    SCOPE.with(|scope| {
        scope
            .borrow()
            .as_ref()
            .and_then(|scope| scope.services.clone())
            .ok_or_else(|| generic(format!("{name}: service discovery is not available here")))
    })
}

fn registration_value(registration: &ServiceRegistration) -> Value {
    let mut map = HashMap::new();
    for (key, value) in [
        ("ID", registration.id.as_str()),
        ("ServiceName", registration.service_name.as_str()),
        ("Namespace", registration.namespace.as_str()),
        ("NodeID", registration.node_id.as_str()),
        ("Datacenter", registration.datacenter.as_str()),
        ("JobID", registration.job_id.as_str()),
        ("AllocID", registration.alloc_id.as_str()),
        ("Address", registration.address.as_str()),
    ] {
        map.insert(key.to_string(), Value::String(value.to_string()));
    }
    map.insert("Port".to_string(), Value::from(u64::from(registration.port)));
    map.insert(
        "Tags".to_string(),
        Value::Array(registration.tags.iter().cloned().map(Value::String).collect()),
    );
    map.insert(
        "Meta".to_string(),
        Value::Map(
            registration
                .meta
                .iter()
                .map(|(key, value)| (key.clone(), Value::String(value.clone())))
                .collect(),
        ),
    );
    Value::Map(map)
}

/// Parses Nomad's `[<tag>.]<service>[@<namespace>]`.
fn service_query(text: &str, default_namespace: &str) -> (Option<String>, String, String) {
    let (name, namespace) = match text.rsplit_once('@') {
        Some((name, namespace)) if !namespace.is_empty() => (name, namespace.to_string()),
        _ => (text, default_namespace.to_string()),
    };
    match name.split_once('.') {
        Some((tag, service)) => (Some(tag.to_string()), service.to_string(), namespace),
        None => (None, name.to_string(), namespace),
    }
}

/// `nomadService "[tag.]name[@namespace]"`, or `nomadService N "key"
/// "name"` for the N instances rendezvous hashing gives `key`: the healthy
/// instances (every check passing, or none), by ID.
fn nomad_service(args: &[Value]) -> Result<Value, FuncError> {
    let (choose, name) = match args.len() {
        1 => (None, string_arg("nomadService", args, 0, 1)?),
        3 => {
            let count = match &args[0] {
                Value::Number(number) => number.as_u64(),
                Value::String(text) => text.parse().ok(),
                _ => None,
            }
            .and_then(|count| usize::try_from(count).ok())
            .filter(|count| *count > 0)
            .ok_or_else(|| generic("nomadService: the count must be a positive number"))?;
            let key = string_arg("nomadService", args, 1, 3)?;
            (Some((count, key)), string_arg("nomadService", args, 2, 3)?)
        }
        _ => return Err(generic("nomadService takes a name, or a count, a key and a name")),
    };
    let (registrations, default_namespace) = scope_services("nomadService")?;
    let (tag, service, namespace) = service_query(&name, &default_namespace);
    let mut found: Vec<ServiceRegistration> = registrations
        .iter()
        .filter(|registration| {
            registration.namespace == namespace
                && registration.service_name == service
                && registration.is_healthy()
                && tag.as_ref().is_none_or(|tag| registration.tags.contains(tag))
        })
        .cloned()
        .collect();
    found.sort_by(|left, right| left.id.cmp(&right.id));
    if let Some((count, key)) = choose {
        found = types::service::rendezvous_choose(found, count, &key);
    }
    Ok(Value::Array(found.iter().map(registration_value).collect()))
}

/// `nomadServices`: every service of the job's namespace with the union of
/// its tags, by name (`.Name`, `.Tags`).
fn nomad_services(args: &[Value]) -> Result<Value, FuncError> {
    let (registrations, default_namespace) = scope_services("nomadServices")?;
    let namespace = match args.len() {
        0 => default_namespace,
        1 => string_arg("nomadServices", args, 0, 1)?
            .trim_start_matches('@')
            .to_string(),
        _ => return Err(generic("nomadServices takes at most a namespace")),
    };
    let mut by_name: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for registration in registrations
        .iter()
        .filter(|registration| registration.namespace == namespace)
    {
        by_name
            .entry(&registration.service_name)
            .or_default()
            .extend(registration.tags.iter().map(String::as_str));
    }
    Ok(Value::Array(
        by_name
            .into_iter()
            .map(|(name, tags)| {
                let mut map = HashMap::new();
                map.insert("Name".to_string(), Value::String(name.to_string()));
                map.insert(
                    "Tags".to_string(),
                    Value::Array(tags.into_iter().map(|tag| Value::String(tag.to_string())).collect()),
                );
                Value::Map(map)
            })
            .collect(),
    ))
}

fn generic(message: impl Into<String>) -> FuncError {
    FuncError::Generic(message.into())
}

fn string_arg(name: &str, args: &[Value], index: usize, count: usize) -> Result<String, FuncError> {
    if args.len() != count {
        return Err(FuncError::ExactlyXArgs(name.to_string(), count));
    }
    match &args[index] {
        Value::String(text) => Ok(text.clone()),
        other => Err(generic(format!(
            "{name}: argument {} must be a string, not {other}",
            index + 1
        ))),
    }
}

fn env_func(args: &[Value]) -> Result<Value, FuncError> {
    let name = string_arg("env", args, 0, 1)?;
    let value = SCOPE.with(|scope| {
        scope
            .borrow()
            .as_ref()
            .and_then(|scope| scope.env.get(&name).cloned())
            .unwrap_or_default()
    });
    Ok(Value::String(value))
}

fn file_func(args: &[Value]) -> Result<Value, FuncError> {
    let name = string_arg("file", args, 0, 1)?;
    let (sandbox, task_dir) = SCOPE
        .with(|scope| {
            scope
                .borrow()
                .as_ref()
                .map(|scope| (scope.sandbox.clone(), scope.task_dir.clone()))
        })
        .ok_or_else(|| generic("file: no task to read from"))?;
    let path = confine(&sandbox, &task_dir, &name).map_err(|message| generic(format!("file: {message}")))?;
    match read_bounded(&sandbox, &path, MAX_FILE_READ_BYTES) {
        Ok(text) => Ok(Value::String(text)),
        Err(RenderTemplateError::Missing(path)) => {
            SCOPE.with(|scope| {
                if let Some(scope) = scope.borrow_mut().as_mut() {
                    scope.missing = Some(path.clone());
                }
            });
            Err(generic(format!("file: {} does not exist yet", path.display())))
        }
        Err(error) => Err(generic(format!("file: {error}"))),
    }
}

fn base64_encode(args: &[Value]) -> Result<Value, FuncError> {
    let text = string_arg("base64Encode", args, 0, 1)?;
    Ok(Value::String(base64::engine::general_purpose::STANDARD.encode(text)))
}

fn base64_decode(args: &[Value]) -> Result<Value, FuncError> {
    let text = string_arg("base64Decode", args, 0, 1)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|error| generic(format!("base64Decode: {error}")))?;
    String::from_utf8(bytes)
        .map(Value::String)
        .map_err(|_| generic("base64Decode: the decoded bytes are not UTF-8"))
}

fn to_json_value(value: &Value) -> serde_json::Value {
    match value {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(flag) => serde_json::Value::Bool(*flag),
        Value::String(text) => serde_json::Value::String(text.clone()),
        Value::Number(number) => {
            if let Some(int) = number.as_i64() {
                serde_json::Value::from(int)
            } else if let Some(uint) = number.as_u64() {
                serde_json::Value::from(uint)
            } else {
                number.as_f64().map_or(serde_json::Value::Null, serde_json::Value::from)
            }
        }
        Value::Array(items) => serde_json::Value::Array(items.iter().map(to_json_value).collect()),
        Value::Object(map) | Value::Map(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            serde_json::Value::Object(
                sorted
                    .into_iter()
                    .map(|(key, value)| (key.clone(), to_json_value(value)))
                    .collect(),
            )
        }
    }
}

fn from_json_value(value: serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(flag) => Value::Bool(flag),
        serde_json::Value::String(text) => Value::String(text),
        serde_json::Value::Number(number) => {
            if let Some(int) = number.as_i64() {
                Value::from(int)
            } else if let Some(uint) = number.as_u64() {
                Value::from(uint)
            } else {
                Value::from(number.as_f64().unwrap_or_default())
            }
        }
        serde_json::Value::Array(items) => Value::Array(items.into_iter().map(from_json_value).collect()),
        serde_json::Value::Object(map) => Value::Map(
            map.into_iter()
                .map(|(key, value)| (key, from_json_value(value)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

fn to_json(args: &[Value]) -> Result<Value, FuncError> {
    if args.len() != 1 {
        return Err(FuncError::ExactlyXArgs("toJSON".into(), 1));
    }
    serde_json::to_string(&to_json_value(&args[0]))
        .map(Value::String)
        .map_err(|error| generic(format!("toJSON: {error}")))
}

fn parse_json(args: &[Value]) -> Result<Value, FuncError> {
    let text = string_arg("parseJSON", args, 0, 1)?;
    serde_json::from_str(&text)
        .map(from_json_value)
        .map_err(|error| generic(format!("parseJSON: {error}")))
}

/// `split SEP TEXT`, so that `{{ "a,b" | split "," }}` works.
fn split(args: &[Value]) -> Result<Value, FuncError> {
    let separator = string_arg("split", args, 0, 2)?;
    let text = string_arg("split", args, 1, 2)?;
    if text.is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    Ok(Value::Array(
        text.split(separator.as_str())
            .map(|part| Value::String(part.to_string()))
            .collect(),
    ))
}

/// `join SEP LIST`, so that `{{ $list | join "," }}` works.
fn join(args: &[Value]) -> Result<Value, FuncError> {
    if args.len() != 2 {
        return Err(FuncError::ExactlyXArgs("join".into(), 2));
    }
    let separator = string_arg("join", &args[..1], 0, 1)?;
    let Value::Array(items) = &args[1] else {
        return Err(generic("join: the second argument must be a list"));
    };
    Ok(Value::String(
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(&separator),
    ))
}

/// `replaceAll OLD NEW TEXT`.
fn replace_all(args: &[Value]) -> Result<Value, FuncError> {
    let old = string_arg("replaceAll", args, 0, 3)?;
    let new = string_arg("replaceAll", args, 1, 3)?;
    let text = string_arg("replaceAll", args, 2, 3)?;
    if old.is_empty() {
        return Err(generic("replaceAll: the text to replace is empty"));
    }
    let grown = text.matches(old.as_str()).count().saturating_mul(new.len());
    if text.len().saturating_add(grown) > MAX_OUTPUT_BYTES {
        return Err(generic("replaceAll: the result would be too large"));
    }
    Ok(Value::String(text.replace(&old, &new)))
}

fn to_lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(string_arg("toLower", args, 0, 1)?.to_lowercase()))
}

fn to_upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(string_arg("toUpper", args, 0, 1)?.to_uppercase()))
}

fn trim_space(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(string_arg("trimSpace", args, 0, 1)?.trim().to_string()))
}

/// `contains NEEDLE TEXT`.
fn contains(args: &[Value]) -> Result<Value, FuncError> {
    let needle = string_arg("contains", args, 0, 2)?;
    let text = string_arg("contains", args, 1, 2)?;
    Ok(Value::Bool(text.contains(&needle)))
}

/// The current time in RFC 3339, UTC, to the second.
fn timestamp(args: &[Value]) -> Result<Value, FuncError> {
    if !args.is_empty() {
        return Err(FuncError::ExactlyXArgs("timestamp".into(), 0));
    }
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    Ok(Value::String(format_rfc3339(seconds)))
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (civil calendar from
/// days, proleptic Gregorian).
fn format_rfc3339(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(data: &str, dest: &str) -> types::Template {
        types::Template {
            embedded_tmpl: data.to_string(),
            dest_path: dest.to_string(),
            change_mode: "restart".to_string(),
            ..types::Template::default()
        }
    }

    fn task_dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let sandbox = dir.path().join("alloc-id");
        let task_dir = sandbox.join("web");
        std::fs::create_dir_all(task_dir.join("local")).expect("task dir");
        std::fs::create_dir_all(sandbox.join("alloc")).expect("shared dir");
        (dir, sandbox, task_dir)
    }

    fn env() -> BTreeMap<String, String> {
        BTreeMap::from([("NOMAD_TASK_NAME".to_string(), "web".to_string())])
    }

    #[test]
    fn functions_render_as_in_nomad() {
        let (_dir, sandbox, task_dir) = task_dirs();
        std::fs::write(
            sandbox.join("alloc/input.json"),
            r#"{"port": 8080, "names": ["a", "b"]}"#,
        )
        .expect("write");
        let text = r#"task={{ env "NOMAD_TASK_NAME" }} missing=[{{ env "NOPE" }}]
{{ with $c := file "../alloc/input.json" | parseJSON }}port={{ $c.port }} names={{ $c.names | join "," }}{{ end }}
{{ range $i, $p := "x:y" | split ":" }}{{ $i }}{{ $p }} {{ end }}
{{ "hello" | base64Encode }} {{ "aGVsbG8=" | base64Decode }} {{ "A-b" | toLower }} {{ "a" | toUpper }}
{{ "a.b.c" | replaceAll "." "/" }} {{ "  t  " | trimSpace }} {{ if "needle hay" | contains "needle" }}yes{{ end }}
{{ "x" | toJSON }}"#;
        let output = render_text(text, &env(), &sandbox, &task_dir, None).unwrap_or_else(|_| panic!("renders"));
        assert_eq!(
            output,
            "task=web missing=[]\nport=8080 names=a,b\n0x 1y \naGVsbG8= hello a-b A\na/b/c t yes\n\"x\""
        );
    }

    #[test]
    fn service_functions_list_healthy_instances_and_follow_the_catalog() {
        let (_dir, sandbox, task_dir) = task_dirs();
        let instance = |id: &str, port: u16, tags: &[&str], status: &str, namespace: &str| ServiceRegistration {
            id: id.into(),
            service_name: "web".into(),
            namespace: namespace.into(),
            address: "127.0.0.1".into(),
            port,
            tags: tags.iter().map(|tag| (*tag).to_string()).collect(),
            checks: vec![types::CheckResult {
                name: "c".into(),
                status: status.into(),
                ..types::CheckResult::default()
            }],
            ..ServiceRegistration::default()
        };
        let catalog = crate::services::ServiceCatalog::default();
        catalog.set(vec![
            instance("a", 8001, &["v1"], "passing", "default"),
            instance("b", 8002, &["v2"], "passing", "default"),
            instance("c", 8003, &["v1"], "critical", "default"),
            instance("d", 9000, &[], "passing", "prod"),
        ]);
        let spec = template(
            "{{ range nomadService \"web\" }}{{ .Address }}:{{ .Port }} {{ end }}|\
{{ range nomadService \"v1.web\" }}{{ .Port }}{{ end }}|\
{{ range nomadService \"web@prod\" }}{{ .Port }}{{ end }}|\
{{ range nomadService 1 \"key\" \"web\" }}one{{ end }}|\
{{ range nomadServices }}{{ .Name }}={{ join \",\" .Tags }}{{ end }}",
            "local/out",
        );
        let mut templates = TaskTemplates::new(&[spec], &sandbox, &task_dir, env())
            .expect("prepares")
            .with_services(catalog.clone(), "default".into());
        templates.render().expect("renders");
        let out = || std::fs::read_to_string(task_dir.join("local/out")).expect("output");
        assert_eq!(out(), "127.0.0.1:8001 127.0.0.1:8002 |8001|9000|one|web=v1,v2");
        // An instance failing its check leaves the output on the next render.
        catalog.set(vec![
            instance("a", 8001, &["v1"], "critical", "default"),
            instance("b", 8002, &["v2"], "passing", "default"),
        ]);
        let rendered = templates.render().expect("renders");
        assert_eq!(rendered.changed, [0]);
        assert_eq!(out(), "127.0.0.1:8002 |||one|web=v1,v2");
        // Bad arguments are render errors, not panics.
        let mut bad = TaskTemplates::new(
            &[template("{{ nomadService 0 \"k\" \"web\" }}", "local/bad")],
            &sandbox,
            &task_dir,
            env(),
        )
        .expect("prepares")
        .with_services(catalog, "default".into());
        assert!(bad.render().is_err());
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_709_294_400), "2024-03-01T12:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn renders_files_with_perms_and_reports_changes() {
        use std::os::unix::fs::PermissionsExt as _;
        let (_dir, sandbox, task_dir) = task_dirs();
        let mut spec = template("value={{ file \"../alloc/value\" }}", "local/app.conf");
        spec.perms = "600".to_string();
        let mut templates = TaskTemplates::new(&[spec], &sandbox, &task_dir, env()).expect("prepares");
        // The input is missing: the render waits for it.
        assert_eq!(
            templates.render(),
            Err(RenderTemplateError::Missing(sandbox.join("alloc/value")))
        );
        std::fs::write(sandbox.join("alloc/value"), "1").expect("write");
        assert_eq!(templates.render(), Ok(Rendered::default()));
        let dest = task_dir.join("local/app.conf");
        assert_eq!(std::fs::read_to_string(&dest).expect("rendered"), "value=1");
        let mode = std::fs::metadata(&dest).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Same input: nothing changed.
        assert_eq!(templates.render(), Ok(Rendered::default()));
        std::fs::write(sandbox.join("alloc/value"), "2").expect("write");
        let rendered = templates.render().expect("renders");
        assert_eq!(rendered.changed, vec![0]);
        assert_eq!(templates.action(&rendered), ChangeAction::Restart);
        assert_eq!(std::fs::read_to_string(&dest).expect("rendered"), "value=2");
    }

    #[test]
    fn env_templates_set_variables() {
        let (_dir, sandbox, task_dir) = task_dirs();
        let mut spec = template(
            "# comment\nGREETING=hello {{ env \"NOMAD_TASK_NAME\" }}\n\nexport QUOTED=\"x y\"\n",
            "secrets/app.env",
        );
        spec.env = true;
        let mut templates = TaskTemplates::new(&[spec], &sandbox, &task_dir, env()).expect("prepares");
        templates.render().expect("renders");
        assert_eq!(
            templates.env_vars(),
            BTreeMap::from([
                ("GREETING".to_string(), "hello web".to_string()),
                ("QUOTED".to_string(), "x y".to_string())
            ])
        );
        assert!(parse_env("no equals sign").is_err());
        let many: String = (0..=MAX_ENV_VARS).map(|n| format!("K{n}=v\n")).collect();
        assert!(parse_env(&many).expect_err("too many").contains("more than"));
    }

    #[test]
    fn paths_cannot_leave_the_allocation_directory() {
        let (dir, sandbox, task_dir) = task_dirs();
        let escape = TaskTemplates::new(&[template("x", "../../outside")], &sandbox, &task_dir, env());
        assert!(matches!(escape, Err(RenderTemplateError::Failed { .. })), "{escape:?}");
        // A leading slash is still inside the task directory.
        let mut inside = TaskTemplates::new(&[template("x", "/local/abs")], &sandbox, &task_dir, env()).expect("ok");
        inside.render().expect("renders");
        assert!(task_dir.join("local/abs").exists());
        // A symlink planted by the task does not lead the write outside.
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).expect("outside dir");
        std::os::unix::fs::symlink(&outside, task_dir.join("local/link")).expect("symlink");
        let mut through =
            TaskTemplates::new(&[template("x", "local/link/file")], &sandbox, &task_dir, env()).expect("ok");
        assert!(matches!(through.render(), Err(RenderTemplateError::Failed { .. })));
        assert!(!outside.join("file").exists());
        // Nor does `file` read through one.
        std::fs::write(outside.join("secret"), "s3cret").expect("write");
        let mut reader = TaskTemplates::new(
            &[template("{{ file \"local/link/secret\" }}", "local/out")],
            &sandbox,
            &task_dir,
            env(),
        )
        .expect("ok");
        let error = reader.render().expect_err("refused");
        assert!(error.to_string().contains("leaves the allocation directory"), "{error}");
    }

    #[test]
    fn output_and_input_sizes_are_bounded() {
        let (_dir, sandbox, task_dir) = task_dirs();
        std::fs::write(sandbox.join("alloc/big"), "x".repeat(MAX_FILE_READ_BYTES as usize + 1)).expect("write");
        let mut big_read = TaskTemplates::new(
            &[template("{{ file \"../alloc/big\" }}", "local/o")],
            &sandbox,
            &task_dir,
            env(),
        )
        .expect("ok");
        assert!(
            big_read
                .render()
                .expect_err("too big")
                .to_string()
                .contains("larger than")
        );
        // A range over a large list multiplies the output.
        std::fs::write(sandbox.join("alloc/list"), format!("[{}1]", "1,".repeat(100_000))).expect("write");
        let text = "{{ range file \"../alloc/list\" | parseJSON }}0123456789012345678901234567890123456789012345678901234567890123{{ end }}";
        let mut big_out = TaskTemplates::new(&[template(text, "local/o")], &sandbox, &task_dir, env()).expect("ok");
        let error = big_out.render().expect_err("too big");
        assert!(error.to_string().contains("output is larger"), "{error}");
        let mut big_text = TaskTemplates::new(
            &[template(&"x".repeat(MAX_TEMPLATE_BYTES + 1), "local/o")],
            &sandbox,
            &task_dir,
            env(),
        )
        .expect("ok");
        assert!(big_text.render().is_err());
        let mut bad = TaskTemplates::new(&[template("{{ nope }}", "local/o")], &sandbox, &task_dir, env()).expect("ok");
        assert!(
            bad.render()
                .expect_err("parse error")
                .to_string()
                .contains("template 0")
        );
    }
}
