//! Adapts a state snapshot to the scheduler's `ClusterView`. The scheduler
//! and the state store do not know each other; this is the only bridge.

use scheduler::ClusterView;
use state::StateSnapshot;
use types::{Allocation, ComparableResources, Job, Node};

/// A state snapshot seen as the scheduler's read-only cluster view.
pub(crate) struct SnapshotView<'a>(pub(crate) &'a StateSnapshot);

impl ClusterView for SnapshotView<'_> {
    /// In the node index's row order, as the trait asks.
    fn nodes(&self) -> Box<dyn Iterator<Item = &Node> + '_> {
        Box::new(self.0.node_columns().nodes().iter().map(|node| &**node))
    }

    fn nodes_with_usage(&self) -> Box<dyn Iterator<Item = (&Node, ComparableResources)> + '_> {
        let columns = self.0.node_columns();
        Box::new(
            columns
                .nodes()
                .iter()
                .map(|node| &**node)
                .zip(columns.used().iter().copied()),
        )
    }

    /// The store keeps the index with every apply: the per-evaluation pass
    /// reads its columns, and class verdicts carry across evaluations until
    /// a node changes.
    fn node_index(&self) -> Option<scheduler::NodeIndex<'_>> {
        let columns = self.0.node_columns();
        scheduler::NodeIndex::new(
            columns.nodes(),
            columns.entries(),
            columns.used(),
            columns.class_count(),
        )
        .map(|index| index.with_verdicts(columns.verdicts()))
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

    fn latest_deployment(&self, namespace: &str, job_id: &str) -> Option<scheduler::DeploymentInfo> {
        let deployment = self.0.latest_deployment(namespace, job_id)?;
        Some(scheduler::DeploymentInfo {
            id: deployment.id.clone(),
            job_version: deployment.job_version,
            active: deployment.active(),
            promoted_groups: deployment
                .task_groups
                .iter()
                .filter(|(_, state)| state.promoted)
                .map(|(group, _)| group.clone())
                .collect(),
            healthy_allocs: Default::default(),
            tracks_health: true,
            failed: deployment.status == types::DeploymentStatus::Failed,
            paused: deployment.status == types::DeploymentStatus::Paused,
        })
    }

    fn scheduler_config(&self) -> scheduler::SchedulerConfig {
        scheduler::SchedulerConfig::from(self.0.scheduler_config())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use state::Command;

    /// Evaluations see the operator's configuration as it is in the
    /// snapshot they run on.
    #[test]
    fn the_view_carries_the_operator_configuration() {
        let mut snapshot = StateSnapshot::new();
        assert_eq!(
            SnapshotView(&snapshot).scheduler_config(),
            scheduler::SchedulerConfig::default()
        );
        let mut config = types::SchedulerConfiguration {
            scheduler_algorithm: types::SchedulerAlgorithm::Spread,
            ..types::SchedulerConfiguration::default()
        };
        config.preemption_config.batch_scheduler_enabled = true;
        snapshot.apply(1, Command::SchedulerConfigSet { config, cas: None });
        let seen = SnapshotView(&snapshot).scheduler_config();
        assert_eq!(seen.algorithm, types::SchedulerAlgorithm::Spread);
        assert!(seen.preempt_batch);
        assert!(seen.preempt_system);
        assert!(!seen.preempt_service);
    }
}
