//! Raft messages between servers, carried over the `rpc` crate's transport
//! as `Request::Raft` frames holding openraft's own (serde) messages.

use crate::TypeConfig;
use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use rpc::{RaftRequest, Request, Response, RpcClient};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type NodeId = u64;

/// Makes (and caches) one RPC client per peer address.
#[derive(Clone, Default)]
pub struct Network {
    clients: Arc<Mutex<HashMap<String, Arc<RpcClient>>>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        let client = {
            let mut clients = match self.clients.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            Arc::clone(
                clients
                    .entry(node.addr.clone())
                    .or_insert_with(|| Arc::new(RpcClient::new(node.addr.clone()))),
            )
        };
        PeerConnection { target, client }
    }
}

/// A connection to one peer.
pub struct PeerConnection {
    target: NodeId,
    client: Arc<RpcClient>,
}

impl PeerConnection {
    async fn send<Req, Resp, Err>(&self, kind: &str, request: &Req) -> Result<Resp, RPCError<NodeId, BasicNode, Err>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        Err: std::error::Error + DeserializeOwned,
    {
        let payload = serde_json::to_value(request).map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        let answer = self
            .client
            .call(Request::Raft(RaftRequest {
                kind: kind.to_string(),
                payload,
            }))
            .await
            .map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        let Response::Raft(answer) = answer else {
            let error = std::io::Error::other("peer answered a raft call with another kind");
            return Err(RPCError::Network(NetworkError::new(&error)));
        };
        let decoded: Result<Resp, Err> =
            serde_json::from_value(answer.payload).map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        decoded.map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.send("append", &request).await
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.send("snapshot", &request).await
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.send("vote", &request).await
    }
}

/// Turns an incoming `Request::Raft` into a call on the local Raft node and
/// encodes the `Result` so the peer can tell remote errors from transport ones.
pub(crate) async fn handle(
    raft: &openraft::Raft<TypeConfig>,
    request: RaftRequest,
) -> Result<serde_json::Value, String> {
    fn encode<T: Serialize>(value: &T) -> Result<serde_json::Value, String> {
        serde_json::to_value(value).map_err(|error| format!("encode raft answer: {error}"))
    }
    match request.kind.as_str() {
        "append" => {
            let decoded: AppendEntriesRequest<TypeConfig> =
                serde_json::from_value(request.payload).map_err(|error| format!("decode append: {error}"))?;
            encode(&raft.append_entries(decoded).await)
        }
        "vote" => {
            let decoded: VoteRequest<NodeId> =
                serde_json::from_value(request.payload).map_err(|error| format!("decode vote: {error}"))?;
            encode(&raft.vote(decoded).await)
        }
        "snapshot" => {
            let decoded: InstallSnapshotRequest<TypeConfig> =
                serde_json::from_value(request.payload).map_err(|error| format!("decode snapshot: {error}"))?;
            encode(&raft.install_snapshot(decoded).await)
        }
        other => Err(format!("unknown raft message kind {other:?}")),
    }
}
