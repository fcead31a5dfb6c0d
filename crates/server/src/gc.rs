//! Garbage collection on the servers: terminal evaluations and
//! allocations, dead jobs and down nodes leave the state once they are
//! older than Nomad's thresholds (configurable), so the state stays flat
//! under churn. The leader runs it every `interval`; `PUT /v1/system/gc`
//! runs it at once with every threshold at zero, as Nomad's forced GC does.
//!
//! [`gc_candidates`] is the pure decision; the leader writes what it chose
//! as one `GcDelete` command per batch, so every server removes the same.
//!
//! What is kept, as in Nomad:
//! - a failed allocation that was not replaced (it may still be
//!   rescheduled), and a complete allocation of a live batch job (the
//!   scheduler would run the work again without it);
//! - an evaluation while any of its allocations is kept;
//! - a job while it is not stopped-and-dead, or anything of it is recent;
//! - a node while anything runs on it.

use crate::{Server, ServerError, now_nanos};
use state::{Command, StateSnapshot};
use std::collections::BTreeSet;
use std::time::Duration;
use types::{
    AllocClientStatus, AllocDesiredStatus, Allocation, EvalStatus, Index, JobStatus, JobType, NodeStatus, UnixNanos,
};

/// Most IDs written in one `GcDelete` (keeps Raft entries bounded).
const GC_BATCH: usize = 5_000;

/// Nomad's garbage-collection thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcConfig {
    /// How often the leader collects.
    pub interval: Duration,
    /// Terminal evaluations (and their allocations) older than this go.
    pub eval_gc_threshold: Duration,
    /// The same for batch jobs.
    pub batch_eval_gc_threshold: Duration,
    /// Dead, stopped jobs older than this go.
    pub job_gc_threshold: Duration,
    /// Down nodes older than this go.
    pub node_gc_threshold: Duration,
}

impl Default for GcConfig {
    /// Nomad's defaults.
    fn default() -> Self {
        GcConfig {
            interval: Duration::from_secs(5 * 60),
            eval_gc_threshold: Duration::from_secs(60 * 60),
            batch_eval_gc_threshold: Duration::from_secs(24 * 60 * 60),
            job_gc_threshold: Duration::from_secs(4 * 60 * 60),
            node_gc_threshold: Duration::from_secs(24 * 60 * 60),
        }
    }
}

impl GcConfig {
    /// Every threshold at zero: collect everything eligible now.
    pub fn forced(self) -> GcConfig {
        GcConfig {
            eval_gc_threshold: Duration::ZERO,
            batch_eval_gc_threshold: Duration::ZERO,
            job_gc_threshold: Duration::ZERO,
            node_gc_threshold: Duration::ZERO,
            ..self
        }
    }
}

/// What one collection removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPlan {
    pub evals: Vec<String>,
    pub allocs: Vec<String>,
    pub jobs: Vec<(String, String)>,
    pub nodes: Vec<String>,
}

impl GcPlan {
    pub fn is_empty(&self) -> bool {
        self.evals.is_empty() && self.allocs.is_empty() && self.jobs.is_empty() && self.nodes.is_empty()
    }
}

fn cutoff(now: UnixNanos, threshold: Duration) -> UnixNanos {
    now.saturating_sub(i64::try_from(threshold.as_nanos()).unwrap_or(i64::MAX))
}

/// Whether an allocation may go, given its job's state.
fn alloc_collectable(state: &StateSnapshot, alloc: &Allocation, before: UnixNanos) -> bool {
    if !alloc.is_terminal() || alloc.modify_time > before {
        return false;
    }
    let Some(job) = state.job(&alloc.namespace, &alloc.job_id) else {
        return true;
    };
    if job.stop || job.status == JobStatus::Dead {
        return true;
    }
    if alloc.desired_status != AllocDesiredStatus::Run {
        return true;
    }
    match alloc.client_status {
        AllocClientStatus::Failed => !alloc.next_allocation.is_empty(),
        AllocClientStatus::Complete => !matches!(job.job_type, JobType::Batch | JobType::Sysbatch),
        _ => true,
    }
}

/// The last `GC_BATCH` items of `items`, taken out.
fn take<T>(items: &mut Vec<T>) -> Vec<T> {
    let at = items.len().saturating_sub(GC_BATCH);
    items.split_off(at)
}

/// Chooses what to collect from `state` at `now`.
pub fn gc_candidates(state: &StateSnapshot, now: UnixNanos, config: &GcConfig) -> GcPlan {
    let mut plan = GcPlan::default();
    let mut chosen_allocs: BTreeSet<String> = BTreeSet::new();
    let mut chosen_evals: BTreeSet<String> = BTreeSet::new();

    // Dead jobs, with everything they have.
    let job_before = cutoff(now, config.job_gc_threshold);
    for job in state.jobs(None) {
        // Dead: stopped with nothing running, or a batch job whose work
        // all finished. Periodic and parameterized parents live on until
        // stopped.
        if job.status != JobStatus::Dead || (job.is_template() && !job.stop) {
            continue;
        }
        let allocs = state.allocs_by_job(&job.namespace, &job.id);
        let evals = state.evals_by_job(&job.namespace, &job.id);
        let recent = allocs.iter().any(|alloc| alloc.modify_time > job_before)
            || evals.iter().any(|eval| eval.modify_time > job_before)
            || (allocs.is_empty() && evals.is_empty() && job.submit_time > job_before);
        let live = allocs.iter().any(|alloc| !alloc.is_terminal())
            || evals
                .iter()
                .any(|eval| matches!(eval.status, EvalStatus::Pending | EvalStatus::Blocked));
        if recent || live {
            continue;
        }
        plan.jobs.push((job.namespace.clone(), job.id.clone()));
        chosen_allocs.extend(allocs.iter().map(|alloc| alloc.id.clone()));
        chosen_evals.extend(evals.iter().map(|eval| eval.id.clone()));
    }

    // Terminal evaluations whose allocations may all go.
    let eval_before = cutoff(now, config.eval_gc_threshold);
    let batch_before = cutoff(now, config.batch_eval_gc_threshold);
    for eval in state.evals() {
        if chosen_evals.contains(&eval.id)
            || !matches!(
                eval.status,
                EvalStatus::Complete | EvalStatus::Failed | EvalStatus::Canceled
            )
        {
            continue;
        }
        let batch = matches!(eval.job_type, Some(JobType::Batch | JobType::Sysbatch));
        let before = if batch { batch_before } else { eval_before };
        if eval.modify_time > before {
            continue;
        }
        let allocs: Vec<_> = state
            .allocs_by_job(&eval.namespace, &eval.job_id)
            .into_iter()
            .filter(|alloc| alloc.eval_id == eval.id)
            .collect();
        if allocs.iter().all(|alloc| alloc_collectable(state, alloc, before)) {
            chosen_evals.insert(eval.id.clone());
            chosen_allocs.extend(allocs.iter().map(|alloc| alloc.id.clone()));
        }
    }

    // Terminal allocations on their own (their evaluation may be gone or
    // kept for another allocation).
    for alloc in state.allocs() {
        if !chosen_allocs.contains(&alloc.id) && alloc_collectable(state, alloc, eval_before) {
            chosen_allocs.insert(alloc.id.clone());
        }
    }

    // Down nodes with nothing left running.
    let node_before = cutoff(now, config.node_gc_threshold);
    for node in state.nodes() {
        if node.status != NodeStatus::Down || node.status_updated_at > node_before {
            continue;
        }
        let allocs = state.allocs_by_node(&node.id);
        if allocs.iter().all(|alloc| chosen_allocs.contains(&alloc.id)) {
            plan.nodes.push(node.id.clone());
        }
    }
    plan.evals = chosen_evals.into_iter().collect();
    plan.allocs = chosen_allocs.into_iter().collect();
    plan
}

impl Server {
    /// Collects garbage now; `force` ignores every threshold (Nomad's
    /// `PUT /v1/system/gc`). Returns how many objects went, and the index.
    pub async fn collect_garbage(&self, force: bool) -> Result<(usize, Index), ServerError> {
        let state = self.read_state(false).await?;
        let config = if force {
            self.config().gc.forced()
        } else {
            self.config().gc
        };
        let plan = gc_candidates(&state, now_nanos(), &config);
        let mut removed = 0;
        let mut index = state.index();
        let GcPlan {
            mut evals,
            mut allocs,
            mut jobs,
            mut nodes,
        } = plan;
        while !(evals.is_empty() && allocs.is_empty() && jobs.is_empty() && nodes.is_empty()) {
            let command = Command::GcDelete {
                eval_ids: take(&mut evals),
                alloc_ids: take(&mut allocs),
                jobs: take(&mut jobs),
                node_ids: take(&mut nodes),
            };
            if let Command::GcDelete {
                eval_ids,
                alloc_ids,
                jobs,
                node_ids,
            } = &command
            {
                removed += eval_ids.len() + alloc_ids.len() + jobs.len() + node_ids.len();
            }
            index = self.write(command).await?.index;
        }
        if removed > 0 {
            tracing::info!(removed, force, "garbage collected");
        }
        Ok((removed, index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::{Evaluation, Job, Node};

    const HOUR: i64 = 3_600_000_000_000;
    const NOW: i64 = 100 * HOUR;

    fn job(id: &str, job_type: JobType) -> Job {
        let mut job = Job {
            id: id.into(),
            job_type,
            task_groups: vec![types::TaskGroup {
                name: "g".into(),
                tasks: vec![types::Task {
                    name: "t".into(),
                    driver: "raw_exec".into(),
                    ..types::Task::default()
                }],
                ..types::TaskGroup::default()
            }],
            ..Job::default()
        };
        job.canonicalize();
        job
    }

    fn eval(id: &str, job_id: &str, status: EvalStatus, age_hours: i64) -> Evaluation {
        Evaluation {
            id: id.into(),
            namespace: "default".into(),
            job_id: job_id.into(),
            status,
            modify_time: NOW - age_hours * HOUR,
            ..Evaluation::default()
        }
    }

    fn alloc(id: &str, job_id: &str, eval_id: &str, client: AllocClientStatus, age_hours: i64) -> Allocation {
        Allocation {
            id: id.into(),
            namespace: "default".into(),
            job_id: job_id.into(),
            eval_id: eval_id.into(),
            node_id: "n1".into(),
            client_status: client,
            create_time: NOW - age_hours * HOUR,
            ..Allocation::default()
        }
    }

    /// A state built through `apply`, with modify times as given (plans
    /// stamp allocations with the command's `now`).
    fn state_with(jobs: Vec<Job>, evals: Vec<Evaluation>, allocs: Vec<(Allocation, i64)>) -> StateSnapshot {
        let mut state = StateSnapshot::new();
        let mut index = 1;
        state.apply(
            index,
            Command::NodeRegister {
                node: Node {
                    id: "n1".into(),
                    ..Node::default()
                },
                now: NOW,
            },
        );
        for job in jobs {
            index += 1;
            state.apply(
                index,
                Command::JobRegister {
                    job,
                    eval: None,
                    now: 1,
                    enforce_index: None,
                },
            );
        }
        for (alloc, age) in allocs {
            index += 1;
            let client = alloc.client_status;
            let id = alloc.id.clone();
            state.apply(
                index,
                Command::PlanApply {
                    allocs: vec![alloc],
                    eval_update: None,
                    created_evals: Vec::new(),
                    now: NOW - age * HOUR,
                    deployment: None,
                    deployment_updates: Vec::new(),
                },
            );
            index += 1;
            state.apply(
                index,
                Command::AllocClientUpdate {
                    updates: vec![types::AllocClientUpdate {
                        alloc_id: id,
                        client_status: client,
                        modify_time: NOW - age * HOUR,
                        ..types::AllocClientUpdate::default()
                    }],
                    evals: Vec::new(),
                    now: NOW - age * HOUR,
                },
            );
        }
        index += 1;
        state.apply(index, Command::EvalUpsert { evals });
        state
    }

    #[test]
    fn old_terminal_work_goes_and_what_the_scheduler_needs_stays() {
        let state = state_with(
            vec![job("web", JobType::Service), job("nightly", JobType::Batch)],
            vec![
                eval("old", "web", EvalStatus::Complete, 5),
                eval("fresh", "web", EvalStatus::Complete, 0),
                eval("pending", "web", EvalStatus::Pending, 5),
                eval("batch", "nightly", EvalStatus::Complete, 5),
            ],
            vec![
                (alloc("done", "web", "old", AllocClientStatus::Complete, 5), 5),
                (alloc("running", "web", "fresh", AllocClientStatus::Running, 5), 5),
                (alloc("failed-kept", "web", "fresh", AllocClientStatus::Failed, 5), 5),
                (
                    alloc("batch-done", "nightly", "batch", AllocClientStatus::Complete, 5),
                    5,
                ),
                (
                    alloc("batch-running", "nightly", "batch", AllocClientStatus::Running, 5),
                    5,
                ),
            ],
        );
        let plan = gc_candidates(&state, NOW, &GcConfig::default());
        assert_eq!(plan.evals, vec!["old".to_string()]);
        assert_eq!(plan.allocs, vec!["done".to_string()]);
        assert!(plan.jobs.is_empty());
        // Forced: the fresh eval still has a running and an unreplaced
        // failed allocation, the batch job is alive (its finished work
        // must stay, or it would run again): they stay.
        let forced = gc_candidates(&state, NOW, &GcConfig::default().forced());
        assert_eq!(forced.evals, vec!["old".to_string()]);
        assert_eq!(forced.allocs, vec!["done".to_string()]);
    }

    #[test]
    fn a_stopped_dead_job_goes_with_everything_and_its_node_when_down() {
        let mut state = state_with(
            vec![job("web", JobType::Service)],
            vec![eval("e", "web", EvalStatus::Complete, 6)],
            vec![(alloc("a", "web", "e", AllocClientStatus::Complete, 6), 6)],
        );
        state.apply(
            1_000,
            Command::JobDeregister {
                namespace: "default".into(),
                job_id: "web".into(),
                purge: false,
                eval: None,
                now: NOW - 6 * HOUR,
            },
        );
        state.apply(
            1_001,
            Command::NodeUpdateStatus {
                node_id: "n1".into(),
                status: NodeStatus::Down,
                now: NOW - 30 * HOUR,
                evals: Vec::new(),
            },
        );
        let plan = gc_candidates(&state, NOW, &GcConfig::default());
        assert_eq!(plan.jobs, vec![("default".to_string(), "web".to_string())]);
        assert_eq!(plan.evals, vec!["e".to_string()]);
        assert_eq!(plan.allocs, vec!["a".to_string()]);
        assert_eq!(plan.nodes, vec!["n1".to_string()]);
        state.apply(
            1_002,
            Command::GcDelete {
                eval_ids: plan.evals,
                alloc_ids: plan.allocs,
                jobs: plan.jobs,
                node_ids: plan.nodes,
            },
        );
        assert_eq!(state.jobs(None).len(), 0);
        assert_eq!(state.node_count(), 0);
        assert!(gc_candidates(&state, NOW, &GcConfig::default()).is_empty());
    }
}
