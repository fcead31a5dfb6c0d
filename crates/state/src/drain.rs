//! Node drains in `apply`: starting, cancelling and completing a drain
//! (with Nomad's `LastDrain` record), and the marks on allocations: the
//! drainer's migrate, and `ForceReschedule` from a forced job evaluation.

use crate::command::CommandResult;
use crate::store::StateSnapshot;
use std::sync::Arc;
use types::{DrainMetadata, DrainStrategy, Evaluation, Index, SchedulingEligibility, UnixNanos};

pub(crate) mod drain_status {
    pub const DRAINING: &str = "draining";
    pub const COMPLETE: &str = "complete";
    pub const CANCELED: &str = "canceled";
}

impl StateSnapshot {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply_node_drain(
        &mut self,
        index: Index,
        node_id: &str,
        drain: Option<DrainStrategy>,
        mark_eligible: bool,
        evals: Vec<Evaluation>,
        now: UnixNanos,
        result: &mut CommandResult,
    ) {
        let Some(existing) = self.node(node_id) else {
            result.error = Some(format!("node {node_id:?} not found"));
            return;
        };
        let mut node = (*existing).clone();
        match drain {
            Some(mut drain) => {
                // Changing a running drain keeps its start.
                if let Some(running) = &existing.drain {
                    drain.started_at = running.started_at;
                }
                node.last_drain = Some(DrainMetadata {
                    started_at: drain.started_at,
                    updated_at: now,
                    status: drain_status::DRAINING.to_string(),
                });
                node.drain = Some(drain);
                node.scheduling_eligibility = SchedulingEligibility::Ineligible;
            }
            None => {
                if node.drain.take().is_some()
                    && let Some(last) = node.last_drain.as_mut()
                {
                    last.status = drain_status::CANCELED.to_string();
                    last.updated_at = now;
                }
                if mark_eligible {
                    node.scheduling_eligibility = SchedulingEligibility::Eligible;
                }
            }
        }
        node.status_updated_at = now;
        node.modify_index = index;
        self.put_node(Arc::new(node));
        self.tables.nodes = index;
        for eval in evals {
            result.evals_to_enqueue.push(eval.id.clone());
            self.upsert_eval(index, eval);
        }
    }

    pub(crate) fn apply_node_drain_complete(
        &mut self,
        index: Index,
        node_id: &str,
        now: UnixNanos,
        result: &mut CommandResult,
    ) {
        let Some(existing) = self.node(node_id) else {
            result.error = Some(format!("node {node_id:?} not found"));
            return;
        };
        if existing.drain.is_none() {
            result.error = Some(format!("node {node_id:?} is not draining"));
            return;
        }
        let mut node = (*existing).clone();
        node.drain = None;
        let started_at = node.last_drain.as_ref().map_or(now, |last| last.started_at);
        node.last_drain = Some(DrainMetadata {
            started_at,
            updated_at: now,
            status: drain_status::COMPLETE.to_string(),
        });
        node.modify_index = index;
        self.put_node(Arc::new(node));
        self.tables.nodes = index;
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply_alloc_transition(
        &mut self,
        index: Index,
        alloc_ids: Vec<String>,
        force_reschedule: bool,
        evals: Vec<Evaluation>,
        now: UnixNanos,
        result: &mut CommandResult,
    ) {
        for alloc_id in alloc_ids {
            let Some(existing) = self.alloc(&alloc_id) else {
                continue;
            };
            let mut alloc = (*existing).clone();
            if force_reschedule {
                alloc.desired_transition.force_reschedule = true;
            } else {
                alloc.desired_transition.migrate = true;
            }
            if alloc.desired_transition == existing.desired_transition {
                continue;
            }
            self.upsert_alloc(index, alloc, now);
            self.tables.allocs = index;
        }
        for eval in evals {
            result.evals_to_enqueue.push(eval.id.clone());
            self.upsert_eval(index, eval);
        }
    }
}
