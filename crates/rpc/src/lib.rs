//! The wire between client agents and servers (and, later, between servers).
//!
//! Messages are serde structs framed with a 4-byte length prefix over TCP.
//! One connection carries many requests at once: each frame holds a request
//! ID, so a long blocking query (a client waiting for its allocations) never
//! holds up a heartbeat. This crate alone defines the wire format; the server
//! implements [`Handler`] and the client calls through [`RpcClient`].

mod client;
mod server;

pub use client::RpcClient;
pub use server::{Handler, serve};

use serde::{Deserialize, Serialize};
use types::{AllocClientUpdate, Allocation, Index, Job, Node, NodeStatus};

/// Largest frame either side accepts (64 MiB): big enough for a node with
/// thousands of allocations, small enough that a garbage length cannot make
/// us allocate without bound.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// A request from a client agent (or a peer server).
// Messages are built once and moved into the encoder; boxing would only add
// an allocation per call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Add or refresh a node (its fingerprint).
    NodeRegister(NodeRegisterRequest),
    /// Keep a node alive and report its status.
    NodeHeartbeat(NodeHeartbeatRequest),
    /// A blocking query for a node's allocations.
    NodeGetAllocs(NodeGetAllocsRequest),
    /// Client-side status of allocations and their tasks.
    AllocUpdate(AllocUpdateRequest),
    /// An opaque Raft message between servers (JSON of openraft's types).
    Raft(RaftRequest),
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    NodeRegister(NodeRegisterResponse),
    NodeHeartbeat(NodeHeartbeatResponse),
    NodeGetAllocs(NodeGetAllocsResponse),
    AllocUpdate(AllocUpdateResponse),
    Raft(RaftResponse),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRegisterRequest {
    pub node: Node,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRegisterResponse {
    pub index: Index,
    /// How long the server waits for the next heartbeat before marking the
    /// node down.
    pub heartbeat_ttl_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeHeartbeatRequest {
    pub node_id: String,
    pub secret_id: String,
    pub status: NodeStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeHeartbeatResponse {
    pub index: Index,
    pub heartbeat_ttl_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeGetAllocsRequest {
    pub node_id: String,
    pub secret_id: String,
    /// Answer once the node's allocations change past this index.
    pub min_index: Index,
    /// Answer after this long even when nothing changed.
    pub max_wait_ms: u64,
}

/// An allocation together with the job version it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocWithJob {
    pub alloc: Allocation,
    pub job: Job,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeGetAllocsResponse {
    /// The index to pass as `min_index` next time.
    pub index: Index,
    pub allocs: Vec<AllocWithJob>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocUpdateRequest {
    pub node_id: String,
    pub secret_id: String,
    pub updates: Vec<AllocClientUpdate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocUpdateResponse {
    pub index: Index,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaftRequest {
    /// "append", "vote" or "snapshot".
    pub kind: String,
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaftResponse {
    pub payload: serde_json::Value,
}

/// Why an RPC failed. `NotLeader` and `Transport` are worth retrying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RpcError {
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<String> },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("transport error: {0}")]
    Transport(String),
}

impl RpcError {
    /// Whether calling again (perhaps elsewhere) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RpcError::NotLeader { .. } | RpcError::Transport(_))
    }
}

/// One frame on the wire, in either direction.
#[derive(Debug, Serialize, Deserialize)]
struct Frame<T> {
    id: u64,
    body: T,
}
