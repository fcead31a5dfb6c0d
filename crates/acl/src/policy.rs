//! Nomad's ACL policy language, parsed from HCL: `namespace "<glob>"`
//! rules with a `policy`, `capabilities` and `variables { path "<glob>" }`
//! rules; `node`, `agent`, `operator`, `quota` and `plugin` rules with a
//! `policy`; `host_volume "<glob>"` rules. Every unknown block, attribute,
//! policy or capability is an error with its line and column, so a typo
//! never grants or withholds silently.

use hcl_edit::Span as _;
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Body, Structure};

/// Most rules one policy may hold (namespace, host volume and variable
/// path rules together).
pub const MAX_RULES: usize = 1_000;

/// Deepest nesting of `{`, `[` and `(` a policy may have. The language
/// needs four (`namespace { variables { path { capabilities = [ ] } } }`);
/// the HCL parser backtracks exponentially on deep unclosed nesting (a
/// 1 KB input took over 20 s), so deeper text is refused before it.
pub const MAX_NESTING: usize = 8;

/// The deepest bracket nesting in `source`, outside strings and comments.
fn nesting_depth(source: &str) -> usize {
    let bytes = source.as_bytes();
    let (mut depth, mut deepest, mut at) = (0usize, 0usize, 0usize);
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                at += 1;
                while at < bytes.len() && bytes[at] != b'"' {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
            }
            b'#' => {
                while at < bytes.len() && bytes[at] != b'\n' {
                    at += 1;
                }
            }
            b'/' if bytes.get(at + 1) == Some(&b'/') => {
                while at < bytes.len() && bytes[at] != b'\n' {
                    at += 1;
                }
            }
            b'/' if bytes.get(at + 1) == Some(&b'*') => {
                at += 2;
                while at + 1 < bytes.len() && !(bytes[at] == b'*' && bytes[at + 1] == b'/') {
                    at += 1;
                }
                at += 1;
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    deepest
}

/// A parse or validation error, with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct PolicyError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// One `namespace "<name>"` rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamespaceRule {
    /// A namespace name or a glob with `*`.
    pub name: String,
    pub policy: Option<String>,
    pub capabilities: Vec<String>,
    pub variables: Vec<VariablesPathRule>,
}

/// One `variables { path "<glob>" { capabilities = [...] } }` rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VariablesPathRule {
    pub path: String,
    pub capabilities: Vec<String>,
}

/// One `host_volume "<name>"` rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostVolumeRule {
    pub name: String,
    pub policy: Option<String>,
    pub capabilities: Vec<String>,
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    pub namespaces: Vec<NamespaceRule>,
    pub host_volumes: Vec<HostVolumeRule>,
    pub node: Option<String>,
    pub agent: Option<String>,
    pub operator: Option<String>,
    pub quota: Option<String>,
    pub plugin: Option<String>,
}

/// Every capability a namespace rule may list.
pub const NAMESPACE_CAPABILITIES: &[&str] = &[
    "deny",
    "list-jobs",
    "parse-job",
    "read-job",
    "submit-job",
    "dispatch-job",
    "read-logs",
    "read-fs",
    "alloc-exec",
    "alloc-node-exec",
    "alloc-lifecycle",
    "csi-register-plugin",
    "csi-write-volume",
    "csi-read-volume",
    "csi-list-volume",
    "csi-mount-volume",
    "list-scaling-policies",
    "read-scaling-policy",
    "read-job-scaling",
    "scale-job",
    "submit-recommendation",
    "sentinel-override",
    "host-volume-read",
    "host-volume-register",
    "host-volume-write",
    "host-volume-create",
    "host-volume-delete",
];

const NAMESPACE_READ: &[&str] = &[
    "list-jobs",
    "parse-job",
    "read-job",
    "csi-list-volume",
    "csi-read-volume",
    "read-job-scaling",
    "list-scaling-policies",
    "read-scaling-policy",
    "host-volume-read",
];
const NAMESPACE_SCALE: &[&str] = &[
    "list-scaling-policies",
    "read-scaling-policy",
    "read-job-scaling",
    "scale-job",
];
const NAMESPACE_WRITE_EXTRA: &[&str] = &[
    "submit-job",
    "dispatch-job",
    "read-logs",
    "read-fs",
    "alloc-exec",
    "alloc-lifecycle",
    "csi-mount-volume",
    "csi-write-volume",
    "submit-recommendation",
    "host-volume-create",
];

/// The capabilities a namespace `policy` stands for (Nomad's expansion).
pub fn namespace_capabilities(policy: &str) -> Vec<&'static str> {
    match policy {
        "deny" => vec!["deny"],
        "read" => NAMESPACE_READ.to_vec(),
        "scale" => NAMESPACE_SCALE.to_vec(),
        "write" => {
            let mut all: Vec<&'static str> = NAMESPACE_READ.to_vec();
            all.extend_from_slice(NAMESPACE_SCALE);
            all.extend_from_slice(NAMESPACE_WRITE_EXTRA);
            all.sort_unstable();
            all.dedup();
            all
        }
        _ => Vec::new(),
    }
}

const NAMESPACE_POLICIES: &[&str] = &["deny", "read", "write", "scale"];
const COARSE_POLICIES: &[&str] = &["deny", "read", "write"];
const PLUGIN_POLICIES: &[&str] = &["deny", "read", "list"];
const HOST_VOLUME_CAPABILITIES: &[&str] = &["deny", "mount-readonly", "mount-readwrite"];
/// Every capability a variables path rule may list.
pub const VARIABLE_CAPABILITIES: &[&str] = &["deny", "read", "list", "write", "destroy"];

struct Reader<'a> {
    source: &'a str,
    errors: Vec<PolicyError>,
    rules: usize,
}

type Span = Option<std::ops::Range<usize>>;

impl Reader<'_> {
    fn error(&mut self, span: Span, message: impl Into<String>) {
        let offset = span.map(|span| span.start).unwrap_or(0).min(self.source.len());
        let before = &self.source[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map(|text| text.chars().count()).unwrap_or(0) + 1;
        self.errors.push(PolicyError {
            line,
            column,
            message: message.into(),
        });
    }

    fn count_rule(&mut self, span: Span) -> bool {
        self.rules += 1;
        if self.rules > MAX_RULES {
            if self.rules == MAX_RULES + 1 {
                self.error(span, format!("a policy may hold at most {MAX_RULES} rules"));
            }
            return false;
        }
        true
    }

    fn string(&mut self, expr: &Expression, path: &str) -> Option<String> {
        match expr {
            Expression::String(text) => Some(text.value().to_string()),
            Expression::StringTemplate(template) if template.iter().all(|element| element.is_literal()) => {
                let mut text = String::new();
                for element in template.iter() {
                    if let hcl_edit::template::Element::Literal(literal) = element {
                        text.push_str(literal.value());
                    }
                }
                Some(text)
            }
            _ => {
                self.error(expr.span(), format!("{path} must be a string"));
                None
            }
        }
    }

    fn choice(&mut self, expr: &Expression, path: &str, allowed: &[&str]) -> Option<String> {
        let value = self.string(expr, path)?;
        if allowed.contains(&value.as_str()) {
            Some(value)
        } else {
            self.error(
                expr.span(),
                format!(
                    "{path}: invalid policy {value:?} (expected one of {})",
                    allowed.join(", ")
                ),
            );
            None
        }
    }

    fn capabilities(&mut self, expr: &Expression, path: &str, allowed: &[&str]) -> Vec<String> {
        let Expression::Array(items) = expr else {
            self.error(expr.span(), format!("{path} must be a list of strings"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            let Some(capability) = self.string(item, path) else {
                continue;
            };
            if allowed.contains(&capability.as_str()) {
                out.push(capability);
            } else {
                self.error(item.span(), format!("{path}: invalid capability {capability:?}"));
            }
        }
        out
    }

    fn label(&mut self, block: &hcl_edit::structure::Block, path: &str) -> Option<String> {
        match block.labels.as_slice() {
            [label] => Some(label.as_str().to_string()),
            _ => {
                self.error(block.span(), format!("{path} takes exactly one label"));
                None
            }
        }
    }

    fn no_label(&mut self, block: &hcl_edit::structure::Block, path: &str) -> bool {
        if block.labels.is_empty() {
            true
        } else {
            self.error(block.span(), format!("{path} takes no label"));
            false
        }
    }

    /// A block holding only `policy = "..."`.
    fn coarse(&mut self, body: &Body, path: &str, allowed: &[&str]) -> Option<String> {
        let mut policy = None;
        for structure in body.iter() {
            match structure {
                Structure::Attribute(attribute) if attribute.key.as_str() == "policy" => {
                    policy = self.choice(&attribute.value, &format!("{path}.policy"), allowed);
                }
                Structure::Attribute(attribute) => self.error(
                    attribute.span(),
                    format!("{path}: unknown attribute {:?}", attribute.key.as_str()),
                ),
                Structure::Block(block) => self.error(
                    block.span(),
                    format!("{path}: unknown block {:?}", block.ident.as_str()),
                ),
            }
        }
        policy
    }

    fn namespace(&mut self, name: String, body: &Body) -> NamespaceRule {
        let path = format!("namespace {name:?}");
        let mut rule = NamespaceRule {
            name,
            ..NamespaceRule::default()
        };
        for structure in body.iter() {
            match structure {
                Structure::Attribute(attribute) => match attribute.key.as_str() {
                    "policy" => {
                        rule.policy = self.choice(&attribute.value, &format!("{path}.policy"), NAMESPACE_POLICIES)
                    }
                    "capabilities" => {
                        rule.capabilities = self.capabilities(
                            &attribute.value,
                            &format!("{path}.capabilities"),
                            NAMESPACE_CAPABILITIES,
                        )
                    }
                    other => self.error(attribute.span(), format!("{path}: unknown attribute {other:?}")),
                },
                Structure::Block(block) if block.ident.as_str() == "variables" => {
                    if self.no_label(block, &format!("{path}.variables")) {
                        self.variables(&block.body, &path, &mut rule.variables);
                    }
                }
                Structure::Block(block) => self.error(
                    block.span(),
                    format!("{path}: unknown block {:?}", block.ident.as_str()),
                ),
            }
        }
        rule
    }

    fn variables(&mut self, body: &Body, namespace_path: &str, into: &mut Vec<VariablesPathRule>) {
        let path = format!("{namespace_path}.variables");
        for structure in body.iter() {
            match structure {
                Structure::Block(block) if block.ident.as_str() == "path" => {
                    let Some(label) = self.label(block, &format!("{path}.path")) else {
                        continue;
                    };
                    if !self.count_rule(block.span()) {
                        continue;
                    }
                    let rule_path = format!("{path}.path {label:?}");
                    let mut rule = VariablesPathRule {
                        path: label,
                        capabilities: Vec::new(),
                    };
                    for inner in block.body.iter() {
                        match inner {
                            Structure::Attribute(attribute) if attribute.key.as_str() == "capabilities" => {
                                rule.capabilities = self.capabilities(
                                    &attribute.value,
                                    &format!("{rule_path}.capabilities"),
                                    VARIABLE_CAPABILITIES,
                                );
                            }
                            Structure::Attribute(attribute) => self.error(
                                attribute.span(),
                                format!("{rule_path}: unknown attribute {:?}", attribute.key.as_str()),
                            ),
                            Structure::Block(block) => self.error(
                                block.span(),
                                format!("{rule_path}: unknown block {:?}", block.ident.as_str()),
                            ),
                        }
                    }
                    into.push(rule);
                }
                Structure::Block(block) => self.error(
                    block.span(),
                    format!("{path}: unknown block {:?}", block.ident.as_str()),
                ),
                Structure::Attribute(attribute) => self.error(
                    attribute.span(),
                    format!("{path}: unknown attribute {:?}", attribute.key.as_str()),
                ),
            }
        }
    }

    fn host_volume(&mut self, name: String, body: &Body) -> HostVolumeRule {
        let path = format!("host_volume {name:?}");
        let mut rule = HostVolumeRule {
            name,
            ..HostVolumeRule::default()
        };
        for structure in body.iter() {
            match structure {
                Structure::Attribute(attribute) => match attribute.key.as_str() {
                    "policy" => rule.policy = self.choice(&attribute.value, &format!("{path}.policy"), COARSE_POLICIES),
                    "capabilities" => {
                        rule.capabilities = self.capabilities(
                            &attribute.value,
                            &format!("{path}.capabilities"),
                            HOST_VOLUME_CAPABILITIES,
                        )
                    }
                    other => self.error(attribute.span(), format!("{path}: unknown attribute {other:?}")),
                },
                Structure::Block(block) => self.error(
                    block.span(),
                    format!("{path}: unknown block {:?}", block.ident.as_str()),
                ),
            }
        }
        rule
    }
}

/// Parses a policy's rules. Returns every error found, each with its
/// line and column.
pub fn parse_policy(source: &str) -> Result<Policy, Vec<PolicyError>> {
    if source.len() > types::MAX_POLICY_RULES_BYTES {
        return Err(vec![PolicyError {
            line: 1,
            column: 1,
            message: format!("policy rules are longer than {} bytes", types::MAX_POLICY_RULES_BYTES),
        }]);
    }
    if nesting_depth(source) > MAX_NESTING {
        return Err(vec![PolicyError {
            line: 1,
            column: 1,
            message: format!("policy rules nest deeper than {MAX_NESTING} levels"),
        }]);
    }
    if source.trim_start().starts_with('{') {
        return Err(vec![PolicyError {
            line: 1,
            column: 1,
            message: "JSON policy rules are not supported by Drover yet; write the rules in HCL".to_string(),
        }]);
    }
    let body = hcl_edit::parser::parse_body(source).map_err(|error| {
        let location = error.location();
        vec![PolicyError {
            line: location.line(),
            column: location.column(),
            message: format!("syntax error: {}", error.message()),
        }]
    })?;
    let mut reader = Reader {
        source,
        errors: Vec::new(),
        rules: 0,
    };
    let mut policy = Policy::default();
    for structure in body.iter() {
        let block = match structure {
            Structure::Block(block) => block,
            Structure::Attribute(attribute) => {
                reader.error(
                    attribute.span(),
                    format!("unknown attribute {:?} (rules are blocks)", attribute.key.as_str()),
                );
                continue;
            }
        };
        let name = block.ident.as_str();
        match name {
            "namespace" => {
                if let Some(label) = reader.label(block, "namespace")
                    && reader.count_rule(block.span())
                {
                    let rule = reader.namespace(label, &block.body);
                    policy.namespaces.push(rule);
                }
            }
            "host_volume" => {
                if let Some(label) = reader.label(block, "host_volume")
                    && reader.count_rule(block.span())
                {
                    let rule = reader.host_volume(label, &block.body);
                    policy.host_volumes.push(rule);
                }
            }
            "node" | "agent" | "operator" | "quota" | "plugin" => {
                if !reader.no_label(block, name) {
                    continue;
                }
                let allowed = if name == "plugin" {
                    PLUGIN_POLICIES
                } else {
                    COARSE_POLICIES
                };
                let value = reader.coarse(&block.body, name, allowed);
                let slot = match name {
                    "node" => &mut policy.node,
                    "agent" => &mut policy.agent,
                    "operator" => &mut policy.operator,
                    "quota" => &mut policy.quota,
                    _ => &mut policy.plugin,
                };
                if slot.is_some() {
                    reader.error(block.span(), format!("{name}: only one {name} rule is allowed"));
                }
                *slot = value;
            }
            other => reader.error(block.span(), format!("unknown rule {other:?}")),
        }
    }
    if reader.errors.is_empty() {
        Ok(policy)
    } else {
        Err(reader.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_rule() {
        let policy = parse_policy(
            r#"
namespace "default" {
  policy       = "read"
  capabilities = ["submit-job"]
  variables {
    path "app/*" { capabilities = ["read", "list"] }
  }
}
namespace "prod-*" { policy = "deny" }
node { policy = "read" }
agent { policy = "write" }
operator { policy = "read" }
quota { policy = "read" }
plugin { policy = "list" }
host_volume "shared" { capabilities = ["mount-readonly"] }
"#,
        )
        .expect("valid policy");
        assert_eq!(policy.namespaces.len(), 2);
        assert_eq!(policy.namespaces[0].policy.as_deref(), Some("read"));
        assert_eq!(policy.namespaces[0].capabilities, ["submit-job"]);
        assert_eq!(policy.namespaces[0].variables[0].path, "app/*");
        assert_eq!(policy.node.as_deref(), Some("read"));
        assert_eq!(policy.agent.as_deref(), Some("write"));
        assert_eq!(policy.plugin.as_deref(), Some("list"));
        assert_eq!(policy.host_volumes[0].capabilities, ["mount-readonly"]);
    }

    #[test]
    fn errors_name_the_mistake_and_its_position() {
        let errors = parse_policy(
            "namespace \"x\" {\n  policy = \"admin\"\n}\nnode {\n  policy = \"read\"\n  extra = 1\n}\nbogus {}\n",
        )
        .expect_err("invalid policy");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text[0].starts_with("2:12:") && text[0].contains("invalid policy \"admin\""),
            "{text:?}"
        );
        assert!(
            text.iter().any(|error| error.contains("unknown attribute \"extra\"")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|error| error.contains("unknown rule \"bogus\"")),
            "{text:?}"
        );
        let errors = parse_policy("namespace \"x\" { capabilities = [\"sudo\"] }").expect_err("bad capability");
        assert!(errors[0].message.contains("invalid capability \"sudo\""));
        assert!(parse_policy("namespace { policy = \"read\" }").is_err());
        assert!(parse_policy("{\"namespace\": {}}").is_err());
        assert!(parse_policy("namespace \"x\" {").is_err());
    }

    #[test]
    fn deep_nesting_is_refused_before_the_hcl_parser() {
        // Found by the fuzzer: the HCL parser spent over 20 s on it.
        let slow = include_str!("../tests/fixtures/slow_nesting.hcl");
        let started = std::time::Instant::now();
        let errors = parse_policy(slow).expect_err("refused");
        assert!(errors[0].message.contains("nest deeper"), "{errors:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(nesting_depth("a { b { \"}}}{{{{{{{{{{\" } } # {{{{{{{{{{\n"), 2);
        assert_eq!(nesting_depth("a { /* {{{{{{{{{{ */ b = [ ( ) ] }"), 3);
        // The deepest legitimate policy still parses.
        let deep =
            "namespace \"a\" {\n  variables {\n    path \"p\" {\n      capabilities = [\"read\"]\n    }\n  }\n}\n";
        assert!(parse_policy(deep).is_ok());
        // Nesting at the limit stays fast.
        let at_limit = format!("x = {}{}", "{ a = ".repeat(MAX_NESTING), "1 }".repeat(MAX_NESTING));
        let started = std::time::Instant::now();
        let _ = parse_policy(&at_limit);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn rule_count_and_size_are_bounded() {
        let many = "namespace \"n\" { policy = \"read\" }\n".repeat(MAX_RULES + 5);
        let errors = parse_policy(&many).expect_err("too many rules");
        assert!(errors.iter().any(|error| error.message.contains("at most")));
        assert_eq!(errors.len(), 1);
        let huge = format!("# {}", "x".repeat(types::MAX_POLICY_RULES_BYTES));
        assert!(parse_policy(&huge).is_err());
    }
}
