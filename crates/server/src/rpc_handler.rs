//! The server side of the client RPCs: node registration, heartbeats, the
//! blocking allocation watch, and client allocation updates.

use crate::{Server, ServerError};
use rpc::{
    AllocUpdateRequest, AllocUpdateResponse, AllocWithJob, Handler, NodeGetAllocsRequest, NodeGetAllocsResponse,
    NodeHeartbeatRequest, NodeHeartbeatResponse, NodeRegisterRequest, NodeRegisterResponse, Request, Response,
    RpcError,
};
use std::time::Duration;
use types::{AllocClientStatus, NodeStatus, trigger};

/// Longest a blocking allocation query may wait.
const MAX_BLOCKING_WAIT: Duration = Duration::from_secs(300);

/// Serves `rpc` requests with a [`Server`].
#[derive(Clone, Debug)]
pub struct RpcService {
    server: Server,
}

impl RpcService {
    pub fn new(server: Server) -> RpcService {
        RpcService { server }
    }
}

impl From<ServerError> for RpcError {
    fn from(error: ServerError) -> RpcError {
        match error {
            ServerError::BadRequest(message) => RpcError::BadRequest(message),
            ServerError::InvalidJob(errors) => RpcError::BadRequest(errors.to_string()),
            ServerError::NotFound(what) => RpcError::NotFound(what),
            ServerError::NotLeader { leader } => RpcError::NotLeader { leader },
            ServerError::Internal(message) => RpcError::Internal(message),
        }
    }
}

impl Handler for RpcService {
    async fn handle(&self, request: Request) -> Result<Response, RpcError> {
        match request {
            Request::NodeRegister(request) => self.node_register(request).await.map(Response::NodeRegister),
            Request::NodeHeartbeat(request) => self.node_heartbeat(request).await.map(Response::NodeHeartbeat),
            Request::NodeGetAllocs(request) => self.node_get_allocs(request).await.map(Response::NodeGetAllocs),
            Request::AllocUpdate(request) => self.alloc_update(request).await.map(Response::AllocUpdate),
            Request::Raft(request) => self.server.raft().handle_rpc(request).await.map(Response::Raft),
        }
    }
}

impl RpcService {
    fn heartbeat_ttl_ms(&self) -> u64 {
        u64::try_from(self.server.config().heartbeat_ttl.as_millis()).unwrap_or(u64::MAX)
    }

    fn check_secret(&self, node_id: &str, secret_id: &str) -> Result<(), RpcError> {
        let Some(node) = self.server.state().node(node_id) else {
            return Err(RpcError::NotFound(format!("node {node_id}")));
        };
        if node.secret_id != secret_id {
            return Err(RpcError::PermissionDenied(format!("wrong secret for node {node_id}")));
        }
        Ok(())
    }

    async fn node_register(&self, request: NodeRegisterRequest) -> Result<NodeRegisterResponse, RpcError> {
        let mut node = request.node;
        if node.id.is_empty() {
            return Err(RpcError::BadRequest("node has no ID".to_string()));
        }
        let existing = self.server.state().node(&node.id);
        if let Some(existing) = &existing
            && !existing.secret_id.is_empty()
            && existing.secret_id != node.secret_id
        {
            return Err(RpcError::PermissionDenied(format!("wrong secret for node {}", node.id)));
        }
        // Only a new node, or one coming back to ready, needs evaluations.
        let transitions = existing.is_none_or(|existing| existing.status != NodeStatus::Ready);
        node.compute_class();
        let now = crate::now_nanos();
        let node_id = node.id.clone();
        let result = self.server.write(state::Command::NodeRegister { node, now }).await?;
        self.server.inner().heartbeats.reset(self.server.clone(), &node_id);
        if transitions {
            // A new or returning node may unblock work and needs its system jobs.
            let evals = self.server.node_evals(&node_id, trigger::NODE_UPDATE, now);
            if !evals.is_empty() {
                self.server.write(state::Command::EvalUpsert { evals }).await?;
            }
            self.server.unblock_evals().await;
        }
        Ok(NodeRegisterResponse {
            index: result.index,
            heartbeat_ttl_ms: self.heartbeat_ttl_ms(),
        })
    }

    async fn node_heartbeat(&self, request: NodeHeartbeatRequest) -> Result<NodeHeartbeatResponse, RpcError> {
        self.check_secret(&request.node_id, &request.secret_id)?;
        let state = self.server.state();
        let mut index = state.index();
        if let Some(node) = state.node(&request.node_id)
            && node.status != NodeStatus::Ready
            && request.status == NodeStatus::Ready
        {
            let now = crate::now_nanos();
            let evals = self.server.node_evals(&request.node_id, trigger::NODE_UPDATE, now);
            let result = self
                .server
                .write(state::Command::NodeUpdateStatus {
                    node_id: request.node_id.clone(),
                    status: NodeStatus::Ready,
                    now,
                    evals,
                })
                .await?;
            index = result.index;
            self.server.unblock_evals().await;
        }
        self.server
            .inner()
            .heartbeats
            .reset(self.server.clone(), &request.node_id);
        Ok(NodeHeartbeatResponse {
            index,
            heartbeat_ttl_ms: self.heartbeat_ttl_ms(),
        })
    }

    async fn node_get_allocs(&self, request: NodeGetAllocsRequest) -> Result<NodeGetAllocsResponse, RpcError> {
        self.check_secret(&request.node_id, &request.secret_id)?;
        let wait = Duration::from_millis(request.max_wait_ms).min(MAX_BLOCKING_WAIT);
        let deadline = tokio::time::Instant::now() + wait;
        let mut applied = self.server.subscribe();
        loop {
            let state = self.server.state();
            let node_index = state.node_alloc_index(&request.node_id);
            if node_index > request.min_index || tokio::time::Instant::now() >= deadline {
                let mut allocs = Vec::new();
                for alloc in state.allocs_by_node(&request.node_id) {
                    let job = state
                        .job_version(&alloc.namespace, &alloc.job_id, alloc.job_version)
                        .or_else(|| state.job(&alloc.namespace, &alloc.job_id));
                    if let Some(job) = job {
                        allocs.push(AllocWithJob {
                            alloc: (*alloc).clone(),
                            job: (*job).clone(),
                        });
                    }
                }
                return Ok(NodeGetAllocsResponse {
                    index: node_index.max(request.min_index),
                    allocs,
                });
            }
            if tokio::time::timeout_at(deadline, applied.changed())
                .await
                .is_ok_and(|changed| changed.is_err())
            {
                return Err(RpcError::Internal("state watch closed".to_string()));
            }
        }
    }

    async fn alloc_update(&self, request: AllocUpdateRequest) -> Result<AllocUpdateResponse, RpcError> {
        self.check_secret(&request.node_id, &request.secret_id)?;
        let state = self.server.state();
        for update in &request.updates {
            match state.alloc(&update.alloc_id) {
                Some(alloc) if alloc.node_id == request.node_id => {}
                Some(_) => {
                    return Err(RpcError::PermissionDenied(format!(
                        "allocation {} is not on node {}",
                        update.alloc_id, request.node_id
                    )));
                }
                None => {}
            }
        }
        let now = crate::now_nanos();
        let failed: Vec<String> = request
            .updates
            .iter()
            .filter(|update| update.client_status == AllocClientStatus::Failed)
            .map(|update| update.alloc_id.clone())
            .collect();
        let frees_capacity = request.updates.iter().any(|update| {
            update.client_status.is_terminal()
                && state
                    .alloc(&update.alloc_id)
                    .is_some_and(|alloc| !alloc.client_status.is_terminal())
        });
        let evals = self.server.failure_evals(&failed, now);
        let result = self
            .server
            .write(state::Command::AllocClientUpdate {
                updates: request.updates,
                evals,
                now,
            })
            .await?;
        if frees_capacity {
            self.server.unblock_evals().await;
        }
        Ok(AllocUpdateResponse { index: result.index })
    }
}
