//! Policies compiled into an [`Acl`]: the answer to "may this token do
//! that". As in Nomad, `deny` wins over every grant from any policy, an
//! exact namespace rule wins over globs, and among matching globs the
//! closest (fewest characters left for `*` to match) wins.

use crate::policy::{Policy, namespace_capabilities};
use std::collections::{BTreeMap, BTreeSet};

/// A coarse disposition for `node`, `agent`, `operator`, `quota` and
/// `plugin` rules. Merging takes the strongest grant, and `deny` over all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Level {
    #[default]
    None,
    List,
    Read,
    Write,
    Deny,
}

impl Level {
    fn parse(text: Option<&str>) -> Level {
        match text {
            Some("deny") => Level::Deny,
            Some("write") => Level::Write,
            Some("read") => Level::Read,
            Some("list") => Level::List,
            _ => Level::None,
        }
    }

    fn merge(self, other: Level) -> Level {
        self.max(other)
    }

    /// Whether this level grants `wanted` (`List` < `Read` < `Write`).
    pub fn allows(self, wanted: Level) -> bool {
        self != Level::Deny && wanted != Level::None && wanted != Level::Deny && self >= wanted
    }
}

type CapSet = BTreeSet<String>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NamespaceGrant {
    capabilities: CapSet,
    /// Variables path rules: path glob → capabilities.
    variables: BTreeMap<String, CapSet>,
}

/// What a token may do: compiled from its policies, or everything for a
/// management token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    management: bool,
    namespaces: BTreeMap<String, NamespaceGrant>,
    host_volumes: BTreeMap<String, CapSet>,
    node: Level,
    agent: Level,
    operator: Level,
    quota: Level,
    plugin: Level,
}

/// Whether `glob` (with `*` matching any run of characters) matches `text`.
fn glob_matches(glob: &str, text: &str) -> bool {
    let parts: Vec<&str> = glob.split('*').collect();
    if parts.len() == 1 {
        return glob == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// The entry of `table` that rules `name`: the exact one, else the closest
/// matching glob.
fn closest<'a, T>(table: &'a BTreeMap<String, T>, name: &str) -> Option<&'a T> {
    if let Some(exact) = table.get(name) {
        return Some(exact);
    }
    table
        .iter()
        .filter(|(glob, _)| glob.contains('*') && glob_matches(glob, name))
        .min_by_key(|(glob, _)| name.len().saturating_sub(glob.len() - glob.matches('*').count()))
        .map(|(_, value)| value)
}

fn grants(capabilities: &CapSet, wanted: &str) -> bool {
    !capabilities.contains("deny") && capabilities.contains(wanted)
}

impl Acl {
    /// The ACL of a management token: everything is allowed.
    pub fn management() -> Acl {
        Acl {
            management: true,
            ..Acl::default()
        }
    }

    /// The ACL that allows nothing (no token and no anonymous policy).
    pub fn deny_all() -> Acl {
        Acl::default()
    }

    /// Merges policies into one ACL.
    pub fn compile<'a>(policies: impl IntoIterator<Item = &'a Policy>) -> Acl {
        let mut acl = Acl::default();
        for policy in policies {
            for rule in &policy.namespaces {
                let grant = acl.namespaces.entry(rule.name.clone()).or_default();
                if let Some(coarse) = &rule.policy {
                    grant
                        .capabilities
                        .extend(namespace_capabilities(coarse).into_iter().map(str::to_string));
                    // A namespace policy also covers every variable path.
                    let implied: &[&str] = match coarse.as_str() {
                        "write" => &["read", "list", "write", "destroy"],
                        "read" => &["read", "list"],
                        "deny" => &["deny"],
                        _ => &[],
                    };
                    if !implied.is_empty() {
                        grant
                            .variables
                            .entry("*".to_string())
                            .or_default()
                            .extend(implied.iter().map(|cap| cap.to_string()));
                    }
                }
                grant.capabilities.extend(rule.capabilities.iter().cloned());
                for path in &rule.variables {
                    grant
                        .variables
                        .entry(path.path.clone())
                        .or_default()
                        .extend(path.capabilities.iter().cloned());
                }
            }
            for rule in &policy.host_volumes {
                let capabilities = acl.host_volumes.entry(rule.name.clone()).or_default();
                let implied: &[&str] = match rule.policy.as_deref() {
                    Some("write") => &["mount-readonly", "mount-readwrite"],
                    Some("read") => &["mount-readonly"],
                    Some("deny") => &["deny"],
                    _ => &[],
                };
                capabilities.extend(implied.iter().map(|cap| cap.to_string()));
                capabilities.extend(rule.capabilities.iter().cloned());
            }
            acl.node = acl.node.merge(Level::parse(policy.node.as_deref()));
            acl.agent = acl.agent.merge(Level::parse(policy.agent.as_deref()));
            acl.operator = acl.operator.merge(Level::parse(policy.operator.as_deref()));
            acl.quota = acl.quota.merge(Level::parse(policy.quota.as_deref()));
            acl.plugin = acl.plugin.merge(Level::parse(policy.plugin.as_deref()));
        }
        acl
    }

    /// Whether this is a management ACL.
    pub fn is_management(&self) -> bool {
        self.management
    }

    /// Whether `capability` is granted in `namespace`.
    pub fn allow_namespace_op(&self, namespace: &str, capability: &str) -> bool {
        self.management
            || closest(&self.namespaces, namespace).is_some_and(|grant| grants(&grant.capabilities, capability))
    }

    /// Whether any capability is granted in `namespace` (to see that it
    /// exists).
    pub fn allow_namespace(&self, namespace: &str) -> bool {
        self.management
            || closest(&self.namespaces, namespace).is_some_and(|grant| {
                !grant.capabilities.contains("deny")
                    && (!grant.capabilities.is_empty()
                        || grant
                            .variables
                            .values()
                            .any(|caps| !caps.is_empty() && !caps.contains("deny")))
            })
    }

    /// Whether `capability` may be granted in at least one namespace (for
    /// queries over every namespace, whose answers are then filtered).
    pub fn allow_in_some_namespace(&self, capability: &str) -> bool {
        self.management
            || self
                .namespaces
                .values()
                .any(|grant| grants(&grant.capabilities, capability))
    }

    /// Whether `capability` (read, list, write, destroy) is granted on the
    /// variable at `path` in `namespace`.
    pub fn allow_variable(&self, namespace: &str, path: &str, capability: &str) -> bool {
        if self.management {
            return true;
        }
        let Some(grant) = closest(&self.namespaces, namespace) else {
            return false;
        };
        if grant.capabilities.contains("deny") {
            return false;
        }
        closest(&grant.variables, path).is_some_and(|capabilities| grants(capabilities, capability))
    }

    /// Whether `capability` (mount-readonly, mount-readwrite) is granted on
    /// the host volume `name`.
    pub fn allow_host_volume(&self, name: &str, capability: &str) -> bool {
        self.management
            || closest(&self.host_volumes, name).is_some_and(|capabilities| grants(capabilities, capability))
    }

    /// Node rules.
    pub fn allow_node(&self, wanted: Level) -> bool {
        self.management || self.node.allows(wanted)
    }

    /// Agent rules.
    pub fn allow_agent(&self, wanted: Level) -> bool {
        self.management || self.agent.allows(wanted)
    }

    /// Operator rules.
    pub fn allow_operator(&self, wanted: Level) -> bool {
        self.management || self.operator.allows(wanted)
    }

    /// Quota rules.
    pub fn allow_quota(&self, wanted: Level) -> bool {
        self.management || self.quota.allows(wanted)
    }

    /// Plugin rules (`list` < `read`).
    pub fn allow_plugin(&self, wanted: Level) -> bool {
        self.management || self.plugin.allows(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse_policy;
    use proptest::prelude::*;

    fn acl(sources: &[&str]) -> Acl {
        let policies: Vec<Policy> = sources
            .iter()
            .map(|source| parse_policy(source).expect("valid policy"))
            .collect();
        Acl::compile(&policies)
    }

    #[test]
    fn namespace_policies_expand_to_capabilities() {
        let acl = acl(&[r#"namespace "default" { policy = "read" }
namespace "dev" { policy = "write" }"#]);
        assert!(acl.allow_namespace_op("default", "read-job"));
        assert!(acl.allow_namespace_op("default", "list-jobs"));
        assert!(!acl.allow_namespace_op("default", "submit-job"));
        assert!(acl.allow_namespace_op("dev", "submit-job"));
        assert!(acl.allow_namespace_op("dev", "read-logs"));
        assert!(!acl.allow_namespace_op("other", "read-job"));
        assert!(!acl.allow_namespace("other"));
        assert!(acl.allow_namespace("default"));
    }

    #[test]
    fn deny_wins_across_policies() {
        let acl = acl(&[
            r#"namespace "default" { policy = "write" }"#,
            r#"namespace "default" { capabilities = ["deny"] }"#,
        ]);
        assert!(!acl.allow_namespace_op("default", "read-job"));
        let acl2 = self::acl(&[r#"node { policy = "write" }"#, r#"node { policy = "deny" }"#]);
        assert!(!acl2.allow_node(Level::Read));
    }

    #[test]
    fn exact_beats_glob_and_the_closest_glob_wins() {
        let acl = acl(&[r#"
namespace "*" { policy = "read" }
namespace "prod-*" { policy = "deny" }
namespace "prod-api" { policy = "write" }
"#]);
        assert!(acl.allow_namespace_op("anything", "read-job"));
        assert!(!acl.allow_namespace_op("prod-web", "read-job"));
        assert!(acl.allow_namespace_op("prod-api", "submit-job"));
        assert!(acl.allow_in_some_namespace("submit-job"));
        assert!(!acl.allow_in_some_namespace("alloc-node-exec"));
    }

    #[test]
    fn coarse_levels_order() {
        let acl = acl(&[r#"agent { policy = "read" }
operator { policy = "write" }
plugin { policy = "list" }"#]);
        assert!(acl.allow_agent(Level::Read));
        assert!(!acl.allow_agent(Level::Write));
        assert!(acl.allow_operator(Level::Read));
        assert!(acl.allow_operator(Level::Write));
        assert!(acl.allow_plugin(Level::List));
        assert!(!acl.allow_plugin(Level::Read));
        assert!(!acl.allow_node(Level::Read));
        assert!(!acl.allow_quota(Level::Read));
    }

    #[test]
    fn variables_follow_paths_and_namespace_policy() {
        let acl = acl(&[r#"
namespace "default" {
  variables {
    path "app/*" { capabilities = ["read", "list"] }
    path "app/secret" { capabilities = ["deny"] }
  }
}
namespace "dev" { policy = "write" }
"#]);
        assert!(acl.allow_variable("default", "app/config", "read"));
        assert!(!acl.allow_variable("default", "app/config", "write"));
        assert!(!acl.allow_variable("default", "app/secret", "read"));
        assert!(!acl.allow_variable("default", "other", "read"));
        assert!(acl.allow_variable("dev", "anything", "destroy"));
        assert!(acl.allow_namespace("default"));
    }

    #[test]
    fn host_volumes() {
        let acl = acl(&[r#"host_volume "data-*" { policy = "read" }
host_volume "data-rw" { capabilities = ["mount-readwrite"] }"#]);
        assert!(acl.allow_host_volume("data-x", "mount-readonly"));
        assert!(!acl.allow_host_volume("data-x", "mount-readwrite"));
        assert!(acl.allow_host_volume("data-rw", "mount-readwrite"));
        assert!(!acl.allow_host_volume("logs", "mount-readonly"));
    }

    #[test]
    fn management_allows_everything_and_nothing_allows_nothing() {
        let all = Acl::management();
        let none = Acl::deny_all();
        assert!(all.allow_namespace_op("x", "submit-job") && all.allow_operator(Level::Write));
        assert!(!none.allow_namespace_op("x", "list-jobs") && !none.allow_node(Level::Read));
    }

    #[test]
    fn globs_match() {
        assert!(glob_matches("*", ""));
        assert!(glob_matches("a*c", "abbbc"));
        assert!(glob_matches("a*b*c", "axbyc"));
        assert!(!glob_matches("a*b*c", "axc"));
        assert!(!glob_matches("ab*ba", "aba"));
        assert!(glob_matches("exact", "exact"));
    }

    const CAPS: &[&str] = &["list-jobs", "read-job", "submit-job", "read-logs", "deny"];
    const NAMESPACES: &[&str] = &["default", "dev", "prod", "*", "pr*"];

    fn rule() -> impl Strategy<Value = (usize, Option<usize>, Vec<usize>)> {
        (
            0..NAMESPACES.len(),
            proptest::option::of(0..4usize),
            proptest::collection::vec(0..CAPS.len(), 0..3),
        )
    }

    proptest! {
        /// A capability is granted only when some rule that governs the
        /// namespace grants it, and never when any such rule denies.
        #[test]
        fn granted_only_by_some_rule_and_deny_wins(
            rules in proptest::collection::vec(rule(), 0..6),
            namespace_idx in 0..3usize,
            cap_idx in 0..4usize,
        ) {
            let policies = ["deny", "read", "write", "scale"];
            let mut text = String::new();
            for (ns, policy, caps) in &rules {
                text.push_str(&format!("namespace {:?} {{\n", NAMESPACES[*ns]));
                if let Some(policy) = policy {
                    text.push_str(&format!("policy = {:?}\n", policies[*policy]));
                }
                let caps: Vec<String> = caps.iter().map(|cap| format!("{:?}", CAPS[*cap])).collect();
                text.push_str(&format!("capabilities = [{}]\n}}\n", caps.join(", ")));
            }
            let policy = parse_policy(&text).expect("generated policy parses");
            let acl = Acl::compile([&policy]);
            let namespace = ["default", "dev", "prod"][namespace_idx];
            let wanted = CAPS[cap_idx];
            // The rules that govern this namespace: the exact ones, else
            // those of the closest glob.
            let exact: Vec<_> = rules.iter().filter(|(ns, _, _)| NAMESPACES[*ns] == namespace).collect();
            let governing: Vec<_> = if !exact.is_empty() {
                exact
            } else {
                let best = rules
                    .iter()
                    .filter(|(ns, _, _)| NAMESPACES[*ns].contains('*') && glob_matches(NAMESPACES[*ns], namespace))
                    .map(|(ns, _, _)| namespace.len() - NAMESPACES[*ns].replace('*', "").len())
                    .min();
                rules
                    .iter()
                    .filter(|(ns, _, _)| {
                        NAMESPACES[*ns].contains('*')
                            && glob_matches(NAMESPACES[*ns], namespace)
                            && Some(namespace.len() - NAMESPACES[*ns].replace('*', "").len()) == best
                    })
                    .collect()
            };
            let grants_it = |(_, policy, caps): &&(usize, Option<usize>, Vec<usize>)| {
                caps.iter().any(|cap| CAPS[*cap] == wanted)
                    || policy.is_some_and(|policy| namespace_capabilities(policies[policy]).contains(&wanted))
            };
            let denies = |(_, policy, caps): &&(usize, Option<usize>, Vec<usize>)| {
                caps.iter().any(|cap| CAPS[*cap] == "deny") || *policy == Some(0)
            };
            let allowed = acl.allow_namespace_op(namespace, wanted);
            if allowed {
                prop_assert!(governing.iter().any(grants_it), "granted without a rule: {text}");
                prop_assert!(!governing.iter().any(denies), "deny did not win: {text}");
            } else {
                prop_assert!(
                    !governing.iter().any(grants_it) || governing.iter().any(denies),
                    "a granting rule was ignored: {text}"
                );
            }
        }
    }
}
