//! The node drainer, a leader duty on the leader's tick, and the drain
//! operator writes (`/v1/node/:id/drain`).
//!
//! For each draining node, [`plan`] marks allocations to migrate
//! (`DesiredTransition.Migrate`), and the scheduler then moves only the
//! marked ones. The rules follow Nomad's:
//! - Service groups move in batches of their `migrate.max_parallel`. A
//!   group keeps at least `count - max_parallel` healthy allocations that
//!   are not marked. Health is judged by the servers from task states, with
//!   the group's `min_healthy_time` and `healthy_deadline`.
//! - Batch allocations are left to finish until the deadline.
//! - System allocations move last, once everything else is gone, and
//!   never with `IgnoreSystemJobs`.
//! - At the deadline, or at once when the deadline is negative (force),
//!   everything left is marked. A deadline of 0 means none.
//! - When nothing is left running, the drain is marked complete: the node
//!   has no `DrainStrategy` and its `LastDrain` says complete.
//!
//! [`plan`] is pure; [`run_once`] writes what it decided.

use crate::deployment_watcher::judge;
use crate::{Server, ServerError, new_id, now_nanos};
use state::{Command, StateSnapshot};
use std::collections::BTreeMap;
use std::sync::Arc;
use types::{
    AllocDesiredStatus, Allocation, DrainStrategy, EvalStatus, Evaluation, JobType, MigrateStrategy, UnixNanos,
    UpdateStrategy, trigger,
};

fn is_live(alloc: &Allocation) -> bool {
    alloc.desired_status == AllocDesiredStatus::Run && !alloc.client_status.is_terminal()
}

fn is_system(job_type: Option<JobType>) -> bool {
    matches!(job_type, Some(JobType::System | JobType::Sysbatch))
}

/// Whether the drain's deadline has passed (always, for a forced drain).
pub fn deadline_passed(drain: &DrainStrategy, now: UnixNanos) -> bool {
    match drain.deadline {
        deadline if deadline < 0 => true,
        0 => false,
        _ => now >= drain.force_deadline,
    }
}

fn drain_eval(
    namespace: &str,
    job_id: &str,
    job_type: Option<JobType>,
    priority: i32,
    node_id: &str,
    id: String,
    now: UnixNanos,
) -> Evaluation {
    Evaluation {
        id,
        namespace: namespace.to_string(),
        priority,
        job_type,
        triggered_by: trigger::NODE_DRAIN.to_string(),
        job_id: job_id.to_string(),
        node_id: node_id.to_string(),
        status: EvalStatus::Pending,
        create_time: now,
        modify_time: now,
        ..Evaluation::default()
    }
}

/// How many of a service group's allocations may start migrating now.
fn service_budget(snapshot: &StateSnapshot, namespace: &str, job_id: &str, group_name: &str, now: UnixNanos) -> usize {
    let Some(job) = snapshot.job(namespace, job_id) else {
        return 0;
    };
    let Some(group) = job.group(group_name) else {
        return 0;
    };
    let migrate = group.migrate.clone().unwrap_or_else(MigrateStrategy::default);
    let health = UpdateStrategy {
        max_parallel: migrate.max_parallel,
        health_check: migrate.health_check.clone(),
        min_healthy_time: migrate.min_healthy_time,
        healthy_deadline: migrate.healthy_deadline,
        ..UpdateStrategy::default()
    };
    let healthy = snapshot
        .allocs_by_job(namespace, job_id)
        .iter()
        .filter(|alloc| alloc.task_group == group_name && is_live(alloc) && !alloc.desired_transition.migrate)
        .filter(|alloc| {
            let version = snapshot
                .job_version(namespace, job_id, alloc.job_version)
                .unwrap_or_else(|| job.clone());
            // With `health_check = "checks"`, the client's service checks
            // count too, as for deployments.
            let checks_passing = health.health_check != crate::deployment_watcher::health_mode::CHECKS
                || crate::deployment_watcher::checks_pass(snapshot, &version, alloc);
            judge(alloc, &version, &health, checks_passing, now) == Some(true)
        })
        .count();
    let threshold = (group.count as usize).saturating_sub(migrate.max_parallel.max(1) as usize);
    healthy.saturating_sub(threshold)
}

/// What the drainer decides now.
pub fn plan(snapshot: &StateSnapshot, now: UnixNanos, ids: &mut dyn FnMut() -> String) -> Vec<Command> {
    let mut commands = Vec::new();
    for node in snapshot.nodes() {
        let Some(drain) = &node.drain else {
            continue;
        };
        let live: Vec<Arc<Allocation>> = snapshot
            .allocs_by_node(&node.id)
            .into_iter()
            .filter(|alloc| is_live(alloc))
            .collect();
        let job_type = |alloc: &Allocation| snapshot.job(&alloc.namespace, &alloc.job_id).map(|job| job.job_type);
        let (system, others): (Vec<&Arc<Allocation>>, Vec<&Arc<Allocation>>) =
            live.iter().partition(|alloc| is_system(job_type(alloc)));
        let forced = deadline_passed(drain, now);
        let mut marks: Vec<&Arc<Allocation>> = Vec::new();
        if others.is_empty() {
            if drain.ignore_system_jobs || system.is_empty() {
                commands.push(Command::NodeDrainComplete {
                    node_id: node.id.clone(),
                    now,
                });
                continue;
            }
            marks.extend(system.iter().filter(|alloc| !alloc.desired_transition.migrate));
        } else if forced {
            marks.extend(others.iter().filter(|alloc| !alloc.desired_transition.migrate));
            if !drain.ignore_system_jobs {
                marks.extend(system.iter().filter(|alloc| !alloc.desired_transition.migrate));
            }
        } else {
            // Service groups, in batches; batch work finishes on its own.
            let mut groups: BTreeMap<(String, String, String), Vec<&Arc<Allocation>>> = BTreeMap::new();
            for alloc in &others {
                if job_type(alloc) == Some(JobType::Service) && !alloc.desired_transition.migrate {
                    groups
                        .entry((alloc.namespace.clone(), alloc.job_id.clone(), alloc.task_group.clone()))
                        .or_default()
                        .push(alloc);
                }
            }
            for ((namespace, job_id, group), mut candidates) in groups {
                let budget = service_budget(snapshot, &namespace, &job_id, &group, now);
                candidates.sort_by(|left, right| left.name.cmp(&right.name).then(left.id.cmp(&right.id)));
                marks.extend(candidates.into_iter().take(budget));
            }
        }
        if marks.is_empty() {
            continue;
        }
        let mut evals: BTreeMap<(String, String), Evaluation> = BTreeMap::new();
        for alloc in &marks {
            let job = snapshot.job(&alloc.namespace, &alloc.job_id);
            evals
                .entry((alloc.namespace.clone(), alloc.job_id.clone()))
                .or_insert_with(|| {
                    drain_eval(
                        &alloc.namespace,
                        &alloc.job_id,
                        job.as_ref().map(|job| job.job_type),
                        job.as_ref().map_or(types::DEFAULT_JOB_PRIORITY, |job| job.priority),
                        &node.id,
                        ids(),
                        now,
                    )
                });
        }
        commands.push(Command::AllocDesiredTransition {
            alloc_ids: marks.iter().map(|alloc| alloc.id.clone()).collect(),
            evals: evals.into_values().collect(),
            now,
            force_reschedule: false,
        });
    }
    commands
}

/// One pass of the drainer on the leader.
pub(crate) async fn run_once(server: &Server) {
    let commands = plan(&server.state(), now_nanos(), &mut new_id);
    server.write_duty("drain", commands).await;
}

/// A drain request (Nomad's `NodeUpdateDrainRequest`): `None` ends the drain.
#[derive(Debug, Clone, Default)]
pub struct DrainRequest {
    /// Nanoseconds: negative forces the drain, 0 means no deadline.
    pub deadline: Option<i64>,
    pub ignore_system_jobs: bool,
    pub mark_eligible: bool,
}

impl Server {
    /// Starts, changes (`Some` deadline) or ends (`None`) a node's drain.
    pub async fn drain_node(
        &self,
        node_id: &str,
        request: DrainRequest,
    ) -> Result<(String, types::Index), ServerError> {
        let snapshot = self.read_state(false).await?;
        let node = snapshot
            .node_by_prefix(node_id)
            .map_err(|error| ServerError::BadRequest(error.to_string()))?
            .ok_or_else(|| ServerError::NotFound(format!("node {node_id:?}")))?;
        let now = now_nanos();
        let drain = request.deadline.map(|deadline| DrainStrategy {
            deadline,
            ignore_system_jobs: request.ignore_system_jobs,
            force_deadline: if deadline > 0 { now.saturating_add(deadline) } else { 0 },
            started_at: now,
        });
        let ending = drain.is_none();
        let result = self
            .write(Command::NodeDrain {
                node_id: node.id.clone(),
                drain,
                mark_eligible: request.mark_eligible,
                evals: Vec::new(),
                now,
            })
            .await?;
        if let Some(error) = result.error {
            return Err(ServerError::NotFound(error));
        }
        if ending && request.mark_eligible && self.is_leader() {
            self.unblock_evals().await;
        }
        Ok((node.id.clone(), result.index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::{AllocClientStatus, Job, Node, NodeStatus, TaskGroup, TaskState, TaskStateKind};

    const SECOND: i64 = 1_000_000_000;

    fn web_job(count: u32, max_parallel: u32) -> Job {
        let mut job = Job {
            id: "web".into(),
            task_groups: vec![TaskGroup {
                name: "api".into(),
                count,
                migrate: Some(MigrateStrategy {
                    max_parallel,
                    health_check: "task_states".into(),
                    min_healthy_time: std::time::Duration::from_secs(1),
                    healthy_deadline: std::time::Duration::from_secs(60),
                }),
                tasks: vec![types::Task {
                    name: "t".into(),
                    driver: "raw_exec".into(),
                    ..types::Task::default()
                }],
                ..TaskGroup::default()
            }],
            ..Job::default()
        };
        job.canonicalize();
        job
    }

    fn running(id: &str, index: u32, node: &str, since: i64) -> Allocation {
        Allocation {
            id: id.into(),
            namespace: "default".into(),
            name: format!("web.api[{index}]"),
            node_id: node.into(),
            job_id: "web".into(),
            task_group: "api".into(),
            client_status: AllocClientStatus::Running,
            task_states: [(
                "t".to_string(),
                TaskState {
                    state: TaskStateKind::Running,
                    started_at: since,
                    ..TaskState::default()
                },
            )]
            .into(),
            ..Allocation::default()
        }
    }

    fn cluster(allocs: Vec<Allocation>, drain: DrainStrategy) -> StateSnapshot {
        let mut state = StateSnapshot::new();
        for (index, name) in ["n1", "n2"].iter().enumerate() {
            state.apply(
                index as u64 + 1,
                Command::NodeRegister {
                    node: Node {
                        id: name.to_string(),
                        status: NodeStatus::Ready,
                        ..Node::default()
                    },
                    now: 0,
                },
            );
        }
        state.apply(
            3,
            Command::JobRegister {
                job: web_job(4, 2),
                eval: None,
                now: 0,
                enforce_index: None,
            },
        );
        state.apply(
            4,
            Command::PlanApply {
                allocs,
                eval_update: None,
                created_evals: Vec::new(),
                now: 0,
                deployment: None,
                deployment_updates: Vec::new(),
            },
        );
        // Plans do not carry client state: report it.
        let updates = state
            .allocs_by_node("n1")
            .iter()
            .map(|alloc| types::AllocClientUpdate {
                alloc_id: alloc.id.clone(),
                client_status: AllocClientStatus::Running,
                task_states: alloc_task_states(),
                ..types::AllocClientUpdate::default()
            })
            .collect();
        state.apply(
            5,
            Command::AllocClientUpdate {
                updates,
                evals: Vec::new(),
                now: 0,
            },
        );
        state.apply(
            6,
            Command::NodeDrain {
                node_id: "n1".into(),
                drain: Some(drain),
                mark_eligible: false,
                evals: Vec::new(),
                now: 10 * SECOND,
            },
        );
        state
    }

    fn alloc_task_states() -> std::collections::BTreeMap<String, TaskState> {
        [(
            "t".to_string(),
            TaskState {
                state: TaskStateKind::Running,
                started_at: SECOND,
                ..TaskState::default()
            },
        )]
        .into()
    }

    fn marked(commands: &[Command]) -> Vec<String> {
        commands
            .iter()
            .flat_map(|command| match command {
                Command::AllocDesiredTransition { alloc_ids, .. } => alloc_ids.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn a_service_group_moves_in_batches_of_max_parallel() {
        let allocs = (0..4)
            .map(|index| running(&format!("a{index}"), index, "n1", SECOND))
            .collect();
        let mut state = cluster(
            allocs,
            DrainStrategy {
                deadline: 0,
                ..DrainStrategy::default()
            },
        );
        let mut counter = 0;
        let mut ids = || {
            counter += 1;
            format!("e{counter}")
        };
        let now = 10 * SECOND;
        let first = plan(&state, now, &mut ids);
        assert_eq!(marked(&first), vec!["a0", "a1"]);
        for command in first {
            state.apply(state.index() + 1, command);
        }
        // The marked two are in flight: nothing more moves yet.
        assert!(marked(&plan(&state, now, &mut ids)).is_empty());
    }

    #[test]
    fn a_forced_drain_marks_everything_and_an_empty_node_completes() {
        let allocs = (0..4)
            .map(|index| running(&format!("a{index}"), index, "n1", SECOND))
            .collect();
        let state = cluster(
            allocs,
            DrainStrategy {
                deadline: -1,
                ..DrainStrategy::default()
            },
        );
        let mut ids = || "e".to_string();
        assert_eq!(marked(&plan(&state, 10 * SECOND, &mut ids)).len(), 4);
        let empty = cluster(
            Vec::new(),
            DrainStrategy {
                deadline: 0,
                ..DrainStrategy::default()
            },
        );
        let commands = plan(&empty, 10 * SECOND, &mut ids);
        assert!(matches!(commands.as_slice(), [Command::NodeDrainComplete { node_id, .. }] if node_id == "n1"));
    }

    #[test]
    fn deadlines() {
        let drain = |deadline, force_deadline| DrainStrategy {
            deadline,
            force_deadline,
            ..DrainStrategy::default()
        };
        assert!(deadline_passed(&drain(-1, 0), 0));
        assert!(!deadline_passed(&drain(0, 0), i64::MAX));
        assert!(!deadline_passed(&drain(5, 100), 99));
        assert!(deadline_passed(&drain(5, 100), 100));
    }
}
