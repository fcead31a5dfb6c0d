//! Allocations (a task group placed on a node), their task states and events,
//! and the placement metrics the scheduler records.

use crate::resources::AllocatedResources;
use crate::{Index, UnixNanos};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the servers want to happen to an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AllocDesiredStatus {
    #[default]
    Run,
    Stop,
    Evict,
}

impl AllocDesiredStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AllocDesiredStatus::Run => "run",
            AllocDesiredStatus::Stop => "stop",
            AllocDesiredStatus::Evict => "evict",
        }
    }
}

/// What the client reports about an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AllocClientStatus {
    #[default]
    Pending,
    Running,
    Complete,
    Failed,
    Lost,
    Unknown,
}

impl AllocClientStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AllocClientStatus::Pending => "pending",
            AllocClientStatus::Running => "running",
            AllocClientStatus::Complete => "complete",
            AllocClientStatus::Failed => "failed",
            AllocClientStatus::Lost => "lost",
            AllocClientStatus::Unknown => "unknown",
        }
    }

    /// Whether the client has finished with the allocation for good.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            AllocClientStatus::Complete | AllocClientStatus::Failed | AllocClientStatus::Lost
        )
    }
}

/// A task's lifecycle state on the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TaskStateKind {
    #[default]
    Pending,
    Running,
    Dead,
}

impl TaskStateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStateKind::Pending => "pending",
            TaskStateKind::Running => "running",
            TaskStateKind::Dead => "dead",
        }
    }
}

/// Nomad's task event types, as the CLI shows them.
pub mod task_event {
    pub const RECEIVED: &str = "Received";
    pub const SETUP: &str = "Task Setup";
    pub const DRIVER_FAILURE: &str = "Driver Failure";
    pub const STARTED: &str = "Started";
    pub const TERMINATED: &str = "Terminated";
    pub const RESTARTING: &str = "Restarting";
    pub const NOT_RESTARTING: &str = "Not Restarting";
    pub const KILLING: &str = "Killing";
    pub const KILLED: &str = "Killed";
    pub const RESTART_SIGNAL: &str = "Restart Signaled";
    pub const SIGNALING: &str = "Signaling";
    pub const WAITING_SHUTDOWN_DELAY: &str = "Waiting for shutdown delay";
    /// A message from a task hook (templates waiting for their data).
    pub const TEMPLATE: &str = "Template";
    /// A task hook (templates, artifacts) failed: the task does not start.
    pub const HOOK_FAILED: &str = "Task hook failed";
    pub const DOWNLOADING_ARTIFACTS: &str = "Downloading Artifacts";
    pub const ARTIFACT_FAILED: &str = "Failed Artifact Download";
}

/// One thing that happened to a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TaskEvent {
    pub event_type: String,
    pub time: UnixNanos,
    pub message: String,
    pub display_message: String,
    pub details: BTreeMap<String, String>,
    pub exit_code: i32,
    pub signal: i32,
    pub fails_task: bool,
    pub restart_reason: String,
    pub driver_error: String,
    pub kill_timeout: i64,
    pub start_delay: i64,
}

impl TaskEvent {
    /// A new event of `event_type` at `time` with its display message.
    pub fn new(event_type: &str, time: UnixNanos, display_message: impl Into<String>) -> TaskEvent {
        TaskEvent {
            event_type: event_type.to_string(),
            time,
            display_message: display_message.into(),
            ..TaskEvent::default()
        }
    }
}

/// A task's state within an allocation, as reported by the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TaskState {
    pub state: TaskStateKind,
    pub failed: bool,
    pub restarts: u64,
    pub last_restart: UnixNanos,
    pub started_at: UnixNanos,
    pub finished_at: UnixNanos,
    pub events: Vec<TaskEvent>,
}

/// One earlier replacement of an allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RescheduleEvent {
    pub reschedule_time: UnixNanos,
    pub prev_alloc_id: String,
    pub prev_node_id: String,
    pub delay: i64,
}

/// The chain of earlier replacements that led to an allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RescheduleTracker {
    pub events: Vec<RescheduleEvent>,
}

/// Why a placement was, or was not, possible: Nomad's `AllocMetric`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AllocMetric {
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
    pub allocation_time_ns: i64,
    pub coalesced_failures: u64,
}

/// Nomad's `DesiredTransition`: a change the servers want the scheduler to
/// carry out for one allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DesiredTransition {
    /// Move the allocation off its draining node (set by the drainer, in
    /// batches of the group's `migrate.max_parallel`).
    pub migrate: bool,
    /// Replace this failed allocation now, whatever its reschedule policy
    /// says (`job eval -force-reschedule`).
    pub force_reschedule: bool,
}

/// A task group placed on a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Allocation {
    pub id: String,
    pub namespace: String,
    pub eval_id: String,
    /// `<job>.<group>[<index>]`, as in Nomad.
    pub name: String,
    pub node_id: String,
    pub node_name: String,
    pub job_id: String,
    /// The job version the allocation runs.
    pub job_version: u64,
    pub task_group: String,
    pub allocated_resources: AllocatedResources,
    pub desired_status: AllocDesiredStatus,
    pub desired_description: String,
    pub client_status: AllocClientStatus,
    pub client_description: String,
    pub task_states: BTreeMap<String, TaskState>,
    pub previous_allocation: String,
    pub next_allocation: String,
    pub reschedule_tracker: Option<RescheduleTracker>,
    pub followup_eval_id: String,
    pub deployment_id: String,
    /// Health within its deployment (set by the servers, never the client).
    pub deployment_status: Option<crate::AllocDeploymentStatus>,
    pub preempted_by_allocation: String,
    pub preempted_allocations: Vec<String>,
    /// What the servers asked of this allocation beyond its desired status
    /// (the node drainer marks it to migrate).
    pub desired_transition: DesiredTransition,
    pub metrics: Option<AllocMetric>,
    pub create_index: Index,
    pub modify_index: Index,
    pub alloc_modify_index: Index,
    pub create_time: UnixNanos,
    pub modify_time: UnixNanos,
}

impl Allocation {
    /// Whether the allocation is finished on the server's or the client's side.
    pub fn is_terminal(&self) -> bool {
        self.desired_status != AllocDesiredStatus::Run || self.client_status.is_terminal()
    }

    /// Whether the allocation still holds resources on its node.
    pub fn holds_resources(&self) -> bool {
        !self.is_terminal()
    }

    /// The index within the group, parsed from the name (`web.api[3]` → 3).
    pub fn index(&self) -> Option<u32> {
        let open = self.name.rfind('[')?;
        let close = self.name.rfind(']')?;
        self.name.get(open + 1..close)?.parse().ok()
    }

    /// Builds the allocation name Nomad uses.
    pub fn make_name(job_id: &str, group: &str, index: u32) -> String {
        format!("{job_id}.{group}[{index}]")
    }
}

/// What a client reports for one allocation: the fields it owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AllocClientUpdate {
    pub alloc_id: String,
    pub client_status: AllocClientStatus,
    pub client_description: String,
    pub task_states: BTreeMap<String, TaskState>,
    pub modify_time: UnixNanos,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_index_round_trips() {
        let alloc = Allocation {
            name: Allocation::make_name("web", "api", 7),
            ..Allocation::default()
        };
        assert_eq!(alloc.name, "web.api[7]");
        assert_eq!(alloc.index(), Some(7));
    }

    #[test]
    fn terminal_when_stopped_or_finished() {
        let mut alloc = Allocation::default();
        assert!(!alloc.is_terminal());
        alloc.client_status = AllocClientStatus::Complete;
        assert!(alloc.is_terminal());
        alloc.client_status = AllocClientStatus::Running;
        alloc.desired_status = AllocDesiredStatus::Stop;
        assert!(alloc.is_terminal());
    }
}
