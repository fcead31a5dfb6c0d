//! openraft glue: the Raft type configuration, the redb log store, the state
//! machine adapter over `state`, and the network over `rpc`.
//!
//! [`RaftNode`] is the one handle the server uses: write a command (only the
//! leader may), read a cheap state snapshot, wait for the applied index to
//! move, and answer Raft messages from peers.

// openraft's trait methods fix `StorageError` as the error type; our helpers
// return the same type so `?` flows straight into them.
#![allow(clippy::result_large_err)]

mod log_store;
mod network;
mod state_machine;

pub use state_machine::SharedState;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use redb::Database;
use rpc::{RaftRequest, RaftResponse, RpcError};
use state::{Command, CommandResult, StateSnapshot};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
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
}

/// Settings for one Raft server.
#[derive(Debug, Clone)]
pub struct RaftNodeConfig {
    pub node_id: u64,
    /// This server's RPC address, as peers dial it.
    pub rpc_addr: String,
    /// Initial voters when bootstrapping a new cluster (id → RPC address).
    /// A dev agent passes only itself.
    pub bootstrap: BTreeMap<u64, String>,
    /// Take a snapshot (and trim the log) after this many entries.
    pub snapshot_every: u64,
}

/// A running Raft server with its state machine.
#[derive(Clone)]
pub struct RaftNode {
    raft: Raft<TypeConfig>,
    shared: SharedState,
    node_id: u64,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode").field("node_id", &self.node_id).finish()
    }
}

impl RaftNode {
    /// Opens (or creates) the Raft database under `data_dir` and starts the
    /// node. A node with no log yet bootstraps the cluster from `bootstrap`.
    pub async fn open(data_dir: &Path, config: RaftNodeConfig) -> Result<RaftNode, RaftNodeError> {
        std::fs::create_dir_all(data_dir).map_err(|error| RaftNodeError::OpenDatabase {
            path: data_dir.display().to_string(),
            message: error.to_string(),
        })?;
        let path = data_dir.join("raft.redb");
        // A previous Raft node of this process on the same data dir (a
        // restart in tests or an embedding) releases redb's file lock from
        // its storage tasks shortly after shutdown, so wait briefly for it.
        let mut waited = Duration::ZERO;
        let db = loop {
            match Database::create(&path) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if waited < Duration::from_secs(5) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    waited += Duration::from_millis(20);
                }
                Err(error) => {
                    return Err(RaftNodeError::OpenDatabase {
                        path: path.display().to_string(),
                        message: error.to_string(),
                    });
                }
            }
        };
        // Create the tables up front so read transactions can always open them.
        let init = || -> Result<(), redb::Error> {
            let txn = db.begin_write()?;
            {
                txn.open_table(log_store::LOGS)?;
                txn.open_table(log_store::META)?;
            }
            txn.commit()?;
            Ok(())
        };
        init().map_err(|error| RaftNodeError::OpenDatabase {
            path: path.display().to_string(),
            message: error.to_string(),
        })?;
        let db = Arc::new(db);
        let raft_config = Config {
            cluster_name: "drover".to_string(),
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 600,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: 1000,
            ..Config::default()
        };
        let raft_config = Arc::new(
            raft_config
                .validate()
                .map_err(|error| RaftNodeError::Start(error.to_string()))?,
        );
        let log_store = log_store::LogStore::new(Arc::clone(&db));
        let state_machine = state_machine::StateMachine::open(Arc::clone(&db))
            .map_err(|error| RaftNodeError::Start(error.to_string()))?;
        let shared = state_machine.shared();
        let raft = Raft::new(
            config.node_id,
            raft_config,
            network::Network::default(),
            log_store,
            state_machine,
        )
        .await
        .map_err(|error| RaftNodeError::Start(error.to_string()))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|error| RaftNodeError::Start(error.to_string()))?;
        if !initialized && !config.bootstrap.is_empty() {
            let members: BTreeMap<u64, BasicNode> = config
                .bootstrap
                .iter()
                .map(|(id, addr)| (*id, BasicNode::new(addr.clone())))
                .collect();
            raft.initialize(members)
                .await
                .map_err(|error| RaftNodeError::Start(error.to_string()))?;
        }
        Ok(RaftNode {
            raft,
            shared,
            node_id: config.node_id,
        })
    }

    /// This server's Raft ID.
    pub fn node_id(&self) -> u64 {
        self.node_id
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

    /// A cheap, consistent copy of the applied state.
    pub fn snapshot(&self) -> StateSnapshot {
        self.shared.snapshot()
    }

    /// Watches the last applied index.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.subscribe()
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
        self.raft.metrics().borrow().current_leader == Some(self.node_id)
    }

    /// Watches leadership: `true` while this server leads.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        let mut metrics = self.raft.metrics();
        let node_id = self.node_id;
        let (tx, rx) = watch::channel(metrics.borrow().current_leader == Some(node_id));
        tokio::spawn(async move {
            while metrics.changed().await.is_ok() {
                let leading = metrics.borrow().current_leader == Some(node_id);
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
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(_, node)| node.addr.clone())
            .collect()
    }

    /// Answers a Raft message from a peer.
    pub async fn handle_rpc(&self, request: RaftRequest) -> Result<RaftResponse, RpcError> {
        network::handle(&self.raft, request)
            .await
            .map(|payload| RaftResponse { payload })
            .map_err(RpcError::BadRequest)
    }

    /// Forces a snapshot now (used by tests and on shutdown).
    pub async fn trigger_snapshot(&self) -> Result<(), RaftNodeError> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|error| RaftNodeError::Write(error.to_string()))
    }

    /// Stops the Raft tasks.
    pub async fn shutdown(&self) {
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(%error, "raft shutdown");
        }
    }
}
