//! Deployments: the record of one job version rolling out, group by group,
//! with its health counts, canaries and deadlines, as Nomad keeps it.
//!
//! The scheduler creates a deployment when it starts placing a new version
//! of a service job whose groups have an `update` block; the leader's
//! deployment watcher judges the health of its allocations, paces the
//! rollout through new evaluations, promotes, fails and reverts it.

use crate::job::Job;
use crate::{Index, UnixNanos};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Nomad's deployment statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentStatus {
    #[default]
    Running,
    Paused,
    Failed,
    Successful,
    Cancelled,
}

impl DeploymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Running => "running",
            DeploymentStatus::Paused => "paused",
            DeploymentStatus::Failed => "failed",
            DeploymentStatus::Successful => "successful",
            DeploymentStatus::Cancelled => "cancelled",
        }
    }

    /// Running or paused: the rollout may still move.
    pub fn is_active(self) -> bool {
        matches!(self, DeploymentStatus::Running | DeploymentStatus::Paused)
    }
}

/// Nomad's status descriptions, kept word for word where users grep them.
pub mod deployment_description {
    pub const RUNNING: &str = "Deployment is running";
    pub const RUNNING_NEEDS_PROMOTION: &str = "Deployment is running but requires manual promotion";
    pub const RUNNING_AUTO_PROMOTION: &str = "Deployment is running pending automatic promotion";
    pub const PAUSED: &str = "Deployment is paused";
    pub const SUCCESSFUL: &str = "Deployment completed successfully";
    pub const STOPPED_JOB: &str = "Cancelled because job is stopped";
    pub const NEWER_JOB: &str = "Cancelled due to newer version of job";
    pub const FAILED_ALLOCATIONS: &str = "Failed due to unhealthy allocations";
    pub const PROGRESS_DEADLINE: &str = "Failed due to progress deadline";
    pub const FAILED_BY_USER: &str = "Deployment marked as failed";
}

/// One task group's share of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DeploymentState {
    pub auto_revert: bool,
    pub auto_promote: bool,
    /// Nanoseconds; 0 means no deadline.
    pub progress_deadline: i64,
    /// The deployment fails if no allocation turns healthy by then (0: not
    /// started yet, or no deadline).
    pub require_progress_by: UnixNanos,
    pub promoted: bool,
    pub placed_canaries: Vec<String>,
    pub desired_canaries: u32,
    pub desired_total: u32,
    pub placed_allocs: u32,
    pub healthy_allocs: u32,
    pub unhealthy_allocs: u32,
}

/// A job version's rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Deployment {
    pub id: String,
    pub namespace: String,
    pub job_id: String,
    pub job_version: u64,
    pub job_modify_index: Index,
    pub job_spec_modify_index: Index,
    pub job_create_index: Index,
    pub task_groups: BTreeMap<String, DeploymentState>,
    pub status: DeploymentStatus,
    pub status_description: String,
    pub create_index: Index,
    pub modify_index: Index,
    pub create_time: UnixNanos,
    pub modify_time: UnixNanos,
}

impl Deployment {
    /// A running deployment of `job`'s current version, with one state per
    /// group that has an update strategy. The caller supplies ID and time.
    pub fn new(job: &Job, id: String, now: UnixNanos) -> Deployment {
        let mut deployment = Deployment {
            id,
            namespace: job.namespace.clone(),
            job_id: job.id.clone(),
            job_version: job.version,
            job_modify_index: job.modify_index,
            job_spec_modify_index: job.job_modify_index,
            job_create_index: job.create_index,
            status: DeploymentStatus::Running,
            status_description: deployment_description::RUNNING.to_string(),
            create_time: now,
            modify_time: now,
            ..Deployment::default()
        };
        let mut needs_promotion = false;
        let mut auto_promotes = true;
        for group in &job.task_groups {
            let Some(update) = group.update.as_ref().filter(|update| update.max_parallel > 0) else {
                continue;
            };
            if update.canary > 0 {
                needs_promotion = true;
                auto_promotes &= update.auto_promote;
            }
            deployment.task_groups.insert(
                group.name.clone(),
                DeploymentState {
                    auto_revert: update.auto_revert,
                    auto_promote: update.auto_promote,
                    progress_deadline: i64::try_from(update.progress_deadline.as_nanos()).unwrap_or(i64::MAX),
                    desired_canaries: update.canary,
                    desired_total: group.count,
                    ..DeploymentState::default()
                },
            );
        }
        if needs_promotion {
            deployment.status_description = if auto_promotes {
                deployment_description::RUNNING_AUTO_PROMOTION
            } else {
                deployment_description::RUNNING_NEEDS_PROMOTION
            }
            .to_string();
        }
        deployment
    }

    /// Keeps canaries only for the named groups, and describes the
    /// deployment accordingly.
    pub fn drop_canaries_except(&mut self, groups: &[&str]) {
        for (name, state) in self.task_groups.iter_mut() {
            if !groups.contains(&name.as_str()) {
                state.desired_canaries = 0;
            }
        }
        let canary_groups: Vec<&DeploymentState> = self
            .task_groups
            .values()
            .filter(|state| state.desired_canaries > 0)
            .collect();
        self.status_description = if canary_groups.is_empty() {
            deployment_description::RUNNING
        } else if canary_groups.iter().all(|state| state.auto_promote) {
            deployment_description::RUNNING_AUTO_PROMOTION
        } else {
            deployment_description::RUNNING_NEEDS_PROMOTION
        }
        .to_string();
    }

    /// Whether the deployment is running or paused.
    pub fn active(&self) -> bool {
        self.status.is_active()
    }

    /// Whether any group waits for its canaries to be promoted.
    pub fn requires_promotion(&self) -> bool {
        self.task_groups
            .values()
            .any(|state| state.desired_canaries > 0 && !state.promoted)
    }

    /// Whether any group asks to revert to the last stable version on
    /// failure.
    pub fn auto_reverts(&self) -> bool {
        self.task_groups.values().any(|state| state.auto_revert)
    }

    /// Whether every group has all of its allocations healthy and promoted.
    pub fn is_complete(&self) -> bool {
        self.task_groups
            .values()
            .all(|state| state.healthy_allocs >= state.desired_total && (state.desired_canaries == 0 || state.promoted))
    }
}

/// A status change of a deployment, as a plan or the watcher asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DeploymentStatusUpdate {
    pub deployment_id: String,
    pub status: DeploymentStatus,
    pub status_description: String,
}

/// What the servers know about an allocation's part in its deployment:
/// Nomad's `AllocDeploymentStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AllocDeploymentStatus {
    /// `None` until the deployment watcher (or an operator, in manual
    /// mode) judges the allocation.
    pub healthy: Option<bool>,
    pub timestamp: UnixNanos,
    pub canary: bool,
    pub modify_index: Index,
}

/// One scaling action on a task group (Nomad's `ScalingEvent`), recorded
/// by `/v1/job/:id/scale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ScalingEvent {
    pub time: UnixNanos,
    /// The count asked for, when the event changed it.
    pub count: Option<i64>,
    pub previous_count: i64,
    pub message: String,
    pub error: bool,
    pub meta: BTreeMap<String, serde_json::Value>,
    pub eval_id: Option<String>,
    pub create_index: Index,
}
