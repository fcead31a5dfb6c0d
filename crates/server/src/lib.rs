//! The server: the imperative shell around Raft, the state and the pure
//! scheduler.
//!
//! Any server serves any request. Writes go through [`Server`]'s methods,
//! which build a `state::Command` (with IDs and timestamps made here,
//! before the log) and commit it through Raft on the leader; a follower
//! forwards the command to the leader over RPC, retrying across a leader
//! change. Consistent reads confirm the leader's commit index first
//! ([`Server::read_state`]); `stale` reads answer from local state.
//!
//! The leader alone runs the eval broker, the plan applier, heartbeat
//! timers and the failed-evaluation reaper ([`leader`]); scheduler workers
//! run on every server, taking evaluations from the leader's broker and
//! planning against their own snapshot at the evaluation's index
//! ([`worker`]). Servers find each other and bootstrap through
//! [`cluster`]. Clients reach the servers through [`rpc`].

pub mod access;
mod broker;
pub mod cluster;
mod cron;
mod deployment_watcher;
mod deployments;
pub mod drainer;
pub mod evaluate;
pub mod gc;
mod heartbeat;
mod keyring;
mod leader;
pub mod metrics;
pub mod peer;
pub mod periodic;
mod plan_job;
mod planner;
mod rpc_handler;
mod services;
pub mod snapshot;
mod vars;
mod view;
mod worker;

pub use access::{AclConfig, BOOTSTRAP_RESET_FILE, Caller};
pub use broker::{BrokerCore, BrokerError, EvalBroker};
pub use cluster::{Member, MemberStatus};
pub use deployments::{DeploymentUpdateResult, ScaleRequest};
pub use plan_job::{DesiredUpdates, JobPlan};
pub use planner::{PendingUsage, VerifiedPlan, plan_command, plan_command_with, verify_plan, verify_plan_with};
pub use raft::{EventBroker, EventBufferConfig, EventFrame, RaftNode, RaftNodeConfig, RaftPeer, RaftStats};
pub use rpc_handler::RpcService;
pub use state::{Event, EventPayload, JobSummary, StateError, StateSnapshot, TaskGroupSummary, Topic};
pub use vars::{DecryptedVariable, LockRequest, VarWriteOutcome};

use heartbeat::Heartbeats;
use peer::{PeerCall, PeerReply};
use rpc::{RpcClient, RpcError};
use state::{Command, CommandResult};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, oneshot, watch};
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
    #[error("no cluster leader")]
    NoLeader,
    /// A server could not be reached or did not answer in time.
    #[error("server unavailable: {0}")]
    Unavailable(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<raft::RaftNodeError> for ServerError {
    fn from(error: raft::RaftNodeError) -> ServerError {
        match error {
            raft::RaftNodeError::NotLeader { leader } => ServerError::NotLeader { leader },
            raft::RaftNodeError::NoLeader(_) => ServerError::NoLeader,
            raft::RaftNodeError::Membership(message) => ServerError::BadRequest(message),
            other => ServerError::Internal(other.to_string()),
        }
    }
}

impl From<RpcError> for ServerError {
    fn from(error: RpcError) -> ServerError {
        match error {
            RpcError::NotLeader { leader } => ServerError::NotLeader { leader },
            RpcError::NotFound(what) => ServerError::NotFound(what),
            RpcError::BadRequest(message) => ServerError::BadRequest(message),
            RpcError::PermissionDenied(message) => ServerError::PermissionDenied(message),
            RpcError::Internal(message) => ServerError::Internal(message),
            RpcError::Transport(message) => ServerError::Unavailable(message),
            RpcError::Timeout(wait) => ServerError::Unavailable(format!("no answer within {wait:?}")),
        }
    }
}

impl ServerError {
    /// Whether the same call may succeed later or elsewhere (the leader
    /// moved, or none is elected yet).
    fn is_retryable(&self) -> bool {
        matches!(
            self,
            ServerError::NotLeader { .. } | ServerError::NoLeader | ServerError::Unavailable(_)
        )
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// This server's name in `/v1/agent/members`.
    pub name: String,
    /// The RPC address peers and clients dial.
    pub rpc_addr: String,
    /// The HTTP address, advertised to the other servers.
    pub http_addr: String,
    pub region: String,
    pub datacenter: String,
    /// Bootstrap a new cluster once this many servers have met (1 for a
    /// single server; 0 never bootstraps: join an existing cluster).
    pub bootstrap_expect: u32,
    /// Servers to contact (RPC addresses); retried until they answer.
    pub join: Vec<String>,
    /// Scheduler workers (Nomad's `num_schedulers`).
    pub num_schedulers: usize,
    /// The least heartbeat TTL (Nomad's `min_heartbeat_ttl`).
    pub heartbeat_ttl: Duration,
    /// With many nodes the TTL grows to `nodes / max_heartbeats_per_second`
    /// so the leader is not flooded (Nomad's default: 50).
    pub max_heartbeats_per_second: f64,
    /// Extra time allowed after the TTL before the node is marked down.
    pub heartbeat_grace: Duration,
    /// After a leader change, every node gets this long to heartbeat the
    /// new leader before it can be marked down (Nomad: 5 minutes).
    pub failover_heartbeat_ttl: Duration,
    /// Raft snapshot threshold, in log entries.
    pub snapshot_every: u64,
    /// Raft snapshot threshold, in bytes appended since the last one.
    pub snapshot_bytes: u64,
    /// Raft heartbeat interval (elections time out after 3–6 of these).
    pub raft_heartbeat_interval: Duration,
    /// Deliveries of an evaluation before it is failed (Nomad: 3).
    pub eval_delivery_limit: u32,
    /// How long a worker may hold an evaluation unacknowledged.
    pub eval_nack_timeout: Duration,
    /// Delay before the follow-up of a failed evaluation runs.
    pub failed_eval_follow_up_delay: Duration,
    /// Garbage-collection thresholds.
    pub gc: gc::GcConfig,
    /// The ACL system (`acl { }`).
    pub acl: AclConfig,
    /// Mutual TLS for calls to other servers (`tls { rpc = true }`).
    pub rpc_tls: Option<rpc::RpcTls>,
}

impl ServerConfig {
    /// Defaults for a single dev server with state under `data_dir`.
    pub fn dev(data_dir: PathBuf, rpc_addr: String) -> ServerConfig {
        ServerConfig {
            data_dir,
            name: String::new(),
            rpc_addr,
            http_addr: String::new(),
            region: types::DEFAULT_REGION.to_string(),
            datacenter: "dc1".to_string(),
            bootstrap_expect: 1,
            join: Vec::new(),
            num_schedulers: 2,
            heartbeat_ttl: Duration::from_secs(10),
            max_heartbeats_per_second: 50.0,
            heartbeat_grace: Duration::from_secs(10),
            failover_heartbeat_ttl: Duration::from_secs(300),
            snapshot_every: 50_000,
            snapshot_bytes: 256 << 20,
            raft_heartbeat_interval: Duration::from_millis(100),
            eval_delivery_limit: broker::DEFAULT_DELIVERY_LIMIT,
            eval_nack_timeout: broker::DEFAULT_NACK_TIMEOUT,
            failed_eval_follow_up_delay: Duration::from_secs(60),
            gc: gc::GcConfig::default(),
            acl: AclConfig::default(),
            rpc_tls: None,
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

/// Schedules one evaluation against a state snapshot: the scheduler over
/// the server's view of the store. Workers call this; so does the
/// scheduler benchmark, so that what it measures is what servers run.
pub fn plan_evaluation<R: rand::Rng + ?Sized>(
    snapshot: &StateSnapshot,
    eval: &Evaluation,
    now: UnixNanos,
    ids: &mut dyn FnMut() -> String,
    rng: &mut R,
) -> Result<types::Plan, scheduler::ScheduleError> {
    scheduler::schedule(&view::SnapshotView(snapshot), eval, now, ids, rng)
}

/// The ID of a task group's scaling policy: a UUID derived from its
/// namespace, job and group, so every server names it alike without a
/// table of its own.
pub fn scaling_policy_id(namespace: &str, job_id: &str, group: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{namespace}\0{job_id}\0{group}").as_bytes());
    let mut bits = [0u8; 16];
    bits.copy_from_slice(&digest[..16]);
    types::uuid_from_bits(u128::from_be_bytes(bits))
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

/// How long a write keeps trying to reach a leader.
const WRITE_DEADLINE: Duration = Duration::from_secs(15);

pub(crate) struct Inner {
    config: ServerConfig,
    raft: RaftNode,
    /// Calls to other servers (one connection per peer).
    peers: Arc<RpcClient>,
    broker: EvalBroker,
    heartbeats: Heartbeats,
    members: cluster::Members,
    plan_tx: tokio::sync::mpsc::Sender<PlanRequest>,
    /// Serializes writes that read state then write (unblocking evals).
    unblock_lock: Mutex<()>,
    shutdown: watch::Sender<bool>,
    /// `true` while this server leads and its leader duties run.
    leader_ready: watch::Sender<bool>,
    /// Job registrations (shared) against namespace deletions (exclusive):
    /// a registration checks that its namespace exists and a deletion that
    /// its namespace holds no live job, each then writes, and neither may
    /// slip between the other's check and write.
    namespace_lock: tokio::sync::RwLock<()>,
    /// What this server's plan applier did: plans verified, and plans of
    /// which some node was rejected (a conflict with a plan committed
    /// after the worker's snapshot).
    plans_applied: std::sync::atomic::AtomicU64,
    plans_rejected: std::sync::atomic::AtomicU64,
    /// Counters and timings the loops record (`/v1/metrics`).
    metrics: metrics::Metrics,
    /// This server's root keys (see `keyring.rs`).
    keystore: keyring::Keystore,
}

/// Counters of a server's plan applier (`Server::plan_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanStats {
    /// Plans verified by this server while it led.
    pub applied: u64,
    /// Of those, plans with at least one rejected node.
    pub rejected: u64,
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
    /// Opens the Raft state under the data dir and starts the server's
    /// loops. A single server (`bootstrap_expect = 1`) bootstraps itself
    /// and waits for its own leadership; others return at once and form or
    /// join a cluster in the background.
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        let peers = Arc::new(RpcClient::with_servers(
            Vec::new(),
            rpc::ClientOptions {
                tls: config.rpc_tls.clone(),
                ..rpc::ClientOptions::default()
            },
        ));
        let raft_dir = config.data_dir.join("server");
        let mut raft_config = RaftNodeConfig::new(config.rpc_addr.clone());
        raft_config.snapshot_every = config.snapshot_every;
        raft_config.snapshot_bytes = config.snapshot_bytes;
        raft_config.heartbeat_interval = config.raft_heartbeat_interval;
        let raft = RaftNode::open(&raft_dir, raft_config, Arc::clone(&peers)).await?;
        let keystore = keyring::Keystore::open(&raft_dir)?;
        let (plan_tx, plan_rx) = tokio::sync::mpsc::channel(64);
        let (shutdown, _) = watch::channel(false);
        let members = cluster::Members::default();
        members.add_join(config.join.iter().cloned());
        let server = Server {
            inner: Arc::new(Inner {
                heartbeats: Heartbeats::default(),
                broker: EvalBroker::new(config.eval_delivery_limit, config.eval_nack_timeout),
                config,
                raft,
                peers,
                members,
                plan_tx,
                unblock_lock: Mutex::new(()),
                shutdown,
                leader_ready: watch::channel(false).0,
                namespace_lock: tokio::sync::RwLock::new(()),
                plans_applied: std::sync::atomic::AtomicU64::new(0),
                plans_rejected: std::sync::atomic::AtomicU64::new(0),
                metrics: metrics::Metrics::default(),
                keystore,
            }),
        };
        if server.inner.config.bootstrap_expect == 1 && !server.inner.raft.is_initialized().await {
            let me = server.inner.raft.node_id();
            server
                .inner
                .raft
                .initialize([(me, server.inner.config.rpc_addr.clone())].into())
                .await?;
        }
        tokio::spawn(worker::run_plan_applier(server.clone(), plan_rx));
        for worker_idx in 0..server.inner.config.num_schedulers.max(1) {
            tokio::spawn(worker::run_worker(server.clone(), worker_idx as u64));
        }
        tokio::spawn(leader::run_leadership(server.clone()));
        tokio::spawn(server.clone().run_membership());
        tokio::spawn(keyring::run_replicator(server.clone()));
        if server.inner.config.bootstrap_expect == 1 {
            server.inner.raft.wait_for_leader(Duration::from_secs(10)).await?;
            // Wait until this server's leader duties are running, so the
            // first request finds the broker enabled.
            let mut leading = server.inner.leader_ready.subscribe();
            let ready = tokio::time::timeout(Duration::from_secs(10), leading.wait_for(|ready| *ready)).await;
            if !matches!(ready, Ok(Ok(_))) {
                return Err(ServerError::NoLeader);
            }
        }
        Ok(server)
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The server's configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// A cheap, consistent copy of the state as applied here (possibly
    /// behind the leader: a `stale` read).
    pub fn state(&self) -> StateSnapshot {
        self.inner.raft.snapshot()
    }

    /// The state for a read: with `stale`, this server's own; otherwise at
    /// least every write the leader acknowledged before the call (the
    /// leader confirms its commit index with a quorum, and this server
    /// waits until it has applied it).
    pub async fn read_state(&self, stale: bool) -> Result<StateSnapshot, ServerError> {
        if stale {
            return Ok(self.state());
        }
        let index = self.read_index().await?;
        if !self.inner.raft.wait_applied(index, WRITE_DEADLINE).await {
            return Err(ServerError::Internal(format!(
                "this server did not apply index {index} in time"
            )));
        }
        Ok(self.state())
    }

    /// The index a linearizable read must see, from the leader.
    async fn read_index(&self) -> Result<Index, ServerError> {
        self.with_leader(|server| async move {
            if server.is_leader() {
                return Ok(server.inner.raft.read_index().await?);
            }
            match server.call_leader(PeerCall::ReadIndex).await? {
                PeerReply::ReadIndex(index) => Ok(index),
                other => Err(unexpected(&other)),
            }
        })
        .await
    }

    /// Watches the last applied Raft index (for blocking queries).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
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

    /// What this server's plan applier has done so far.
    pub fn plan_stats(&self) -> PlanStats {
        use std::sync::atomic::Ordering::Relaxed;
        PlanStats {
            applied: self.inner.plans_applied.load(Relaxed),
            rejected: self.inner.plans_rejected.load(Relaxed),
        }
    }

    /// The counters and timings this server recorded.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    /// Nodes whose heartbeat timer this server (as leader) runs.
    pub fn heartbeats_active(&self) -> usize {
        self.inner.heartbeats.count()
    }

    /// The events this server's applies produced (`/v1/event/stream`).
    pub fn events(&self) -> &raft::EventBroker {
        self.inner.raft.events()
    }

    /// Whether this server leads.
    pub fn is_leader(&self) -> bool {
        self.inner.raft.is_leader()
    }

    /// How long since this server last heard from the leader (or, as the
    /// leader, from a quorum): Nomad's `X-Nomad-LastContact`.
    pub fn last_contact(&self) -> Option<Duration> {
        self.inner.raft.last_contact()
    }

    /// The Raft node (for serving peers).
    pub fn raft(&self) -> &RaftNode {
        &self.inner.raft
    }

    /// (pending, unacked) evaluations in the broker.
    pub fn broker_stats(&self) -> (usize, usize) {
        self.inner.broker.stats()
    }

    /// Calls another server.
    pub(crate) async fn call_peer(
        &self,
        addr: &str,
        call: PeerCall,
        deadline: Duration,
    ) -> Result<PeerReply, ServerError> {
        let message = peer::encode_call(&call)?;
        match self
            .inner
            .peers
            .call_to(addr, rpc::Request::Server(message), deadline)
            .await?
        {
            rpc::Response::Server(answer) => peer::decode_reply(&answer),
            other => Err(ServerError::Internal(format!("peer {addr} answered with {other:?}"))),
        }
    }

    /// Calls the leader; `NoLeader` when none is known.
    pub(crate) async fn call_leader(&self, call: PeerCall) -> Result<PeerReply, ServerError> {
        let Some(leader) = self.leader() else {
            return Err(ServerError::NoLeader);
        };
        if self.is_leader() {
            return Err(ServerError::Internal("call_leader on the leader".to_string()));
        }
        self.call_peer(&leader, call, rpc::DEFAULT_DEADLINE).await
    }

    /// Forwards a client agent's request to the leader, once (the leader
    /// does not forward it further).
    pub(crate) async fn forward_to_leader(&self, request: rpc::Request) -> Result<rpc::Response, ServerError> {
        let Some(leader) = self.leader() else {
            return Err(ServerError::NoLeader);
        };
        let deadline = request.default_deadline();
        match self.call_peer(&leader, PeerCall::Forwarded(request), deadline).await? {
            PeerReply::Forwarded(response) => Ok(response),
            other => Err(unexpected(&other)),
        }
    }

    /// Runs `operation` until it succeeds, fails for good, or no leader
    /// could be reached within [`WRITE_DEADLINE`]: a leader change in the
    /// middle is retried with back-off.
    async fn with_leader<T, F, Fut>(&self, operation: F) -> Result<T, ServerError>
    where
        F: Fn(Server) -> Fut,
        Fut: std::future::Future<Output = Result<T, ServerError>>,
    {
        let deadline = tokio::time::Instant::now() + WRITE_DEADLINE;
        let mut backoff = rpc::Backoff::random(Duration::from_millis(20), Duration::from_millis(500));
        loop {
            match operation(self.clone()).await {
                Err(error) if error.is_retryable() && tokio::time::Instant::now() < deadline => {
                    tracing::debug!(%error, "no leader reachable yet; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(error) if error.is_retryable() => return Err(ServerError::NoLeader),
                other => return other,
            }
        }
    }

    /// Commits a command through the leader (forwarding it when this
    /// server follows) and, on the leader, enqueues the evaluations it
    /// created.
    pub(crate) async fn write(&self, command: Command) -> Result<CommandResult, ServerError> {
        self.with_leader(|server| {
            let command = command.clone();
            async move {
                if server.is_leader() {
                    return server.write_local(command).await;
                }
                match server.call_leader(PeerCall::Apply(command)).await? {
                    PeerReply::Applied(result) => Ok(result),
                    other => Err(unexpected(&other)),
                }
            }
        })
        .await
    }

    /// Commits a command on this server, which must lead, and enqueues the
    /// evaluations it created.
    pub(crate) async fn write_local(&self, mut command: Command) -> Result<CommandResult, ServerError> {
        // Variable locks are timed on one clock, the leader's.
        if let Command::VarApply { now, .. } = &mut command {
            *now = now_nanos();
        }
        let started = std::time::Instant::now();
        let result = self.inner.raft.write(command).await?;
        self.inner.metrics.incr("nomad.raft.apply", &[], 1.0);
        self.inner
            .metrics
            .time("drover.raft.commit_time", &[], started.elapsed());
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
    pub async fn register_job(&self, job: Job) -> Result<RegisterResult, ServerError> {
        self.register_job_enforcing(job, None).await
    }

    /// [`Server::register_job`] with Nomad's `EnforceIndex`: only when the
    /// stored job's `JobModifyIndex` is `enforce_index` (0: the job must
    /// not exist). The check runs in the state machine, so no other
    /// registration can slip between check and write.
    pub async fn register_job_enforcing(
        &self,
        mut job: Job,
        enforce_index: Option<Index>,
    ) -> Result<RegisterResult, ServerError> {
        job.canonicalize();
        job.validate().map_err(ServerError::InvalidJob)?;
        job.check_supported().map_err(ServerError::InvalidJob)?;
        if let Some(reason) = deployment_watcher::unsupported_update(&job) {
            return Err(ServerError::BadRequest(reason));
        }
        periodic::check_schedule(&job)
            .map_err(|reason| ServerError::BadRequest(format!("job {:?}: periodic: {reason}", job.id)))?;
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
        let result = self
            .write(Command::JobRegister {
                job,
                eval,
                now,
                enforce_index,
            })
            .await?;
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
        let Some(job) = self.read_state(false).await?.job(namespace, job_id) else {
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
    /// capacity changed (a node joined, allocations finished). Leader only.
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

    /// Sends a plan to the leader's plan applier and waits for its result.
    pub(crate) async fn submit_plan(&self, plan: types::Plan) -> Result<types::PlanResult, ServerError> {
        if !self.is_leader() {
            return match self.call_leader(PeerCall::PlanSubmit { plan }).await? {
                PeerReply::Plan(result) => Ok(result),
                other => Err(unexpected(&other)),
            };
        }
        let (tx, rx) = oneshot::channel();
        self.inner
            .plan_tx
            .send((plan, tx))
            .await
            .map_err(|_| ServerError::Internal("plan applier stopped".to_string()))?;
        rx.await
            .map_err(|_| ServerError::Internal("plan applier dropped the plan".to_string()))?
    }

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

    /// The Raft configuration (every voter and learner).
    pub fn raft_configuration(&self) -> Vec<RaftPeer> {
        self.inner.raft.members()
    }

    /// Removes a server from the Raft configuration (through the leader).
    pub async fn remove_raft_peer(&self, id: u64) -> Result<(), ServerError> {
        self.with_leader(|server| async move {
            if server.is_leader() {
                server.inner.raft.remove_server(id).await?;
                server.inner.members.mark_left(id);
                return Ok(());
            }
            match server.call_leader(PeerCall::RemovePeer { id }).await? {
                PeerReply::Done => Ok(()),
                other => Err(unexpected(&other)),
            }
        })
        .await
    }

    /// Hands leadership to `target` (or the best other voter); returns the
    /// new leader's ID.
    pub async fn transfer_leadership(&self, target: Option<u64>) -> Result<u64, ServerError> {
        self.with_leader(|server| async move {
            if server.is_leader() {
                return Ok(server
                    .inner
                    .raft
                    .transfer_leadership(target, &server.inner.peers)
                    .await?);
            }
            match server.call_leader(PeerCall::TransferLeadership { target }).await? {
                PeerReply::Transferred { leader } => Ok(leader),
                other => Err(unexpected(&other)),
            }
        })
        .await
    }

    /// Stops the server's loops and Raft.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        self.inner.broker.set_enabled(false);
        self.inner.heartbeats.clear();
        self.inner.raft.shutdown().await;
    }
}

fn unexpected(reply: &PeerReply) -> ServerError {
    ServerError::Internal(format!("unexpected peer answer {reply:?}"))
}
