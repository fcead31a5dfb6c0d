//! Adapts a state snapshot to the scheduler's `ClusterView`. The scheduler
//! and the state store do not know each other; this is the only bridge.

use scheduler::ClusterView;
use state::StateSnapshot;
use types::{Allocation, ComparableResources, Job, Node};

/// A state snapshot seen as the scheduler's read-only cluster view.
pub(crate) struct SnapshotView<'a>(pub(crate) &'a StateSnapshot);

impl ClusterView for SnapshotView<'_> {
    fn nodes(&self) -> Box<dyn Iterator<Item = &Node> + '_> {
        Box::new(self.0.nodes().map(|node| &**node))
    }

    fn nodes_with_usage(&self) -> Box<dyn Iterator<Item = (&Node, ComparableResources)> + '_> {
        Box::new(self.0.nodes().map(|node| (&**node, self.0.node_usage(&node.id))))
    }

    fn node(&self, id: &str) -> Option<&Node> {
        self.0.node_ref(id)
    }

    fn job(&self, namespace: &str, id: &str) -> Option<&Job> {
        self.0.job_ref(namespace, id)
    }

    fn job_version(&self, namespace: &str, id: &str, version: u64) -> Option<&Job> {
        self.0.job_version_ref(namespace, id, version)
    }

    fn allocs_by_job(&self, namespace: &str, job_id: &str) -> Vec<&Allocation> {
        self.0.allocs_by_job_ref(namespace, job_id)
    }

    fn allocs_by_node(&self, node_id: &str) -> Vec<&Allocation> {
        self.0.allocs_by_node_ref(node_id)
    }

    fn node_resources_used(&self, node_id: &str) -> ComparableResources {
        self.0.node_usage(node_id)
    }
}
