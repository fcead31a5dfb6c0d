//! Plans: what a scheduler wants changed, and what the plan applier committed.

use crate::alloc::Allocation;
use crate::eval::Evaluation;
use crate::job::Job;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A scheduler's proposed changes for one evaluation. The scheduler returns
/// it and never submits it; the plan applier verifies each node against the
/// latest state and commits what still fits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Plan {
    pub eval_id: String,
    /// The broker's token of the delivery that planned this. The plan
    /// applier commits only while that delivery is still outstanding: a
    /// worker whose evaluation timed out and went to another worker must
    /// not place its allocations a second time.
    #[serde(default)]
    pub eval_token: String,
    pub priority: i32,
    /// All or nothing: if one node fails verification, commit nothing.
    pub all_at_once: bool,
    /// The job version the plan was made against (`None` when deregistered).
    pub job: Option<Job>,
    /// Allocations to stop or evict, by node ID. Each carries its new desired
    /// status and description.
    pub node_update: BTreeMap<String, Vec<Allocation>>,
    /// New or updated allocations, by node ID.
    pub node_allocation: BTreeMap<String, Vec<Allocation>>,
    /// Allocations evicted to make room for this plan, by node ID.
    pub node_preemptions: BTreeMap<String, Vec<Allocation>>,
    /// The evaluation's final state, written with the plan's results.
    pub eval_update: Option<Evaluation>,
    /// Follow-up evaluations (delayed reschedules, blocked evals).
    pub created_evals: Vec<Evaluation>,
    /// A deployment this plan starts (the new allocations join it).
    pub deployment: Option<crate::Deployment>,
    /// Status changes of existing deployments (an older version's rollout
    /// cancelled).
    pub deployment_updates: Vec<crate::DeploymentStatusUpdate>,
}

impl Plan {
    /// Whether the plan changes nothing.
    pub fn is_no_op(&self) -> bool {
        self.node_update.is_empty() && self.node_allocation.is_empty() && self.node_preemptions.is_empty()
    }

    /// Adds an allocation to place or update.
    pub fn append_alloc(&mut self, alloc: Allocation) {
        self.node_allocation
            .entry(alloc.node_id.clone())
            .or_default()
            .push(alloc);
    }

    /// Adds a stop of an existing allocation.
    pub fn append_stop(&mut self, alloc: &Allocation, description: &str) {
        let mut stopped = alloc.clone();
        stopped.desired_status = crate::AllocDesiredStatus::Stop;
        stopped.desired_description = description.to_string();
        self.node_update.entry(alloc.node_id.clone()).or_default().push(stopped);
    }

    /// Adds a preemption of an existing allocation by `preemptor_id`.
    pub fn append_preemption(&mut self, alloc: &Allocation, preemptor_id: &str) {
        let mut evicted = alloc.clone();
        evicted.desired_status = crate::AllocDesiredStatus::Evict;
        evicted.desired_description = format!("Preempted by alloc ID {preemptor_id}");
        evicted.preempted_by_allocation = preemptor_id.to_string();
        self.node_preemptions
            .entry(alloc.node_id.clone())
            .or_default()
            .push(evicted);
    }
}

/// What the plan applier committed of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct PlanResult {
    pub node_update: BTreeMap<String, Vec<Allocation>>,
    pub node_allocation: BTreeMap<String, Vec<Allocation>>,
    pub node_preemptions: BTreeMap<String, Vec<Allocation>>,
    /// Nodes whose part of the plan was rejected; the scheduler retries them.
    pub rejected_nodes: Vec<String>,
    /// The Raft index the plan was committed at.
    pub alloc_index: u64,
    /// The state index the plan applier verified the plan against. A
    /// worker whose plan was partly rejected re-plans on a snapshot at
    /// least this new: its own snapshot was older than what conflicted.
    #[serde(default)]
    pub refresh_index: u64,
}

impl PlanResult {
    /// Whether every part of the plan was committed.
    pub fn is_full_commit(&self, plan: &Plan) -> bool {
        let expected: usize = plan.node_allocation.values().map(Vec::len).sum();
        let actual: usize = self.node_allocation.values().map(Vec::len).sum();
        self.rejected_nodes.is_empty() && expected == actual
    }
}
