//! Raft messages between servers, carried over the `rpc` crate's transport
//! as `Request::Raft` frames holding openraft's own messages in the wire
//! encoding. Every call carries openraft's deadline.
//!
//! The receiving side refuses messages from servers that are not members
//! of the cluster it belongs to (once it belongs to one): a vote from a
//! stranger, or entries from a leader the membership does not name, are
//! answered with an error and never reach openraft.

use crate::TypeConfig;
use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use rpc::{RaftRequest, Request, Response, RpcClient, RpcError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

type NodeId = u64;

/// Dials peers through one shared RPC client (one connection per peer).
#[derive(Clone)]
pub struct Network {
    client: Arc<RpcClient>,
}

impl Network {
    pub(crate) fn new(client: Arc<RpcClient>) -> Network {
        Network { client }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        PeerConnection {
            target,
            addr: node.addr.clone(),
            client: Arc::clone(&self.client),
        }
    }
}

/// A connection to one peer.
pub struct PeerConnection {
    target: NodeId,
    addr: String,
    client: Arc<RpcClient>,
}

impl PeerConnection {
    async fn send<Req, Resp, Err>(
        &self,
        kind: &str,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, Err>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        Err: std::error::Error + DeserializeOwned,
    {
        let payload = rpc::encode(request).map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        let request = Request::Raft(RaftRequest {
            kind: kind.to_string(),
            payload,
        });
        let answer = match self.client.call_to(&self.addr, request, option.hard_ttl()).await {
            Ok(answer) => answer,
            Err(error @ (RpcError::Transport(_) | RpcError::Timeout(_))) => {
                return Err(RPCError::Unreachable(Unreachable::new(&error)));
            }
            Err(error) => return Err(RPCError::Network(NetworkError::new(&error))),
        };
        let Response::Raft(answer) = answer else {
            let error = std::io::Error::other("peer answered a raft call with another kind");
            return Err(RPCError::Network(NetworkError::new(&error)));
        };
        let decoded: Result<Resp, Err> =
            rpc::decode(&answer.payload).map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        decoded.map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.send("append", &request, &option).await
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.send("snapshot", &request, &option).await
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.send("vote", &request, &option).await
    }
}

/// A decoded incoming Raft message.
pub(crate) enum Incoming {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
}

impl Incoming {
    /// Decodes a message; errors name the kind.
    pub(crate) fn decode(request: &RaftRequest) -> Result<Incoming, String> {
        match request.kind.as_str() {
            "append" => rpc::decode(&request.payload)
                .map(Incoming::Append)
                .map_err(|error| format!("decode append: {error}")),
            "vote" => rpc::decode(&request.payload)
                .map(Incoming::Vote)
                .map_err(|error| format!("decode vote: {error}")),
            "snapshot" => rpc::decode(&request.payload)
                .map(Incoming::Snapshot)
                .map_err(|error| format!("decode snapshot: {error}")),
            other => Err(format!("unknown raft message kind {other:?}")),
        }
    }

    /// The server the message claims to come from: the candidate of a
    /// vote, the leader of entries and snapshots.
    pub(crate) fn sender(&self) -> Option<NodeId> {
        let vote = match self {
            Incoming::Append(request) => &request.vote,
            Incoming::Vote(request) => &request.vote,
            Incoming::Snapshot(request) => &request.vote,
        };
        vote.leader_id().voted_for()
    }

    /// Hands the message to openraft and encodes its `Result`, so the peer
    /// can tell remote errors from transport ones.
    pub(crate) async fn deliver(self, raft: &openraft::Raft<TypeConfig>) -> Result<Vec<u8>, String> {
        fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
            rpc::encode(value).map_err(|error| format!("encode raft answer: {error}"))
        }
        match self {
            Incoming::Append(request) => encode(&raft.append_entries(request).await),
            Incoming::Vote(request) => encode(&raft.vote(request).await),
            Incoming::Snapshot(request) => encode(&raft.install_snapshot(request).await),
        }
    }
}
