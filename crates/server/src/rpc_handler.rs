//! The server side of the RPCs: node registration, heartbeats, the
//! blocking allocation watch and client allocation updates from client
//! agents; Raft messages and [`PeerCall`]s from other servers.
//!
//! A client may talk to any server. Requests that write (registration,
//! heartbeats, allocation updates) are forwarded to the leader as they
//! are; the blocking allocation watch is answered from this server's own
//! state. Raft messages and peer calls are refused to peers that proved a
//! client identity.

use crate::peer::{PeerCall, PeerReply};
use crate::{Server, ServerError};
use rpc::{
    AllocUpdateRequest, AllocUpdateResponse, AllocWithJob, Handler, NodeGetAllocsRequest, NodeGetAllocsResponse,
    NodeHeartbeatRequest, NodeHeartbeatResponse, NodeRegisterRequest, NodeRegisterResponse, PeerIdentity, PeerInfo,
    Request, Response, RpcError, ServerMessage,
};
use std::time::Duration;
use types::{AllocClientStatus, NodeStatus, trigger};

/// Longest a blocking allocation query may wait.
const MAX_BLOCKING_WAIT: Duration = Duration::from_secs(300);
/// Longest a remote worker's dequeue may wait at the leader.
const MAX_DEQUEUE_WAIT: Duration = Duration::from_secs(10);

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
            ServerError::NoLeader => RpcError::NotLeader { leader: None },
            ServerError::Unavailable(message) => RpcError::Transport(message),
            ServerError::PermissionDenied(message) => RpcError::PermissionDenied(message),
            ServerError::Internal(message) => RpcError::Internal(message),
        }
    }
}

impl Handler for RpcService {
    async fn handle(&self, request: Request, peer: &PeerInfo) -> Result<Response, RpcError> {
        // What each request needs is in the one table (`acl::table`); a
        // kind missing from it is refused.
        match acl::rpc_need(request.kind()) {
            None => {
                return Err(RpcError::PermissionDenied(format!(
                    "{} requests have no entry in the RPC table",
                    request.kind()
                )));
            }
            Some(acl::RpcNeed::Server) if matches!(peer.identity, PeerIdentity::Client { .. }) => {
                return Err(RpcError::PermissionDenied(format!(
                    "{} requests are served to servers only",
                    request.kind()
                )));
            }
            // Node requests prove themselves with the node's secret, which
            // each handler below checks.
            Some(_) => {}
        }
        match request {
            Request::Raft(request) => self.server.raft().handle_rpc(request, peer).await.map(Response::Raft),
            Request::Server(message) => self.peer_call(message, peer).await.map(Response::Server),
            Request::NodeGetAllocs(request) => self.node_get_allocs(request).await.map(Response::NodeGetAllocs),
            Request::ServiceWatch(request) => self.service_watch(request).await.map(Response::ServiceWatch),
            request if !self.server.is_leader() => Ok(self.server.forward_to_leader(request).await?),
            request => self.leader_only(request).await,
        }
    }
}

/// The job version an allocation runs (the current version if that one was
/// collected).
fn job_of(state: &state::StateSnapshot, alloc: &types::Allocation) -> Option<std::sync::Arc<types::Job>> {
    state
        .job_version(&alloc.namespace, &alloc.job_id, alloc.job_version)
        .or_else(|| state.job(&alloc.namespace, &alloc.job_id))
}

/// A node's allocations as a change since `since`: every ID, the
/// allocations modified after it, and their jobs once each.
fn alloc_delta(state: &state::StateSnapshot, node_id: &str, since: types::Index) -> rpc::AllocDelta {
    let mut delta = rpc::AllocDelta::default();
    let mut jobs = std::collections::BTreeSet::new();
    for alloc in state.allocs_by_node(node_id) {
        delta.alloc_ids.push(alloc.id.clone());
        if alloc.modify_index <= since {
            continue;
        }
        let key = (alloc.namespace.clone(), alloc.job_id.clone(), alloc.job_version);
        if !jobs.contains(&key)
            && let Some(job) = job_of(state, &alloc)
        {
            jobs.insert(key);
            delta.jobs.push((*job).clone());
        }
        delta.changed.push((*alloc).clone());
    }
    delta
}

impl RpcService {
    /// Serves a client agent's write on the leader.
    async fn leader_only(&self, request: Request) -> Result<Response, RpcError> {
        match request {
            Request::NodeRegister(request) => self.node_register(request).await.map(Response::NodeRegister),
            Request::NodeHeartbeat(request) => self.node_heartbeat(request).await.map(Response::NodeHeartbeat),
            Request::AllocUpdate(request) => self.alloc_update(request).await.map(Response::AllocUpdate),
            Request::ServiceUpdate(request) => self.service_update(request).await.map(Response::ServiceUpdate),
            other => Err(RpcError::BadRequest(format!(
                "{} requests are not forwarded",
                other.kind()
            ))),
        }
    }

    /// Answers another server.
    async fn peer_call(&self, message: ServerMessage, peer: &PeerInfo) -> Result<ServerMessage, RpcError> {
        let call: PeerCall =
            rpc::decode(&message.payload).map_err(|error| RpcError::BadRequest(format!("peer call: {error}")))?;
        let server = &self.server;
        let not_leader = || RpcError::NotLeader {
            leader: server.leader(),
        };
        let reply = match call {
            PeerCall::Ping { from, known } => server.answer_ping(from, known).await,
            PeerCall::ReadIndex => PeerReply::ReadIndex(server.raft().read_index().await.map_err(ServerError::from)?),
            PeerCall::KeyringGet { .. } | PeerCall::KeyringPut { .. } if !server.may_receive_keys(peer) => {
                return Err(RpcError::PermissionDenied(format!(
                    "root keys are handed only to servers ({} is not one)",
                    peer.addr
                )));
            }
            PeerCall::KeyringGet { key_id } => PeerReply::RootKey(server.root_key_material(&key_id)),
            PeerCall::KeyringPut { key_id, material } => {
                server.store_root_key(&key_id, &material)?;
                PeerReply::Done
            }
            _ if !server.is_leader() => return Err(not_leader()),
            PeerCall::Apply(command) => PeerReply::Applied(server.write_local(command).await?),
            PeerCall::EvalDequeue { wait_ms } => {
                let wait = Duration::from_millis(wait_ms).min(MAX_DEQUEUE_WAIT);
                PeerReply::Eval(server.inner().broker.dequeue(crate::now_nanos, wait).await)
            }
            PeerCall::EvalAck { eval_id, token } => {
                server
                    .inner()
                    .broker
                    .ack(&eval_id, &token)
                    .map_err(|error| RpcError::BadRequest(error.to_string()))?;
                PeerReply::Done
            }
            PeerCall::EvalNack { eval_id, token } => {
                server
                    .inner()
                    .broker
                    .nack(&eval_id, &token, crate::now_nanos())
                    .map_err(|error| RpcError::BadRequest(error.to_string()))?;
                PeerReply::Done
            }
            PeerCall::PlanSubmit { plan } => PeerReply::Plan(server.submit_plan(plan).await?),
            PeerCall::RemovePeer { id } => {
                server.remove_raft_peer(id).await?;
                PeerReply::Done
            }
            PeerCall::TransferLeadership { target } => PeerReply::Transferred {
                leader: server.transfer_leadership(target).await?,
            },
            PeerCall::Forwarded(request) => PeerReply::Forwarded(self.leader_only(request).await?),
        };
        let payload = rpc::encode(&reply).map_err(|error| RpcError::Internal(error.to_string()))?;
        Ok(ServerMessage { payload })
    }

    fn ttl_ms(ttl: Duration) -> u64 {
        u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn server(&self) -> &Server {
        &self.server
    }

    pub(crate) fn check_secret(
        &self,
        state: &state::StateSnapshot,
        node_id: &str,
        secret_id: &str,
    ) -> Result<(), RpcError> {
        let Some(node) = state.node(node_id) else {
            return Err(RpcError::NotFound(format!("node {node_id}")));
        };
        if !types::secrets_equal(&node.secret_id, secret_id) {
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
            && !types::secrets_equal(&existing.secret_id, &node.secret_id)
        {
            return Err(RpcError::PermissionDenied(format!("wrong secret for node {}", node.id)));
        }
        // Only a new node, or one coming back to ready, needs evaluations.
        let transitions = existing.is_none_or(|existing| existing.status != NodeStatus::Ready);
        node.compute_class();
        let now = crate::now_nanos();
        let node_id = node.id.clone();
        let result = self
            .server
            .write_local(state::Command::NodeRegister { node, now })
            .await?;
        let ttl = self.server.touch_node(&node_id);
        if transitions {
            // A new or returning node may unblock work and needs its system jobs.
            let evals = self.server.node_evals(&node_id, trigger::NODE_UPDATE, now);
            if !evals.is_empty() {
                self.server.write_local(state::Command::EvalUpsert { evals }).await?;
            }
            self.server.unblock_evals().await;
        }
        Ok(NodeRegisterResponse {
            index: result.index,
            heartbeat_ttl_ms: Self::ttl_ms(ttl),
            servers: self.server.peers(),
            server_http_addrs: self.server.server_http_addrs(),
        })
    }

    async fn node_heartbeat(&self, request: NodeHeartbeatRequest) -> Result<NodeHeartbeatResponse, RpcError> {
        let state = self.server.state();
        self.check_secret(&state, &request.node_id, &request.secret_id)?;
        let mut index = state.index();
        if let Some(node) = state.node(&request.node_id)
            && node.status != NodeStatus::Ready
            && request.status == NodeStatus::Ready
        {
            let now = crate::now_nanos();
            let evals = self.server.node_evals(&request.node_id, trigger::NODE_UPDATE, now);
            let result = self
                .server
                .write_local(state::Command::NodeUpdateStatus {
                    node_id: request.node_id.clone(),
                    status: NodeStatus::Ready,
                    now,
                    evals,
                })
                .await?;
            index = result.index;
            self.server.unblock_evals().await;
        }
        let ttl = self.server.touch_node(&request.node_id);
        Ok(NodeHeartbeatResponse {
            index,
            heartbeat_ttl_ms: Self::ttl_ms(ttl),
            servers: self.server.peers(),
            server_http_addrs: self.server.server_http_addrs(),
        })
    }

    async fn node_get_allocs(&self, request: NodeGetAllocsRequest) -> Result<NodeGetAllocsResponse, RpcError> {
        let mut state = self.server.state();
        if state.node(&request.node_id).is_none() {
            // Registered moments ago through the leader: catch up first.
            state = self.server.read_state(false).await?;
        }
        self.check_secret(&state, &request.node_id, &request.secret_id)?;
        let wait = Duration::from_millis(request.max_wait_ms).min(MAX_BLOCKING_WAIT);
        let deadline = tokio::time::Instant::now() + wait;
        let mut applied = self.server.subscribe();
        loop {
            let state = self.server.state();
            let node_index = state.node_alloc_index(&request.node_id);
            if node_index > request.min_index || tokio::time::Instant::now() >= deadline {
                let index = node_index.max(request.min_index);
                if request.delta {
                    return Ok(NodeGetAllocsResponse {
                        index,
                        allocs: Vec::new(),
                        delta: Some(alloc_delta(&state, &request.node_id, request.min_index)),
                    });
                }
                let mut allocs = Vec::new();
                for alloc in state.allocs_by_node(&request.node_id) {
                    if let Some(job) = job_of(&state, &alloc) {
                        allocs.push(AllocWithJob {
                            alloc: (*alloc).clone(),
                            job: (*job).clone(),
                        });
                    }
                }
                return Ok(NodeGetAllocsResponse {
                    index,
                    allocs,
                    delta: None,
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
        let state = self.server.state();
        self.check_secret(&state, &request.node_id, &request.secret_id)?;
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
            .write_local(state::Command::AllocClientUpdate {
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

#[cfg(test)]
mod tests {
    use super::*;
    use state::Command;

    fn alloc(id: &str) -> types::Allocation {
        types::Allocation {
            id: id.into(),
            namespace: "default".into(),
            job_id: "web".into(),
            node_id: "n1".into(),
            ..types::Allocation::default()
        }
    }

    #[test]
    fn a_delta_lists_every_id_but_only_what_changed_with_each_job_once() {
        let mut state = state::StateSnapshot::new();
        let job = types::Job {
            id: "web".into(),
            namespace: "default".into(),
            ..types::Job::default()
        };
        state.apply(
            1,
            Command::JobRegister {
                job,
                eval: None,
                now: 1,
                enforce_index: None,
            },
        );
        let plan = |allocs| Command::PlanApply {
            allocs,
            eval_update: None,
            created_evals: Vec::new(),
            now: 1,
            deployment: None,
            deployment_updates: Vec::new(),
        };
        state.apply(2, plan(vec![alloc("a"), alloc("b")]));
        state.apply(3, plan(vec![alloc("c")]));
        let full = alloc_delta(&state, "n1", 0);
        assert_eq!(full.alloc_ids, vec!["a", "b", "c"]);
        assert_eq!(full.changed.len(), 3);
        assert_eq!(full.jobs.len(), 1, "the job is sent once");
        let since = alloc_delta(&state, "n1", 2);
        assert_eq!(since.alloc_ids, vec!["a", "b", "c"]);
        assert_eq!(
            since.changed.iter().map(|alloc| alloc.id.as_str()).collect::<Vec<_>>(),
            vec!["c"]
        );
        assert!(alloc_delta(&state, "n1", 3).changed.is_empty());
        assert!(alloc_delta(&state, "elsewhere", 0).alloc_ids.is_empty());
    }
}

#[cfg(test)]
mod table_tests {
    #[test]
    fn every_rpc_kind_has_an_entry_in_the_table() {
        for kind in rpc::Request::KINDS {
            assert!(
                acl::rpc_need(kind).is_some(),
                "RPC {kind} has no entry in acl::table::RPC_CALLS"
            );
        }
        assert_eq!(acl::table::RPC_CALLS.len(), rpc::Request::KINDS.len());
    }
}
