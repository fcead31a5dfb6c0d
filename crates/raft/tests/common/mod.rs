//! A Raft server on a real loopback RPC listener, for the raft crate's
//! tests: the listener hands `Request::Raft` frames to the node.
// Each test binary uses only some of these helpers.
#![allow(dead_code)]

use raft::{RaftNode, RaftNodeConfig};
use rpc::{Handler, PeerInfo, Request, Response, RpcClient, RpcError};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use types::{Job, Task, TaskGroup};

/// Serves Raft messages for one node.
pub struct RaftHandler(pub tokio::sync::OnceCell<RaftNode>);

impl Handler for RaftHandler {
    async fn handle(&self, request: Request, peer: &PeerInfo) -> Result<Response, RpcError> {
        let Some(node) = self.0.get() else {
            return Err(RpcError::Transport("starting".to_string()));
        };
        match request {
            Request::Raft(request) => node.handle_rpc(request, peer).await.map(Response::Raft),
            other => Err(RpcError::BadRequest(format!("unsupported {}", other.kind()))),
        }
    }
}

/// One server: its node, its address and its listener task.
pub struct Peer {
    pub node: RaftNode,
    pub addr: String,
    pub rpc: Arc<RpcClient>,
    listener: tokio::task::JoinHandle<()>,
}

impl Peer {
    /// Starts a node on `addr` ("127.0.0.1:0" for any port).
    pub async fn start(dir: &Path, addr: &str, snapshot_every: u64) -> Peer {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let handler = Arc::new(RaftHandler(tokio::sync::OnceCell::new()));
        let task = tokio::spawn(rpc::serve(listener, Arc::clone(&handler)));
        let rpc = Arc::new(RpcClient::new(addr.clone()));
        let mut config = RaftNodeConfig::new(addr.clone());
        config.snapshot_every = snapshot_every;
        config.heartbeat_interval = Duration::from_millis(50);
        let node = RaftNode::open(dir, config, Arc::clone(&rpc)).await.expect("open raft");
        let _ = handler.0.set(node.clone());
        Peer {
            node,
            addr,
            rpc,
            listener: task,
        }
    }

    /// Starts a single-voter cluster (bootstrapping it the first time).
    pub async fn start_single(dir: &Path, snapshot_every: u64) -> Peer {
        let peer = Peer::start(dir, "127.0.0.1:0", snapshot_every).await;
        if !peer.node.is_initialized().await {
            peer.node
                .initialize(BTreeMap::from([(peer.node.node_id(), peer.addr.clone())]))
                .await
                .expect("initialize");
        }
        peer.node
            .wait_for_leader(Duration::from_secs(10))
            .await
            .expect("leader");
        peer
    }

    /// Stops the node and its listener.
    pub async fn stop(self) {
        self.listener.abort();
        let _ = self.listener.await;
        self.node.shutdown().await;
    }
}

/// A minimal valid job.
pub fn job(id: &str) -> Job {
    let mut job = Job {
        id: id.to_string(),
        task_groups: vec![TaskGroup {
            name: "g".into(),
            tasks: vec![Task {
                name: "t".into(),
                driver: "raw_exec".into(),
                ..Task::default()
            }],
            ..TaskGroup::default()
        }],
        ..Job::default()
    };
    job.canonicalize();
    job
}
