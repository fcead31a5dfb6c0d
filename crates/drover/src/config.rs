//! The agent's configuration: Nomad's agent configuration file (HCL) for
//! the keys Drover supports, merged with command-line flags (flags win).
//!
//! Every key Drover does not carry out is an error naming the key and its
//! `file:line:column`, never silently ignored. Several files merge in
//! order: later scalars win, lists append, maps merge.

use hcl_edit::Span as _;
use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::{Body, Structure};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// What one or more configuration files said. `None` and empty mean
/// "not set".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub name: Option<String>,
    pub region: Option<String>,
    pub datacenter: Option<String>,
    pub bind_addr: Option<String>,
    pub log_level: Option<String>,
    pub advertise_http: Option<String>,
    pub advertise_rpc: Option<String>,
    pub http_port: Option<u16>,
    pub rpc_port: Option<u16>,
    pub server: ServerBlock,
    pub client: ClientBlock,
    pub acl: AclBlock,
    pub tls: TlsBlock,
    pub dns: DnsBlock,
}

/// The `dns { }` block (Drover's own: the DNS server for services).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DnsBlock {
    pub enabled: Option<bool>,
    pub addr: Option<String>,
    pub domain: Option<String>,
}

/// The `tls { }` block.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsBlock {
    pub http: Option<bool>,
    pub rpc: Option<bool>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub verify_server_hostname: Option<bool>,
    pub verify_https_client: Option<bool>,
}

/// The `acl { }` block.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AclBlock {
    pub enabled: Option<bool>,
    pub token_min_expiration_ttl: Option<Duration>,
    pub token_max_expiration_ttl: Option<Duration>,
}

/// The `server { }` block.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerBlock {
    pub enabled: Option<bool>,
    pub bootstrap_expect: Option<u32>,
    pub retry_join: Vec<String>,
    pub num_schedulers: Option<usize>,
    pub heartbeat_grace: Option<Duration>,
    pub min_heartbeat_ttl: Option<Duration>,
    pub max_heartbeats_per_second: Option<f64>,
    pub failover_heartbeat_ttl: Option<Duration>,
}

/// The `client { }` block.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientBlock {
    pub enabled: Option<bool>,
    pub servers: Vec<String>,
    pub node_class: Option<String>,
    pub node_pool: Option<String>,
    pub meta: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub reserved: Reserved,
    /// `host_volume "name" { path, read_only }`.
    pub host_volumes: BTreeMap<String, types::HostVolume>,
    pub gc_interval: Option<Duration>,
    pub gc_max_allocs: Option<i64>,
    pub gc_disk_usage_threshold: Option<i64>,
    pub gc_inode_usage_threshold: Option<i64>,
}

/// `client { reserved { } }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reserved {
    pub cpu: Option<i64>,
    pub memory: Option<i64>,
    pub disk: Option<i64>,
    pub reserved_ports: Option<String>,
}

/// Client `options` keys Drover carries out.
pub const CLIENT_OPTIONS: &[&str] = &["driver.allowlist", "driver.denylist"];

/// Keys of Nomad's agent configuration that Drover knows but does not
/// carry out, with the reason given to the user.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "ports.serf",
        "Drover has no serf port: servers gossip over the RPC port",
    ),
    (
        "advertise.serf",
        "Drover has no serf port: servers gossip over the RPC port",
    ),
    ("server.retry_join", "use server_join { retry_join = [...] }"),
];

/// A configuration error with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A literal value from the file, with where it was written.
#[derive(Debug, Clone)]
enum Value {
    String(String),
    Number(f64),
    Bool(bool),
    List(Vec<Value>),
    Map(Vec<(String, Value)>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a bool",
            Value::List(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

/// Where something was written: a byte range of the file.
type Span = Option<std::ops::Range<usize>>;

struct Reader<'a> {
    file: &'a str,
    source: &'a str,
    errors: Vec<ConfigError>,
    /// The label of the block being walked, for the few blocks that take
    /// one (`host_volume "name"`).
    label: Option<String>,
}

/// Blocks that take exactly one label.
const LABELED_BLOCKS: &[&str] = &["host_volume"];

impl Reader<'_> {
    fn error(&mut self, span: Option<std::ops::Range<usize>>, message: impl Into<String>) {
        let offset = span.map(|span| span.start).unwrap_or(0).min(self.source.len());
        let before = &self.source[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map(|text| text.chars().count()).unwrap_or(0) + 1;
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        });
    }

    fn literal(&mut self, expr: &Expression, path: &str) -> Option<Value> {
        Some(match expr {
            Expression::String(text) => Value::String(text.value().to_string()),
            Expression::Number(number) => Value::Number(number.value().as_f64().unwrap_or(f64::NAN)),
            Expression::Bool(value) => Value::Bool(*value.value()),
            Expression::Array(items) => {
                let mut values = Vec::new();
                for item in items.iter() {
                    values.push(self.literal(item, path)?);
                }
                Value::List(values)
            }
            Expression::Object(object) => {
                let mut entries = Vec::new();
                for (key, value) in object.iter() {
                    let key = match key {
                        ObjectKey::Ident(ident) => ident.as_str().to_string(),
                        ObjectKey::Expression(Expression::String(text)) => text.value().to_string(),
                        ObjectKey::Expression(_) => {
                            self.error(expr.span(), format!("{path}: map keys must be names or strings"));
                            return None;
                        }
                    };
                    entries.push((key, self.literal(value.expr(), path)?));
                }
                Value::Map(entries)
            }
            Expression::StringTemplate(template) if template.iter().all(|element| element.is_literal()) => {
                let mut text = String::new();
                for element in template.iter() {
                    if let hcl_edit::template::Element::Literal(literal) = element {
                        text.push_str(literal.value());
                    }
                }
                Value::String(text)
            }
            _ => {
                self.error(
                    expr.span(),
                    format!("{path}: only literal values (strings, numbers, bools, lists, maps) are supported in agent configuration"),
                );
                return None;
            }
        })
    }

    fn string(&mut self, value: Value, span: Option<std::ops::Range<usize>>, path: &str) -> Option<String> {
        match value {
            Value::String(text) => Some(text),
            other => {
                self.error(span, format!("{path} must be a string, not {}", other.kind()));
                None
            }
        }
    }

    fn bool(&mut self, value: Value, span: Option<std::ops::Range<usize>>, path: &str) -> Option<bool> {
        match value {
            Value::Bool(flag) => Some(flag),
            other => {
                self.error(span, format!("{path} must be a bool, not {}", other.kind()));
                None
            }
        }
    }

    fn integer(&mut self, value: Value, span: Option<std::ops::Range<usize>>, path: &str, max: f64) -> Option<i64> {
        match value {
            Value::Number(number) if number.fract() == 0.0 && (0.0..=max).contains(&number) => Some(number as i64),
            Value::Number(number) => {
                self.error(
                    span,
                    format!("{path} must be a whole number from 0 to {max}, not {number}"),
                );
                None
            }
            other => {
                self.error(span, format!("{path} must be a number, not {}", other.kind()));
                None
            }
        }
    }

    fn duration(&mut self, value: Value, span: Option<std::ops::Range<usize>>, path: &str) -> Option<Duration> {
        let text = self.string(value, span.clone(), path)?;
        match types::duration::parse_duration(&text) {
            Ok(duration) => Some(duration),
            Err(error) => {
                self.error(span, format!("{path}: {error}"));
                None
            }
        }
    }

    fn strings(&mut self, value: Value, span: Option<std::ops::Range<usize>>, path: &str) -> Option<Vec<String>> {
        match value {
            Value::List(items) => {
                let mut out = Vec::new();
                for item in items {
                    out.push(self.string(item, span.clone(), path)?);
                }
                Some(out)
            }
            other => {
                self.error(span, format!("{path} must be a list of strings, not {}", other.kind()));
                None
            }
        }
    }

    fn string_map(
        &mut self,
        value: Value,
        span: Option<std::ops::Range<usize>>,
        path: &str,
    ) -> Option<BTreeMap<String, String>> {
        match value {
            Value::Map(entries) => {
                let mut out = BTreeMap::new();
                for (key, value) in entries {
                    let text = match value {
                        Value::String(text) => text,
                        Value::Number(number) => number.to_string(),
                        Value::Bool(flag) => flag.to_string(),
                        other => {
                            self.error(
                                span.clone(),
                                format!("{path}.{key} must be a string, not {}", other.kind()),
                            );
                            return None;
                        }
                    };
                    out.insert(key, text);
                }
                Some(out)
            }
            other => {
                self.error(span, format!("{path} must be a map, not {}", other.kind()));
                None
            }
        }
    }

    /// Calls `each(key, value, span)` for every attribute of `body`, and
    /// `block(name, body, span)` for every block; rejects labels.
    fn walk(
        &mut self,
        body: &Body,
        prefix: &str,
        each: &mut dyn FnMut(&mut Self, &str, Value, Span),
        block: &mut dyn FnMut(&mut Self, &str, &Body, Span),
    ) {
        for structure in body.iter() {
            match structure {
                Structure::Attribute(attribute) => {
                    let key = attribute.key.as_str().to_string();
                    let path = join(prefix, &key);
                    if let Some(value) = self.literal(&attribute.value, &path) {
                        each(self, &key, value, attribute.span());
                    }
                }
                Structure::Block(found) => {
                    let name = found.ident.as_str().to_string();
                    if LABELED_BLOCKS.contains(&name.as_str()) {
                        match found.labels.as_slice() {
                            [label] => {
                                self.label = Some(label.as_str().to_string());
                                block(self, &name, &found.body, found.span());
                                self.label = None;
                            }
                            _ => self.error(
                                found.span(),
                                format!("{}: this block takes one label, its name", join(prefix, &name)),
                            ),
                        }
                        continue;
                    }
                    if !found.labels.is_empty() {
                        self.error(
                            found.span(),
                            format!("{}: this block takes no labels", join(prefix, &name)),
                        );
                        continue;
                    }
                    block(self, &name, &found.body, found.span());
                }
            }
        }
    }

    fn unknown(&mut self, span: Option<std::ops::Range<usize>>, path: &str) {
        match UNSUPPORTED.iter().find(|(key, _)| *key == path) {
            Some((_, reason)) => self.error(span, format!("{path} is not supported by Drover: {reason}")),
            None => self.error(span, format!("{path} is not a configuration key Drover supports")),
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Reads one configuration file's text into `into`, returning every error.
pub fn parse_into(source: &str, file: &str, into: &mut FileConfig) -> Result<(), Vec<ConfigError>> {
    let body = match hcl_edit::parser::parse_body(source) {
        Ok(body) => body,
        Err(error) => {
            let location = error.location();
            return Err(vec![ConfigError {
                file: file.to_string(),
                line: location.line(),
                column: location.column(),
                message: format!("syntax error: {}", error.message()),
            }]);
        }
    };
    let mut reader = Reader {
        file,
        source,
        errors: Vec::new(),
        label: None,
    };
    let config = std::cell::RefCell::new(std::mem::take(into));
    reader.walk(
        &body,
        "",
        &mut |reader, key, value, span| {
            let mut config = config.borrow_mut();
            match key {
                "data_dir" => config.data_dir = reader.string(value, span, key).map(PathBuf::from),
                "name" => config.name = reader.string(value, span, key),
                "region" => config.region = reader.string(value, span, key),
                "datacenter" => config.datacenter = reader.string(value, span, key),
                "bind_addr" => config.bind_addr = reader.string(value, span, key),
                "log_level" => config.log_level = reader.string(value, span, key),
                _ => reader.unknown(span, key),
            }
        },
        &mut |reader, name, body, span| match name {
            "ports" => reader.walk(
                body,
                "ports",
                &mut |reader, key, value, span| {
                    let path = join("ports", key);
                    let port = reader
                        .integer(value, span.clone(), &path, 65535.0)
                        .map(|port| port as u16);
                    match key {
                        "http" => config.borrow_mut().http_port = port,
                        "rpc" => config.borrow_mut().rpc_port = port,
                        _ => reader.unknown(span, &path),
                    }
                },
                &mut |reader, name, _, span| reader.unknown(span, &join("ports", name)),
            ),
            "advertise" => reader.walk(
                body,
                "advertise",
                &mut |reader, key, value, span| {
                    let path = join("advertise", key);
                    match key {
                        "http" => config.borrow_mut().advertise_http = reader.string(value, span, &path),
                        "rpc" => config.borrow_mut().advertise_rpc = reader.string(value, span, &path),
                        _ => reader.unknown(span, &path),
                    }
                },
                &mut |reader, name, _, span| reader.unknown(span, &join("advertise", name)),
            ),
            "server" => read_server(reader, body, &mut config.borrow_mut().server),
            "dns" => reader.walk(
                body,
                "dns",
                &mut |reader, key, value, span| {
                    let path = join("dns", key);
                    let mut config = config.borrow_mut();
                    let dns = &mut config.dns;
                    match key {
                        "enabled" => dns.enabled = reader.bool(value, span, &path),
                        "addr" => dns.addr = reader.string(value, span, &path),
                        "domain" => dns.domain = reader.string(value, span, &path),
                        _ => reader.unknown(span, &path),
                    }
                },
                &mut |reader, name, _, span| reader.unknown(span, &join("dns", name)),
            ),
            "tls" => reader.walk(
                body,
                "tls",
                &mut |reader, key, value, span| {
                    let path = join("tls", key);
                    let mut config = config.borrow_mut();
                    let tls = &mut config.tls;
                    match key {
                        "http" => tls.http = reader.bool(value, span, &path),
                        "rpc" => tls.rpc = reader.bool(value, span, &path),
                        "ca_file" => tls.ca_file = reader.string(value, span, &path).map(PathBuf::from),
                        "cert_file" => tls.cert_file = reader.string(value, span, &path).map(PathBuf::from),
                        "key_file" => tls.key_file = reader.string(value, span, &path).map(PathBuf::from),
                        "verify_server_hostname" => tls.verify_server_hostname = reader.bool(value, span, &path),
                        "verify_https_client" => tls.verify_https_client = reader.bool(value, span, &path),
                        _ => reader.unknown(span, &path),
                    }
                },
                &mut |reader, name, _, span| reader.unknown(span, &join("tls", name)),
            ),
            "acl" => reader.walk(
                body,
                "acl",
                &mut |reader, key, value, span| {
                    let path = join("acl", key);
                    let mut config = config.borrow_mut();
                    match key {
                        "enabled" => config.acl.enabled = reader.bool(value, span, &path),
                        "token_min_expiration_ttl" => {
                            config.acl.token_min_expiration_ttl = reader.duration(value, span, &path)
                        }
                        "token_max_expiration_ttl" => {
                            config.acl.token_max_expiration_ttl = reader.duration(value, span, &path)
                        }
                        _ => reader.unknown(span, &path),
                    }
                },
                &mut |reader, name, _, span| reader.unknown(span, &join("acl", name)),
            ),
            "client" => read_client(reader, body, &mut config.borrow_mut().client),
            other => reader.unknown(span, other),
        },
    );
    *into = config.into_inner();
    if reader.errors.is_empty() {
        Ok(())
    } else {
        Err(reader.errors)
    }
}

fn read_server(reader: &mut Reader<'_>, body: &Body, server: &mut ServerBlock) {
    let server = std::cell::RefCell::new(server);
    reader.walk(
        body,
        "server",
        &mut |reader, key, value, span| {
            let path = join("server", key);
            let mut server = server.borrow_mut();
            match key {
                "enabled" => server.enabled = reader.bool(value, span, &path),
                "bootstrap_expect" => {
                    server.bootstrap_expect = reader.integer(value, span, &path, 9.0).map(|count| count as u32)
                }
                "num_schedulers" => {
                    server.num_schedulers = reader.integer(value, span, &path, 64.0).map(|count| count as usize)
                }
                "heartbeat_grace" => server.heartbeat_grace = reader.duration(value, span, &path),
                "min_heartbeat_ttl" => server.min_heartbeat_ttl = reader.duration(value, span, &path),
                "failover_heartbeat_ttl" => server.failover_heartbeat_ttl = reader.duration(value, span, &path),
                "max_heartbeats_per_second" => match value {
                    Value::Number(number) if number > 0.0 && number.is_finite() => {
                        server.max_heartbeats_per_second = Some(number)
                    }
                    _ => reader.error(span, format!("{path} must be a positive number")),
                },
                _ => reader.unknown(span, &path),
            }
        },
        &mut |reader, name, body, span| match name {
            "server_join" => reader.walk(
                body,
                "server.server_join",
                &mut |reader, key, value, span| {
                    let path = join("server.server_join", key);
                    match key {
                        "retry_join" => {
                            if let Some(addrs) = reader.strings(value, span, &path) {
                                server.borrow_mut().retry_join.extend(addrs);
                            }
                        }
                        _ => reader.unknown(span, &path),
                    }
                },
                &mut |reader, name, _, span| reader.unknown(span, &join("server.server_join", name)),
            ),
            other => reader.unknown(span, &join("server", other)),
        },
    );
}

/// Adds a `meta` or `options` map to the client block; option keys are
/// checked against what Drover carries out.
fn merge_client_map(
    reader: &mut Reader<'_>,
    client: &mut ClientBlock,
    name: &str,
    map: BTreeMap<String, String>,
    span: Option<std::ops::Range<usize>>,
) {
    if name == "meta" {
        client.meta.extend(map);
        return;
    }
    for option in map.keys() {
        if !CLIENT_OPTIONS.contains(&option.as_str()) {
            reader.error(
                span.clone(),
                format!(
                    "client.options.{option} is not supported by Drover (supported: {})",
                    CLIENT_OPTIONS.join(", ")
                ),
            );
        }
    }
    client.options.extend(map);
}

fn read_client(reader: &mut Reader<'_>, body: &Body, client: &mut ClientBlock) {
    let client = std::cell::RefCell::new(client);
    reader.walk(
        body,
        "client",
        &mut |reader, key, value, span| {
            let path = join("client", key);
            let mut client = client.borrow_mut();
            match key {
                "enabled" => client.enabled = reader.bool(value, span, &path),
                "servers" => {
                    if let Some(servers) = reader.strings(value, span, &path) {
                        client.servers.extend(servers);
                    }
                }
                "node_class" => client.node_class = reader.string(value, span, &path),
                "gc_interval" => client.gc_interval = reader.duration(value, span, &path),
                "gc_max_allocs" => client.gc_max_allocs = reader.integer(value, span, &path, 1e6),
                "gc_disk_usage_threshold" => client.gc_disk_usage_threshold = reader.integer(value, span, &path, 100.0),
                "gc_inode_usage_threshold" => {
                    client.gc_inode_usage_threshold = reader.integer(value, span, &path, 100.0)
                }
                "node_pool" => client.node_pool = reader.string(value, span, &path),
                "meta" | "options" => {
                    if let Some(map) = reader.string_map(value, span.clone(), &path) {
                        merge_client_map(reader, &mut client, key, map, span);
                    }
                }
                _ => reader.unknown(span, &path),
            }
        },
        &mut |reader, name, body, span| match name {
            "meta" | "options" => {
                // Written as a block: `meta { key = "value" }`.
                let mut entries = Vec::new();
                reader.walk(
                    body,
                    &join("client", name),
                    &mut |_, key, value, _| entries.push((key.to_string(), value)),
                    &mut |reader, inner, _, span| reader.unknown(span, &format!("client.{name}.{inner}")),
                );
                let path = join("client", name);
                if let Some(map) = reader.string_map(Value::Map(entries), span.clone(), &path) {
                    merge_client_map(reader, &mut client.borrow_mut(), name, map, span);
                }
            }
            "host_volume" => {
                let label = reader.label.clone().unwrap_or_default();
                let prefix = format!("client.host_volume.{label}");
                let volume = std::cell::RefCell::new(types::HostVolume::default());
                reader.walk(
                    body,
                    &prefix,
                    &mut |reader, key, value, span| {
                        let path = join(&prefix, key);
                        match key {
                            "path" => volume.borrow_mut().path = reader.string(value, span, &path).unwrap_or_default(),
                            "read_only" => {
                                volume.borrow_mut().read_only = reader.bool(value, span, &path).unwrap_or(false)
                            }
                            _ => reader.unknown(span, &path),
                        }
                    },
                    &mut |reader, inner, _, span| reader.unknown(span, &join(&prefix, inner)),
                );
                let volume = volume.into_inner();
                if !volume.path.starts_with('/') {
                    reader.error(span, format!("{prefix}.path must be an absolute path"));
                } else if client.borrow_mut().host_volumes.insert(label.clone(), volume).is_some() {
                    reader.error(span, format!("client.host_volume {label:?} is defined twice"));
                }
            }
            "reserved" => reader.walk(
                body,
                "client.reserved",
                &mut |reader, key, value, span| {
                    let path = join("client.reserved", key);
                    let mut client = client.borrow_mut();
                    let reserved = &mut client.reserved;
                    match key {
                        "cpu" => reserved.cpu = reader.integer(value, span, &path, 1e9),
                        "memory" => reserved.memory = reader.integer(value, span, &path, 1e9),
                        "disk" => reserved.disk = reader.integer(value, span, &path, 1e12),
                        "reserved_ports" => reserved.reserved_ports = reader.string(value, span, &path),
                        _ => reader.unknown(span, &path),
                    }
                },
                &mut |reader, inner, _, span| reader.unknown(span, &join("client.reserved", inner)),
            ),
            other => reader.unknown(span, &join("client", other)),
        },
    );
}

/// Reads and merges configuration files in order.
pub fn load_files(paths: &[PathBuf]) -> anyhow::Result<FileConfig> {
    let mut config = FileConfig::default();
    for path in paths {
        let source = std::fs::read_to_string(path)
            .map_err(|error| anyhow::anyhow!("read config file {}: {error}", path.display()))?;
        if let Err(errors) = parse_into(&source, &path.display().to_string(), &mut config) {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow::bail!("invalid agent configuration:\n{}", lines.join("\n"));
        }
    }
    Ok(config)
}

/// Parses Nomad's port list (`"22,80,8000-8100"`).
pub fn parse_ports(text: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        let parse = |text: &str| {
            text.trim()
                .parse::<u16>()
                .map_err(|_| format!("invalid port {text:?} in {part:?}"))
        };
        match part.split_once('-') {
            Some((low, high)) => {
                let (low, high) = (parse(low)?, parse(high)?);
                if low > high {
                    return Err(format!("invalid port range {part:?}"));
                }
                ports.extend(low..=high);
            }
            None => ports.push(parse(part)?),
        }
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(source: &str) -> Result<FileConfig, Vec<ConfigError>> {
        let mut config = FileConfig::default();
        parse_into(source, "agent.hcl", &mut config).map(|()| config)
    }

    #[test]
    fn reads_the_supported_keys() {
        let config = parse(
            r#"
data_dir   = "/var/lib/drover"
name       = "s1"
region     = "eu"
datacenter = "dc2"
bind_addr  = "0.0.0.0"
log_level  = "DEBUG"
ports {
  http = 5646
  rpc  = 5647
}
advertise {
  rpc = "10.0.0.1:5647"
}
server {
  enabled          = true
  bootstrap_expect = 3
  heartbeat_grace  = "5s"
  server_join {
    retry_join = ["10.0.0.2:4647", "10.0.0.3:4647"]
  }
}
client {
  enabled    = true
  servers    = ["10.0.0.1:4647"]
  node_class = "batch"
  node_pool  = "gpu"
  meta {
    rack = "r1"
  }
  options = { "driver.denylist" = "docker" }
  gc_interval             = "30s"
  gc_max_allocs           = 20
  gc_disk_usage_threshold = 90
  host_volume "shared" {
    path      = "/srv/shared"
    read_only = true
  }
  reserved {
    cpu            = 500
    memory         = 256
    reserved_ports = "22,8000-8002"
  }
}
"#,
        )
        .expect("valid");
        assert_eq!(config.data_dir, Some(PathBuf::from("/var/lib/drover")));
        assert_eq!(config.http_port, Some(5646));
        assert_eq!(config.advertise_rpc.as_deref(), Some("10.0.0.1:5647"));
        assert_eq!(config.server.bootstrap_expect, Some(3));
        assert_eq!(config.server.heartbeat_grace, Some(Duration::from_secs(5)));
        assert_eq!(config.server.retry_join, vec!["10.0.0.2:4647", "10.0.0.3:4647"]);
        assert_eq!(config.client.meta.get("rack").map(String::as_str), Some("r1"));
        assert_eq!(
            config.client.options.get("driver.denylist").map(String::as_str),
            Some("docker")
        );
        assert_eq!(config.client.reserved.cpu, Some(500));
        assert_eq!(
            config.client.host_volumes.get("shared"),
            Some(&types::HostVolume {
                path: "/srv/shared".into(),
                read_only: true
            })
        );
        assert_eq!(config.client.gc_max_allocs, Some(20));
        assert_eq!(config.client.gc_interval, Some(Duration::from_secs(30)));
        assert_eq!(config.client.gc_disk_usage_threshold, Some(90));
        assert_eq!(
            parse_ports(config.client.reserved.reserved_ports.as_deref().unwrap_or_default()),
            Ok(vec![22, 8000, 8001, 8002])
        );
    }

    #[test]
    fn unsupported_keys_are_errors_with_their_position() {
        let errors = parse("data_dir = \"/x\"\nenable_syslog = true\nserver {\n  encrypt = \"k\"\n}\nports {\n  serf = 4648\n}\ntelemetry {}\n")
            .expect_err("unsupported keys");
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            vec![
                "agent.hcl:2:1: enable_syslog is not a configuration key Drover supports",
                "agent.hcl:4:3: server.encrypt is not a configuration key Drover supports",
                "agent.hcl:7:3: ports.serf is not supported by Drover: Drover has no serf port: servers gossip over the RPC port",
                "agent.hcl:9:1: telemetry is not a configuration key Drover supports",
            ]
        );
    }

    #[test]
    fn dns_block() {
        let config = parse("dns {\n  addr = \"127.0.0.1:8653\"\n  domain = \"cluster.local\"\n  enabled = true\n}\n")
            .expect("valid dns block");
        assert_eq!(config.dns.addr.as_deref(), Some("127.0.0.1:8653"));
        assert_eq!(config.dns.domain.as_deref(), Some("cluster.local"));
        assert_eq!(config.dns.enabled, Some(true));
        let errors = parse("dns {\n  recursors = [\"8.8.8.8\"]\n}\n").expect_err("unknown key");
        assert!(errors[0].to_string().contains("dns.recursors"), "{}", errors[0]);
    }

    #[test]
    fn tls_block() {
        let config = parse(
            "tls {\n  http = false\n  rpc = true\n  ca_file = \"ca.pem\"\n  cert_file = \"c.pem\"\n  key_file = \"k.pem\"\n  verify_server_hostname = true\n  verify_https_client = false\n}\n",
        )
        .expect("valid tls block");
        assert_eq!(config.tls.rpc, Some(true));
        assert_eq!(config.tls.ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(config.tls.verify_server_hostname, Some(true));
        let errors = parse("tls {\n  rpc_upgrade_mode = true\n}\n").expect_err("unknown key");
        assert!(errors[0].to_string().contains("tls.rpc_upgrade_mode"), "{}", errors[0]);
    }

    #[test]
    fn acl_block() {
        let config = parse(
            "acl {\n  enabled = true\n  token_min_expiration_ttl = \"1s\"\n  token_max_expiration_ttl = \"2h\"\n}\n",
        )
        .expect("valid acl block");
        assert_eq!(config.acl.enabled, Some(true));
        assert_eq!(config.acl.token_min_expiration_ttl, Some(Duration::from_secs(1)));
        assert_eq!(config.acl.token_max_expiration_ttl, Some(Duration::from_secs(7200)));
        let errors = parse("acl {\n  enabled = true\n  replication_token = \"x\"\n}\n").expect_err("unknown key");
        assert_eq!(
            errors[0].to_string(),
            "agent.hcl:3:3: acl.replication_token is not a configuration key Drover supports"
        );
    }

    #[test]
    fn wrong_types_and_expressions_are_errors() {
        let errors = parse("server {\n  bootstrap_expect = \"three\"\n}\nname = upper(\"x\")\nclient {\n  options = { \"driver.raw_exec.enable\" = \"1\" }\n}\n")
            .expect_err("bad values");
        let messages: Vec<&str> = errors.iter().map(|error| error.message.as_str()).collect();
        assert!(
            messages[0].contains("server.bootstrap_expect must be a number"),
            "{messages:?}"
        );
        assert!(messages[1].contains("only literal values"), "{messages:?}");
        assert!(
            messages[2].contains("client.options.driver.raw_exec.enable is not supported"),
            "{messages:?}"
        );
        let syntax = parse("server {").expect_err("syntax");
        assert!(syntax[0].message.starts_with("syntax error"), "{syntax:?}");
    }

    #[test]
    fn later_files_override_scalars_and_append_lists() {
        let mut config = FileConfig::default();
        parse_into(
            "name = \"a\"\nclient {\n  servers = [\"x:1\"]\n}\n",
            "one.hcl",
            &mut config,
        )
        .expect("one");
        parse_into(
            "name = \"b\"\nclient {\n  servers = [\"y:2\"]\n}\n",
            "two.hcl",
            &mut config,
        )
        .expect("two");
        assert_eq!(config.name.as_deref(), Some("b"));
        assert_eq!(config.client.servers, vec!["x:1", "y:2"]);
    }

    #[test]
    fn port_lists_are_checked() {
        assert_eq!(parse_ports(""), Ok(vec![]));
        assert!(parse_ports("9-1").is_err());
        assert!(parse_ports("70000").is_err());
        assert!(parse_ports("a").is_err());
    }
}
