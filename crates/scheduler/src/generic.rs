//! The generic scheduler for service and batch jobs: reconcile, then place
//! what the reconciler asked for, then report (failed groups, queued counts,
//! blocked and follow-up evaluations).

use crate::ScheduleError;
use crate::engine::{Ctx, GroupRun, PlaceKind, PlaceRequest, State, new_eval};
use crate::reconcile::{self, Reconciled, why};
use crate::{ClusterView, reconcile::Stop};
use std::collections::BTreeMap;
use types::{
    AllocClientStatus, AllocMetric, Allocation, Deployment, DeploymentStatus, DeploymentStatusUpdate, EvalStatus,
    Evaluation, Job, JobType, Plan, deployment_description, trigger,
};

/// Delayed reschedules closer together than this share one follow-up
/// evaluation.
const FOLLOWUP_BATCH_NANOS: i64 = 5_000_000_000;

pub(crate) fn new_plan(eval: &Evaluation, job: Option<&Job>) -> Plan {
    Plan {
        eval_id: eval.id.clone(),
        priority: job.map(|job| job.priority).unwrap_or(eval.priority),
        all_at_once: job.is_some_and(|job| job.all_at_once),
        job: job.cloned(),
        ..Plan::default()
    }
}

/// Every allocation of the evaluation's job (in its namespace), terminal
/// ones included.
pub(crate) fn eval_job_allocs<'v, V: ClusterView + ?Sized>(ctx: &Ctx<'v, V>) -> Vec<&'v Allocation> {
    let eval = ctx.eval;
    ctx.view
        .allocs_by_job(&eval.namespace, &eval.job_id)
        .into_iter()
        .filter(|alloc| alloc.namespace == eval.namespace)
        .collect()
}

pub(crate) fn append_stop(plan: &mut Plan, stop: &Stop<'_>, now: types::UnixNanos) {
    plan.append_stop(stop.alloc, stop.why);
    if let Some(stopped) = plan
        .node_update
        .get_mut(&stop.alloc.node_id)
        .and_then(|list| list.last_mut())
    {
        stopped.modify_time = now;
        if stop.lost {
            stopped.client_status = AllocClientStatus::Lost;
        }
    }
}

/// The evaluation's final record.
pub(crate) fn finish_eval(
    eval: &Evaluation,
    now: types::UnixNanos,
    failed: BTreeMap<String, AllocMetric>,
    queued: BTreeMap<String, u64>,
    blocked_eval: String,
    reblock: bool,
) -> Evaluation {
    let mut update = eval.clone();
    update.status = if reblock {
        EvalStatus::Blocked
    } else {
        EvalStatus::Complete
    };
    update.status_description = if failed.is_empty() {
        String::new()
    } else if reblock {
        "placements still failing; evaluation stays blocked".to_string()
    } else {
        "some placements failed; a blocked evaluation will retry them".to_string()
    };
    update.failed_tg_allocs = failed;
    update.queued_allocations = queued;
    if !blocked_eval.is_empty() {
        update.blocked_eval = blocked_eval;
    }
    update.modify_time = now;
    update
}

pub(crate) fn schedule<V: ClusterView + ?Sized>(
    ctx: &Ctx<'_, V>,
    job: Option<&Job>,
    ids: &mut dyn FnMut() -> String,
) -> Result<Plan, ScheduleError> {
    let eval = ctx.eval;
    let mut plan = new_plan(eval, job);
    let allocs = eval_job_allocs(ctx);
    let reconciled = match job {
        None => reconcile::stop_all(&allocs, why::JOB_GONE),
        Some(job) if job.stop => reconcile::stop_all(&allocs, why::JOB_STOPPED),
        Some(job) if job.is_template() => Reconciled::default(),
        Some(job) => reconcile::reconcile(ctx.view, job, &allocs, ctx.now),
    };
    for stop in &reconciled.stops {
        append_stop(&mut plan, stop, ctx.now);
    }
    let deployment_id = deployment_changes(ctx, job, &reconciled, ids, &mut plan);
    let mut queued: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed: BTreeMap<String, AllocMetric> = BTreeMap::new();
    let Some(job) = job.filter(|job| !job.stop && !job.is_template()) else {
        plan.eval_update = Some(finish_eval(eval, ctx.now, failed, queued, String::new(), false));
        return Ok(plan);
    };
    for group in &job.task_groups {
        queued.insert(group.name.clone(), 0);
    }
    for alloc in &reconciled.inplace {
        let mut updated = (*alloc).clone();
        if let Some(deployment_id) = &deployment_id
            && updated.deployment_id != *deployment_id
        {
            // The updated allocation joins the new version's rollout and
            // must prove its health again.
            updated.deployment_id = deployment_id.clone();
            updated.deployment_status = None;
        }
        updated.job_version = job.version;
        updated.eval_id = eval.id.clone();
        updated.modify_time = ctx.now;
        plan.append_alloc(updated);
    }
    followup_evals(ctx, job, &reconciled.delayed, ids, &mut plan);

    let mut class_eligibility = BTreeMap::new();
    let mut escaped = false;
    if !reconciled.places.is_empty() || !reconciled.new_places.is_empty() {
        let mut state = State::build(ctx, job, &allocs);
        if let Some(deployment_id) = &deployment_id {
            state.deployment_id = deployment_id.clone();
        }
        for stop in &reconciled.stops {
            state.free_alloc(stop.alloc);
        }
        let new_groups: Vec<usize> = reconciled.new_places.iter().map(|new| new.group).collect();
        let rank = |request: &PlaceRequest| match request.kind {
            PlaceKind::Lost | PlaceKind::Migrate | PlaceKind::Reschedule { .. } | PlaceKind::Replace => 0,
            PlaceKind::Canary => 1,
            PlaceKind::New => 2,
            PlaceKind::Destructive => 3,
        };
        let mut order: Vec<&PlaceRequest> = reconciled.places.iter().collect();
        // Replacements first, then canaries, new allocations, and last the
        // destructive updates; stable within each kind.
        order.sort_by_key(|request| (request.group, rank(request)));
        let mut groups: Vec<usize> = order.iter().map(|request| request.group).chain(new_groups).collect();
        groups.sort_unstable();
        groups.dedup();
        for group in groups {
            let group_name = job.task_groups[group].name.clone();
            let existing: Vec<&Allocation> = allocs
                .iter()
                .copied()
                .filter(|alloc| alloc.task_group == group_name && reconcile::is_live(alloc))
                .collect();
            let mut run = state.start_group(group, job.task_groups[group].count, &existing);
            let mut failures = 0u64;
            let group_order = order.iter().filter(|request| request.group == group);
            for request in group_order.clone().filter(|request| rank(request) < 2) {
                if !place_one(&mut state, &mut run, request, ids, &mut plan) {
                    failures += 1;
                }
            }
            for new in reconciled.new_places.iter().filter(|new| new.group == group) {
                let mut tried = 0usize;
                for request in new.requests() {
                    if run.failed {
                        break;
                    }
                    tried += 1;
                    if !place_one(&mut state, &mut run, &request, ids, &mut plan) {
                        failures += 1;
                    }
                }
                // Once the group has no room left the rest coalesce, as
                // `place_one` would count them, without being made.
                let rest = new.missing - tried;
                if rest > 0 {
                    failures += rest as u64;
                    state.note_coalesced_many(&mut run, rest as u64);
                }
            }
            for request in group_order.filter(|request| rank(request) >= 2) {
                if !place_one(&mut state, &mut run, request, ids, &mut plan) {
                    failures += 1;
                }
            }
            if failures > 0 {
                queued.insert(group_name.clone(), failures);
                failed.insert(group_name, state.failure_metric(&run));
                class_eligibility.extend(state.class_eligibility(group));
                escaped |= state.specs[group].escaped;
            }
        }
        state.save_verdicts();
        preemption_evals(ctx, &state, ids, &mut plan);
        state.flush_into(&mut plan);
    }

    let reblock = !failed.is_empty() && eval.status == EvalStatus::Blocked;
    let mut blocked_id = String::new();
    if !failed.is_empty() && !reblock {
        blocked_id = ids();
        let mut blocked = new_eval(
            eval,
            Some(job),
            blocked_id.clone(),
            EvalStatus::Blocked,
            trigger::QUEUED_ALLOCS,
            ctx.now,
        );
        blocked.class_eligibility = class_eligibility;
        blocked.escaped_computed_class = escaped;
        blocked.queued_allocations = queued.clone();
        blocked.status_description = "created to place remaining allocations".to_string();
        plan.created_evals.push(blocked);
    }
    plan.eval_update = Some(finish_eval(eval, ctx.now, failed, queued, blocked_id, reblock));
    Ok(plan)
}

/// Whether a group rolls out through deployments (service jobs with an
/// `update` block whose `max_parallel` is not 0).
fn deploys(job: &Job) -> bool {
    job.job_type == JobType::Service
        && job
            .task_groups
            .iter()
            .any(|group| group.update.as_ref().is_some_and(|update| update.max_parallel > 0))
}

/// Cancels the rollout of an older (or stopped) version and starts one
/// for the job's current version when this plan changes its allocations.
/// Returns the deployment new allocations of this version join.
fn deployment_changes<V: ClusterView + ?Sized>(
    ctx: &Ctx<'_, V>,
    job: Option<&Job>,
    reconciled: &Reconciled<'_>,
    ids: &mut dyn FnMut() -> String,
    plan: &mut Plan,
) -> Option<String> {
    let eval = ctx.eval;
    let latest = ctx.view.latest_deployment(&eval.namespace, &eval.job_id);
    let live_job = job.filter(|job| !job.stop && !job.is_template());
    if let Some(latest) = &latest
        && latest.active
    {
        let description = match live_job {
            None => Some(deployment_description::STOPPED_JOB),
            Some(job) if job.version != latest.job_version => Some(deployment_description::NEWER_JOB),
            Some(_) => None,
        };
        if let Some(description) = description {
            plan.deployment_updates.push(DeploymentStatusUpdate {
                deployment_id: latest.id.clone(),
                status: DeploymentStatus::Cancelled,
                status_description: description.to_string(),
            });
        } else {
            return Some(latest.id.clone());
        }
    }
    let job = live_job?;
    if latest.as_ref().is_some_and(|latest| latest.job_version == job.version) || !deploys(job) {
        return None;
    }
    let changes = !reconciled.inplace.is_empty()
        || !reconciled.new_places.is_empty()
        || reconciled.places.iter().any(|request| {
            matches!(
                request.kind,
                PlaceKind::Canary | PlaceKind::Destructive | PlaceKind::New | PlaceKind::Replace
            )
        });
    if !changes {
        return None;
    }
    let mut deployment = Deployment::new(job, ids(), ctx.now);
    // Canaries stand in for allocations being replaced: a group with none
    // to replace (its first version, or an in-place change) has none.
    let canary_groups: Vec<&str> = reconciled
        .places
        .iter()
        .filter(|request| request.kind == PlaceKind::Canary)
        .map(|request| job.task_groups[request.group].name.as_str())
        .collect();
    deployment.drop_canaries_except(&canary_groups);
    let id = deployment.id.clone();
    plan.deployment = Some(deployment);
    Some(id)
}

/// Places one request; returns whether it was placed.
pub(crate) fn place_one<'v, V: ClusterView + ?Sized>(
    state: &mut State<'v, '_, V>,
    run: &mut GroupRun,
    request: &PlaceRequest<'v>,
    ids: &mut dyn FnMut() -> String,
    plan: &mut Plan,
) -> bool {
    if run.failed {
        state.note_coalesced(run);
        return false;
    }
    let frees_previous = matches!(request.kind, PlaceKind::Destructive);
    let previous_slot = request.previous.and_then(|previous| state.slot(&previous.node_id));
    if frees_previous && let Some(previous) = request.previous {
        state.free_alloc(previous);
        if let Some(slot) = previous_slot {
            state.reconsider(run, slot);
        }
    }
    let mut penalty: Vec<u32> = Vec::new();
    if let (PlaceKind::Reschedule { .. }, Some(previous)) = (request.kind, request.previous) {
        penalty.extend(previous_slot);
        if let Some(tracker) = &previous.reschedule_tracker {
            penalty.extend(
                tracker
                    .events
                    .iter()
                    .filter_map(|event| state.slot(&event.prev_node_id)),
            );
        }
    }
    let chosen = match request.node {
        Some(slot) => state.check_fixed(run, slot).then_some(slot),
        None => state.select(run, &penalty),
    };
    let (slot, alloc_id, preempted) = match chosen {
        Some(slot) => (slot, ids(), Vec::new()),
        None => match state.find_preemption(run, request.node) {
            Some((slot, victims)) => {
                let alloc_id = ids();
                if state.apply_preemption(run, slot, &victims, &alloc_id, plan) {
                    let victim_ids = victims.iter().map(|victim| victim.id.clone()).collect();
                    (slot, alloc_id, victim_ids)
                } else {
                    return fail(state, run, request, frees_previous, previous_slot);
                }
            }
            None => return fail(state, run, request, frees_previous, previous_slot),
        },
    };
    let alloc = state.place(run, slot, request, alloc_id, preempted);
    if let Some(previous) = request.previous {
        match request.kind {
            PlaceKind::Destructive => plan.append_stop(previous, why::UPDATED),
            PlaceKind::Reschedule { .. } => plan.append_stop(previous, why::RESCHEDULED),
            _ => {}
        }
    }
    state.stage(slot, alloc);
    true
}

fn fail<'v, V: ClusterView + ?Sized>(
    state: &mut State<'v, '_, V>,
    run: &mut GroupRun,
    request: &PlaceRequest<'v>,
    frees_previous: bool,
    previous_slot: Option<u32>,
) -> bool {
    if frees_previous && let Some(previous) = request.previous {
        state.unfree_alloc(previous);
        if let Some(slot) = previous_slot {
            state.recheck(run, slot);
        }
    }
    // System placements fail per node; the others coalesce once a group
    // has no room left.
    if request.node.is_none() {
        run.failed = true;
    }
    false
}

/// Creates follow-up evaluations for delayed reschedules and records their
/// IDs on the failed allocations.
fn followup_evals<V: ClusterView + ?Sized>(
    ctx: &Ctx<'_, V>,
    job: &Job,
    delayed: &[(&Allocation, types::UnixNanos)],
    ids: &mut dyn FnMut() -> String,
    plan: &mut Plan,
) {
    let mut delayed: Vec<(&Allocation, types::UnixNanos)> = delayed.to_vec();
    delayed.sort_by(|left, right| left.1.cmp(&right.1).then(left.0.id.cmp(&right.0.id)));
    let mut start = 0;
    while start < delayed.len() {
        let first_time = delayed[start].1;
        let end = start
            + delayed[start..]
                .iter()
                .take_while(|(_, at)| *at - first_time <= FOLLOWUP_BATCH_NANOS)
                .count();
        let eval_id = ids();
        let mut followup = new_eval(
            ctx.eval,
            Some(job),
            eval_id.clone(),
            EvalStatus::Pending,
            trigger::RETRY_FAILED_ALLOC,
            ctx.now,
        );
        followup.wait_until = delayed[end - 1].1;
        followup.status_description = "created for delayed rescheduling".to_string();
        plan.created_evals.push(followup);
        for (alloc, _) in &delayed[start..end] {
            let mut annotated = (*alloc).clone();
            annotated.followup_eval_id = eval_id.clone();
            plan.append_alloc(annotated);
        }
        start = end;
    }
}

/// One evaluation per job that lost allocations to preemption, so it can
/// place them elsewhere.
pub(crate) fn preemption_evals<V: ClusterView + ?Sized>(
    ctx: &Ctx<'_, V>,
    state: &State<'_, '_, V>,
    ids: &mut dyn FnMut() -> String,
    plan: &mut Plan,
) {
    for ((namespace, job_id), (priority, job_type)) in &state.preempted_jobs {
        plan.created_evals.push(Evaluation {
            id: ids(),
            namespace: namespace.clone(),
            priority: *priority,
            job_type: *job_type,
            triggered_by: types::trigger::PREEMPTION.to_string(),
            job_id: job_id.clone(),
            status: EvalStatus::Pending,
            previous_eval: ctx.eval.id.clone(),
            create_time: ctx.now,
            modify_time: ctx.now,
            ..Evaluation::default()
        });
    }
}
