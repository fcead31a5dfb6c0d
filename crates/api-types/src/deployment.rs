//! Nomad's deployment JSON: `GET /v1/deployment/:id`, the rows of
//! `/v1/deployments`, an allocation's `DeploymentStatus`, and the bodies
//! and answers of the deployment writes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One task group's share of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DeploymentState {
    #[serde(rename = "AutoRevert")]
    pub auto_revert: bool,
    #[serde(rename = "AutoPromote")]
    pub auto_promote: bool,
    /// Nanoseconds, as Nomad's Go `time.Duration`.
    #[serde(rename = "ProgressDeadline")]
    pub progress_deadline: i64,
    /// RFC 3339; Go's zero time when not set.
    #[serde(rename = "RequireProgressBy")]
    pub require_progress_by: String,
    #[serde(rename = "Promoted")]
    pub promoted: bool,
    #[serde(rename = "PlacedCanaries")]
    pub placed_canaries: Vec<String>,
    #[serde(rename = "DesiredCanaries")]
    pub desired_canaries: u32,
    #[serde(rename = "DesiredTotal")]
    pub desired_total: u32,
    #[serde(rename = "PlacedAllocs")]
    pub placed_allocs: u32,
    #[serde(rename = "HealthyAllocs")]
    pub healthy_allocs: u32,
    #[serde(rename = "UnhealthyAllocs")]
    pub unhealthy_allocs: u32,
}

/// A deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Deployment {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Namespace")]
    pub namespace: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    #[serde(rename = "JobVersion")]
    pub job_version: u64,
    #[serde(rename = "JobModifyIndex")]
    pub job_modify_index: u64,
    #[serde(rename = "JobSpecModifyIndex")]
    pub job_spec_modify_index: u64,
    #[serde(rename = "JobCreateIndex")]
    pub job_create_index: u64,
    #[serde(rename = "IsMultiregion")]
    pub is_multiregion: bool,
    #[serde(rename = "TaskGroups")]
    pub task_groups: BTreeMap<String, DeploymentState>,
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "StatusDescription")]
    pub status_description: String,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
}

/// An allocation's part in its deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AllocDeploymentStatus {
    #[serde(rename = "Healthy")]
    pub healthy: Option<bool>,
    #[serde(rename = "Timestamp")]
    pub timestamp: String,
    #[serde(rename = "Canary")]
    pub canary: bool,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
}

/// Answer to a deployment write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DeploymentUpdateResponse {
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    #[serde(rename = "EvalCreateIndex")]
    pub eval_create_index: u64,
    #[serde(rename = "DeploymentModifyIndex")]
    pub deployment_modify_index: u64,
    #[serde(rename = "RevertedJobVersion")]
    pub reverted_job_version: Option<u64>,
    #[serde(rename = "Index")]
    pub index: u64,
}

/// `POST /v1/deployment/promote/:id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DeploymentPromoteRequest {
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    #[serde(rename = "All")]
    pub all: bool,
    #[serde(rename = "Groups")]
    pub groups: Option<Vec<String>>,
}

/// `POST /v1/deployment/pause/:id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DeploymentPauseRequest {
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    #[serde(rename = "Pause")]
    pub pause: bool,
}

/// `POST /v1/deployment/allocation-health/:id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DeploymentAllocHealthRequest {
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    #[serde(rename = "HealthyAllocationIDs")]
    pub healthy_allocation_ids: Option<Vec<String>>,
    #[serde(rename = "UnhealthyAllocationIDs")]
    pub unhealthy_allocation_ids: Option<Vec<String>>,
}

fn time_or_zero(nanos: i64) -> String {
    if nanos > 0 {
        crate::format_rfc3339(nanos)
    } else {
        "0001-01-01T00:00:00Z".to_string()
    }
}

impl From<&types::Deployment> for Deployment {
    fn from(deployment: &types::Deployment) -> Deployment {
        Deployment {
            id: deployment.id.clone(),
            namespace: deployment.namespace.clone(),
            job_id: deployment.job_id.clone(),
            job_version: deployment.job_version,
            job_modify_index: deployment.job_modify_index,
            job_spec_modify_index: deployment.job_spec_modify_index,
            job_create_index: deployment.job_create_index,
            is_multiregion: false,
            task_groups: deployment
                .task_groups
                .iter()
                .map(|(name, state)| {
                    (
                        name.clone(),
                        DeploymentState {
                            auto_revert: state.auto_revert,
                            auto_promote: state.auto_promote,
                            progress_deadline: state.progress_deadline,
                            require_progress_by: time_or_zero(state.require_progress_by),
                            promoted: state.promoted,
                            placed_canaries: state.placed_canaries.clone(),
                            desired_canaries: state.desired_canaries,
                            desired_total: state.desired_total,
                            placed_allocs: state.placed_allocs,
                            healthy_allocs: state.healthy_allocs,
                            unhealthy_allocs: state.unhealthy_allocs,
                        },
                    )
                })
                .collect(),
            status: deployment.status.as_str().to_string(),
            status_description: deployment.status_description.clone(),
            create_index: deployment.create_index,
            modify_index: deployment.modify_index,
        }
    }
}

impl From<&types::AllocDeploymentStatus> for AllocDeploymentStatus {
    fn from(status: &types::AllocDeploymentStatus) -> AllocDeploymentStatus {
        AllocDeploymentStatus {
            healthy: status.healthy,
            timestamp: time_or_zero(status.timestamp),
            canary: status.canary,
            modify_index: status.modify_index,
        }
    }
}
