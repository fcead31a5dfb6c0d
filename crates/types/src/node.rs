//! Client nodes as the servers see them: identity, fingerprinted attributes,
//! resources, drivers and status.

use crate::resources::{ComparableResources, NodeResources};
use crate::{Index, UnixNanos};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A node's liveness as the servers judge it from heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    #[default]
    Initializing,
    Ready,
    Down,
    Disconnected,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Initializing => "initializing",
            NodeStatus::Ready => "ready",
            NodeStatus::Down => "down",
            NodeStatus::Disconnected => "disconnected",
        }
    }
}

/// Whether the scheduler may place new work on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SchedulingEligibility {
    #[default]
    Eligible,
    Ineligible,
}

impl SchedulingEligibility {
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulingEligibility::Eligible => "eligible",
            SchedulingEligibility::Ineligible => "ineligible",
        }
    }
}

/// What a driver reported about itself during fingerprinting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DriverInfo {
    pub detected: bool,
    pub healthy: bool,
    pub health_description: String,
    pub attributes: BTreeMap<String, String>,
    pub update_time: UnixNanos,
}

/// Drain settings for a node being emptied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DrainStrategy {
    /// Nanoseconds; negative means no deadline.
    pub deadline: i64,
    pub ignore_system_jobs: bool,
    pub force_deadline: UnixNanos,
    pub started_at: UnixNanos,
}

/// The last drain of a node (Nomad's `DrainMetadata`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DrainMetadata {
    pub started_at: UnixNanos,
    pub updated_at: UnixNanos,
    /// "draining", "complete" or "canceled".
    pub status: String,
}

/// A directory of the node offered to jobs as a host volume
/// (`client { host_volume "name" { path, read_only } }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct HostVolume {
    pub path: String,
    pub read_only: bool,
}

/// A client node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Node {
    pub id: String,
    /// Secret the client uses to authenticate its own node updates.
    pub secret_id: String,
    pub name: String,
    pub datacenter: String,
    pub node_class: String,
    pub node_pool: String,
    pub http_addr: String,
    /// Fingerprinted attributes with Nomad's names (`kernel.name`, `cpu.arch`…).
    pub attributes: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
    pub resources: NodeResources,
    /// Held back from scheduling (for the OS and the agent).
    pub reserved: ComparableResources,
    pub reserved_ports: Vec<u16>,
    pub drivers: BTreeMap<String, DriverInfo>,
    /// Host volumes by name.
    pub host_volumes: BTreeMap<String, HostVolume>,
    pub status: NodeStatus,
    pub status_description: String,
    pub status_updated_at: UnixNanos,
    pub scheduling_eligibility: SchedulingEligibility,
    pub drain: Option<DrainStrategy>,
    /// The last drain, finished or not.
    pub last_drain: Option<DrainMetadata>,
    /// A hash of the attributes that decide feasibility, for caching.
    pub computed_class: String,
    pub create_index: Index,
    pub modify_index: Index,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            id: String::new(),
            secret_id: String::new(),
            name: String::new(),
            datacenter: "dc1".to_string(),
            node_class: String::new(),
            node_pool: crate::DEFAULT_NODE_POOL.to_string(),
            http_addr: String::new(),
            attributes: BTreeMap::new(),
            meta: BTreeMap::new(),
            resources: NodeResources::default(),
            reserved: ComparableResources::default(),
            reserved_ports: Vec::new(),
            drivers: BTreeMap::new(),
            host_volumes: BTreeMap::new(),
            status: NodeStatus::Initializing,
            status_description: String::new(),
            status_updated_at: 0,
            scheduling_eligibility: SchedulingEligibility::Eligible,
            drain: None,
            last_drain: None,
            computed_class: String::new(),
            create_index: 0,
            modify_index: 0,
        }
    }
}

impl Node {
    /// Whether new work may be placed here at all.
    pub fn is_schedulable(&self) -> bool {
        self.status == NodeStatus::Ready
            && self.scheduling_eligibility == SchedulingEligibility::Eligible
            && self.drain.is_none()
    }

    /// Whether existing allocations here must be replaced.
    pub fn is_terminal_for_allocs(&self) -> bool {
        self.status == NodeStatus::Down
    }

    /// Capacity left for allocations: totals minus the reserved share.
    pub fn allocatable(&self) -> ComparableResources {
        let mut capacity = self.resources.comparable();
        capacity.subtract(&self.reserved);
        capacity
    }

    /// Looks up `${attr.x}`, `${node.x}` and `${meta.x}` targets as Nomad
    /// resolves them in constraints. A literal returns itself.
    pub fn resolve_target(&self, target: &str) -> Option<String> {
        let Some(inner) = target.strip_prefix("${").and_then(|rest| rest.strip_suffix('}')) else {
            return Some(target.to_string());
        };
        if let Some(attribute) = inner.strip_prefix("attr.") {
            return self.attributes.get(attribute).cloned();
        }
        if let Some(key) = inner.strip_prefix("meta.") {
            return self.meta.get(key).cloned();
        }
        match inner {
            "node.unique.id" => Some(self.id.clone()),
            "node.unique.name" => Some(self.name.clone()),
            "node.datacenter" => Some(self.datacenter.clone()),
            "node.class" => Some(self.node_class.clone()),
            "node.pool" => Some(self.node_pool.clone()),
            _ => None,
        }
    }

    /// Computes `computed_class`: a stable hash over the fields feasibility
    /// depends on, so nodes with equal classes share feasibility results.
    pub fn compute_class(&mut self) {
        // FNV-1a: stable across runs and platforms, unlike std's hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |text: &str| {
            for byte in text.bytes().chain(std::iter::once(0u8)) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        feed(&self.datacenter);
        feed(&self.node_class);
        feed(&self.node_pool);
        for (key, value) in &self.attributes {
            if key.starts_with("unique.") {
                continue;
            }
            feed(key);
            feed(value);
        }
        for (key, value) in &self.meta {
            feed(key);
            feed(value);
        }
        for (name, driver) in &self.drivers {
            feed(name);
            feed(if driver.detected && driver.healthy { "1" } else { "0" });
        }
        // Host volumes decide feasibility; an empty set feeds nothing, so
        // the classes of nodes without volumes are unchanged.
        for (name, volume) in &self.host_volumes {
            feed("host_volume");
            feed(name);
            feed(if volume.read_only { "ro" } else { "rw" });
        }
        self.computed_class = format!("v1:{hash}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_constraint_targets() {
        let mut node = Node {
            id: "n1".into(),
            name: "alpha".into(),
            ..Node::default()
        };
        node.attributes.insert("kernel.name".into(), "linux".into());
        node.meta.insert("rack".into(), "r1".into());
        assert_eq!(node.resolve_target("${attr.kernel.name}").as_deref(), Some("linux"));
        assert_eq!(node.resolve_target("${meta.rack}").as_deref(), Some("r1"));
        assert_eq!(node.resolve_target("${node.unique.name}").as_deref(), Some("alpha"));
        assert_eq!(node.resolve_target("${node.datacenter}").as_deref(), Some("dc1"));
        assert_eq!(node.resolve_target("${attr.missing}"), None);
        assert_eq!(node.resolve_target("linux").as_deref(), Some("linux"));
    }

    #[test]
    fn computed_class_ignores_unique_attributes() {
        let mut first = Node::default();
        first.attributes.insert("unique.hostname".into(), "a".into());
        first.attributes.insert("kernel.name".into(), "linux".into());
        let mut second = first.clone();
        second.attributes.insert("unique.hostname".into(), "b".into());
        first.compute_class();
        second.compute_class();
        assert_eq!(first.computed_class, second.computed_class);
        second.attributes.insert("kernel.name".into(), "darwin".into());
        second.compute_class();
        assert_ne!(first.computed_class, second.computed_class);
    }
}
