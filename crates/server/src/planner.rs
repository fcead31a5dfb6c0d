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

/// What a plan the applier has written to Raft, but the state machine has
/// not applied yet, will hold on each node. Verifying the next plan counts
/// it on top of the applied state, so plan N+1 is checked while plan N
/// commits. Conservative: the written plan's stops free nothing until
/// applied, so nothing can be over-committed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PendingUsage {
    resources: BTreeMap<String, ComparableResources>,
    ports: BTreeMap<String, Vec<u16>>,
    /// One counted allocation as the write stores it: a command applies
    /// atomically, so once a state holds this, it holds the whole write.
    marker: Option<Allocation>,
}

impl PendingUsage {
    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// What is still pending on top of `state`: nothing once `state` holds
    /// the write (its applied form replaced the pending one).
    pub fn unapplied(&self, state: &StateSnapshot) -> PendingUsage {
        let applied = self.marker.as_ref().is_some_and(|marker| {
            state.alloc(&marker.id).is_some_and(|stored| {
                stored.node_id == marker.node_id && stored.allocated_resources == marker.allocated_resources
            })
        });
        if applied { PendingUsage::default() } else { self.clone() }
    }

    /// Adds what `command` (a plan's commit) places beyond what `state`
    /// already counts.
    pub fn add(&mut self, state: &StateSnapshot, command: &state::Command) {
        let state::Command::PlanApply { allocs, .. } = command else {
            return;
        };
        for alloc in allocs.iter().filter(|alloc| alloc.holds_resources()) {
            let counted = state.alloc(&alloc.id).is_some_and(|existing| {
                existing.holds_resources()
                    && existing.node_id == alloc.node_id
                    && existing.allocated_resources == alloc.allocated_resources
            });
            if counted {
                continue;
            }
            if self.marker.is_none() {
                self.marker = Some(alloc.clone());
            }
            self.resources
                .entry(alloc.node_id.clone())
                .or_default()
                .add(&alloc.allocated_resources.comparable());
            let ports: Vec<u16> = alloc.allocated_resources.host_ports().collect();
            if !ports.is_empty() {
                self.ports.entry(alloc.node_id.clone()).or_default().extend(ports);
            }
        }
    }
}

/// Why one node's part of a plan failed.
fn check_node(state: &StateSnapshot, node_id: &str, plan: &Plan, pending: &PendingUsage) -> Result<(), String> {
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
    // The store keeps each node's usage incrementally: start from it and
    // take out what this plan stops, evicts or replaces, instead of adding
    // up every allocation on the node.
    let mut used = state.node_usage(node_id);
    if let Some(written) = pending.resources.get(node_id) {
        used.add(written);
    }
    for id in &removed {
        if let Some(existing) = state.alloc(id)
            && existing.node_id == node_id
            && existing.holds_resources()
        {
            used.subtract(&existing.allocated_resources.comparable());
        }
    }
    let wants_ports = placements
        .iter()
        .any(|alloc| !alloc.is_terminal() && alloc.allocated_resources.host_ports().next().is_some());
    // Host ports are not in the usage index: only a placement that asks for
    // ports pays for collecting the node's.
    let mut ports: BTreeSet<u16> = BTreeSet::new();
    if wants_ports {
        ports.extend(node.reserved_ports.iter().copied());
        ports.extend(pending.ports.get(node_id).into_iter().flatten().copied());
        for alloc in state.allocs_by_node(node_id) {
            if alloc.holds_resources() && !removed.contains(alloc.id.as_str()) {
                ports.extend(alloc.allocated_resources.host_ports());
            }
        }
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

/// What the plan applier commits for `plan` against `state`: the command
/// with everything that still fits (none when nothing does and the plan
/// carries no evaluation change), and the result for the worker. On a
/// partial commit the worker plans again, so the evaluation's final status
/// and follow-ups wait for that later plan.
pub fn plan_command(state: &StateSnapshot, plan: Plan, now: types::UnixNanos) -> (Option<state::Command>, PlanResult) {
    plan_command_with(state, plan, now, &PendingUsage::default())
}

/// [`plan_command`] with a written plan's usage still to be applied.
pub fn plan_command_with(
    state: &StateSnapshot,
    plan: Plan,
    now: types::UnixNanos,
    pending: &PendingUsage,
) -> (Option<state::Command>, PlanResult) {
    let mut verified = verify_plan_with(state, &plan, pending);
    verified.result.refresh_index = state.index();
    let full = verified.result.rejected_nodes.is_empty();
    let (eval_update, created_evals) = if full {
        (plan.eval_update, plan.created_evals)
    } else {
        (None, Vec::new())
    };
    // The deployment goes with the first commit its allocations are in;
    // the cancellation of an older one with the plan's final commit.
    let deployment = plan
        .deployment
        .filter(|deployment| state.deployment(&deployment.id).is_none())
        .filter(|_| full || !verified.allocs.is_empty());
    let deployment_updates = if full { plan.deployment_updates } else { Vec::new() };
    if verified.allocs.is_empty()
        && eval_update.is_none()
        && created_evals.is_empty()
        && deployment.is_none()
        && deployment_updates.is_empty()
    {
        return (None, verified.result);
    }
    let command = state::Command::PlanApply {
        allocs: verified.allocs,
        eval_update,
        created_evals,
        now,
        deployment,
        deployment_updates,
    };
    (Some(command), verified.result)
}

/// Checks every node of `plan` against `state`.
pub fn verify_plan(state: &StateSnapshot, plan: &Plan) -> VerifiedPlan {
    verify_plan_with(state, plan, &PendingUsage::default())
}

/// [`verify_plan`], counting a written plan's usage on top of `state`.
pub fn verify_plan_with(state: &StateSnapshot, plan: &Plan, pending: &PendingUsage) -> VerifiedPlan {
    let mut verified = VerifiedPlan::default();
    let mut nodes: BTreeSet<&String> = plan.node_allocation.keys().collect();
    nodes.extend(plan.node_update.keys());
    nodes.extend(plan.node_preemptions.keys());
    let mut accepted: BTreeMap<&String, bool> = BTreeMap::new();
    for node_id in nodes {
        let ok = match check_node(state, node_id, plan, pending) {
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

    /// Pipelining: a plan verified while an earlier one is still being
    /// written counts what that one will hold, and nothing it already
    /// counts twice.
    #[test]
    fn a_written_plan_not_yet_applied_counts_against_the_next() {
        let state = state_with(&[node("n1", 1000), node("n2", 1000)], vec![alloc("old", "n1", 300)]);
        let mut first = Plan::default();
        first.append_alloc(alloc("a", "n1", 500));
        let (command, result) = plan_command(&state, first, 1);
        assert!(result.rejected_nodes.is_empty());
        let command = command.expect("the first plan commits");
        let mut pending = PendingUsage::default();
        pending.add(&state, &command);
        assert!(!pending.is_empty());

        let mut second = Plan::default();
        second.append_alloc(alloc("b", "n1", 400));
        second.append_alloc(alloc("c", "n2", 400));
        // Alone against the applied state, both fit (300 + 400 on n1) ...
        assert!(verify_plan(&state, &second).result.rejected_nodes.is_empty());
        // ... but not on top of the write in flight (300 + 500 + 400).
        let (_, result) = plan_command_with(&state, second.clone(), 2, &pending);
        assert_eq!(result.rejected_nodes, vec!["n1".to_string()]);

        // Once applied, the same allocations are not counted twice.
        let mut applied = state.clone();
        applied.apply(state.index() + 1, command.clone());
        let mut again = PendingUsage::default();
        again.add(&applied, &command);
        assert!(again.is_empty());
        // And a pending write the state already holds is dropped.
        assert!(pending.unapplied(&applied).is_empty());
        assert_eq!(pending.unapplied(&state), pending);
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
