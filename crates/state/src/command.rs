//! The Raft command enum. **Append-only**: variants and their fields are part
//! of the on-disk log, so new variants go at the end and fields are added with
//! `#[serde(default)]`, never renamed or removed.

use serde::{Deserialize, Serialize};
use types::{
    AclPolicy, AclRole, AclToken, AllocClientUpdate, Allocation, Deployment, DeploymentStatusUpdate, DrainStrategy,
    EncryptedItems, Evaluation, Index, Job, Namespace, Node, NodeStatus, RootKeyMeta, ScalingEvent,
    SchedulerConfiguration, ServiceRegistration, UnixNanos, Variable, VariableLock,
};

/// One state change, as written to the Raft log.
// Commands are decoded once and moved into `apply`; boxing would only add an
// allocation per entry.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Register or update a job, with the evaluation it triggers.
    JobRegister {
        job: Job,
        eval: Option<Evaluation>,
        now: UnixNanos,
        /// Nomad's `EnforceIndex`: register only if the stored job's
        /// `JobModifyIndex` is this (0: only if no such job exists).
        #[serde(default)]
        enforce_index: Option<Index>,
    },
    /// Stop (or purge) a job, with the evaluation that stops its allocations.
    JobDeregister {
        namespace: String,
        job_id: String,
        purge: bool,
        eval: Option<Evaluation>,
        now: UnixNanos,
    },
    /// Register a node or refresh its fingerprint.
    NodeRegister { node: Node, now: UnixNanos },
    /// Change a node's status (heartbeat missed, node back), with the
    /// evaluations for jobs that had allocations there.
    NodeUpdateStatus {
        node_id: String,
        status: NodeStatus,
        now: UnixNanos,
        evals: Vec<Evaluation>,
    },
    /// Create or update evaluations.
    EvalUpsert { evals: Vec<Evaluation> },
    /// Commit the verified part of a plan: new and updated allocations (stops
    /// and preemptions included), the evaluation's outcome and follow-ups.
    PlanApply {
        allocs: Vec<Allocation>,
        eval_update: Option<Evaluation>,
        created_evals: Vec<Evaluation>,
        now: UnixNanos,
        /// A deployment the plan starts (stored before its allocations).
        #[serde(default)]
        deployment: Option<Deployment>,
        /// Status changes of other deployments (cancellations).
        #[serde(default)]
        deployment_updates: Vec<DeploymentStatusUpdate>,
    },
    /// Client-reported allocation status, with evaluations for failures that
    /// need rescheduling.
    AllocClientUpdate {
        updates: Vec<AllocClientUpdate>,
        evals: Vec<Evaluation>,
        now: UnixNanos,
    },
    /// Remove terminal evaluations and allocations, dead jobs (with every
    /// version) and down nodes (garbage collection; the leader chose them).
    GcDelete {
        eval_ids: Vec<String>,
        alloc_ids: Vec<String>,
        /// Jobs to purge, as (namespace, id).
        #[serde(default)]
        jobs: Vec<(String, String)>,
        #[serde(default)]
        node_ids: Vec<String>,
    },
    /// Replaces the operator's scheduler configuration; with `cas`, only
    /// if the stored configuration's modify index is still `cas`.
    SchedulerConfigSet {
        config: SchedulerConfiguration,
        #[serde(default)]
        cas: Option<Index>,
    },
    /// Replaces the whole state with a saved snapshot (operator restore).
    /// Objects keep their own indexes; every table's index moves to this
    /// command's, so every blocking query wakes.
    StateRestore { state: Box<crate::StateSnapshot> },
    /// Creates or updates namespaces (their indexes are set in `apply`).
    NamespaceUpsert { namespaces: Vec<Namespace> },
    /// Deletes namespaces; refused, all or nothing, if one of them is
    /// `default`, does not exist or still has a job that is not dead.
    NamespaceDelete { names: Vec<String> },
    /// Judges allocations of a deployment healthy or unhealthy (the
    /// deployment watcher, or an operator in manual mode), optionally with
    /// a status change of the deployment, a job to register (an automatic
    /// revert) and an evaluation. Allocations already judged, or not in the
    /// deployment, are left alone.
    DeploymentAllocHealth {
        deployment_id: String,
        healthy: Vec<String>,
        unhealthy: Vec<String>,
        status: Option<DeploymentStatusUpdate>,
        job: Option<Job>,
        eval: Option<Evaluation>,
        now: UnixNanos,
    },
    /// Changes a deployment's status (fail, pause, resume, success),
    /// optionally registering a job (revert) and creating an evaluation.
    /// Refused once the deployment is no longer active. A successful
    /// deployment marks its job version stable.
    DeploymentStatusSet {
        update: DeploymentStatusUpdate,
        job: Option<Job>,
        eval: Option<Evaluation>,
        now: UnixNanos,
    },
    /// Promotes the canaries of the named groups (all when empty); refused
    /// unless every canary of those groups is healthy.
    DeploymentPromote {
        deployment_id: String,
        groups: Vec<String>,
        eval: Option<Evaluation>,
        now: UnixNanos,
    },
    /// Stores the first management token. Refused once done, unless
    /// `reset_index` names the index the last bootstrap was done at (the
    /// operator wrote it to the bootstrap-reset file).
    AclBootstrap {
        token: AclToken,
        #[serde(default)]
        reset_index: Option<Index>,
    },
    /// Creates or replaces ACL policies.
    AclPolicyUpsert { policies: Vec<AclPolicy> },
    /// Deletes ACL policies; refused, all or nothing, if one does not exist.
    AclPolicyDelete { names: Vec<String> },
    /// Creates or replaces ACL tokens (secrets made before the log).
    AclTokenUpsert { tokens: Vec<AclToken> },
    /// Deletes ACL tokens by accessor ID; refused if one does not exist.
    AclTokenDelete { accessor_ids: Vec<String> },
    /// Creates or replaces ACL roles; refused if a name is taken by
    /// another role.
    AclRoleUpsert { roles: Vec<AclRole> },
    /// Deletes ACL roles by ID; refused if one does not exist.
    AclRoleDelete { ids: Vec<String> },
    /// Records a scaling event of a task group, with the job version that
    /// carries the new count (if the event changes it) and its evaluation.
    JobScale {
        namespace: String,
        job_id: String,
        group: String,
        event: ScalingEvent,
        job: Option<Job>,
        eval: Option<Evaluation>,
        now: UnixNanos,
    },
    /// Sets or clears the stable flag of one job version.
    JobStability {
        namespace: String,
        job_id: String,
        version: u64,
        stable: bool,
    },
    /// Marks a node eligible or ineligible for new placements.
    NodeEligibility {
        node_id: String,
        eligible: bool,
        /// Evaluations to write with it (re-evaluating blocked work).
        evals: Vec<Evaluation>,
        now: UnixNanos,
    },
    /// Adds a root key and makes it the active one (the previous active key
    /// turns inactive). Only metadata: the key's material was written to
    /// the servers' keystores before this entered the log.
    RootKeyUpsert { key: RootKeyMeta },
    /// One operation on a variable, judged at `now` (lock expiry included).
    VarApply { op: VarOp, now: UnixNanos },
    /// Creates or updates native service registrations (a client's
    /// running allocations, with their check results). Registrations of
    /// allocations that are unknown, terminal or on a down node are dropped.
    ServiceRegistrationUpsert { services: Vec<ServiceRegistration> },
    /// Deletes service registrations by ID (unknown IDs are ignored).
    ServiceRegistrationDelete { ids: Vec<String> },
    /// A launch of a periodic job: its scheduled time (recorded as the
    /// job's last launch; a scheduled launch not after the recorded one is
    /// refused, so a new leader never repeats one) and the child to run.
    /// Without a child, or when `prohibit_overlap` finds an earlier child
    /// still running, only the launch is recorded. `force`
    /// (`job periodic force`) launches whatever the schedule and overlap.
    PeriodicLaunch {
        namespace: String,
        job_id: String,
        launch: UnixNanos,
        force: bool,
        child: Option<Job>,
        eval: Option<Evaluation>,
        now: UnixNanos,
    },
    /// A dispatch of a parameterized job (the child names its parent). A
    /// child of the same parent with the same idempotency token answers
    /// instead. Past the parent's `max_concurrent`, the child is stored and
    /// queued without its evaluation.
    JobDispatch {
        child: Job,
        eval: Evaluation,
        now: UnixNanos,
    },
    /// Starts queued children of a parent, front first, with these
    /// evaluations, while its `max_concurrent` has room.
    ChildRelease {
        namespace: String,
        parent_id: String,
        evals: Vec<Evaluation>,
    },
    /// Starts or changes a node's drain (the node turns ineligible), or
    /// with `drain: None` cancels it (`mark_eligible` makes the node
    /// eligible again), with evaluations of the jobs on the node.
    NodeDrain {
        node_id: String,
        drain: Option<DrainStrategy>,
        mark_eligible: bool,
        evals: Vec<Evaluation>,
        now: UnixNanos,
    },
    /// The drainer found a draining node done: its drain ends as complete
    /// (the node stays ineligible, as in Nomad).
    NodeDrainComplete { node_id: String, now: UnixNanos },
    /// Marks allocations to migrate off their draining node (the drainer),
    /// with evaluations of their jobs.
    AllocDesiredTransition {
        alloc_ids: Vec<String>,
        evals: Vec<Evaluation>,
        now: UnixNanos,
        /// Mark them to be replaced now whatever their reschedule policy
        /// (`ForceReschedule`) instead of to migrate.
        #[serde(default)]
        force_reschedule: bool,
    },
}

/// An operation on one variable. Items arrive encrypted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum VarOp {
    /// Create or replace the items; with `cas`, only if the stored modify
    /// index is `cas` (0: only if absent). A locked variable takes writes
    /// only with its lock's ID.
    Set {
        namespace: String,
        path: String,
        items: EncryptedItems,
        cas: Option<Index>,
        lock_id: Option<String>,
    },
    /// Delete, with the same checks as `Set`.
    Delete {
        namespace: String,
        path: String,
        cas: Option<Index>,
        lock_id: Option<String>,
    },
    /// Take the lock (ID made before the log), creating the variable if
    /// needed and replacing its items if given. Refused while another lock
    /// is live or a lapsed lock's delay runs.
    LockAcquire {
        namespace: String,
        path: String,
        items: Option<EncryptedItems>,
        lock: VariableLock,
    },
    /// Extend a live lock by its TTL.
    LockRenew {
        namespace: String,
        path: String,
        lock_id: String,
    },
    /// Give a live lock up.
    LockRelease {
        namespace: String,
        path: String,
        lock_id: String,
    },
    /// The leader saw this lock lapse: drop it and start its lock-delay.
    LockExpire {
        namespace: String,
        path: String,
        lock_id: String,
    },
}

impl VarOp {
    pub fn namespace(&self) -> &str {
        match self {
            VarOp::Set { namespace, .. }
            | VarOp::Delete { namespace, .. }
            | VarOp::LockAcquire { namespace, .. }
            | VarOp::LockRenew { namespace, .. }
            | VarOp::LockRelease { namespace, .. }
            | VarOp::LockExpire { namespace, .. } => namespace,
        }
    }

    pub fn path(&self) -> &str {
        match self {
            VarOp::Set { path, .. }
            | VarOp::Delete { path, .. }
            | VarOp::LockAcquire { path, .. }
            | VarOp::LockRenew { path, .. }
            | VarOp::LockRelease { path, .. }
            | VarOp::LockExpire { path, .. } => path,
        }
    }
}

impl Command {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::JobRegister { .. } => "job-register",
            Command::JobDeregister { .. } => "job-deregister",
            Command::NodeRegister { .. } => "node-register",
            Command::NodeUpdateStatus { .. } => "node-update-status",
            Command::EvalUpsert { .. } => "eval-upsert",
            Command::PlanApply { .. } => "plan-apply",
            Command::AllocClientUpdate { .. } => "alloc-client-update",
            Command::GcDelete { .. } => "gc-delete",
            Command::SchedulerConfigSet { .. } => "scheduler-config-set",
            Command::StateRestore { .. } => "state-restore",
            Command::NamespaceUpsert { .. } => "namespace-upsert",
            Command::NamespaceDelete { .. } => "namespace-delete",
            Command::DeploymentAllocHealth { .. } => "deployment-alloc-health",
            Command::DeploymentStatusSet { .. } => "deployment-status-set",
            Command::DeploymentPromote { .. } => "deployment-promote",
            Command::AclBootstrap { .. } => "acl-bootstrap",
            Command::AclPolicyUpsert { .. } => "acl-policy-upsert",
            Command::AclPolicyDelete { .. } => "acl-policy-delete",
            Command::AclTokenUpsert { .. } => "acl-token-upsert",
            Command::AclTokenDelete { .. } => "acl-token-delete",
            Command::AclRoleUpsert { .. } => "acl-role-upsert",
            Command::AclRoleDelete { .. } => "acl-role-delete",
            Command::JobScale { .. } => "job-scale",
            Command::JobStability { .. } => "job-stability",
            Command::NodeEligibility { .. } => "node-eligibility",
            Command::RootKeyUpsert { .. } => "root-key-upsert",
            Command::VarApply { .. } => "var-apply",
            Command::ServiceRegistrationUpsert { .. } => "service-registration-upsert",
            Command::ServiceRegistrationDelete { .. } => "service-registration-delete",
            Command::PeriodicLaunch { .. } => "periodic-launch",
            Command::JobDispatch { .. } => "job-dispatch",
            Command::ChildRelease { .. } => "child-release",
            Command::NodeDrain { .. } => "node-drain",
            Command::NodeDrainComplete { .. } => "node-drain-complete",
            Command::AllocDesiredTransition { .. } => "alloc-desired-transition",
        }
    }
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CommandResult {
    /// The Raft index the command was applied at.
    pub index: Index,
    /// Evaluations created or updated that the eval broker should see.
    pub evals_to_enqueue: Vec<String>,
    /// The job version written, for job registrations.
    pub job_version: Option<u64>,
    /// A deterministic, user-facing rejection (the state is unchanged).
    pub error: Option<String>,
    /// `SchedulerConfigSet`: whether the configuration was written (false
    /// when its check-and-set index no longer matched).
    #[serde(default)]
    pub updated: bool,
    /// `VarApply`: the variable as written, or, on a conflict, as it is.
    #[serde(default)]
    pub variable: Option<Variable>,
    /// `VarApply`: refused because of a check-and-set index or a lock
    /// (Nomad's 409); `error` says why.
    #[serde(default)]
    pub conflict: bool,
    /// The child job a launch or dispatch made (or found, for a repeated
    /// idempotency token).
    #[serde(default)]
    pub job_id: Option<String>,
}
