//! A fake server speaking the real RPC over TCP, and a real client agent
//! with the raw_exec driver, for the runtime tests (templates, lifecycle,
//! artifacts…). The server keeps allocations in a map, answers blocking
//! queries and records what the client reports.

#![allow(dead_code)]

use client::{Client, ClientConfig};
use raw_exec::RawExecDriver;
use rpc::{
    AllocUpdateResponse, AllocWithJob, Handler, NodeGetAllocsResponse, NodeHeartbeatResponse, NodeRegisterResponse,
    Request, Response, RpcClient, RpcError, serve,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use types::{AllocClientStatus, AllocClientUpdate, Allocation, Job, Node};

/// Generous bound for anything to happen on a loaded 2-core machine; only
/// reached when something is broken.
pub const PATIENCE: Duration = Duration::from_secs(30);

const HEARTBEAT_TTL_MS: u64 = 500;

#[derive(Default)]
pub struct ServerState {
    pub index: u64,
    pub allocs: BTreeMap<String, AllocWithJob>,
    pub registrations: Vec<Node>,
    pub updates: Vec<AllocClientUpdate>,
}

pub struct FakeServer {
    state: Mutex<ServerState>,
    index: watch::Sender<u64>,
    changes: watch::Sender<u64>,
}

impl FakeServer {
    pub fn with_state<T>(&self, change: impl FnOnce(&mut ServerState) -> T) -> T {
        let mut state = self.state.lock().expect("server state");
        change(&mut state)
    }

    fn change_allocs(&self, change: impl FnOnce(&mut BTreeMap<String, AllocWithJob>)) {
        let index = self.with_state(|state| {
            change(&mut state.allocs);
            state.index += 1;
            state.index
        });
        self.index.send_replace(index);
    }

    pub fn place(&self, alloc: Allocation, job: Job) {
        self.change_allocs(|allocs| {
            allocs.insert(alloc.id.clone(), AllocWithJob { alloc, job });
        });
    }

    pub fn stop(&self, alloc_id: &str) {
        self.change_allocs(|allocs| {
            if let Some(entry) = allocs.get_mut(alloc_id) {
                entry.alloc.desired_status = types::AllocDesiredStatus::Stop;
            }
        });
    }

    /// Waits (on notifications, not sleeps) until `done` holds.
    pub async fn wait_until<T>(&self, what: &str, mut done: impl FnMut(&ServerState) -> Option<T>) -> T {
        let mut changes = self.changes.subscribe();
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(found) = self.with_state(|state| done(state)) {
                    return found;
                }
                changes.changed().await.expect("server alive");
            }
        })
        .await;
        match waited {
            Ok(found) => found,
            Err(_) => {
                let updates = self.with_state(|state| format!("{:#?}", state.updates.last()));
                panic!("timed out waiting for {what}; last update: {updates}");
            }
        }
    }

    pub async fn wait_for_status(&self, alloc_id: &str, status: AllocClientStatus) -> Allocation {
        self.wait_until(&format!("{alloc_id} to be {}", status.as_str()), |state| {
            state
                .allocs
                .get(alloc_id)
                .filter(|entry| entry.alloc.client_status == status)
                .map(|entry| entry.alloc.clone())
        })
        .await
    }

    /// Waits until the allocation's task states satisfy `done`.
    pub async fn wait_for_alloc(
        &self,
        alloc_id: &str,
        what: &str,
        mut done: impl FnMut(&Allocation) -> bool,
    ) -> Allocation {
        self.wait_until(what, |state| {
            state
                .allocs
                .get(alloc_id)
                .filter(|entry| done(&entry.alloc))
                .map(|entry| entry.alloc.clone())
        })
        .await
    }
}

impl Handler for FakeServer {
    async fn handle(&self, request: Request, _peer: &rpc::PeerInfo) -> Result<Response, RpcError> {
        match request {
            Request::NodeRegister(register) => {
                let index = self.with_state(|state| {
                    state.registrations.push(register.node);
                    state.index
                });
                self.changes.send_modify(|n| *n += 1);
                Ok(Response::NodeRegister(NodeRegisterResponse {
                    index,
                    heartbeat_ttl_ms: HEARTBEAT_TTL_MS,
                    servers: Vec::new(),
                    server_http_addrs: Vec::new(),
                }))
            }
            Request::NodeHeartbeat(_) => {
                let index = self.with_state(|state| state.index);
                Ok(Response::NodeHeartbeat(NodeHeartbeatResponse {
                    index,
                    heartbeat_ttl_ms: HEARTBEAT_TTL_MS,
                    servers: Vec::new(),
                    server_http_addrs: Vec::new(),
                }))
            }
            Request::NodeGetAllocs(query) => {
                let mut index = self.index.subscribe();
                let _ = tokio::time::timeout(
                    Duration::from_millis(query.max_wait_ms),
                    index.wait_for(|index| *index > query.min_index),
                )
                .await;
                let answer = self.with_state(|state| NodeGetAllocsResponse {
                    index: state.index,
                    allocs: state
                        .allocs
                        .values()
                        .filter(|entry| entry.alloc.node_id == query.node_id)
                        .cloned()
                        .collect(),
                    delta: None,
                });
                Ok(Response::NodeGetAllocs(answer))
            }
            Request::AllocUpdate(request) => {
                let index = self.with_state(|state| {
                    for update in &request.updates {
                        if let Some(entry) = state.allocs.get_mut(&update.alloc_id) {
                            entry.alloc.client_status = update.client_status;
                            entry.alloc.client_description = update.client_description.clone();
                            entry.alloc.task_states = update.task_states.clone();
                        }
                        state.updates.push(update.clone());
                    }
                    state.index += 1;
                    state.index
                });
                self.index.send_replace(index);
                self.changes.send_modify(|n| *n += 1);
                Ok(Response::AllocUpdate(AllocUpdateResponse { index }))
            }
            Request::Raft(_) | Request::Server(_) | Request::ServiceUpdate(_) | Request::ServiceWatch(_) => {
                Err(RpcError::BadRequest("no server or service calls here".into()))
            }
        }
    }
}

pub async fn start_server() -> (Arc<FakeServer>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let server = Arc::new(FakeServer {
        state: Mutex::new(ServerState::default()),
        index: watch::channel(0).0,
        changes: watch::channel(0).0,
    });
    tokio::spawn(serve(listener, Arc::clone(&server)));
    (server, addr)
}

/// A running client agent and the way to stop it.
pub struct Agent {
    shutdown: Option<oneshot::Sender<()>>,
    run: tokio::task::JoinHandle<()>,
    pub node_id: String,
}

/// A client configuration for tests: quick batches and retries, tasks
/// stopped with the agent.
pub fn test_config(data_dir: &Path) -> ClientConfig {
    let mut config = ClientConfig::new(data_dir);
    config.node_name = "test-node".into();
    config.update_batch_window = Duration::from_millis(5);
    config.alloc_query_wait = Duration::from_secs(5);
    config.max_retry_backoff = Duration::from_millis(500);
    config.stop_tasks_on_shutdown = true;
    config
}

impl Agent {
    pub async fn start(addr: &str, config: ClientConfig) -> Agent {
        Agent::start_with(addr, config, vec![Arc::new(RawExecDriver::new())]).await
    }

    pub async fn start_with(addr: &str, config: ClientConfig, drivers: Vec<Arc<dyn driver_api::Driver>>) -> Agent {
        let client = Client::new(config, drivers, Arc::new(RpcClient::new(addr.to_string())))
            .await
            .expect("client");
        let node_id = client.node().id.clone();
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let run = tokio::spawn(client.run(async move {
            let _ = shutdown_rx.await;
        }));
        Agent {
            shutdown: Some(shutdown),
            run,
            node_id,
        }
    }

    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        tokio::time::timeout(PATIENCE, &mut self.run)
            .await
            .expect("agent shuts down")
            .expect("join");
    }
}

pub fn alloc_for(job: &Job, node_id: &str) -> Allocation {
    Allocation {
        id: uuid::Uuid::new_v4().to_string(),
        namespace: job.namespace.clone(),
        name: Allocation::make_name(&job.id, &job.task_groups[0].name, 0),
        node_id: node_id.into(),
        job_id: job.id.clone(),
        task_group: job.task_groups[0].name.clone(),
        ..Allocation::default()
    }
}

/// Polls `check` every 20 ms until it holds or `PATIENCE` runs out.
pub async fn poll_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
