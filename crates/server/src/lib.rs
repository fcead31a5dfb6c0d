//! The server: the imperative shell around Raft, the state and the pure
//! scheduler.
//!
//! Writes go through [`Server`]'s methods, which build a `state::Command`
//! (with IDs and timestamps made here, before the log), commit it through
//! Raft, and hand any new evaluations to the eval broker. Scheduler workers
//! take evaluations from the broker, run the pure scheduler on a state
//! snapshot, and pass the plan to the plan applier, which re-checks it
//! against the latest state and commits what still fits. Heartbeat timers
//! mark silent nodes down. Clients reach the server through [`rpc`].

mod broker;
mod heartbeat;
mod planner;
mod rpc_handler;
mod view;
mod worker;

pub use broker::{BrokerCore, EvalBroker};
pub use planner::{VerifiedPlan, verify_plan};
pub use raft::{RaftNode, RaftNodeConfig};
pub use rpc_handler::RpcService;
pub use state::{JobSummary, StateError, StateSnapshot, TaskGroupSummary};

use heartbeat::Heartbeats;
use state::{Command, CommandResult};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, oneshot};
use types::{
    AllocClientStatus, AllocDesiredStatus, EvalStatus, Evaluation, Index, Job, JobType, UnixNanos, ValidationErrors,
    trigger,
};

/// Errors from server operations, named for how callers should react.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid job: {0}")]
    InvalidJob(ValidationErrors),
    #[error("{0} not found")]
    NotFound(String),
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<String> },
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<raft::RaftNodeError> for ServerError {
    fn from(error: raft::RaftNodeError) -> ServerError {
        match error {
            raft::RaftNodeError::NotLeader { leader } => ServerError::NotLeader { leader },
            other => ServerError::Internal(other.to_string()),
        }
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub node_id: u64,
    pub rpc_addr: String,
    pub region: String,
    pub datacenter: String,
    /// Scheduler workers (Nomad's `num_schedulers`).
    pub num_schedulers: usize,
    /// How long a node may go without heartbeating before it is marked down.
    pub heartbeat_ttl: Duration,
    /// Extra time allowed after the TTL before the node is marked down.
    pub heartbeat_grace: Duration,
    /// Raft snapshot threshold, in log entries.
    pub snapshot_every: u64,
}

impl ServerConfig {
    /// Defaults for a single dev server with state under `data_dir`.
    pub fn dev(data_dir: PathBuf, rpc_addr: String) -> ServerConfig {
        ServerConfig {
            data_dir,
            node_id: 1,
            rpc_addr,
            region: types::DEFAULT_REGION.to_string(),
            datacenter: "dc1".to_string(),
            num_schedulers: 2,
            heartbeat_ttl: Duration::from_secs(10),
            heartbeat_grace: Duration::from_secs(10),
            snapshot_every: 10_000,
        }
    }
}

/// The wall clock, as Unix nanoseconds. The server is the imperative shell:
/// it reads the clock here and passes the time into pure code.
pub fn now_nanos() -> UnixNanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A fresh random ID.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// What registering a job returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterResult {
    pub eval_id: Option<String>,
    pub eval_create_index: Index,
    pub job_modify_index: Index,
    pub index: Index,
    pub warnings: String,
}

type PlanRequest = (types::Plan, oneshot::Sender<Result<types::PlanResult, ServerError>>);

pub(crate) struct Inner {
    config: ServerConfig,
    raft: RaftNode,
    broker: EvalBroker,
    heartbeats: Heartbeats,
    plan_tx: tokio::sync::mpsc::Sender<PlanRequest>,
    /// Serializes writes that read state then write (unblocking evals).
    unblock_lock: Mutex<()>,
    /// Job registrations (shared) against namespace deletions (exclusive):
    /// a registration checks that its namespace exists and a deletion that
    /// its namespace holds no live job, each then writes, and neither may
    /// slip between the other's check and write.
    namespace_lock: tokio::sync::RwLock<()>,
}

/// A running server. Cheap to clone.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("rpc_addr", &self.inner.config.rpc_addr)
            .finish()
    }
}

impl Server {
    /// Opens the Raft state under the data dir, waits for a leader and
    /// starts the broker, workers, plan applier and heartbeat timers.
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        let raft_dir = config.data_dir.join("server");
        let raft = RaftNode::open(
            &raft_dir,
            RaftNodeConfig {
                node_id: config.node_id,
                rpc_addr: config.rpc_addr.clone(),
                bootstrap: [(config.node_id, config.rpc_addr.clone())].into(),
                snapshot_every: config.snapshot_every,
            },
        )
        .await?;
        raft.wait_for_leader(Duration::from_secs(10)).await?;
        let (plan_tx, plan_rx) = tokio::sync::mpsc::channel(64);
        let server = Server {
            inner: Arc::new(Inner {
                heartbeats: Heartbeats::new(config.heartbeat_ttl + config.heartbeat_grace),
                config,
                raft,
                broker: EvalBroker::default(),
                plan_tx,
                unblock_lock: Mutex::new(()),
                namespace_lock: tokio::sync::RwLock::new(()),
            }),
        };
        tokio::spawn(worker::run_plan_applier(server.clone(), plan_rx));
        for worker_idx in 0..server.inner.config.num_schedulers.max(1) {
            tokio::spawn(worker::run_worker(server.clone(), worker_idx as u64));
        }
        server.establish_leadership().await;
        Ok(server)
    }

    /// Restores what only the leader keeps in memory: pending evaluations
    /// in the broker and heartbeat timers for every live node.
    async fn establish_leadership(&self) {
        // Let the log be applied so the state is current.
        let snapshot = self.state();
        let now = now_nanos();
        for eval in snapshot.evals() {
            if eval.status == EvalStatus::Pending {
                self.inner.broker.enqueue((**eval).clone(), now);
            }
        }
        for node in snapshot.nodes() {
            if node.status == types::NodeStatus::Ready {
                self.inner.heartbeats.reset(self.clone(), &node.id);
            }
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The server's configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// A cheap, consistent copy of the current state.
    pub fn state(&self) -> StateSnapshot {
        self.inner.raft.snapshot()
    }

    /// Watches the last applied Raft index (for blocking queries).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.raft.subscribe()
    }

    /// The leader's RPC address.
    pub fn leader(&self) -> Option<String> {
        self.inner.raft.leader_addr()
    }

    /// The Raft voters' RPC addresses.
    pub fn peers(&self) -> Vec<String> {
        self.inner.raft.peers()
    }

    /// Whether this server leads.
    pub fn is_leader(&self) -> bool {
        self.inner.raft.is_leader()
    }

    /// The Raft node (for serving peers).
    pub fn raft(&self) -> &RaftNode {
        &self.inner.raft
    }

    /// (pending, unacked) evaluations in the broker.
    pub fn broker_stats(&self) -> (usize, usize) {
        self.inner.broker.stats()
    }

    /// Commits a command and enqueues the evaluations it created.
    pub(crate) async fn write(&self, command: Command) -> Result<CommandResult, ServerError> {
        let result = self.inner.raft.write(command).await?;
        if !result.evals_to_enqueue.is_empty() {
            let snapshot = self.state();
            let now = now_nanos();
            for eval_id in &result.evals_to_enqueue {
                if let Some(eval) = snapshot.eval(eval_id)
                    && eval.status == EvalStatus::Pending
                {
                    self.inner.broker.enqueue((*eval).clone(), now);
                }
            }
        }
        Ok(result)
    }

    fn new_eval(job: &Job, triggered_by: &str, now: UnixNanos) -> Evaluation {
        Evaluation {
            id: new_id(),
            namespace: job.namespace.clone(),
            priority: job.priority,
            job_type: Some(job.job_type),
            triggered_by: triggered_by.to_string(),
            job_id: job.id.clone(),
            status: EvalStatus::Pending,
            create_time: now,
            modify_time: now,
            ..Evaluation::default()
        }
    }

    /// Validates and registers a job, creating its evaluation. The job's
    /// namespace must exist.
    pub async fn register_job(&self, mut job: Job) -> Result<RegisterResult, ServerError> {
        job.canonicalize();
        job.validate().map_err(ServerError::InvalidJob)?;
        let _namespaces = self.inner.namespace_lock.read().await;
        if self.state().namespace(&job.namespace).is_none() {
            return Err(ServerError::BadRequest(format!(
                "job {:?} is in namespace {:?}, which does not exist; create it first (drover namespace apply {})",
                job.id, job.namespace, job.namespace
            )));
        }
        let now = now_nanos();
        // Reset what the servers own.
        job.stop = false;
        job.status = types::JobStatus::Pending;
        let eval = if job.is_template() {
            None
        } else {
            Some(Self::new_eval(&job, trigger::JOB_REGISTER, now))
        };
        let eval_id = eval.as_ref().map(|eval| eval.id.clone());
        let result = self.write(Command::JobRegister { job, eval, now }).await?;
        if let Some(error) = result.error {
            return Err(ServerError::BadRequest(error));
        }
        Ok(RegisterResult {
            eval_create_index: if eval_id.is_some() { result.index } else { 0 },
            eval_id,
            job_modify_index: result.index,
            index: result.index,
            warnings: String::new(),
        })
    }

    /// Creates or updates namespaces (Nomad's `PUT /v1/namespace/:name`).
    /// Returns the Raft index of the write.
    pub async fn upsert_namespaces(&self, namespaces: Vec<types::Namespace>) -> Result<Index, ServerError> {
        for namespace in &namespaces {
            namespace.validate().map_err(ServerError::BadRequest)?;
        }
        let result = self.write(Command::NamespaceUpsert { namespaces }).await?;
        Ok(result.index)
    }

    /// Deletes a namespace: refused for `default` and for a namespace that
    /// still holds a job that is not dead. Returns the Raft index.
    pub async fn delete_namespace(&self, name: &str) -> Result<Index, ServerError> {
        let _namespaces = self.inner.namespace_lock.write().await;
        if self.state().namespace(name).is_none() {
            return Err(ServerError::NotFound(format!("namespace {name:?}")));
        }
        let result = self
            .write(Command::NamespaceDelete {
                names: vec![name.to_string()],
            })
            .await?;
        match result.error {
            Some(error) => Err(ServerError::BadRequest(error)),
            None => Ok(result.index),
        }
    }

    /// Stops a job (or purges it), creating the evaluation that stops its
    /// allocations.
    pub async fn deregister_job(
        &self,
        namespace: &str,
        job_id: &str,
        purge: bool,
    ) -> Result<RegisterResult, ServerError> {
        let Some(job) = self.state().job(namespace, job_id) else {
            return Err(ServerError::NotFound(format!("job {job_id:?}")));
        };
        let now = now_nanos();
        let eval = Self::new_eval(&job, trigger::JOB_DEREGISTER, now);
        let eval_id = eval.id.clone();
        let result = self
            .write(Command::JobDeregister {
                namespace: namespace.to_string(),
                job_id: job_id.to_string(),
                purge,
                eval: Some(eval),
                now,
            })
            .await?;
        if let Some(error) = result.error {
            return Err(ServerError::NotFound(error));
        }
        Ok(RegisterResult {
            eval_id: Some(eval_id),
            eval_create_index: result.index,
            job_modify_index: result.index,
            index: result.index,
            warnings: String::new(),
        })
    }

    /// Re-evaluates every job that has a blocked evaluation, because
    /// capacity changed (a node joined, allocations finished).
    pub(crate) async fn unblock_evals(&self) {
        let _guard = self.inner.unblock_lock.lock().await;
        let snapshot = self.state();
        let mut newest: std::collections::BTreeMap<(String, String), Arc<Evaluation>> = Default::default();
        let mut superseded = Vec::new();
        for eval in snapshot.blocked_evals() {
            let key = (eval.namespace.clone(), eval.job_id.clone());
            match newest.get(&key) {
                Some(current) if current.create_index >= eval.create_index => superseded.push(Arc::clone(eval)),
                Some(current) => {
                    superseded.push(Arc::clone(current));
                    newest.insert(key, Arc::clone(eval));
                }
                None => {
                    newest.insert(key, Arc::clone(eval));
                }
            }
        }
        if newest.is_empty() {
            return;
        }
        let now = now_nanos();
        let mut evals = Vec::new();
        for eval in newest.into_values() {
            let mut pending = (*eval).clone();
            pending.status = EvalStatus::Pending;
            pending.status_description = "unblocked: cluster capacity changed".to_string();
            pending.modify_time = now;
            evals.push(pending);
        }
        for eval in superseded {
            let mut canceled = (*eval).clone();
            canceled.status = EvalStatus::Canceled;
            canceled.status_description = "superseded by a newer blocked evaluation".to_string();
            canceled.modify_time = now;
            evals.push(canceled);
        }
        if let Err(error) = self.write(Command::EvalUpsert { evals }).await {
            tracing::warn!(%error, "could not unblock evaluations");
        }
    }

    /// Evaluations for every job with live allocations on `node_id`, plus
    /// every system job (a node change may need a system alloc placed or
    /// removed).
    pub(crate) fn node_evals(&self, node_id: &str, triggered_by: &str, now: UnixNanos) -> Vec<Evaluation> {
        let snapshot = self.state();
        let mut jobs: std::collections::BTreeMap<(String, String), Arc<Job>> = Default::default();
        for alloc in snapshot.allocs_by_node(node_id) {
            if alloc.desired_status == AllocDesiredStatus::Run
                && !alloc.client_status.is_terminal()
                && let Some(job) = snapshot.job(&alloc.namespace, &alloc.job_id)
            {
                jobs.insert((job.namespace.clone(), job.id.clone()), job);
            }
        }
        for job in snapshot.system_jobs() {
            if !job.stop {
                jobs.insert((job.namespace.clone(), job.id.clone()), Arc::clone(job));
            }
        }
        jobs.values()
            .map(|job| {
                let mut eval = Self::new_eval(job, triggered_by, now);
                eval.node_id = node_id.to_string();
                eval
            })
            .collect()
    }

    /// Evaluations for allocations that failed and may be rescheduled.
    pub(crate) fn failure_evals(&self, failed_alloc_ids: &[String], now: UnixNanos) -> Vec<Evaluation> {
        let snapshot = self.state();
        let mut jobs: std::collections::BTreeMap<(String, String), Arc<Job>> = Default::default();
        for alloc_id in failed_alloc_ids {
            let Some(alloc) = snapshot.alloc(alloc_id) else {
                continue;
            };
            if alloc.desired_status != AllocDesiredStatus::Run || alloc.client_status == AllocClientStatus::Failed {
                continue;
            }
            if let Some(job) = snapshot.job(&alloc.namespace, &alloc.job_id)
                && !job.stop
                && matches!(job.job_type, JobType::Service | JobType::Batch)
            {
                jobs.insert((job.namespace.clone(), job.id.clone()), job);
            }
        }
        jobs.values()
            .map(|job| Self::new_eval(job, trigger::ALLOC_FAILURE, now))
            .collect()
    }

    /// Sends a plan to the plan applier and waits for its result.
    pub(crate) async fn submit_plan(&self, plan: types::Plan) -> Result<types::PlanResult, ServerError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .plan_tx
            .send((plan, tx))
            .await
            .map_err(|_| ServerError::Internal("plan applier stopped".to_string()))?;
        rx.await
            .map_err(|_| ServerError::Internal("plan applier dropped the plan".to_string()))?
    }

    /// Stops Raft.
    /// Replaces the operator's scheduler configuration (Nomad's `PUT
    /// /v1/operator/scheduler/configuration`). With `cas`, only when the
    /// stored configuration's modify index is still `cas`; returns whether
    /// it was written and the Raft index. Settings Drover does not carry out
    /// yet are refused rather than stored and ignored.
    pub async fn set_scheduler_config(
        &self,
        config: types::SchedulerConfiguration,
        cas: Option<Index>,
    ) -> Result<(bool, Index), ServerError> {
        let unsupported = [
            (config.memory_oversubscription_enabled, "MemoryOversubscriptionEnabled"),
            (config.reject_job_registration, "RejectJobRegistration"),
            (config.pause_eval_broker, "PauseEvalBroker"),
        ];
        if let Some((_, name)) = unsupported.iter().find(|(set, _)| *set) {
            return Err(ServerError::BadRequest(format!(
                "scheduler configuration: {name} = true is not supported by Drover yet"
            )));
        }
        let result = self.write(Command::SchedulerConfigSet { config, cas }).await?;
        Ok((result.updated, result.index))
    }

    pub async fn shutdown(&self) {
        self.inner.raft.shutdown().await;
    }
}
