//! The system and sysbatch schedulers: one allocation of each group on
//! every feasible node. New nodes get one on their next evaluation; nodes
//! that go down lose theirs (no replacement elsewhere); nodes that stop
//! matching the job have theirs stopped.
//!
//! Sysbatch allocations run to completion once per node: a finished (or
//! failed) one is not run again on that node. A failed system allocation is
//! replaced on the same node. System jobs do not create blocked
//! evaluations: new capacity arrives with node events, which evaluate every
//! system job anyway.

use crate::engine::{Ctx, PlaceKind, PlaceRequest, State};
use crate::generic::{append_stop, finish_eval, new_plan, place_one, preemption_evals};
use crate::reconcile::{self, NodeHealth, Stop, is_healthy, is_live, node_health, why};
use crate::util::FxHashMap;
use crate::{ClusterView, ScheduleError};
use std::collections::BTreeMap;
use types::{AllocClientStatus, AllocDesiredStatus, AllocMetric, Allocation, Job, JobType, Plan};

pub(crate) fn schedule<V: ClusterView + ?Sized>(
    ctx: &Ctx<'_, V>,
    job: Option<&Job>,
    ids: &mut dyn FnMut() -> String,
) -> Result<Plan, ScheduleError> {
    let eval = ctx.eval;
    let mut plan = new_plan(eval, job);
    let allocs: Vec<&Allocation> = crate::generic::eval_job_allocs(ctx);
    let mut queued: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed: BTreeMap<String, AllocMetric> = BTreeMap::new();
    let job = match job {
        None => {
            for stop in reconcile::stop_all(&allocs, why::JOB_GONE).stops {
                append_stop(&mut plan, &stop, ctx.now);
            }
            plan.eval_update = Some(finish_eval(eval, ctx.now, failed, queued, String::new(), false));
            return Ok(plan);
        }
        Some(job) if job.stop || job.is_template() => {
            if job.stop {
                for stop in reconcile::stop_all(&allocs, why::JOB_STOPPED).stops {
                    append_stop(&mut plan, &stop, ctx.now);
                }
            }
            plan.eval_update = Some(finish_eval(eval, ctx.now, failed, queued, String::new(), false));
            return Ok(plan);
        }
        Some(job) => job,
    };
    let sysbatch = job.job_type == JobType::Sysbatch;
    let mut state = State::build(ctx, job, &allocs);
    let deployment = ctx
        .view
        .latest_deployment(&job.namespace, &job.id)
        .filter(|deployment| deployment.job_version == job.version);
    let mut stops: Vec<Stop> = Vec::new();
    let mut inplace: Vec<&Allocation> = Vec::new();
    let mut requests: Vec<Vec<PlaceRequest>> = vec![Vec::new(); job.task_groups.len()];
    for alloc in &allocs {
        if job.group(&alloc.task_group).is_none() && is_live(alloc) {
            stops.push(Stop {
                alloc,
                why: why::GROUP_REMOVED,
                lost: false,
            });
        }
    }
    for (group_index, group) in job.task_groups.iter().enumerate() {
        queued.insert(group.name.clone(), 0);
        // Live allocations per node, and the latest finished one.
        let mut live_on: FxHashMap<&str, Vec<&Allocation>> = FxHashMap::default();
        let mut finished_on: FxHashMap<&str, &Allocation> = FxHashMap::default();
        for alloc in allocs.iter().copied().filter(|alloc| alloc.task_group == group.name) {
            if is_live(alloc) {
                live_on.entry(alloc.node_id.as_str()).or_default().push(alloc);
            } else if alloc.desired_status == AllocDesiredStatus::Run && alloc.client_status.is_terminal() {
                let newer = finished_on
                    .get(alloc.node_id.as_str())
                    .is_none_or(|seen| alloc.create_time >= seen.create_time);
                if newer {
                    finished_on.insert(alloc.node_id.as_str(), alloc);
                }
            }
        }
        let mut destructive: Vec<&Allocation> = Vec::new();
        let mut in_flight = 0usize;
        let mut node_ids: Vec<&str> = live_on.keys().copied().collect();
        node_ids.sort_unstable();
        for node_id in node_ids {
            let mut on_node = live_on.get(node_id).cloned().unwrap_or_default();
            on_node.sort_by(|left, right| right.job_version.cmp(&left.job_version).then(left.id.cmp(&right.id)));
            let node = ctx.view.node(node_id);
            let verdict = match node_health(node) {
                NodeHealth::Lost => Some((why::NODE_LOST, true)),
                // The drainer marks system allocations last, once the
                // node's other work has moved (never with system jobs
                // ignored).
                NodeHealth::Draining
                    if !node
                        .and_then(|node| node.drain.as_ref())
                        .is_some_and(|drain| drain.ignore_system_jobs)
                        && on_node.iter().any(|alloc| alloc.desired_transition.migrate) =>
                {
                    Some((why::MIGRATING, false))
                }
                _ => match (state.slot(node_id), node) {
                    (Some(slot), _) if !state.statically_feasible(group_index, slot) => {
                        Some((why::NODE_INFEASIBLE, false))
                    }
                    (Some(_), _) => None,
                    // Not schedulable now (ineligible, draining with system
                    // jobs ignored, initializing): keep what runs there,
                    // unless the node left the job's datacenters or pool.
                    (None, Some(node)) if !crate::engine::in_datacenters_and_pool(job, node) => {
                        Some((why::NODE_INFEASIBLE, false))
                    }
                    (None, _) => None,
                },
            };
            if let Some((reason, lost)) = verdict {
                for alloc in on_node {
                    stops.push(Stop {
                        alloc,
                        why: reason,
                        lost,
                    });
                }
                continue;
            }
            let keep = on_node[0];
            for extra in &on_node[1..] {
                stops.push(Stop {
                    alloc: extra,
                    why: why::DUPLICATE,
                    lost: false,
                });
            }
            if keep.job_version == job.version {
                if !is_healthy(keep, deployment.as_ref()) {
                    in_flight += 1;
                }
            } else if reconcile::can_update_in_place(ctx.view, job, keep) {
                inplace.push(keep);
            } else {
                destructive.push(keep);
            }
        }
        // Place on every feasible node without a live allocation.
        for slot in 0..state.nodes.len() as u32 {
            let node_id = state.nodes[slot as usize].node.id.as_str();
            if live_on.contains_key(node_id) || !state.statically_feasible(group_index, slot) {
                continue;
            }
            let previous = finished_on.get(node_id).copied();
            if previous.is_some() && sysbatch {
                // Sysbatch work runs once per node.
                continue;
            }
            requests[group_index].push(PlaceRequest {
                group: group_index,
                index: 0,
                previous: previous.filter(|alloc| alloc.client_status == AllocClientStatus::Failed),
                kind: PlaceKind::New,
                node: Some(slot),
            });
        }
        let limit = match group.update.as_ref() {
            Some(update) if update.max_parallel > 0 && !sysbatch => {
                (update.max_parallel as usize).saturating_sub(in_flight)
            }
            _ => usize::MAX,
        };
        destructive.sort_by(|left, right| left.node_id.cmp(&right.node_id));
        for old in destructive.into_iter().take(limit) {
            if let Some(slot) = state.slot(&old.node_id) {
                requests[group_index].push(PlaceRequest {
                    group: group_index,
                    index: 0,
                    previous: Some(old),
                    kind: PlaceKind::Destructive,
                    node: Some(slot),
                });
            }
        }
    }
    for stop in &stops {
        append_stop(&mut plan, stop, ctx.now);
        state.free_alloc(stop.alloc);
    }
    for alloc in inplace {
        let mut updated = alloc.clone();
        updated.job_version = job.version;
        updated.eval_id = eval.id.clone();
        updated.modify_time = ctx.now;
        plan.append_alloc(updated);
    }
    for (group_index, group_requests) in requests.iter().enumerate() {
        if group_requests.is_empty() {
            continue;
        }
        let mut run = state.start_group(group_index, group_requests.len() as u32, &[]);
        let mut failures = 0u64;
        for request in group_requests {
            if !place_one(&mut state, &mut run, request, ids, &mut plan) {
                failures += 1;
            }
        }
        if failures > 0 {
            let name = job.task_groups[group_index].name.clone();
            queued.insert(name.clone(), failures);
            let mut metric = state.failure_metric(&run);
            metric.coalesced_failures = failures - 1;
            failed.insert(name, metric);
        }
    }
    preemption_evals(ctx, &state, ids, &mut plan);
    state.flush_into(&mut plan);
    plan.eval_update = Some(finish_eval(eval, ctx.now, failed, queued, String::new(), false));
    Ok(plan)
}
