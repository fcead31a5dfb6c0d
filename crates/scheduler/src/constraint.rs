//! Constraint and affinity operators, evaluated against a node.
//!
//! A [`Compiled`] constraint is parsed once per evaluation (operator decoded,
//! regular expression built, version requirement parsed) and then checked
//! against many nodes. `distinct_hosts` and `distinct_property` depend on
//! allocations, not on the node alone, so they are split off here and
//! enforced by the placement engine.

use regex::Regex;
use std::cmp::Ordering;
use types::Node;

/// A decoded constraint operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    Regexp,
    SetContainsAll,
    SetContainsAny,
    Version,
    Semver,
    IsSet,
    IsNotSet,
    DistinctHosts,
    DistinctProperty,
    Unknown,
}

impl Op {
    pub(crate) fn parse(operand: &str) -> Op {
        match operand {
            "" | "=" | "==" | "is" => Op::Equal,
            "!=" | "not" => Op::NotEqual,
            "<" => Op::Less,
            "<=" => Op::LessEqual,
            ">" => Op::Greater,
            ">=" => Op::GreaterEqual,
            "regexp" => Op::Regexp,
            "set_contains" | "set_contains_all" => Op::SetContainsAll,
            "set_contains_any" => Op::SetContainsAny,
            "version" => Op::Version,
            "semver" => Op::Semver,
            "is_set" => Op::IsSet,
            "is_not_set" => Op::IsNotSet,
            "distinct_hosts" => Op::DistinctHosts,
            "distinct_property" => Op::DistinctProperty,
            _ => Op::Unknown,
        }
    }
}

/// A constraint ready to be checked against many nodes.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub ltarget: String,
    pub rtarget: String,
    pub op: Op,
    regex: Option<Regex>,
    version: Option<VersionReq>,
    /// Whether the result depends only on what `computed_class` hashes, so it
    /// can be cached per class.
    pub class_cacheable: bool,
    /// The constraint as the failure metrics show it.
    pub display: String,
}

impl Compiled {
    pub(crate) fn new(ltarget: &str, operand: &str, rtarget: &str) -> Compiled {
        let op = Op::parse(operand);
        let regex = if op == Op::Regexp {
            Regex::new(rtarget).ok()
        } else {
            None
        };
        let version = match op {
            Op::Version => VersionReq::parse(rtarget, false),
            Op::Semver => VersionReq::parse(rtarget, true),
            _ => None,
        };
        let shown_operand = if operand.is_empty() { "=" } else { operand };
        let display = match op {
            Op::IsSet | Op::IsNotSet | Op::DistinctHosts => format!("{ltarget} {shown_operand}").trim().to_string(),
            _ => format!("{ltarget} {shown_operand} {rtarget}").trim().to_string(),
        };
        Compiled {
            ltarget: ltarget.to_string(),
            rtarget: rtarget.to_string(),
            op,
            regex,
            version,
            class_cacheable: !references_unique(ltarget) && !references_unique(rtarget),
            display,
        }
    }

    pub(crate) fn from_constraint(constraint: &types::Constraint) -> Compiled {
        Compiled::new(&constraint.ltarget, &constraint.operand, &constraint.rtarget)
    }

    /// Checks the constraint on a node. Allocation-dependent operators
    /// (`distinct_*`) pass here; the placement engine enforces them.
    pub(crate) fn check_node(&self, node: &Node) -> bool {
        if matches!(self.op, Op::DistinctHosts | Op::DistinctProperty) {
            return true;
        }
        let left = node.resolve_target(&self.ltarget);
        let right = node.resolve_target(&self.rtarget);
        self.check_values(left.as_deref(), right.as_deref())
    }

    /// Checks the operator on resolved values (`None`: the target is unset).
    pub(crate) fn check_values(&self, left: Option<&str>, right: Option<&str>) -> bool {
        match self.op {
            Op::Equal => matches!((left, right), (Some(l), Some(r)) if l == r),
            Op::NotEqual => left != right,
            Op::Less | Op::LessEqual | Op::Greater | Op::GreaterEqual => {
                let (Some(l), Some(r)) = (left, right) else {
                    return false;
                };
                let ordering = compare_order(l, r);
                match self.op {
                    Op::Less => ordering == Ordering::Less,
                    Op::LessEqual => ordering != Ordering::Greater,
                    Op::Greater => ordering == Ordering::Greater,
                    _ => ordering != Ordering::Less,
                }
            }
            Op::Regexp => match (left, &self.regex) {
                (Some(l), Some(regex)) => regex.is_match(l),
                _ => false,
            },
            Op::SetContainsAll => match (left, right) {
                (Some(l), Some(r)) => {
                    let have: Vec<&str> = split_set(l).collect();
                    split_set(r).all(|want| have.contains(&want))
                }
                _ => false,
            },
            Op::SetContainsAny => match (left, right) {
                (Some(l), Some(r)) => {
                    let have: Vec<&str> = split_set(l).collect();
                    split_set(r).any(|want| have.contains(&want))
                }
                _ => false,
            },
            Op::Version | Op::Semver => match (left, &self.version) {
                (Some(l), Some(req)) => Version::parse(l).is_some_and(|version| req.matches(&version)),
                _ => false,
            },
            Op::IsSet => left.is_some(),
            Op::IsNotSet => left.is_none(),
            Op::DistinctHosts | Op::DistinctProperty => true,
            Op::Unknown => false,
        }
    }

    /// For `distinct_property`: how many allocations may share one value.
    pub(crate) fn distinct_limit(&self) -> u32 {
        self.rtarget
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|limit| *limit > 0)
            .unwrap_or(1)
    }
}

/// Whether a target names something `computed_class` leaves out.
pub(crate) fn references_unique(target: &str) -> bool {
    target.contains("unique.")
}

fn split_set(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|item| !item.is_empty())
}

/// Numeric comparison when both sides parse as numbers, else lexical.
pub(crate) fn compare_order(left: &str, right: &str) -> Ordering {
    if let (Ok(l), Ok(r)) = (left.trim().parse::<i64>(), right.trim().parse::<i64>()) {
        return l.cmp(&r);
    }
    if let (Ok(l), Ok(r)) = (left.trim().parse::<f64>(), right.trim().parse::<f64>()) {
        return l.partial_cmp(&r).unwrap_or(Ordering::Equal);
    }
    left.cmp(right)
}

/// A parsed version: numeric segments plus an optional pre-release tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    segments: Vec<u64>,
    pre: Option<String>,
}

impl Version {
    pub(crate) fn parse(text: &str) -> Option<Version> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        // Build metadata never affects ordering.
        let text = text.split('+').next().unwrap_or(text);
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) => (core, Some(pre.to_string())),
            None => (text, None),
        };
        if core.is_empty() {
            return None;
        }
        let segments: Option<Vec<u64>> = core.split('.').map(|part| part.parse::<u64>().ok()).collect();
        let segments = segments?;
        if segments.is_empty() || segments.len() > 6 {
            return None;
        }
        Some(Version { segments, pre })
    }

    fn segment(&self, index: usize) -> u64 {
        self.segments.get(index).copied().unwrap_or(0)
    }

    fn cmp_version(&self, other: &Version) -> Ordering {
        let width = self.segments.len().max(other.segments.len()).max(3);
        for index in 0..width {
            match self.segment(index).cmp(&other.segment(index)) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        match (&self.pre, &other.pre) {
            (None, None) => Ordering::Equal,
            // A pre-release sorts before its release.
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(mine), Some(theirs)) => compare_prerelease(mine, theirs),
        }
    }
}

fn compare_prerelease(left: &str, right: &str) -> Ordering {
    let mut left_parts = left.split('.');
    let mut right_parts = right.split('.');
    loop {
        match (left_parts.next(), right_parts.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(l), Some(r)) => {
                let ordering = match (l.parse::<u64>(), r.parse::<u64>()) {
                    (Ok(l), Ok(r)) => l.cmp(&r),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => l.cmp(r),
                };
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VersionOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Pessimistic,
}

/// A comma-separated list of version requirements, all of which must hold
/// (`">= 1.2, < 2.0"`, `"~> 1.4"`).
#[derive(Debug, Clone)]
pub(crate) struct VersionReq {
    terms: Vec<(VersionOp, Version, usize)>,
    /// Semver mode: a pre-release only matches requirements on the same
    /// version core.
    strict_prerelease: bool,
}

impl VersionReq {
    pub(crate) fn parse(text: &str, strict_prerelease: bool) -> Option<VersionReq> {
        let mut terms = Vec::new();
        for term in text.split(',') {
            let term = term.trim();
            if term.is_empty() {
                return None;
            }
            let (op, rest) = [
                ("~>", VersionOp::Pessimistic),
                (">=", VersionOp::Ge),
                ("<=", VersionOp::Le),
                ("!=", VersionOp::Ne),
                ("==", VersionOp::Eq),
                (">", VersionOp::Gt),
                ("<", VersionOp::Lt),
                ("=", VersionOp::Eq),
            ]
            .iter()
            .find_map(|(prefix, op)| term.strip_prefix(prefix).map(|rest| (*op, rest)))
            .unwrap_or((VersionOp::Eq, term));
            let rest = rest.trim();
            let version = Version::parse(rest)?;
            let written_segments = version.segments.len();
            terms.push((op, version, written_segments));
        }
        if terms.is_empty() {
            return None;
        }
        Some(VersionReq {
            terms,
            strict_prerelease,
        })
    }

    pub(crate) fn matches(&self, version: &Version) -> bool {
        if self.strict_prerelease && version.pre.is_some() {
            let same_core = self.terms.iter().any(|(_, required, _)| {
                required.pre.is_some() && (0..3).all(|index| required.segment(index) == version.segment(index))
            });
            if !same_core {
                return false;
            }
        }
        self.terms.iter().all(|(op, required, written)| {
            let ordering = version.cmp_version(required);
            match op {
                VersionOp::Eq => ordering == Ordering::Equal,
                VersionOp::Ne => ordering != Ordering::Equal,
                VersionOp::Lt => ordering == Ordering::Less,
                VersionOp::Le => ordering != Ordering::Greater,
                VersionOp::Gt => ordering == Ordering::Greater,
                VersionOp::Ge => ordering != Ordering::Less,
                VersionOp::Pessimistic => {
                    if ordering == Ordering::Less {
                        return false;
                    }
                    // "~> 1.2.3" allows 1.2.x; "~> 1.2" allows 1.x: every
                    // written segment but the last must match.
                    let fixed = written.saturating_sub(1).max(1);
                    (0..fixed).all(|index| version.segment(index) == required.segment(index))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn node() -> Node {
        let mut attributes = BTreeMap::new();
        attributes.insert("kernel.name".to_string(), "linux".to_string());
        attributes.insert("cpu.numcores".to_string(), "8".to_string());
        attributes.insert("os.version".to_string(), "22.04".to_string());
        attributes.insert("nomad.version".to_string(), "1.7.3".to_string());
        attributes.insert("tags".to_string(), "ssd, gpu,fast".to_string());
        attributes.insert("unique.hostname".to_string(), "host-7".to_string());
        Node {
            id: "n1".into(),
            name: "alpha".into(),
            attributes,
            ..Node::default()
        }
    }

    fn check(ltarget: &str, operand: &str, rtarget: &str) -> bool {
        Compiled::new(ltarget, operand, rtarget).check_node(&node())
    }

    #[test]
    fn equality_operators() {
        assert!(check("${attr.kernel.name}", "=", "linux"));
        assert!(check("${attr.kernel.name}", "==", "linux"));
        assert!(check("${attr.kernel.name}", "is", "linux"));
        assert!(check("${attr.kernel.name}", "", "linux"));
        assert!(!check("${attr.kernel.name}", "=", "darwin"));
        assert!(check("${attr.kernel.name}", "!=", "darwin"));
        assert!(check("${attr.kernel.name}", "not", "darwin"));
        assert!(!check("${attr.missing}", "=", "x"));
        assert!(check("${attr.missing}", "!=", "x"));
        assert!(check("${node.datacenter}", "=", "dc1"));
    }

    #[test]
    fn ordering_is_numeric_when_both_parse() {
        assert!(check("${attr.cpu.numcores}", ">", "4"));
        assert!(check("${attr.cpu.numcores}", ">=", "8"));
        assert!(check("${attr.cpu.numcores}", "<", "10"));
        assert!(check("${attr.cpu.numcores}", "<=", "8"));
        assert!(check("${attr.os.version}", ">", "9.10"));
        // Lexical when one side is not a number.
        assert!(check("${attr.kernel.name}", ">", "abc"));
        assert!(!check("${attr.missing}", ">", "1"));
    }

    #[test]
    fn regexp_and_sets() {
        assert!(check("${attr.kernel.name}", "regexp", "^lin"));
        assert!(!check("${attr.kernel.name}", "regexp", "^win"));
        assert!(!check("${attr.kernel.name}", "regexp", "(unclosed"));
        assert!(check("${attr.tags}", "set_contains", "ssd,gpu"));
        assert!(check("${attr.tags}", "set_contains_all", "fast"));
        assert!(!check("${attr.tags}", "set_contains", "ssd,nvme"));
        assert!(check("${attr.tags}", "set_contains_any", "nvme,gpu"));
        assert!(!check("${attr.tags}", "set_contains_any", "nvme,hdd"));
    }

    #[test]
    fn versions() {
        assert!(check("${attr.nomad.version}", "version", ">= 1.6, < 2.0"));
        assert!(!check("${attr.nomad.version}", "version", ">= 1.8"));
        assert!(check("${attr.nomad.version}", "version", "~> 1.7"));
        assert!(check("${attr.nomad.version}", "version", "~> 1.7.0"));
        assert!(!check("${attr.nomad.version}", "version", "~> 1.6.0"));
        assert!(check("${attr.nomad.version}", "semver", ">= 1.7.3"));
        assert!(!check("${attr.nomad.version}", "semver", "not-a-version"));
        let req = VersionReq::parse(">= 1.0.0", true).expect("valid requirement");
        let pre = Version::parse("1.2.0-beta.1").expect("valid version");
        assert!(!req.matches(&pre), "semver ignores pre-releases of other cores");
        let loose = VersionReq::parse(">= 1.0.0", false).expect("valid requirement");
        assert!(loose.matches(&pre));
        let beta2 = Version::parse("1.2.0-beta.2").expect("valid version");
        assert_eq!(pre.cmp_version(&beta2), Ordering::Less);
    }

    #[test]
    fn set_checks_and_caching() {
        assert!(check("${attr.kernel.name}", "is_set", ""));
        assert!(!check("${attr.missing}", "is_set", ""));
        assert!(check("${attr.missing}", "is_not_set", ""));
        assert!(!check("${attr.kernel.name}", "bogus", "x"));
        assert!(!Compiled::new("${attr.unique.hostname}", "=", "x").class_cacheable);
        assert!(!Compiled::new("${node.unique.id}", "=", "x").class_cacheable);
        assert!(Compiled::new("${attr.kernel.name}", "=", "x").class_cacheable);
        assert_eq!(
            Compiled::new("${meta.rack}", "distinct_property", "3").distinct_limit(),
            3
        );
        assert_eq!(
            Compiled::new("${meta.rack}", "distinct_property", "").distinct_limit(),
            1
        );
    }
}
