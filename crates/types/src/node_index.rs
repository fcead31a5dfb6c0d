//! What the scheduler's per-evaluation pass reads about every node, kept by
//! the state store column by column ([`NodeEntry`]), and the per-class
//! feasibility verdicts it memoises across evaluations ([`VerdictCache`]).
//! Both live here, in the shared model, because the store (`state`) keeps
//! them and the scheduler reads them, and neither crate knows the other.

use crate::{ComparableResources, Node};
use std::collections::HashMap;

/// What the scheduler needs to know about one node without touching the
/// `Node` itself: one row of the store's column-wise node index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeEntry {
    /// The node's computed class as a small integer: two nodes have the same
    /// value exactly when their `computed_class` strings are equal. Values
    /// are below the index's class count; a node without a computed class
    /// has a value at or above it and is checked on its own.
    pub class: u32,
    /// `Node::is_schedulable`.
    pub schedulable: bool,
    /// `Node::allocatable`.
    pub capacity: ComparableResources,
    /// The node's MHz per core (`cpu_mhz / cores`, 0 without cores).
    pub mhz_per_core: i64,
}

impl NodeEntry {
    /// The entry of a node as the index must keep it; `class` is the
    /// store's interned ID of `node.computed_class`.
    pub fn of(node: &Node, class: u32) -> NodeEntry {
        let cores = node.resources.cores;
        NodeEntry {
            class,
            schedulable: node.is_schedulable(),
            capacity: node.allocatable(),
            mhz_per_core: if cores > 0 { node.resources.cpu_mhz / cores } else { 0 },
        }
    }
}

/// Feasibility verdicts per [`NodeEntry::class`], memoised across
/// evaluations by a store that keeps a node index: for a job's datacenters
/// and pool, and for a group's drivers and class-cacheable constraints,
/// what every computed class answered so far. A verdict only depends on
/// what `computed_class` hashes, so it stays valid while the class
/// numbering does; a store starts a new cache when its nodes change.
/// Purely a memo: a plan is the same with or without it.
#[derive(Debug, Default)]
pub struct VerdictCache {
    map: std::sync::Mutex<HashMap<String, Vec<u16>>>,
}

impl Clone for VerdictCache {
    /// A clone starts empty (it is only a memo).
    fn clone(&self) -> Self {
        VerdictCache::default()
    }
}

impl VerdictCache {
    /// Forgets every verdict.
    pub fn clear(&mut self) {
        if let Ok(map) = self.map.get_mut() {
            map.clear();
        }
    }

    /// The verdicts stored under `key`, at least `classes` long (0 = unknown).
    pub fn load(&self, key: &str, classes: usize) -> Vec<u16> {
        let mut verdicts = self
            .map
            .lock()
            .ok()
            .and_then(|map| map.get(key).cloned())
            .unwrap_or_default();
        if verdicts.len() < classes {
            verdicts.resize(classes, 0);
        }
        verdicts
    }

    /// Stores the verdicts under `key`.
    pub fn store(&self, key: String, verdicts: Vec<u16>) {
        if let Ok(mut map) = self.map.lock() {
            map.insert(key, verdicts);
        }
    }
}
