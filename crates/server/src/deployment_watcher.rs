//! The deployment watcher, a leader duty: it drives every running
//! deployment forward.
//!
//! On each tick it judges the health of allocations that joined a
//! deployment (`task_states` health: every main task running for
//! `min_healthy_time`, unhealthy on a failure or past `healthy_deadline`),
//! creates an evaluation when allocations turn healthy (so the scheduler
//! places the next `max_parallel` batch), promotes canaries that asked for
//! `auto_promote`, fails a deployment on an unhealthy allocation (when the
//! group has no progress deadline) or at its progress deadline, reverts the
//! job to its last stable version when `auto_revert` is set, and marks the
//! deployment successful once every group is healthy and promoted.
//!
//! [`plan`] is pure (a snapshot, the time and an ID source in, commands
//! out); [`run_once`] writes what it decided.

use crate::{Server, new_id, now_nanos};
use state::{Command, StateSnapshot};
use types::{
    AllocClientStatus, AllocDesiredStatus, Allocation, Deployment, DeploymentStatus, DeploymentStatusUpdate,
    EvalStatus, Evaluation, Job, TaskStateKind, UnixNanos, UpdateStrategy, deployment_description, trigger,
};

/// Health checking modes of an `update` block.
pub(crate) mod health_mode {
    pub const CHECKS: &str = "checks";
    pub const TASK_STATES: &str = "task_states";
    pub const MANUAL: &str = "manual";
}

fn nanos(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// The verdict on one allocation's health now, if there is one yet.
pub(crate) fn judge(alloc: &Allocation, job: &Job, update: &UpdateStrategy, now: UnixNanos) -> Option<bool> {
    if matches!(
        alloc.client_status,
        AllocClientStatus::Failed | AllocClientStatus::Lost | AllocClientStatus::Complete
    ) || alloc.task_states.values().any(|state| state.failed)
    {
        return Some(false);
    }
    let group = job.group(&alloc.task_group)?;
    // Main tasks and sidecars must run; prestart and poststop hooks that
    // are not sidecars finish by design.
    let watched = group.tasks.iter().filter(|task| {
        task.lifecycle
            .as_ref()
            .is_none_or(|lifecycle| lifecycle.sidecar || lifecycle.hook == "poststart")
    });
    let min_healthy = nanos(update.min_healthy_time);
    let mut all_healthy = alloc.client_status == AllocClientStatus::Running;
    for task in watched {
        let healthy = alloc.task_states.get(&task.name).is_some_and(|state| {
            // A restart starts the clock again.
            let since = state.started_at.max(state.last_restart);
            state.state == TaskStateKind::Running && since > 0 && since.saturating_add(min_healthy) <= now
        });
        all_healthy &= healthy;
    }
    if all_healthy {
        return Some(true);
    }
    let deadline = alloc.create_time.saturating_add(nanos(update.healthy_deadline));
    (now >= deadline).then_some(false)
}

fn watcher_eval(job: &Job, deployment: &Deployment, id: String, now: UnixNanos) -> Evaluation {
    Evaluation {
        id,
        namespace: job.namespace.clone(),
        priority: job.priority,
        job_type: Some(job.job_type),
        triggered_by: trigger::DEPLOYMENT_WATCHER.to_string(),
        job_id: job.id.clone(),
        job_modify_index: job.job_modify_index,
        deployment_id: deployment.id.clone(),
        status: EvalStatus::Pending,
        create_time: now,
        modify_time: now,
        ..Evaluation::default()
    }
}

/// The failure of a deployment, with the revert to the last stable
/// version when the deployment asks for one.
pub(crate) fn failure(
    snapshot: &StateSnapshot,
    deployment: &Deployment,
    description: &str,
    ids: &mut dyn FnMut() -> String,
    now: UnixNanos,
) -> (DeploymentStatusUpdate, Option<Job>, Option<Evaluation>) {
    let mut description = description.to_string();
    let mut revert = None;
    let mut eval = None;
    if deployment.auto_reverts() {
        let stable = snapshot
            .job_versions(&deployment.namespace, &deployment.job_id)
            .into_iter()
            .find(|job| job.stable && job.version < deployment.job_version);
        let current = snapshot.job(&deployment.namespace, &deployment.job_id);
        match (stable, current) {
            (Some(stable), Some(current)) if current.version == deployment.job_version && !current.stop => {
                description = format!("{description} - rolling back to job version {}", stable.version);
                let mut job = (*stable).clone();
                job.stable = false;
                job.stop = false;
                eval = Some(Evaluation {
                    triggered_by: trigger::JOB_REGISTER.to_string(),
                    deployment_id: String::new(),
                    ..watcher_eval(&job, deployment, ids(), now)
                });
                revert = Some(job);
            }
            (None, _) => description = format!("{description} - no stable job version to auto revert to"),
            _ => {}
        }
    }
    (
        DeploymentStatusUpdate {
            deployment_id: deployment.id.clone(),
            status: DeploymentStatus::Failed,
            status_description: description,
        },
        revert,
        eval,
    )
}

/// What the watcher decides for one running deployment.
fn plan_one(
    snapshot: &StateSnapshot,
    deployment: &Deployment,
    now: UnixNanos,
    ids: &mut dyn FnMut() -> String,
) -> Option<Command> {
    let job = snapshot.job_version(&deployment.namespace, &deployment.job_id, deployment.job_version)?;
    let mut counted = deployment.clone();
    let mut healthy = Vec::new();
    let mut unhealthy = Vec::new();
    let mut fails_now = false;
    for alloc in snapshot.deployment_allocs(deployment) {
        if alloc.desired_status != AllocDesiredStatus::Run
            || alloc
                .deployment_status
                .as_ref()
                .is_some_and(|status| status.healthy.is_some())
        {
            continue;
        }
        let Some(update) = job.group(&alloc.task_group).and_then(|group| group.update.as_ref()) else {
            continue;
        };
        if update.health_check == health_mode::MANUAL {
            continue;
        }
        let Some(verdict) = judge(&alloc, &job, update, now) else {
            continue;
        };
        let Some(group) = counted.task_groups.get_mut(&alloc.task_group) else {
            continue;
        };
        if verdict {
            group.healthy_allocs += 1;
            healthy.push(alloc.id.clone());
        } else {
            group.unhealthy_allocs += 1;
            // Without a progress deadline the first unhealthy allocation
            // fails the deployment; with one, rescheduling may still
            // replace it in time.
            fails_now |= group.progress_deadline == 0;
            unhealthy.push(alloc.id.clone());
        }
    }
    let waits_for_promotion = |state: &types::DeploymentState| {
        state.desired_canaries > 0
            && !state.promoted
            && state.placed_canaries.len() >= state.desired_canaries as usize
            && state.healthy_allocs >= state.desired_canaries
    };
    let past_deadline = counted.task_groups.values().any(|state| {
        state.require_progress_by > 0
            && now > state.require_progress_by
            && !(state.healthy_allocs >= state.desired_total && (state.desired_canaries == 0 || state.promoted))
            && !waits_for_promotion(state)
    });
    let mut status = None;
    let mut revert = None;
    let mut eval = None;
    if fails_now || past_deadline {
        let description = if fails_now {
            deployment_description::FAILED_ALLOCATIONS
        } else {
            deployment_description::PROGRESS_DEADLINE
        };
        let (update, job, revert_eval) = failure(snapshot, deployment, description, ids, now);
        status = Some(update);
        revert = job;
        eval = revert_eval;
    } else if counted.is_complete() {
        status = Some(DeploymentStatusUpdate {
            deployment_id: deployment.id.clone(),
            status: DeploymentStatus::Successful,
            status_description: deployment_description::SUCCESSFUL.to_string(),
        });
    } else if !healthy.is_empty() {
        // Room for the next batch.
        eval = Some(watcher_eval(&job, deployment, ids(), now));
    }
    if healthy.is_empty() && unhealthy.is_empty() && status.is_none() {
        return auto_promotion(snapshot, deployment, &job, now, ids);
    }
    Some(Command::DeploymentAllocHealth {
        deployment_id: deployment.id.clone(),
        healthy,
        unhealthy,
        status,
        job: revert,
        eval,
        now,
    })
}

/// Promotes a deployment whose canary groups all ask for `auto_promote`
/// once every canary is healthy.
fn auto_promotion(
    snapshot: &StateSnapshot,
    deployment: &Deployment,
    job: &Job,
    now: UnixNanos,
    ids: &mut dyn FnMut() -> String,
) -> Option<Command> {
    let canary_groups: Vec<&types::DeploymentState> = deployment
        .task_groups
        .values()
        .filter(|state| state.desired_canaries > 0 && !state.promoted)
        .collect();
    if canary_groups.is_empty() || !canary_groups.iter().all(|state| state.auto_promote) {
        return None;
    }
    let all_healthy = canary_groups.iter().all(|state| {
        let healthy = state
            .placed_canaries
            .iter()
            .filter(|id| {
                snapshot.alloc(id).is_some_and(|alloc| {
                    alloc
                        .deployment_status
                        .as_ref()
                        .is_some_and(|status| status.healthy == Some(true))
                })
            })
            .count();
        healthy >= state.desired_canaries as usize
    });
    all_healthy.then(|| Command::DeploymentPromote {
        deployment_id: deployment.id.clone(),
        groups: Vec::new(),
        eval: Some(watcher_eval(job, deployment, ids(), now)),
        now,
    })
}

/// Every command the watcher would write now, one per deployment at most.
pub(crate) fn plan(snapshot: &StateSnapshot, now: UnixNanos, ids: &mut dyn FnMut() -> String) -> Vec<Command> {
    snapshot
        .deployments(None)
        .iter()
        .filter(|deployment| deployment.status == DeploymentStatus::Running)
        .filter_map(|deployment| plan_one(snapshot, deployment, now, ids))
        .collect()
}

/// One pass of the watcher on the leader.
pub(crate) async fn run_once(server: &Server) {
    let snapshot = server.state();
    let mut ids = new_id;
    for command in plan(&snapshot, now_nanos(), &mut ids) {
        match server.write_local(command).await {
            Ok(result) => {
                if let Some(error) = result.error {
                    tracing::debug!(%error, "deployment update refused");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not record deployment progress");
                return;
            }
        }
    }
}

/// Why a job's update settings cannot be carried out (Drover runs no
/// service checks yet, so `checks` health with checks declared is refused).
pub(crate) fn unsupported_update(job: &Job) -> Option<String> {
    for group in &job.task_groups {
        let Some(update) = &group.update else {
            continue;
        };
        let mode = update.health_check.as_str();
        if ![health_mode::CHECKS, health_mode::TASK_STATES, health_mode::MANUAL].contains(&mode) {
            return Some(format!(
                "group {:?}: update.health_check = {mode:?} is not one of \"checks\", \"task_states\" or \"manual\"",
                group.name
            ));
        }
        let has_checks = group
            .services
            .iter()
            .chain(group.tasks.iter().flat_map(|task| task.services.iter()))
            .any(|service| !service.checks.is_empty());
        if mode == health_mode::CHECKS
            && has_checks
            && update.max_parallel > 0
            && job.job_type == types::JobType::Service
        {
            return Some(format!(
                "group {:?}: update.health_check = \"checks\" with service checks is not supported by Drover yet \
                 (service checks do not run); use health_check = \"task_states\" or \"manual\"",
                group.name
            ));
        }
    }
    None
}
