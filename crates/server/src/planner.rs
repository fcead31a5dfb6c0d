//! Plan verification: the plan applier's check that every node's share of a
//! plan still fits against the *latest* state, since other plans may have
//! been committed after the scheduler took its snapshot.
//!
//! Pure: a state snapshot and a plan in, the allocations to commit and the
//! rejected nodes out. The server runs it in one task so that verification
//! and commit are serialized.

use state::StateSnapshot;
use std::collections::{BTreeMap, BTreeSet};
use types::{Allocation, ComparableResources, NodeStatus, Plan, PlanResult};

/// What verification decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VerifiedPlan {
    /// Stops, preemptions and placements that passed, ready to commit.
    pub allocs: Vec<Allocation>,
    pub result: PlanResult,
}

/// Why one node's part of a plan failed.
fn check_node(state: &StateSnapshot, node_id: &str, plan: &Plan) -> Result<(), String> {
    let placements = plan.node_allocation.get(node_id).map(Vec::as_slice).unwrap_or_default();
    if placements.is_empty() {
        // Only stops and preemptions: those always apply.
        return Ok(());
    }
    let Some(node) = state.node(node_id) else {
        return Err(format!("node {node_id} does not exist"));
    };
    if node.status != NodeStatus::Ready {
        return Err(format!("node {node_id} is {}", node.status.as_str()));
    }
    let mut removed: BTreeSet<&str> = BTreeSet::new();
    for alloc in plan.node_update.get(node_id).into_iter().flatten() {
        removed.insert(alloc.id.as_str());
    }
    for alloc in plan.node_preemptions.get(node_id).into_iter().flatten() {
        removed.insert(alloc.id.as_str());
    }
    for alloc in placements {
        // An updated allocation replaces its old self.
        removed.insert(alloc.id.as_str());
    }
    let mut used = ComparableResources::default();
    let mut ports: BTreeSet<u16> = node.reserved_ports.iter().copied().collect();
    let existing = state.allocs_by_node(node_id);
    for alloc in existing.iter().filter(|alloc| alloc.holds_resources()) {
        if removed.contains(alloc.id.as_str()) {
            continue;
        }
        used.add(&alloc.allocated_resources.comparable());
        ports.extend(alloc.allocated_resources.host_ports());
    }
    for alloc in placements {
        if alloc.is_terminal() {
            continue;
        }
        used.add(&alloc.allocated_resources.comparable());
        for port in alloc.allocated_resources.host_ports() {
            if !ports.insert(port) {
                return Err(format!("port {port} already in use on node {node_id}"));
            }
        }
    }
    used.fits_in(&node.allocatable())
        .map_err(|dimension| format!("node {node_id} exhausted on {dimension}"))
}

/// Checks every node of `plan` against `state`.
pub fn verify_plan(state: &StateSnapshot, plan: &Plan) -> VerifiedPlan {
    let mut verified = VerifiedPlan::default();
    let mut nodes: BTreeSet<&String> = plan.node_allocation.keys().collect();
    nodes.extend(plan.node_update.keys());
    nodes.extend(plan.node_preemptions.keys());
    let mut accepted: BTreeMap<&String, bool> = BTreeMap::new();
    for node_id in nodes {
        let ok = match check_node(state, node_id, plan) {
            Ok(()) => true,
            Err(reason) => {
                tracing::debug!(%node_id, %reason, eval = %plan.eval_id, "plan rejected for node");
                verified.result.rejected_nodes.push(node_id.clone());
                false
            }
        };
        accepted.insert(node_id, ok);
    }
    if plan.all_at_once && !verified.result.rejected_nodes.is_empty() {
        return verified;
    }
    for (node_id, ok) in accepted {
        if !ok {
            continue;
        }
        if let Some(stops) = plan.node_update.get(node_id) {
            verified.allocs.extend(stops.iter().cloned());
            verified.result.node_update.insert(node_id.clone(), stops.clone());
        }
        if let Some(evicted) = plan.node_preemptions.get(node_id) {
            verified.allocs.extend(evicted.iter().cloned());
            verified
                .result
                .node_preemptions
                .insert(node_id.clone(), evicted.clone());
        }
        if let Some(placed) = plan.node_allocation.get(node_id) {
            verified.allocs.extend(placed.iter().cloned());
            verified.result.node_allocation.insert(node_id.clone(), placed.clone());
        }
    }
    verified
}

#[cfg(test)]
mod tests {
    use super::*;
    use state::Command;
    use types::{AllocatedResources, AllocatedTaskResources, Node, NodeResources};

    fn node(id: &str, memory_mb: i64) -> Node {
        Node {
            id: id.to_string(),
            status: NodeStatus::Ready,
            resources: NodeResources {
                cpu_mhz: 4000,
                cores: 4,
                memory_mb,
                disk_mb: 10_000,
                ..NodeResources::default()
            },
            ..Node::default()
        }
    }

    fn alloc(id: &str, node_id: &str, memory_mb: i64) -> Allocation {
        Allocation {
            id: id.to_string(),
            node_id: node_id.to_string(),
            namespace: "default".into(),
            job_id: "j".into(),
            allocated_resources: AllocatedResources {
                tasks: [(
                    "t".to_string(),
                    AllocatedTaskResources {
                        cpu_mhz: 100,
                        memory_mb,
                        ..AllocatedTaskResources::default()
                    },
                )]
                .into(),
                ..AllocatedResources::default()
            },
            ..Allocation::default()
        }
    }

    fn state_with(nodes: &[Node], allocs: Vec<Allocation>) -> StateSnapshot {
        let mut state = StateSnapshot::new();
        let mut index = 0;
        for node in nodes {
            index += 1;
            state.apply(
                index,
                Command::NodeRegister {
                    node: node.clone(),
                    now: 0,
                },
            );
        }
        state.apply(
            index + 1,
            Command::PlanApply {
                allocs,
                eval_update: None,
                created_evals: Vec::new(),
                now: 0,
                deployment: None,
                deployment_updates: Vec::new(),
            },
        );
        state
    }

    #[test]
    fn rejects_only_the_node_that_no_longer_fits() {
        let state = state_with(&[node("n1", 1000), node("n2", 1000)], vec![alloc("old", "n1", 800)]);
        let mut plan = Plan::default();
        plan.append_alloc(alloc("new1", "n1", 400));
        plan.append_alloc(alloc("new2", "n2", 400));
        let verified = verify_plan(&state, &plan);
        assert_eq!(verified.result.rejected_nodes, vec!["n1".to_string()]);
        assert_eq!(
            verified.allocs.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            vec!["new2"]
        );
    }

    #[test]
    fn stops_in_the_same_plan_free_room() {
        let state = state_with(&[node("n1", 1000)], vec![alloc("old", "n1", 800)]);
        let mut plan = Plan::default();
        let old = state.alloc("old").expect("old alloc");
        plan.append_stop(&old, "replaced");
        plan.append_alloc(alloc("new", "n1", 900));
        let verified = verify_plan(&state, &plan);
        assert!(verified.result.rejected_nodes.is_empty());
        assert_eq!(verified.allocs.len(), 2);
    }

    #[test]
    fn all_at_once_commits_nothing_on_any_rejection() {
        let state = state_with(&[node("n1", 1000), node("n2", 1000)], vec![alloc("old", "n1", 800)]);
        let mut plan = Plan {
            all_at_once: true,
            ..Plan::default()
        };
        plan.append_alloc(alloc("new1", "n1", 400));
        plan.append_alloc(alloc("new2", "n2", 400));
        let verified = verify_plan(&state, &plan);
        assert!(verified.allocs.is_empty());
        assert_eq!(verified.result.rejected_nodes, vec!["n1".to_string()]);
    }

    #[test]
    fn down_or_missing_nodes_are_rejected() {
        let mut down = node("n1", 1000);
        down.status = NodeStatus::Down;
        let mut state = state_with(&[down], Vec::new());
        state.apply(
            10,
            Command::NodeUpdateStatus {
                node_id: "n1".into(),
                status: NodeStatus::Down,
                now: 0,
                evals: Vec::new(),
            },
        );
        let mut plan = Plan::default();
        plan.append_alloc(alloc("a", "n1", 100));
        plan.append_alloc(alloc("b", "ghost", 100));
        let verified = verify_plan(&state, &plan);
        assert_eq!(
            verified.result.rejected_nodes,
            vec!["ghost".to_string(), "n1".to_string()]
        );
    }
}
