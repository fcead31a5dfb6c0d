//! Evaluations: the record that something may need scheduling.

use crate::alloc::AllocMetric;
use crate::job::JobType;
use crate::{Index, UnixNanos};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An evaluation's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EvalStatus {
    #[default]
    Pending,
    Blocked,
    Complete,
    Failed,
    Canceled,
}

impl EvalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EvalStatus::Pending => "pending",
            EvalStatus::Blocked => "blocked",
            EvalStatus::Complete => "complete",
            EvalStatus::Failed => "failed",
            EvalStatus::Canceled => "canceled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, EvalStatus::Complete | EvalStatus::Failed | EvalStatus::Canceled)
    }
}

/// Nomad's `TriggeredBy` values.
pub mod trigger {
    pub const JOB_REGISTER: &str = "job-register";
    pub const JOB_DEREGISTER: &str = "job-deregister";
    pub const NODE_UPDATE: &str = "node-update";
    pub const NODE_DRAIN: &str = "node-drain";
    pub const ALLOC_FAILURE: &str = "alloc-failure";
    pub const ALLOC_STOP: &str = "alloc-stop";
    pub const RETRY_FAILED_ALLOC: &str = "alloc-failure";
    pub const QUEUED_ALLOCS: &str = "queued-allocs";
    pub const PERIODIC_JOB: &str = "periodic-job";
    pub const ROLLING_UPDATE: &str = "rolling-update";
    pub const DEPLOYMENT_WATCHER: &str = "deployment-watcher";
    pub const FAILED_FOLLOW_UP: &str = "failed-follow-up";
    pub const PREEMPTION: &str = "preemption";
    pub const SCHEDULED: &str = "scheduled";
    pub const JOB_SCALING: &str = "job-scaling";
}

/// A request to (re)consider a job's placements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Evaluation {
    pub id: String,
    pub namespace: String,
    pub priority: i32,
    pub job_type: Option<JobType>,
    pub triggered_by: String,
    pub job_id: String,
    pub job_modify_index: Index,
    pub node_id: String,
    pub node_modify_index: Index,
    pub deployment_id: String,
    pub status: EvalStatus,
    pub status_description: String,
    /// Do not process before this time (delayed reschedules).
    pub wait_until: UnixNanos,
    pub next_eval: String,
    pub previous_eval: String,
    pub blocked_eval: String,
    pub failed_tg_allocs: BTreeMap<String, AllocMetric>,
    /// Node classes known to be (in)feasible, to unblock on change.
    pub class_eligibility: BTreeMap<String, bool>,
    pub escaped_computed_class: bool,
    pub queued_allocations: BTreeMap<String, u64>,
    pub snapshot_index: Index,
    pub create_index: Index,
    pub modify_index: Index,
    pub create_time: UnixNanos,
    pub modify_time: UnixNanos,
}
