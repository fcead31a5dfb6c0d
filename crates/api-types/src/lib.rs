//! Nomad's public JSON shapes (PascalCase fields, `ID` not `Id`), with
//! explicit conversions from the domain model in `types`.
//!
//! The job itself is the exception: its JSON form is owned by
//! `jobspec::api`, the one reader of Nomad's job JSON (for both the HCL and
//! the JSON route), so here a job travels as a `serde_json::Value`.
//!
//! Every struct accepts missing fields (`#[serde(default)]`), because
//! Nomad's clients omit what they do not set.

pub mod acl;
mod convert;
mod deployment;
pub mod job_diff;
mod services;
mod time;
pub mod vars;

pub use convert::*;
pub use deployment::*;
pub use services::*;
pub use time::{format_rfc3339, parse_rfc3339};
pub use vars::{RootKeyMeta, Variable, VariableLock, VariableMetadata};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// `PUT /v1/jobs` and `POST /v1/job/:id` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct JobRegisterRequest {
    #[serde(rename = "Job")]
    pub job: Value,
    #[serde(rename = "EnforceIndex")]
    pub enforce_index: bool,
    #[serde(rename = "JobModifyIndex")]
    pub job_modify_index: u64,
    #[serde(rename = "PolicyOverride")]
    pub policy_override: bool,
    #[serde(rename = "PreserveCounts")]
    pub preserve_counts: bool,
}

/// Answer to a job registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct JobRegisterResponse {
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    #[serde(rename = "EvalCreateIndex")]
    pub eval_create_index: u64,
    #[serde(rename = "JobModifyIndex")]
    pub job_modify_index: u64,
    #[serde(rename = "Warnings")]
    pub warnings: String,
    #[serde(rename = "Index")]
    pub index: u64,
    #[serde(rename = "LastContact")]
    pub last_contact: u64,
    #[serde(rename = "KnownLeader")]
    pub known_leader: bool,
}

/// Answer to `job dispatch` (Nomad's `JobDispatchResponse`). `EvalID` is
/// empty while the child waits under its parent's `max_concurrent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct JobDispatchResponse {
    #[serde(rename = "DispatchedJobID")]
    pub dispatched_job_id: String,
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    #[serde(rename = "EvalCreateIndex")]
    pub eval_create_index: u64,
    #[serde(rename = "JobCreateIndex")]
    pub job_create_index: u64,
    #[serde(rename = "Index")]
    pub index: u64,
}

/// Answer to `job periodic force` (Nomad's `PeriodicForceResponse`), with
/// the child's ID as a Drover addition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct PeriodicForceResponse {
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    #[serde(rename = "EvalCreateIndex")]
    pub eval_create_index: u64,
    #[serde(rename = "Index")]
    pub index: u64,
    #[serde(rename = "DispatchedJobID")]
    pub dispatched_job_id: String,
}

/// Answer to a job deregistration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct JobDeregisterResponse {
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    #[serde(rename = "EvalCreateIndex")]
    pub eval_create_index: u64,
    #[serde(rename = "JobModifyIndex")]
    pub job_modify_index: u64,
    #[serde(rename = "Index")]
    pub index: u64,
}

/// `POST /v1/jobs/parse` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct JobsParseRequest {
    #[serde(rename = "JobHCL")]
    pub job_hcl: String,
    #[serde(rename = "Canonicalize")]
    pub canonicalize: bool,
    #[serde(rename = "Variables")]
    pub variables: String,
}

/// `PUT /v1/validate/job` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct JobValidateResponse {
    #[serde(rename = "DriverConfigValidated")]
    pub driver_config_validated: bool,
    #[serde(rename = "ValidationErrors")]
    pub validation_errors: Vec<String>,
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Warnings")]
    pub warnings: String,
}

/// Per task group allocation counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
pub struct TaskGroupSummary {
    pub queued: u64,
    pub complete: u64,
    pub failed: u64,
    pub running: u64,
    pub starting: u64,
    pub lost: u64,
    pub unknown: u64,
}

/// Counts of a periodic or parameterized job's children.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobChildrenSummary {
    pub pending: u64,
    pub running: u64,
    pub dead: u64,
}

/// `GET /v1/job/:id/summary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct JobSummary {
    #[serde(rename = "JobID")]
    pub job_id: String,
    #[serde(rename = "Namespace")]
    pub namespace: String,
    #[serde(rename = "Summary")]
    pub summary: BTreeMap<String, TaskGroupSummary>,
    #[serde(rename = "Children")]
    pub children: Option<JobChildrenSummary>,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
}

/// One row of `GET /v1/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct JobListStub {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "ParentID")]
    pub parent_id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Namespace")]
    pub namespace: String,
    #[serde(rename = "Datacenters")]
    pub datacenters: Vec<String>,
    #[serde(rename = "NodePool")]
    pub node_pool: String,
    #[serde(rename = "Type")]
    pub job_type: String,
    #[serde(rename = "Priority")]
    pub priority: i32,
    #[serde(rename = "Periodic")]
    pub periodic: bool,
    #[serde(rename = "ParameterizedJob")]
    pub parameterized_job: bool,
    #[serde(rename = "Stop")]
    pub stop: bool,
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "StatusDescription")]
    pub status_description: String,
    #[serde(rename = "JobSummary")]
    pub job_summary: Option<JobSummary>,
    #[serde(rename = "Version")]
    pub version: u64,
    #[serde(rename = "SubmitTime")]
    pub submit_time: i64,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
    #[serde(rename = "JobModifyIndex")]
    pub job_modify_index: u64,
}

/// One thing that happened to a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TaskEvent {
    #[serde(rename = "Type")]
    pub event_type: String,
    #[serde(rename = "Time")]
    pub time: i64,
    #[serde(rename = "Message")]
    pub message: String,
    #[serde(rename = "DisplayMessage")]
    pub display_message: String,
    #[serde(rename = "Details")]
    pub details: BTreeMap<String, String>,
    #[serde(rename = "ExitCode")]
    pub exit_code: i32,
    #[serde(rename = "Signal")]
    pub signal: i32,
    #[serde(rename = "FailsTask")]
    pub fails_task: bool,
    #[serde(rename = "RestartReason")]
    pub restart_reason: String,
    #[serde(rename = "DriverError")]
    pub driver_error: String,
    #[serde(rename = "KillTimeout")]
    pub kill_timeout: i64,
    #[serde(rename = "StartDelay")]
    pub start_delay: i64,
}

/// A task's state inside an allocation. Times are RFC 3339, as in Nomad.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TaskState {
    #[serde(rename = "State")]
    pub state: String,
    #[serde(rename = "Failed")]
    pub failed: bool,
    #[serde(rename = "Restarts")]
    pub restarts: u64,
    #[serde(rename = "LastRestart")]
    pub last_restart: String,
    #[serde(rename = "StartedAt")]
    pub started_at: String,
    #[serde(rename = "FinishedAt")]
    pub finished_at: String,
    #[serde(rename = "Events")]
    pub events: Vec<TaskEvent>,
}

/// Placement metrics (`FailedTGAllocs` values, `Allocation.Metrics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocationMetric {
    pub nodes_evaluated: u64,
    pub nodes_filtered: u64,
    pub nodes_in_pool: u64,
    pub nodes_available: BTreeMap<String, u64>,
    pub class_filtered: BTreeMap<String, u64>,
    pub constraint_filtered: BTreeMap<String, u64>,
    pub nodes_exhausted: u64,
    pub class_exhausted: BTreeMap<String, u64>,
    pub dimension_exhausted: BTreeMap<String, u64>,
    pub quota_exhausted: Vec<String>,
    pub scores: BTreeMap<String, f64>,
    pub allocation_time: i64,
    pub coalesced_failures: u64,
}

/// A reschedule event in an allocation's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RescheduleEvent {
    #[serde(rename = "RescheduleTime")]
    pub reschedule_time: i64,
    #[serde(rename = "PrevAllocID")]
    pub prev_alloc_id: String,
    #[serde(rename = "PrevNodeID")]
    pub prev_node_id: String,
    #[serde(rename = "Delay")]
    pub delay: i64,
}

/// An allocation's reschedule history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RescheduleTracker {
    #[serde(rename = "Events")]
    pub events: Vec<RescheduleEvent>,
}

/// One row of `GET /v1/allocations` and `GET /v1/job/:id/allocations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AllocListStub {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Namespace")]
    pub namespace: String,
    #[serde(rename = "NodeID")]
    pub node_id: String,
    #[serde(rename = "NodeName")]
    pub node_name: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    #[serde(rename = "JobType")]
    pub job_type: String,
    #[serde(rename = "JobVersion")]
    pub job_version: u64,
    #[serde(rename = "TaskGroup")]
    pub task_group: String,
    #[serde(rename = "DesiredStatus")]
    pub desired_status: String,
    #[serde(rename = "DesiredDescription")]
    pub desired_description: String,
    #[serde(rename = "ClientStatus")]
    pub client_status: String,
    #[serde(rename = "ClientDescription")]
    pub client_description: String,
    #[serde(rename = "TaskStates")]
    pub task_states: BTreeMap<String, TaskState>,
    #[serde(rename = "FollowupEvalID")]
    pub followup_eval_id: String,
    #[serde(rename = "RescheduleTracker")]
    pub reschedule_tracker: Option<RescheduleTracker>,
    #[serde(rename = "DeploymentStatus")]
    pub deployment_status: Option<AllocDeploymentStatus>,
    #[serde(rename = "PreemptedAllocations")]
    pub preempted_allocations: Vec<String>,
    #[serde(rename = "PreemptedByAllocation")]
    pub preempted_by_allocation: String,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
    #[serde(rename = "CreateTime")]
    pub create_time: i64,
    #[serde(rename = "ModifyTime")]
    pub modify_time: i64,
}

/// `GET /v1/allocation/:id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Allocation {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Namespace")]
    pub namespace: String,
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "NodeID")]
    pub node_id: String,
    #[serde(rename = "NodeName")]
    pub node_name: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    #[serde(rename = "Job")]
    pub job: Option<Value>,
    #[serde(rename = "TaskGroup")]
    pub task_group: String,
    #[serde(rename = "AllocatedResources")]
    pub allocated_resources: Value,
    #[serde(rename = "Metrics")]
    pub metrics: Option<AllocationMetric>,
    #[serde(rename = "DesiredStatus")]
    pub desired_status: String,
    #[serde(rename = "DesiredDescription")]
    pub desired_description: String,
    #[serde(rename = "ClientStatus")]
    pub client_status: String,
    #[serde(rename = "ClientDescription")]
    pub client_description: String,
    #[serde(rename = "TaskStates")]
    pub task_states: BTreeMap<String, TaskState>,
    #[serde(rename = "PreviousAllocation")]
    pub previous_allocation: String,
    #[serde(rename = "NextAllocation")]
    pub next_allocation: String,
    #[serde(rename = "RescheduleTracker")]
    pub reschedule_tracker: Option<RescheduleTracker>,
    #[serde(rename = "FollowupEvalID")]
    pub followup_eval_id: String,
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    #[serde(rename = "DeploymentStatus")]
    pub deployment_status: Option<AllocDeploymentStatus>,
    #[serde(rename = "PreemptedAllocations")]
    pub preempted_allocations: Vec<String>,
    #[serde(rename = "PreemptedByAllocation")]
    pub preempted_by_allocation: String,
    #[serde(rename = "JobVersion")]
    pub job_version: u64,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
    #[serde(rename = "AllocModifyIndex")]
    pub alloc_modify_index: u64,
    #[serde(rename = "CreateTime")]
    pub create_time: i64,
    #[serde(rename = "ModifyTime")]
    pub modify_time: i64,
}

/// `GET /v1/evaluation/:id` and rows of `GET /v1/evaluations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Evaluation {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Namespace")]
    pub namespace: String,
    #[serde(rename = "Priority")]
    pub priority: i32,
    #[serde(rename = "Type")]
    pub job_type: String,
    #[serde(rename = "TriggeredBy")]
    pub triggered_by: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    #[serde(rename = "JobModifyIndex")]
    pub job_modify_index: u64,
    #[serde(rename = "NodeID")]
    pub node_id: String,
    #[serde(rename = "NodeModifyIndex")]
    pub node_modify_index: u64,
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "StatusDescription")]
    pub status_description: String,
    #[serde(rename = "WaitUntil")]
    pub wait_until: Option<String>,
    #[serde(rename = "NextEval")]
    pub next_eval: String,
    #[serde(rename = "PreviousEval")]
    pub previous_eval: String,
    #[serde(rename = "BlockedEval")]
    pub blocked_eval: String,
    #[serde(rename = "FailedTGAllocs")]
    pub failed_tg_allocs: Option<BTreeMap<String, AllocationMetric>>,
    #[serde(rename = "ClassEligibility")]
    pub class_eligibility: Option<BTreeMap<String, bool>>,
    #[serde(rename = "EscapedComputedClass")]
    pub escaped_computed_class: bool,
    #[serde(rename = "QueuedAllocations")]
    pub queued_allocations: Option<BTreeMap<String, u64>>,
    #[serde(rename = "SnapshotIndex")]
    pub snapshot_index: u64,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
    #[serde(rename = "CreateTime")]
    pub create_time: i64,
    #[serde(rename = "ModifyTime")]
    pub modify_time: i64,
}

/// A driver's fingerprint on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DriverInfo {
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
    #[serde(rename = "Detected")]
    pub detected: bool,
    #[serde(rename = "Healthy")]
    pub healthy: bool,
    #[serde(rename = "HealthDescription")]
    pub health_description: String,
    #[serde(rename = "UpdateTime")]
    pub update_time: String,
}

/// One row of `GET /v1/nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct NodeListStub {
    #[serde(rename = "Address")]
    pub address: String,
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
    #[serde(rename = "Datacenter")]
    pub datacenter: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "NodeClass")]
    pub node_class: String,
    #[serde(rename = "NodePool")]
    pub node_pool: String,
    #[serde(rename = "Version")]
    pub version: String,
    #[serde(rename = "Drain")]
    pub drain: bool,
    #[serde(rename = "SchedulingEligibility")]
    pub scheduling_eligibility: String,
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "StatusDescription")]
    pub status_description: String,
    #[serde(rename = "Drivers")]
    pub drivers: BTreeMap<String, DriverInfo>,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
}

/// `GET /v1/node/:id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Node {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Datacenter")]
    pub datacenter: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "HTTPAddr")]
    pub http_addr: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
    #[serde(rename = "NodeResources")]
    pub node_resources: Value,
    #[serde(rename = "ReservedResources")]
    pub reserved_resources: Value,
    #[serde(rename = "Resources")]
    pub resources: Value,
    #[serde(rename = "Meta")]
    pub meta: BTreeMap<String, String>,
    #[serde(rename = "NodeClass")]
    pub node_class: String,
    #[serde(rename = "NodePool")]
    pub node_pool: String,
    #[serde(rename = "ComputedClass")]
    pub computed_class: String,
    #[serde(rename = "Drain")]
    pub drain: bool,
    /// Nomad's `DrainStrategy` (`null` when the node is not draining).
    #[serde(rename = "DrainStrategy")]
    pub drain_strategy: Option<DrainStrategy>,
    /// Nomad's `LastDrain`: the last drain, finished or not.
    #[serde(rename = "LastDrain")]
    pub last_drain: Option<DrainMetadata>,
    #[serde(rename = "SchedulingEligibility")]
    pub scheduling_eligibility: String,
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "StatusDescription")]
    pub status_description: String,
    #[serde(rename = "StatusUpdatedAt")]
    pub status_updated_at: i64,
    #[serde(rename = "Drivers")]
    pub drivers: BTreeMap<String, DriverInfo>,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
}

/// Nomad's `DrainSpec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DrainSpec {
    /// Nanoseconds: negative forces the drain, 0 means no deadline.
    #[serde(rename = "Deadline")]
    pub deadline: i64,
    #[serde(rename = "IgnoreSystemJobs")]
    pub ignore_system_jobs: bool,
}

/// Nomad's `DrainStrategy`: the spec, with the times as RFC 3339 text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DrainStrategy {
    #[serde(rename = "DrainSpec")]
    pub drain_spec: DrainSpec,
    #[serde(rename = "Deadline")]
    pub deadline: i64,
    #[serde(rename = "IgnoreSystemJobs")]
    pub ignore_system_jobs: bool,
    #[serde(rename = "ForceDeadline")]
    pub force_deadline: String,
    #[serde(rename = "StartedAt")]
    pub started_at: String,
}

/// Nomad's `DrainMetadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DrainMetadata {
    #[serde(rename = "StartedAt")]
    pub started_at: String,
    #[serde(rename = "UpdatedAt")]
    pub updated_at: String,
    #[serde(rename = "Status")]
    pub status: String,
}

/// `POST /v1/node/:id/drain` answer (Nomad's `NodeDrainUpdateResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct NodeDrainUpdateResponse {
    #[serde(rename = "NodeModifyIndex")]
    pub node_modify_index: u64,
    #[serde(rename = "EvalIDs")]
    pub eval_ids: Vec<String>,
    #[serde(rename = "EvalCreateIndex")]
    pub eval_create_index: u64,
    #[serde(rename = "Index")]
    pub index: u64,
}

/// The error body Drover returns with 4xx/5xx statuses. Nomad answers with
/// a plain-text message; clients read the status and the text, so the body
/// is that text.
pub type ErrorText = String;

/// Which schedulers may preempt, as Nomad's scheduler configuration names
/// them (note `SysBatch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct PreemptionConfig {
    #[serde(rename = "SystemSchedulerEnabled")]
    pub system_scheduler_enabled: bool,
    #[serde(rename = "SysBatchSchedulerEnabled")]
    pub sysbatch_scheduler_enabled: bool,
    #[serde(rename = "BatchSchedulerEnabled")]
    pub batch_scheduler_enabled: bool,
    #[serde(rename = "ServiceSchedulerEnabled")]
    pub service_scheduler_enabled: bool,
}

/// `/v1/operator/scheduler/configuration`'s configuration object. Missing
/// fields read as false / empty, as Nomad's decoder gives them; an empty
/// `SchedulerAlgorithm` means `binpack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
pub struct SchedulerConfiguration {
    pub scheduler_algorithm: String,
    pub preemption_config: PreemptionConfig,
    pub memory_oversubscription_enabled: bool,
    pub reject_job_registration: bool,
    pub pause_eval_broker: bool,
    pub create_index: u64,
    pub modify_index: u64,
}

/// `GET /v1/operator/scheduler/configuration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
pub struct SchedulerConfigurationResponse {
    pub scheduler_config: SchedulerConfiguration,
    pub index: u64,
    pub known_leader: bool,
    pub last_contact: u64,
}

/// `PUT /v1/operator/scheduler/configuration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
pub struct SchedulerSetConfigurationResponse {
    pub updated: bool,
    pub index: u64,
}

/// A namespace: `GET /v1/namespaces` (a list of these), `GET` and
/// `PUT`/`POST /v1/namespace/:name`. `Capabilities` and
/// `NodePoolConfiguration` are always null here: Drover does not carry
/// them out, so a request that sets them is refused. Unknown fields are
/// refused too rather than ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "PascalCase", deny_unknown_fields)]
pub struct Namespace {
    pub name: String,
    pub description: String,
    pub quota: String,
    pub capabilities: Option<Value>,
    pub node_pool_configuration: Option<Value>,
    pub meta: Option<BTreeMap<String, String>>,
    pub create_index: u64,
    pub modify_index: u64,
}
