//! `job plan`: the scheduler in dry-run mode.
//!
//! The job is applied to a private copy of the state (an O(1) clone), so
//! it gets exactly the version and indexes a real registration would give
//! it; the scheduler then runs on that copy with made-up IDs and the plan
//! is summarised per task group (Nomad's `DesiredUpdates`). Nothing is
//! written.

use crate::deployment_watcher;
use crate::view::SnapshotView;
use crate::{Server, ServerError, now_nanos};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use state::{Command, StateSnapshot};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use types::{AllocMetric, EvalStatus, Evaluation, Index, Job, Plan, trigger};

/// Nomad's `DesiredUpdates` for one task group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DesiredUpdates {
    pub ignore: u64,
    pub place: u64,
    pub migrate: u64,
    pub stop: u64,
    pub in_place_update: u64,
    pub destructive_update: u64,
    pub canary: u64,
    pub preemptions: u64,
}

/// What a dry run found.
#[derive(Debug, Clone)]
pub struct JobPlan {
    /// The job as stored now (`None`: new job).
    pub old_job: Option<Arc<Job>>,
    /// The job as a registration would store it.
    pub new_job: Arc<Job>,
    /// The stored job's `JobModifyIndex` (0 for a new job), for
    /// `job run -check-index`.
    pub job_modify_index: Index,
    pub index: Index,
    pub updates: BTreeMap<String, DesiredUpdates>,
    pub failed_tg_allocs: BTreeMap<String, AllocMetric>,
}

impl JobPlan {
    /// Whether the plan changes any allocation.
    pub fn changes_allocations(&self) -> bool {
        self.updates.values().any(|updates| {
            updates.place
                + updates.migrate
                + updates.stop
                + updates.in_place_update
                + updates.destructive_update
                + updates.canary
                + updates.preemptions
                > 0
        })
    }
}

/// Counts a plan per task group.
pub(crate) fn summarise(before: &StateSnapshot, job: &Job, plan: &Plan) -> BTreeMap<String, DesiredUpdates> {
    let mut updates: BTreeMap<String, DesiredUpdates> = job
        .task_groups
        .iter()
        .map(|group| (group.name.clone(), DesiredUpdates::default()))
        .collect();
    let mut touched: BTreeSet<&str> = BTreeSet::new();
    let mut replaced: BTreeSet<&str> = BTreeSet::new();
    for alloc in plan.node_allocation.values().flatten() {
        touched.insert(&alloc.id);
        let entry = updates.entry(alloc.task_group.clone()).or_default();
        if before.alloc(&alloc.id).is_some() {
            if alloc.job_version == job.version {
                entry.in_place_update += 1;
            }
        } else if alloc.deployment_status.as_ref().is_some_and(|status| status.canary) {
            entry.canary += 1;
        } else if !alloc.previous_allocation.is_empty()
            && before
                .alloc(&alloc.previous_allocation)
                .is_some_and(|previous| previous.job_version != job.version)
        {
            entry.destructive_update += 1;
            replaced.insert(&alloc.previous_allocation);
        } else {
            entry.place += 1;
        }
    }
    for alloc in plan.node_update.values().flatten() {
        touched.insert(&alloc.id);
        if replaced.contains(alloc.id.as_str()) {
            continue;
        }
        let entry = updates.entry(alloc.task_group.clone()).or_default();
        if alloc.desired_description.contains("draining") {
            entry.migrate += 1;
        } else {
            entry.stop += 1;
        }
    }
    for alloc in plan.node_preemptions.values().flatten() {
        touched.insert(&alloc.id);
        if let Some(entry) = updates.get_mut(&alloc.task_group) {
            entry.preemptions += 1;
        }
    }
    for alloc in before.allocs_by_job(&job.namespace, &job.id) {
        if !alloc.is_terminal()
            && !touched.contains(alloc.id.as_str())
            && let Some(entry) = updates.get_mut(&alloc.task_group)
        {
            entry.ignore += 1;
        }
    }
    updates
}

impl Server {
    /// Runs the scheduler on `job` without registering it.
    pub async fn plan_job(&self, mut job: Job) -> Result<JobPlan, ServerError> {
        job.canonicalize();
        job.validate().map_err(ServerError::InvalidJob)?;
        if let Some(reason) = deployment_watcher::unsupported_update(&job) {
            return Err(ServerError::BadRequest(reason));
        }
        job.stop = false;
        job.status = types::JobStatus::Pending;
        let before = self.read_state(false).await?;
        let old_job = before.job(&job.namespace, &job.id);
        let mut after = before.clone();
        let now = now_nanos();
        let applied = after.apply(
            before.index() + 1,
            Command::JobRegister {
                job: job.clone(),
                eval: None,
                now,
                enforce_index: None,
            },
        );
        if let Some(error) = applied.error {
            return Err(ServerError::BadRequest(error));
        }
        let new_job = after
            .job(&job.namespace, &job.id)
            .ok_or_else(|| ServerError::Internal("the planned job vanished from the copy".to_string()))?;
        let eval = Evaluation {
            id: "plan".to_string(),
            namespace: new_job.namespace.clone(),
            priority: new_job.priority,
            job_type: Some(new_job.job_type),
            triggered_by: trigger::JOB_REGISTER.to_string(),
            job_id: new_job.id.clone(),
            status: EvalStatus::Pending,
            create_time: now,
            modify_time: now,
            ..Evaluation::default()
        };
        let plan = if new_job.is_template() {
            Plan::default()
        } else {
            let view_state = after.clone();
            tokio::task::spawn_blocking(move || {
                let mut next = 0u64;
                let mut ids = move || {
                    next += 1;
                    format!("plan-{next}")
                };
                let mut rng = SmallRng::seed_from_u64(0x91a4);
                scheduler::schedule(&SnapshotView(&view_state), &eval, now, &mut ids, &mut rng)
            })
            .await
            .map_err(|error| ServerError::Internal(format!("the scheduler failed: {error}")))?
            .map_err(|error| ServerError::BadRequest(error.to_string()))?
        };
        let updates = summarise(&before, &new_job, &plan);
        let failed_tg_allocs = plan
            .eval_update
            .as_ref()
            .map(|eval| eval.failed_tg_allocs.clone())
            .unwrap_or_default();
        Ok(JobPlan {
            job_modify_index: old_job.as_ref().map_or(0, |job| job.job_modify_index),
            old_job,
            new_job,
            index: before.index(),
            updates,
            failed_tg_allocs,
        })
    }
}
