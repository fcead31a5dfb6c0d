//! The wire between client agents and servers, and between servers.
//!
//! Messages are serde structs in MessagePack ([`codec`]), framed with a
//! 4-byte length prefix over TCP. One connection carries many requests at
//! once: each frame holds a request ID, so a long blocking query (a client
//! waiting for its allocations) never holds up a heartbeat. Every call has
//! a deadline; the serving side bounds connections, work in flight per
//! connection, frame sizes and idle time, and tells its handler who is
//! calling ([`PeerInfo`]). This crate alone defines the wire format; the
//! server implements [`Handler`] and callers use [`RpcClient`].

mod backoff;
mod client;
pub mod codec;
mod server;
pub mod tls;

pub use backoff::Backoff;
pub use client::{ClientOptions, RpcClient};
pub use codec::{CodecError, decode, encode};
pub use server::{Handler, PeerIdentity, PeerInfo, ServeConfig, serve, serve_with};
pub use tls::{RpcTls, TlsError};

use serde::{Deserialize, Serialize};
use std::time::Duration;
use types::{AllocClientUpdate, Allocation, Index, Job, Node, NodeStatus, ServiceRegistration};

/// Largest frame either side accepts (64 MiB): big enough for a node with
/// thousands of allocations or a Raft snapshot chunk, small enough that a
/// garbage length cannot make us allocate without bound.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// How long a call waits for its answer unless it says otherwise.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// Extra time a blocking query gets beyond its own wait.
pub const BLOCKING_GRACE: Duration = Duration::from_secs(15);

/// A request from a client agent or a peer server.
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
    /// A Raft message between servers (openraft's own types, encoded).
    Raft(RaftRequest),
    /// A call between servers whose payload types belong to the servers
    /// (forwarded writes, the remote eval broker, membership).
    Server(ServerMessage),
    /// A node's service registrations (new, changed, removed).
    ServiceUpdate(ServiceUpdateRequest),
    /// A blocking query for every service registration (templates and a
    /// client agent's DNS).
    ServiceWatch(ServiceWatchRequest),
}

impl Request {
    /// Every request kind ([`Request::kind`]); the server's RPC table
    /// (`acl::table::RPC_CALLS`) must name each.
    pub const KINDS: &'static [&'static str] = &[
        "node-register",
        "node-heartbeat",
        "node-get-allocs",
        "alloc-update",
        "raft",
        "server",
        "service-update",
        "service-watch",
    ];

    /// Whether only a server may send this request.
    pub fn is_server_only(&self) -> bool {
        matches!(self, Request::Raft(_) | Request::Server(_))
    }

    /// How long a caller waits for the answer by default: blocking queries
    /// get their own wait plus [`BLOCKING_GRACE`].
    pub fn default_deadline(&self) -> Duration {
        match self {
            Request::NodeGetAllocs(query) => Duration::from_millis(query.max_wait_ms) + BLOCKING_GRACE,
            Request::ServiceWatch(query) => Duration::from_millis(query.max_wait_ms) + BLOCKING_GRACE,
            _ => DEFAULT_DEADLINE,
        }
    }

    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::NodeRegister(_) => "node-register",
            Request::NodeHeartbeat(_) => "node-heartbeat",
            Request::NodeGetAllocs(_) => "node-get-allocs",
            Request::AllocUpdate(_) => "alloc-update",
            Request::Raft(_) => "raft",
            Request::Server(_) => "server",
            Request::ServiceUpdate(_) => "service-update",
            Request::ServiceWatch(_) => "service-watch",
        }
    }
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    NodeRegister(NodeRegisterResponse),
    NodeHeartbeat(NodeHeartbeatResponse),
    NodeGetAllocs(NodeGetAllocsResponse),
    AllocUpdate(AllocUpdateResponse),
    Raft(RaftResponse),
    Server(ServerMessage),
    ServiceUpdate(ServiceUpdateResponse),
    ServiceWatch(ServiceWatchResponse),
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
    /// The RPC addresses of the servers, so the client can fail over.
    #[serde(default)]
    pub servers: Vec<String>,
    /// The servers' HTTP addresses, for a client agent's API to pass
    /// requests on to.
    #[serde(default)]
    pub server_http_addrs: Vec<String>,
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
    /// The RPC addresses of the servers, so the client can fail over.
    #[serde(default)]
    pub servers: Vec<String>,
    /// The servers' HTTP addresses.
    #[serde(default)]
    pub server_http_addrs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeGetAllocsRequest {
    pub node_id: String,
    pub secret_id: String,
    /// Answer once the node's allocations change past this index.
    pub min_index: Index,
    /// Answer after this long even when nothing changed.
    pub max_wait_ms: u64,
    /// The caller understands [`AllocDelta`] answers.
    #[serde(default)]
    pub delta: bool,
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
    /// Every allocation of the node with its job (callers that did not ask
    /// for a delta).
    pub allocs: Vec<AllocWithJob>,
    /// What changed since `min_index` (callers that asked for a delta).
    #[serde(default)]
    pub delta: Option<AllocDelta>,
}

/// A node's allocations as a change since the caller's index: the IDs of
/// every allocation the servers still list for the node (anything else the
/// caller holds was collected), the allocations modified after the index,
/// and each job version those need, once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AllocDelta {
    pub alloc_ids: Vec<String>,
    pub changed: Vec<Allocation>,
    pub jobs: Vec<Job>,
}

impl AllocDelta {
    /// Applies the delta to the caller's view of the node's allocations
    /// (by ID): collected allocations leave it, changed ones replace or
    /// join it with their job.
    pub fn apply_to(self, view: &mut std::collections::HashMap<String, AllocWithJob>) {
        let listed: std::collections::HashSet<&String> = self.alloc_ids.iter().collect();
        view.retain(|id, _| listed.contains(id));
        for alloc in self.changed {
            let job = self
                .jobs
                .iter()
                .find(|job| {
                    job.namespace == alloc.namespace && job.id == alloc.job_id && job.version == alloc.job_version
                })
                .or_else(|| {
                    self.jobs
                        .iter()
                        .find(|job| job.namespace == alloc.namespace && job.id == alloc.job_id)
                })
                .cloned()
                .or_else(|| view.get(&alloc.id).map(|known| known.job.clone()));
            if let Some(job) = job {
                view.insert(alloc.id.clone(), AllocWithJob { alloc, job });
            }
        }
    }
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

/// A node's service registrations to store and IDs to remove.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceUpdateRequest {
    pub node_id: String,
    pub secret_id: String,
    pub upserts: Vec<ServiceRegistration>,
    pub deletes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceUpdateResponse {
    pub index: Index,
}

/// Waits until the registrations change past `min_index` (or `max_wait_ms`
/// passes), then answers every registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceWatchRequest {
    pub node_id: String,
    pub secret_id: String,
    pub min_index: Index,
    pub max_wait_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceWatchResponse {
    pub index: Index,
    pub registrations: Vec<ServiceRegistration>,
}

/// One Raft message: which kind, and openraft's request encoded with
/// [`codec::encode`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaftRequest {
    /// "append", "vote" or "snapshot".
    pub kind: String,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// openraft's answer, encoded with [`codec::encode`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaftResponse {
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// An opaque call or answer between servers, encoded by the server crate
/// with [`codec::encode`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerMessage {
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// Why an RPC failed. `NotLeader`, `Transport` and `Timeout` are worth
/// retrying (perhaps elsewhere); the rest are final.
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
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl RpcError {
    /// Whether calling again (perhaps elsewhere) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            RpcError::NotLeader { .. } | RpcError::Transport(_) | RpcError::Timeout(_)
        )
    }
}

/// One frame on the wire, in either direction.
#[derive(Debug, Serialize, Deserialize)]
struct Frame<T> {
    id: u64,
    body: T,
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_kind_is_listed() {
        use super::*;
        let secret = String::new;
        let requests = [
            Request::NodeRegister(NodeRegisterRequest {
                node: types::Node::default(),
            }),
            Request::NodeHeartbeat(NodeHeartbeatRequest {
                node_id: String::new(),
                secret_id: secret(),
                status: types::NodeStatus::Ready,
            }),
            Request::NodeGetAllocs(NodeGetAllocsRequest {
                node_id: String::new(),
                secret_id: secret(),
                min_index: 0,
                max_wait_ms: 0,
                delta: true,
            }),
            Request::AllocUpdate(AllocUpdateRequest {
                node_id: String::new(),
                secret_id: secret(),
                updates: Vec::new(),
            }),
            Request::Raft(RaftRequest {
                kind: "vote".to_string(),
                payload: Vec::new(),
            }),
            Request::Server(ServerMessage { payload: Vec::new() }),
            Request::ServiceUpdate(ServiceUpdateRequest {
                node_id: String::new(),
                secret_id: secret(),
                upserts: Vec::new(),
                deletes: Vec::new(),
            }),
            Request::ServiceWatch(ServiceWatchRequest {
                node_id: String::new(),
                secret_id: secret(),
                min_index: 0,
                max_wait_ms: 0,
            }),
        ];
        let kinds: Vec<&str> = requests.iter().map(Request::kind).collect();
        assert_eq!(kinds, Request::KINDS);
    }

    use super::*;
    use std::collections::HashMap;

    fn alloc(id: &str, job_version: u64) -> Allocation {
        Allocation {
            id: id.into(),
            namespace: "default".into(),
            job_id: "web".into(),
            job_version,
            ..Allocation::default()
        }
    }

    fn job(version: u64) -> Job {
        Job {
            id: "web".into(),
            namespace: "default".into(),
            version,
            ..Job::default()
        }
    }

    #[test]
    fn a_delta_drops_collected_allocations_and_updates_changed_ones() {
        let mut view: HashMap<String, AllocWithJob> = HashMap::new();
        AllocDelta {
            alloc_ids: vec!["a".into(), "b".into()],
            changed: vec![alloc("a", 0), alloc("b", 0)],
            jobs: vec![job(0)],
        }
        .apply_to(&mut view);
        assert_eq!(view.len(), 2);
        // "a" was collected, "b" moved to version 1, "c" is new; the job is
        // sent once for both.
        AllocDelta {
            alloc_ids: vec!["b".into(), "c".into()],
            changed: vec![alloc("b", 1), alloc("c", 1)],
            jobs: vec![job(1)],
        }
        .apply_to(&mut view);
        let mut ids: Vec<&String> = view.keys().collect();
        ids.sort();
        assert_eq!(ids, vec!["b", "c"]);
        assert_eq!(view["b"].job.version, 1);
        assert_eq!(view["c"].alloc.job_version, 1);
        // Unchanged allocations stay as they were.
        AllocDelta {
            alloc_ids: vec!["b".into(), "c".into()],
            changed: Vec::new(),
            jobs: Vec::new(),
        }
        .apply_to(&mut view);
        assert_eq!(view.len(), 2);
    }
}
