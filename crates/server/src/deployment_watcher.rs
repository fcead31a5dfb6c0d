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
pub(crate) fn judge(
    alloc: &Allocation,
    job: &Job,
    update: &UpdateStrategy,
    checks_passing: bool,
    now: UnixNanos,
) -> Option<bool> {
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
    // `checks_passing`: with `health_check = "checks"`, every service
    // check of the allocation passes (true when there are none).
    let mut all_healthy = alloc.client_status == AllocClientStatus::Running && checks_passing;
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

/// Whether every service of the allocation's group (and its tasks) that
/// declares checks is registered with every check passing.
pub(crate) fn checks_pass(snapshot: &StateSnapshot, job: &Job, alloc: &Allocation) -> bool {
    let Some(group) = job.group(&alloc.task_group) else {
        return true;
    };
    let expected = group
        .services
        .iter()
        .chain(group.tasks.iter().flat_map(|task| task.services.iter()))
        .filter(|service| !service.checks.is_empty())
        .count();
    if expected == 0 {
        return true;
    }
    let registrations = snapshot.service_registrations_by_alloc(&alloc.id);
    let checked: Vec<_> = registrations
        .iter()
        .filter(|registration| !registration.checks.is_empty())
        .collect();
    checked.len() >= expected
        && checked.iter().all(|registration| {
            registration
                .checks
                .iter()
                .all(|check| check.status == types::service::check_status::PASSING)
        })
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
        let checks_passing = update.health_check != health_mode::CHECKS || checks_pass(snapshot, &job, &alloc);
        let Some(verdict) = judge(&alloc, &job, update, checks_passing, now) else {
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
    let commands = plan(&server.state(), now_nanos(), &mut new_id);
    server.write_duty("deployment", commands).await;
}

/// Why a job's update settings cannot be carried out. `checks` health
/// uses the service checks the clients run (see `checks_pass`).
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
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use types::{AllocClientUpdate, Allocation, DeploymentStatus, Task, TaskGroup, TaskState};

    const SECOND: i64 = 1_000_000_000;

    fn job(version_marker: &str, auto_revert: bool, progress_deadline: Duration) -> Job {
        let mut job = Job {
            id: "web".into(),
            namespace: "default".into(),
            task_groups: vec![TaskGroup {
                name: "api".into(),
                count: 2,
                tasks: vec![Task {
                    name: "server".into(),
                    driver: "raw_exec".into(),
                    env: [("MARKER".to_string(), version_marker.to_string())].into(),
                    ..Task::default()
                }],
                update: Some(UpdateStrategy {
                    max_parallel: 1,
                    health_check: health_mode::TASK_STATES.into(),
                    min_healthy_time: Duration::from_secs(10),
                    healthy_deadline: Duration::from_secs(60),
                    progress_deadline,
                    auto_revert,
                    ..UpdateStrategy::default()
                }),
                ..TaskGroup::default()
            }],
            ..Job::default()
        };
        job.canonicalize();
        job
    }

    /// A state with the job registered and `allocs` placed in a fresh
    /// deployment of its current version at time 0.
    fn state_with(job: Job, allocs: &[&str], start: u64) -> (StateSnapshot, String) {
        let mut state = StateSnapshot::new();
        state.apply(
            start,
            Command::JobRegister {
                job,
                eval: None,
                now: 0,
                enforce_index: None,
            },
        );
        let job = state.job("default", "web").expect("job");
        let deployment = Deployment::new(&job, format!("d{}", job.version), 0);
        let id = deployment.id.clone();
        let allocs = allocs
            .iter()
            .map(|alloc_id| Allocation {
                id: alloc_id.to_string(),
                namespace: "default".into(),
                job_id: "web".into(),
                job_version: job.version,
                task_group: "api".into(),
                node_id: "n1".into(),
                deployment_id: id.clone(),
                ..Allocation::default()
            })
            .collect();
        state.apply(
            start + 1,
            Command::PlanApply {
                allocs,
                eval_update: None,
                created_evals: Vec::new(),
                now: 0,
                deployment: Some(deployment),
                deployment_updates: Vec::new(),
            },
        );
        (state, id)
    }

    fn report(state: &mut StateSnapshot, index: u64, alloc_id: &str, status: AllocClientStatus, task: TaskState) {
        state.apply(
            index,
            Command::AllocClientUpdate {
                updates: vec![AllocClientUpdate {
                    alloc_id: alloc_id.into(),
                    client_status: status,
                    task_states: [("server".to_string(), task)].into(),
                    ..AllocClientUpdate::default()
                }],
                evals: Vec::new(),
                now: 0,
            },
        );
    }

    fn running_since(started_at: i64) -> TaskState {
        TaskState {
            state: TaskStateKind::Running,
            started_at,
            ..TaskState::default()
        }
    }

    fn counter() -> impl FnMut() -> String {
        let mut next = 0;
        move || {
            next += 1;
            format!("id-{next}")
        }
    }

    #[test]
    fn health_needs_min_healthy_time_and_a_batch_gets_an_evaluation() {
        let (mut state, deployment_id) = state_with(job("a", false, Duration::ZERO), &["a1"], 1);
        report(
            &mut state,
            3,
            "a1",
            AllocClientStatus::Running,
            running_since(5 * SECOND),
        );
        // Running for 9 s: not yet.
        assert!(plan(&state, 14 * SECOND, &mut counter()).is_empty());
        let commands = plan(&state, 15 * SECOND, &mut counter());
        let [
            Command::DeploymentAllocHealth {
                healthy,
                unhealthy,
                status,
                eval,
                ..
            },
        ] = commands.as_slice()
        else {
            panic!("one health command: {commands:?}");
        };
        assert_eq!(healthy, &vec!["a1".to_string()]);
        assert!(unhealthy.is_empty() && status.is_none());
        let eval = eval.as_ref().expect("an evaluation for the next batch");
        assert_eq!(eval.triggered_by, trigger::DEPLOYMENT_WATCHER);
        assert_eq!(eval.deployment_id, deployment_id);
        state.apply(4, commands[0].clone());
        let deployment = state.deployment(&deployment_id).expect("deployment");
        assert_eq!(deployment.task_groups["api"].healthy_allocs, 1);
        // Judged once: nothing more to say until the second allocation runs.
        assert!(plan(&state, 16 * SECOND, &mut counter()).is_empty());
    }

    #[test]
    fn a_restart_starts_the_clock_again_and_the_healthy_deadline_fails() {
        let (mut state, _) = state_with(job("a", false, Duration::from_secs(600)), &["a1"], 1);
        let mut restarted = running_since(SECOND);
        restarted.restarts = 1;
        restarted.last_restart = 55 * SECOND;
        report(&mut state, 3, "a1", AllocClientStatus::Running, restarted);
        assert!(plan(&state, 59 * SECOND, &mut counter()).is_empty());
        // Past the healthy deadline (60 s after creation) it is unhealthy;
        // with a progress deadline the deployment itself goes on.
        let commands = plan(&state, 60 * SECOND, &mut counter());
        let [Command::DeploymentAllocHealth { unhealthy, status, .. }] = commands.as_slice() else {
            panic!("one health command: {commands:?}");
        };
        assert_eq!(unhealthy, &vec!["a1".to_string()]);
        assert!(status.is_none());
    }

    #[test]
    fn progress_deadline_fails_and_auto_revert_registers_the_stable_version() {
        let (mut state, first) = state_with(job("good", true, Duration::from_secs(30)), &["a1", "a2"], 1);
        for (index, alloc) in [(3, "a1"), (4, "a2")] {
            report(
                &mut state,
                index,
                alloc,
                AllocClientStatus::Running,
                running_since(SECOND),
            );
        }
        let commands = plan(&state, 20 * SECOND, &mut counter());
        let [Command::DeploymentAllocHealth { status: Some(done), .. }] = commands.as_slice() else {
            panic!("success: {commands:?}");
        };
        assert_eq!(done.status, DeploymentStatus::Successful);
        state.apply(5, commands[0].clone());
        assert!(state.job_version("default", "web", 0).expect("v0").stable);
        assert_eq!(
            state.deployment(&first).expect("first").status,
            DeploymentStatus::Successful
        );

        let (bad_state, second) = {
            let mut state = state;
            state.apply(
                6,
                Command::JobRegister {
                    job: job("bad", true, Duration::from_secs(30)),
                    eval: None,
                    now: 0,
                    enforce_index: None,
                },
            );
            let job = state.job("default", "web").expect("job");
            let deployment = Deployment::new(&job, "d1".into(), 0);
            let mut alloc = (*state.alloc("a1").expect("a1")).clone();
            alloc.id = "b1".into();
            alloc.job_version = 1;
            alloc.deployment_id = "d1".into();
            alloc.deployment_status = None;
            alloc.client_status = AllocClientStatus::Pending;
            alloc.task_states.clear();
            state.apply(
                7,
                Command::PlanApply {
                    allocs: vec![alloc],
                    eval_update: None,
                    created_evals: Vec::new(),
                    now: 100 * SECOND,
                    deployment: Some(deployment),
                    deployment_updates: Vec::new(),
                },
            );
            (state, "d1".to_string())
        };
        let deployment = bad_state.deployment(&second).expect("second");
        assert_eq!(deployment.task_groups["api"].require_progress_by, 130 * SECOND);
        assert!(plan(&bad_state, 129 * SECOND, &mut counter()).is_empty());
        let commands = plan(&bad_state, 131 * SECOND, &mut counter());
        let [
            Command::DeploymentAllocHealth {
                status: Some(failed),
                job: Some(revert),
                eval: Some(eval),
                ..
            },
        ] = commands.as_slice()
        else {
            panic!("a failure with a revert: {commands:?}");
        };
        assert_eq!(failed.status, DeploymentStatus::Failed);
        assert_eq!(
            failed.status_description,
            "Failed due to progress deadline - rolling back to job version 0"
        );
        assert_eq!(revert.task_groups[0].tasks[0].env["MARKER"], "good");
        assert!(!revert.stable);
        assert_eq!(eval.triggered_by, trigger::JOB_REGISTER);
        let mut after = bad_state.clone();
        let result = after.apply(8, commands[0].clone());
        assert_eq!(result.job_version, Some(2));
        assert_eq!(
            after.deployment(&second).expect("second").status,
            DeploymentStatus::Failed
        );
        assert!(
            plan(&after, 140 * SECOND, &mut counter()).is_empty(),
            "a failed deployment is left alone"
        );
    }

    #[test]
    fn checks_health_waits_for_passing_service_checks() {
        let mut with_checks = job("a", false, Duration::ZERO);
        with_checks.task_groups[0].services = vec![types::Service {
            name: "web".into(),
            checks: vec![types::ServiceCheck::default()],
            ..types::Service::default()
        }];
        if let Some(update) = with_checks.task_groups[0].update.as_mut() {
            update.health_check = health_mode::CHECKS.into();
        }
        assert_eq!(unsupported_update(&with_checks), None);
        let update = with_checks.task_groups[0].update.clone().expect("update");
        let running = Allocation {
            client_status: AllocClientStatus::Running,
            task_group: with_checks.task_groups[0].name.clone(),
            task_states: with_checks.task_groups[0]
                .tasks
                .iter()
                .map(|task| {
                    (
                        task.name.clone(),
                        types::TaskState {
                            state: TaskStateKind::Running,
                            started_at: 1,
                            ..types::TaskState::default()
                        },
                    )
                })
                .collect(),
            ..Allocation::default()
        };
        let later = 1_000 * SECOND;
        assert_eq!(judge(&running, &with_checks, &update, true, later), Some(true));
        // Failing checks hold the verdict until the healthy deadline.
        let verdict = judge(&running, &with_checks, &update, false, running.create_time + 1);
        assert_eq!(verdict, None);
        assert_eq!(judge(&running, &with_checks, &update, false, later), Some(false));
        let mut bogus = with_checks;
        if let Some(update) = bogus.task_groups[0].update.as_mut() {
            update.health_check = "bogus".into();
        }
        assert!(unsupported_update(&bogus).is_some());
    }
}
