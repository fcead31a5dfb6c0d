//! The cluster state machine: in-memory tables with secondary indexes, the
//! Raft command enum, and a deterministic `apply`.
//!
//! Tables are persistent maps (`imbl`), so a read snapshot is an O(1) clone
//! that later writes never disturb. `apply` takes the Raft index and the
//! command and nothing else: IDs and timestamps were made before the command
//! entered the log, so every server computes the same state.

mod acl;
mod command;
mod deployments;
mod drain;
pub mod events;
mod launches;
mod services;
mod store;
mod vars;

pub use command::{Command, CommandResult, VarOp};
pub use events::{Event, EventPayload, Topic};
pub use store::{
    JOB_TRACKED_VERSIONS, JobSummary, NodeColumns, StateError, StateSnapshot, TASK_EVENTS_KEPT, TableIndexes,
    TaskGroupSummary,
};
pub use vars::MAX_VARIABLES;
