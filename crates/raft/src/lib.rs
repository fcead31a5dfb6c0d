//! openraft glue: the Raft type configuration, the redb log store, the state
//! machine adapter over `state`, the network over `rpc`, and the server's
//! data directory (marker, modes, damage checks).
//!
//! [`RaftNode`] is the one handle the server uses: bootstrap a cluster,
//! write a command (only the leader may), read a cheap state snapshot, wait
//! for the applied index to move, confirm leadership for a consistent read,
//! change the membership, and answer Raft messages from peers.

// openraft's trait methods fix `StorageError` as the error type; our helpers
// return the same type so `?` flows straight into them.
#![allow(clippy::result_large_err)]

pub mod datadir;
mod log_store;
mod network;
mod state_machine;

pub use datadir::{DataDirError, Marker};
pub mod events;
pub use events::{EventBroker, EventBufferConfig, EventFrame};
pub use state_machine::{ApplyStats, SharedState};

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Config, Raft, ServerState, SnapshotPolicy};
use redb::Database;
use rpc::{PeerIdentity, PeerInfo, RaftRequest, RaftResponse, RpcClient, RpcError};
use serde::{Deserialize, Serialize};
use state::{Command, CommandResult, StateSnapshot};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

openraft::declare_raft_types!(
    /// Drover's Raft types: commands in, command results out.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// Errors opening or running the Raft node.
#[derive(Debug, thiserror::Error)]
pub enum RaftNodeError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error("open raft database {path}: {message}")]
    OpenDatabase { path: String, message: String },
    #[error("start raft: {0}")]
    Start(String),
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<String> },
    #[error("raft write failed: {0}")]
    Write(String),
    #[error("no leader elected within {0:?}")]
    NoLeader(Duration),
    #[error("change the raft membership: {0}")]
    Membership(String),
}

/// Settings for one Raft server.
#[derive(Debug, Clone)]
pub struct RaftNodeConfig {
    /// This server's RPC address, as peers dial it.
    pub rpc_addr: String,
    /// Take a snapshot (and trim the log) after this many entries...
    pub snapshot_every: u64,
    /// ...or once this many bytes were appended since the last one.
    pub snapshot_bytes: u64,
    /// Leader heartbeat interval; elections time out after 3–6 of these.
    pub heartbeat_interval: Duration,
    /// What the event buffer keeps.
    pub event_buffer: EventBufferConfig,
}

impl RaftNodeConfig {
    /// Defaults for a server advertising `rpc_addr`.
    pub fn new(rpc_addr: impl Into<String>) -> RaftNodeConfig {
        RaftNodeConfig {
            rpc_addr: rpc_addr.into(),
            snapshot_every: 50_000,
            snapshot_bytes: 256 << 20,
            heartbeat_interval: Duration::from_millis(100),
            event_buffer: EventBufferConfig::default(),
        }
    }
}

/// One member of the Raft configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftPeer {
    pub id: u64,
    /// The member's RPC address.
    pub addr: String,
    /// Voter (true) or learner (false).
    pub voter: bool,
    pub leader: bool,
}

/// Raft figures for `/v1/agent/self` and operators.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftStats {
    pub term: u64,
    pub state: String,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
}

/// A running Raft server with its state machine.
#[derive(Clone)]
pub struct RaftNode {
    raft: Raft<TypeConfig>,
    shared: SharedState,
    node_id: u64,
    rpc_addr: String,
    /// When a follower last heard from a leader.
    last_contact: Arc<Mutex<Option<tokio::time::Instant>>>,
    stop: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode").field("node_id", &self.node_id).finish()
    }
}

fn open_error(path: &Path, message: impl std::fmt::Display) -> RaftNodeError {
    RaftNodeError::OpenDatabase {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Opens the log database and checks it end to end: redb's own integrity
/// check, then every stored entry decoded. A damaged file is an error that
/// names it, never a panic: redb's panics on damaged pages are caught.
fn open_checked_database(path: &Path) -> Result<Database, RaftNodeError> {
    let attempt = std::panic::catch_unwind(|| -> Result<Database, RaftNodeError> {
        let mut db = Database::create(path).map_err(|error| open_error(path, error))?;
        match db.check_integrity() {
            Ok(true) => {}
            Ok(false) => return Err(open_error(path, "redb repaired the file after an unclean shutdown")),
            Err(error) => return Err(open_error(path, format!("integrity check failed: {error}"))),
        }
        let txn = db.begin_write().map_err(|error| open_error(path, error))?;
        {
            txn.open_table(log_store::LOGS)
                .map_err(|error| open_error(path, error))?;
            txn.open_table(log_store::META)
                .map_err(|error| open_error(path, error))?;
        }
        txn.commit().map_err(|error| open_error(path, error))?;
        log_store::verify(&db).map_err(|error| open_error(path, error))?;
        Ok(db)
    });
    match attempt {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            Err(RaftNodeError::DataDir(DataDirError::Damaged {
                path: path.to_path_buf(),
                reason: format!("redb could not read it ({message})"),
            }))
        }
    }
}

impl RaftNode {
    /// Opens (or creates) the Raft state under `data_dir` and starts the
    /// node. A new node is not part of any cluster until
    /// [`RaftNode::initialize`] is called on one server, or a leader adds
    /// it. Peers are dialled through `rpc`.
    pub async fn open(data_dir: &Path, config: RaftNodeConfig, rpc: Arc<RpcClient>) -> Result<RaftNode, RaftNodeError> {
        RaftNode::open_with_network(data_dir, config, network::Network::new(rpc)).await
    }

    /// [`RaftNode::open`] with another transport between servers: the
    /// seam the deterministic cluster simulation plugs its faulty network
    /// into. Messages still arrive through [`RaftNode::handle_rpc`].
    pub async fn open_with_network<N>(
        data_dir: &Path,
        config: RaftNodeConfig,
        transport: N,
    ) -> Result<RaftNode, RaftNodeError>
    where
        N: openraft::network::RaftNetworkFactory<TypeConfig>,
    {
        let mut marker = datadir::prepare(data_dir, rand::random::<u64>)?;
        let path = data_dir.join(datadir::LOG_FILE);
        // A previous Raft node of this process on the same data dir (a
        // restart in tests or an embedding) releases redb's file lock from
        // its storage tasks shortly after shutdown, so wait briefly for it.
        let mut waited = Duration::ZERO;
        let db = loop {
            let opened = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || open_checked_database(&path))
            }
            .await
            .map_err(|error| open_error(&path, error))?;
            match opened {
                Ok(db) => break db,
                Err(RaftNodeError::OpenDatabase { message, .. })
                    if message.contains("already open") && waited < Duration::from_secs(5) =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    waited += Duration::from_millis(20);
                }
                Err(error) => return Err(error),
            }
        };
        datadir::mark_log_created(data_dir, &mut marker)?;
        datadir::restrict_files(data_dir)?;
        let db = Arc::new(db);
        let heartbeat_ms = u64::try_from(config.heartbeat_interval.as_millis())
            .unwrap_or(100)
            .max(10);
        let raft_config = Config {
            cluster_name: "drover".to_string(),
            heartbeat_interval: heartbeat_ms,
            election_timeout_min: heartbeat_ms * 3,
            election_timeout_max: heartbeat_ms * 6,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: 1000,
            ..Config::default()
        };
        let raft_config = Arc::new(
            raft_config
                .validate()
                .map_err(|error| RaftNodeError::Start(error.to_string()))?,
        );
        let appended_bytes = Arc::new(AtomicU64::new(0));
        let log_store = log_store::LogStore::new(Arc::clone(&db), Arc::clone(&appended_bytes));
        let state_machine =
            state_machine::StateMachine::open(data_dir, Arc::clone(&appended_bytes), config.event_buffer).map_err(
                |error| {
                    RaftNodeError::DataDir(DataDirError::Damaged {
                        path: data_dir.join(state_machine::SNAPSHOT_FILE),
                        reason: error.to_string(),
                    })
                },
            )?;
        let shared = state_machine.shared();
        let raft = Raft::new(marker.server_id, raft_config, transport, log_store, state_machine)
            .await
            .map_err(|error| RaftNodeError::Start(error.to_string()))?;
        let (stop, stop_rx) = watch::channel(false);
        let node = RaftNode {
            raft,
            shared,
            node_id: marker.server_id,
            rpc_addr: config.rpc_addr.clone(),
            last_contact: Arc::new(Mutex::new(None)),
            stop: Arc::new(stop),
        };
        tokio::spawn(snapshot_by_size(
            node.raft.clone(),
            appended_bytes,
            config.snapshot_bytes,
            stop_rx,
        ));
        Ok(node)
    }

    /// This server's Raft ID (kept in the data dir's marker).
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// This server's RPC address, as peers dial it.
    pub fn rpc_addr(&self) -> &str {
        &self.rpc_addr
    }

    /// Whether this server belongs to a cluster (bootstrapped or added).
    pub async fn is_initialized(&self) -> bool {
        self.raft.is_initialized().await.unwrap_or(false)
    }

    /// Bootstraps a new cluster whose voters are `members` (ID → RPC
    /// address). Called once, on one server, when the expected servers met.
    pub async fn initialize(&self, members: BTreeMap<u64, String>) -> Result<(), RaftNodeError> {
        let members: BTreeMap<u64, BasicNode> = members
            .into_iter()
            .map(|(id, addr)| (id, BasicNode::new(addr)))
            .collect();
        self.raft
            .initialize(members)
            .await
            .map_err(|error| RaftNodeError::Start(error.to_string()))
    }

    /// Appends `command` to the log and waits until it is committed and
    /// applied. Only the leader accepts writes.
    pub async fn write(&self, command: Command) -> Result<CommandResult, RaftNodeError> {
        match self.raft.client_write(command).await {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => Err(RaftNodeError::NotLeader {
                leader: forward.leader_node.map(|node| node.addr),
            }),
            Err(error) => Err(RaftNodeError::Write(error.to_string())),
        }
    }

    /// Confirms with a quorum that this server still leads, and returns the
    /// index a read must see to be linearizable (every write acknowledged
    /// before the call), once it is applied here. Only the leader answers.
    pub async fn read_index(&self) -> Result<u64, RaftNodeError> {
        match self.raft.ensure_linearizable().await {
            Ok(log_id) => Ok(log_id.map(|log_id| log_id.index).unwrap_or(0)),
            Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(forward))) => {
                Err(RaftNodeError::NotLeader {
                    leader: forward.leader_node.map(|node| node.addr),
                })
            }
            Err(error) => Err(RaftNodeError::Write(error.to_string())),
        }
    }

    /// Waits until the state here has applied `index`, up to `timeout`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        let mut applied = self.subscribe();
        tokio::time::timeout(timeout, applied.wait_for(|applied| *applied >= index))
            .await
            .is_ok_and(|seen| seen.is_ok())
    }

    /// A cheap, consistent copy of the applied state.
    pub fn snapshot(&self) -> StateSnapshot {
        self.shared.snapshot()
    }

    /// Watches the last applied index.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.subscribe()
    }

    /// The events this server's applies produced.
    pub fn events(&self) -> &EventBroker {
        self.shared.events()
    }

    /// Cumulative state-machine apply times.
    pub fn apply_stats(&self) -> &ApplyStats {
        self.shared.apply_stats()
    }

    /// Waits until some leader is known, up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<u64, RaftNodeError> {
        let mut metrics = self.raft.metrics();
        let wait = async {
            loop {
                if let Some(leader) = metrics.borrow().current_leader {
                    return Ok(leader);
                }
                if metrics.changed().await.is_err() {
                    return Err(RaftNodeError::Start("raft stopped".to_string()));
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| RaftNodeError::NoLeader(timeout))?
    }

    /// Whether this server is the leader now.
    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics.current_leader == Some(self.node_id) && metrics.state == ServerState::Leader
    }

    /// Watches leadership: `true` while this server leads.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        let mut metrics = self.raft.metrics();
        let node_id = self.node_id;
        let leads = move |metrics: &openraft::RaftMetrics<u64, BasicNode>| {
            metrics.current_leader == Some(node_id) && metrics.state == ServerState::Leader
        };
        let (tx, rx) = watch::channel(leads(&metrics.borrow()));
        tokio::spawn(async move {
            while metrics.changed().await.is_ok() {
                let leading = leads(&metrics.borrow());
                tx.send_if_modified(|current| {
                    let changed = *current != leading;
                    *current = leading;
                    changed
                });
                if tx.is_closed() {
                    break;
                }
            }
        });
        rx
    }

    /// The leader's Raft ID, if one is known.
    pub fn leader_id(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// The leader's RPC address, if one is known.
    pub fn leader_addr(&self) -> Option<String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let leader = metrics.current_leader?;
        metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|node| node.addr.clone())
    }

    /// The voters' RPC addresses.
    pub fn peers(&self) -> Vec<String> {
        self.members()
            .into_iter()
            .filter(|peer| peer.voter)
            .map(|peer| peer.addr)
            .collect()
    }

    /// Every member of the current configuration, voters and learners.
    pub fn members(&self) -> Vec<RaftPeer> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, node)| RaftPeer {
                id: *id,
                addr: node.addr.clone(),
                voter: voters.contains(id),
                leader: metrics.current_leader == Some(*id),
            })
            .collect()
    }

    /// How long since this server last heard from a quorum (leader) or
    /// from the leader (follower); `None` when it never has.
    pub fn last_contact(&self) -> Option<Duration> {
        if self.is_leader() {
            return self
                .raft
                .metrics()
                .borrow()
                .millis_since_quorum_ack
                .map(Duration::from_millis);
        }
        let contact = match self.last_contact.lock() {
            Ok(guard) => *guard,
            Err(poisoned) => *poisoned.into_inner(),
        };
        contact.map(|at| at.elapsed())
    }

    /// Term, role and indexes.
    pub fn stats(&self) -> RaftStats {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        RaftStats {
            term: metrics.current_term,
            state: format!("{:?}", metrics.state),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            applied_index: metrics.last_applied.map(|log_id| log_id.index).unwrap_or(0),
            snapshot_index: metrics.snapshot.map(|log_id| log_id.index).unwrap_or(0),
        }
    }

    fn membership_error(&self, error: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> RaftNodeError {
        match error {
            RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => RaftNodeError::NotLeader {
                leader: forward.leader_node.map(|node| node.addr),
            },
            RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(_))) => {
                RaftNodeError::Membership("another membership change is in progress".to_string())
            }
            other => RaftNodeError::Membership(other.to_string()),
        }
    }

    /// Adds a server as a voter: first as a learner until it has caught
    /// up, then into the voting configuration. Leader only. Adding a
    /// member again with the same address changes nothing.
    pub async fn add_voter(&self, id: u64, addr: &str) -> Result<(), RaftNodeError> {
        let known = self.members().into_iter().find(|peer| peer.id == id);
        if known.as_ref().is_some_and(|peer| peer.voter && peer.addr == addr) {
            return Ok(());
        }
        if known.as_ref().is_none_or(|peer| peer.addr != addr) {
            self.raft
                .add_learner(id, BasicNode::new(addr), true)
                .await
                .map_err(|error| self.membership_error(error))?;
        }
        let changes = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        self.raft
            .change_membership(changes, false)
            .await
            .map_err(|error| self.membership_error(error))?;
        Ok(())
    }

    /// Records a member's new RPC address (it restarted elsewhere), so the
    /// leader replicates to it and clients are told the right address.
    /// Leader only.
    pub async fn update_address(&self, id: u64, addr: &str) -> Result<(), RaftNodeError> {
        let changes = ChangeMembers::SetNodes(BTreeMap::from([(id, BasicNode::new(addr))]));
        self.raft
            .change_membership(changes, true)
            .await
            .map_err(|error| self.membership_error(error))?;
        Ok(())
    }

    /// Removes a server from the configuration (voter or learner). Leader
    /// only. Removing the leader itself is refused: transfer leadership
    /// first.
    pub async fn remove_server(&self, id: u64) -> Result<(), RaftNodeError> {
        if id == self.node_id {
            return Err(RaftNodeError::Membership(
                "the leader cannot remove itself; transfer leadership first".to_string(),
            ));
        }
        let Some(peer) = self.members().into_iter().find(|peer| peer.id == id) else {
            return Err(RaftNodeError::Membership(format!("server {id} is not a member")));
        };
        if peer.voter {
            let changes = ChangeMembers::RemoveVoters(BTreeSet::from([id]));
            self.raft
                .change_membership(changes, false)
                .await
                .map_err(|error| self.membership_error(error))?;
        }
        let changes = ChangeMembers::RemoveNodes(BTreeSet::from([id]));
        self.raft
            .change_membership(changes, false)
            .await
            .map_err(|error| self.membership_error(error))?;
        Ok(())
    }

    /// Hands leadership to `target` (or the most up-to-date other voter):
    /// waits until it has every entry, asks it to start an election, and
    /// waits until it leads. Leader only.
    pub async fn transfer_leadership(&self, target: Option<u64>, rpc: &RpcClient) -> Result<u64, RaftNodeError> {
        if !self.is_leader() {
            return Err(RaftNodeError::NotLeader {
                leader: self.leader_addr(),
            });
        }
        let members = self.members();
        let mut metrics = self.raft.metrics();
        let pick = {
            let current = metrics.borrow();
            let matched = |id: u64| {
                current
                    .replication
                    .as_ref()
                    .and_then(|replication| replication.get(&id).copied().flatten())
                    .map(|log_id| log_id.index)
                    .unwrap_or(0)
            };
            match target {
                Some(id) => members
                    .iter()
                    .find(|peer| peer.id == id && peer.voter && id != self.node_id),
                None => members
                    .iter()
                    .filter(|peer| peer.voter && peer.id != self.node_id)
                    .max_by_key(|peer| matched(peer.id)),
            }
            .cloned()
        };
        let Some(target) = pick else {
            return Err(RaftNodeError::Membership(
                "no other voter to transfer leadership to".to_string(),
            ));
        };
        let caught_up = async {
            loop {
                let done = {
                    let current = metrics.borrow();
                    let last = current.last_log_index.unwrap_or(0);
                    current
                        .replication
                        .as_ref()
                        .and_then(|replication| replication.get(&target.id).copied().flatten())
                        .is_some_and(|log_id| log_id.index >= last)
                };
                if done || metrics.changed().await.is_err() {
                    return;
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), caught_up).await.is_err() {
            return Err(RaftNodeError::Membership(format!(
                "server {} did not catch up within 5s",
                target.id
            )));
        }
        // The target's first campaign is refused while the others' leader
        // lease runs; its higher term then makes this server step down,
        // and the target wins a later round. Meanwhile this server must not
        // campaign itself (it could win its leadership back), so its
        // elections are off until the transfer ends either way.
        self.raft.runtime_config().elect(false);
        let outcome = self.hand_over(&target, rpc, &mut metrics).await;
        self.raft.runtime_config().elect(true);
        outcome.map(|()| target.id)
    }

    /// Asks `target` to campaign, again every second while this server
    /// still leads, until it leads (within 5 s).
    async fn hand_over(
        &self,
        target: &RaftPeer,
        rpc: &RpcClient,
        metrics: &mut tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, BasicNode>>,
    ) -> Result<(), RaftNodeError> {
        let request = rpc::Request::Raft(RaftRequest {
            kind: "elect".to_string(),
            payload: rpc::encode(&self.node_id).map_err(|error| RaftNodeError::Membership(error.to_string()))?,
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut first = true;
        loop {
            if self.is_leader() {
                let asked = rpc.call_to(&target.addr, request.clone(), Duration::from_secs(5)).await;
                match asked {
                    Err(error) if first => {
                        return Err(RaftNodeError::Membership(format!(
                            "ask {} to campaign: {error}",
                            target.addr
                        )));
                    }
                    // A target still campaigning knows no leader and
                    // refuses the request; its campaign goes on anyway.
                    Err(error) => tracing::debug!(target = %target.addr, %error, "asking again to campaign"),
                    Ok(_) => {}
                }
                first = false;
            }
            let round = (tokio::time::Instant::now() + Duration::from_secs(1)).min(deadline);
            let led = async {
                loop {
                    if metrics.borrow().current_leader == Some(target.id) {
                        return true;
                    }
                    if metrics.changed().await.is_err() {
                        return false;
                    }
                }
            };
            match tokio::time::timeout_at(round, led).await {
                Ok(true) => return Ok(()),
                Ok(false) => return Err(RaftNodeError::Membership("raft stopped".to_string())),
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(RaftNodeError::Membership(format!(
                        "server {} did not take over within 5s",
                        target.id
                    )));
                }
                Err(_) => {}
            }
        }
    }

    /// Answers a Raft message from `peer`. Once this server belongs to a
    /// cluster, messages from a server the membership does not name, or
    /// claiming to come from this very server, are refused; with TLS on,
    /// only peers holding a server certificate are heard at all.
    pub async fn handle_rpc(&self, request: RaftRequest, peer: &PeerInfo) -> Result<RaftResponse, RpcError> {
        if matches!(peer.identity, PeerIdentity::Client { .. }) {
            return Err(RpcError::PermissionDenied(
                "raft messages are served to servers only".to_string(),
            ));
        }
        if request.kind == "elect" {
            let from: u64 = rpc::decode(&request.payload).map_err(|error| RpcError::BadRequest(error.to_string()))?;
            if Some(from) != self.leader_id() {
                return Err(RpcError::PermissionDenied(format!(
                    "server {from} is not the leader and cannot hand over leadership"
                )));
            }
            self.raft
                .trigger()
                .elect()
                .await
                .map_err(|error| RpcError::Internal(error.to_string()))?;
            return Ok(RaftResponse { payload: Vec::new() });
        }
        let incoming = network::Incoming::decode(&request).map_err(RpcError::BadRequest)?;
        let sender = incoming.sender();
        if sender == Some(self.node_id) {
            return Err(RpcError::PermissionDenied(format!(
                "raft message claims to come from this server ({})",
                self.node_id
            )));
        }
        let members = self.members();
        if !members.is_empty() && !sender.is_some_and(|sender| members.iter().any(|peer| peer.id == sender)) {
            return Err(RpcError::PermissionDenied(format!(
                "raft message from {sender:?}, which is not a member of this cluster"
            )));
        }
        if matches!(incoming, network::Incoming::Append(_)) {
            let now = tokio::time::Instant::now();
            match self.last_contact.lock() {
                Ok(mut guard) => *guard = Some(now),
                Err(poisoned) => *poisoned.into_inner() = Some(now),
            }
        }
        incoming
            .deliver(&self.raft)
            .await
            .map(|payload| RaftResponse { payload })
            .map_err(RpcError::BadRequest)
    }

    /// Forces a snapshot now (used by tests and operators).
    pub async fn trigger_snapshot(&self) -> Result<(), RaftNodeError> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|error| RaftNodeError::Write(error.to_string()))
    }

    /// Stops the Raft tasks.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(%error, "raft shutdown");
        }
    }
}

/// Takes a snapshot whenever the log grew by `threshold` bytes since the
/// last one (openraft itself counts entries only).
async fn snapshot_by_size(
    raft: Raft<TypeConfig>,
    appended_bytes: Arc<AtomicU64>,
    threshold: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        if appended_bytes.load(Ordering::Relaxed) >= threshold.max(1) {
            // Counted again from zero once the snapshot is built.
            appended_bytes.store(0, Ordering::Relaxed);
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
        }
    }
}
