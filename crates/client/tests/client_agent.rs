//! The client agent end to end: a fake server speaking the real RPC over
//! TCP hands out allocations and records what the client reports, and the
//! raw_exec driver runs real processes.

use client::{Client, ClientConfig};
use raw_exec::RawExecDriver;
use rpc::{
    AllocUpdateResponse, AllocWithJob, Handler, NodeGetAllocsResponse, NodeHeartbeatResponse, NodeRegisterResponse,
    Request, Response, RpcClient, RpcError, serve,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use types::{
    AllocClientStatus, AllocClientUpdate, AllocDesiredStatus, Allocation, Job, JobType, Node, NodeStatus, RestartMode,
    RestartPolicy, Task, TaskGroup, TaskStateKind, task_event,
};

/// Generous bound for anything to happen on a loaded 2-core machine; only
/// reached when something is broken.
const PATIENCE: Duration = Duration::from_secs(30);

/// Short, so heartbeats come every 100ms in these tests.
const HEARTBEAT_TTL_MS: u64 = 200;

#[derive(Default)]
struct ServerState {
    index: u64,
    heartbeats: u64,
    /// Answer the next heartbeat with NotFound, as a server that lost the node.
    forget_node: bool,
    allocs: BTreeMap<String, AllocWithJob>,
    registrations: Vec<Node>,
    updates: Vec<AllocClientUpdate>,
}

/// A server that keeps allocations in a map and answers blocking queries.
struct FakeServer {
    state: Mutex<ServerState>,
    /// The allocation index, so blocking queries wake when it moves.
    index: watch::Sender<u64>,
    /// Bumped on every registration and update, so tests wake.
    changes: watch::Sender<u64>,
}

impl FakeServer {
    fn new() -> Arc<FakeServer> {
        Arc::new(FakeServer {
            state: Mutex::new(ServerState::default()),
            index: watch::channel(0).0,
            changes: watch::channel(0).0,
        })
    }

    fn with_state<T>(&self, change: impl FnOnce(&mut ServerState) -> T) -> T {
        let mut state = self.state.lock().expect("server state");
        change(&mut state)
    }

    /// Changes allocations and wakes blocking queries.
    fn change_allocs(&self, change: impl FnOnce(&mut BTreeMap<String, AllocWithJob>)) {
        let index = self.with_state(|state| {
            change(&mut state.allocs);
            state.index += 1;
            state.index
        });
        self.index.send_replace(index);
    }

    fn place(&self, alloc: Allocation, job: Job) {
        self.change_allocs(|allocs| {
            allocs.insert(alloc.id.clone(), AllocWithJob { alloc, job });
        });
    }

    fn stop(&self, alloc_id: &str) {
        self.change_allocs(|allocs| {
            if let Some(entry) = allocs.get_mut(alloc_id) {
                entry.alloc.desired_status = AllocDesiredStatus::Stop;
            }
        });
    }

    fn alloc(&self, alloc_id: &str) -> Option<Allocation> {
        self.with_state(|state| state.allocs.get(alloc_id).map(|entry| entry.alloc.clone()))
    }

    /// Waits (on notifications, not sleeps) until `done` holds.
    async fn wait_until<T>(&self, what: &str, mut done: impl FnMut(&ServerState) -> Option<T>) -> T {
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

    async fn wait_for_status(&self, alloc_id: &str, status: AllocClientStatus) -> Allocation {
        self.wait_until(&format!("{alloc_id} to be {}", status.as_str()), |state| {
            state
                .allocs
                .get(alloc_id)
                .filter(|entry| entry.alloc.client_status == status)
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
            Request::NodeHeartbeat(heartbeat) => {
                let answer = self.with_state(|state| {
                    state.heartbeats += 1;
                    if std::mem::take(&mut state.forget_node) {
                        Err(RpcError::NotFound(format!("node {}", heartbeat.node_id)))
                    } else {
                        Ok(Response::NodeHeartbeat(NodeHeartbeatResponse {
                            index: state.index,
                            heartbeat_ttl_ms: HEARTBEAT_TTL_MS,
                            servers: Vec::new(),
                            server_http_addrs: Vec::new(),
                        }))
                    }
                });
                self.changes.send_modify(|n| *n += 1);
                answer
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
                    // A server that predates deltas: the client must cope.
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

/// A running client agent and the way to stop it.
struct Agent {
    shutdown: Option<oneshot::Sender<()>>,
    run: tokio::task::JoinHandle<()>,
    node_id: String,
}

impl Agent {
    async fn start(addr: &str, data_dir: &Path, stop_tasks_on_shutdown: bool) -> Agent {
        let mut config = ClientConfig::new(data_dir);
        config.node_name = "test-node".into();
        config.update_batch_window = Duration::from_millis(5);
        config.alloc_query_wait = Duration::from_secs(5);
        config.max_retry_backoff = Duration::from_millis(500);
        config.stop_tasks_on_shutdown = stop_tasks_on_shutdown;
        let client = Client::new(
            config,
            vec![Arc::new(RawExecDriver::new())],
            Arc::new(RpcClient::new(addr.to_string())),
        )
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

    async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        tokio::time::timeout(PATIENCE, &mut self.run)
            .await
            .expect("agent shuts down")
            .expect("join");
    }
}

async fn start_server() -> (Arc<FakeServer>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let server = FakeServer::new();
    tokio::spawn(serve(listener, Arc::clone(&server)));
    (server, addr)
}

#[tokio::test]
async fn heartbeats_keep_coming_and_a_forgotten_node_registers_again() {
    let (server, addr) = start_server().await;
    let data = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(&addr, data.path(), true).await;
    server
        .wait_until("three heartbeats", |state| (state.heartbeats >= 3).then_some(()))
        .await;
    assert_eq!(server.with_state(|state| state.registrations.len()), 1);
    server.with_state(|state| state.forget_node = true);
    let again = server
        .wait_until("a second registration", |state| state.registrations.get(1).cloned())
        .await;
    assert_eq!(again.id, agent.node_id);
    let beats = server.with_state(|state| state.heartbeats);
    server
        .wait_until("heartbeats after registering again", |state| {
            (state.heartbeats >= beats + 2).then_some(())
        })
        .await;
    agent.stop().await;
}

#[tokio::test]
async fn registration_retries_until_a_server_answers() {
    // Reserve an address, then leave it without a server for a while.
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = probe.local_addr().expect("addr");
    drop(probe);
    let data = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(&addr.to_string(), data.path(), true).await;
    let server = FakeServer::new();
    let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
    tokio::spawn(serve(listener, Arc::clone(&server)));
    let node = server
        .wait_until("the registration", |state| state.registrations.first().cloned())
        .await;
    assert_eq!(node.id, agent.node_id);
    agent.stop().await;
}

fn make_job(id: &str, job_type: JobType, script: &str, restart: RestartPolicy) -> Job {
    let mut job = Job {
        id: id.into(),
        job_type,
        task_groups: vec![TaskGroup {
            name: "g".into(),
            restart_policy: Some(restart),
            tasks: vec![Task {
                name: "t".into(),
                driver: "raw_exec".into(),
                config: serde_json::json!({"command": "/bin/sh", "args": ["-c", script]}),
                kill_timeout: Duration::from_secs(2),
                ..Task::default()
            }],
            ..TaskGroup::default()
        }],
        ..Job::default()
    };
    job.canonicalize();
    job
}

fn alloc_for(job: &Job, node_id: &str) -> Allocation {
    Allocation {
        id: uuid::Uuid::new_v4().to_string(),
        namespace: job.namespace.clone(),
        name: Allocation::make_name(&job.id, "g", 0),
        node_id: node_id.into(),
        job_id: job.id.clone(),
        task_group: "g".into(),
        ..Allocation::default()
    }
}

fn quick_restarts(attempts: u32) -> RestartPolicy {
    RestartPolicy {
        attempts,
        interval: Duration::from_secs(3600),
        delay: Duration::from_millis(50),
        mode: RestartMode::Fail,
        render_templates: false,
    }
}

fn event_types(alloc: &Allocation) -> Vec<String> {
    alloc.task_states["t"]
        .events
        .iter()
        .map(|event| event.event_type.clone())
        .collect()
}

fn log_of(data_dir: &Path, alloc_id: &str) -> PathBuf {
    data_dir.join(format!("alloc/{alloc_id}/alloc/logs/t.stdout.0"))
}

/// The pid of the task, from the client's local state (its raw_exec handle).
fn task_pid(data_dir: &Path, alloc_id: &str) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join(format!("client/allocs/{alloc_id}.json"))).ok()?;
    let state: serde_json::Value = serde_json::from_str(&text).ok()?;
    state["handles"]["t"]["state"]["pid"].as_i64().map(|pid| pid as i32)
}

fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

#[tokio::test]
async fn batch_exit_zero_completes_with_env_and_logs() {
    let (server, addr) = start_server().await;
    let data = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(&addr, data.path(), true).await;
    let node = server
        .wait_until("registration", |state| state.registrations.first().cloned())
        .await;
    assert_eq!(node.id, agent.node_id);
    assert_eq!(node.name, "test-node");
    assert_eq!(node.status, NodeStatus::Ready);
    assert_eq!(node.attributes["driver.raw_exec"], "1");
    assert!(node.drivers["raw_exec"].healthy);
    assert!(node.resources.cpu_mhz > 0 && node.resources.memory_mb > 0);

    let job = make_job(
        "hello",
        JobType::Batch,
        "echo \"job=$NOMAD_JOB_NAME group=$NOMAD_GROUP_NAME task=$NOMAD_TASK_NAME alloc=$NOMAD_ALLOC_ID cpu=$NOMAD_CPU_LIMIT\"; test -d \"$NOMAD_ALLOC_DIR/data\" && test \"$(pwd)\" = \"$(dirname \"$NOMAD_TASK_DIR\")\"",
        quick_restarts(0),
    );
    let alloc = alloc_for(&job, &agent.node_id);
    let alloc_id = alloc.id.clone();
    server.place(alloc, job);
    let done = server.wait_for_status(&alloc_id, AllocClientStatus::Complete).await;
    let state = &done.task_states["t"];
    assert_eq!(state.state, TaskStateKind::Dead);
    assert!(!state.failed);
    assert_eq!(
        event_types(&done),
        vec![
            task_event::RECEIVED,
            task_event::SETUP,
            task_event::STARTED,
            task_event::TERMINATED
        ]
    );
    let log = std::fs::read_to_string(log_of(data.path(), &alloc_id)).expect("stdout log");
    assert_eq!(log, format!("job=hello group=g task=t alloc={alloc_id} cpu=100\n"));
    // The updater coalesces a fast task's pending/running/complete into as
    // little as one update, so only the final status is certain.
    let statuses: Vec<AllocClientStatus> = server.with_state(|state| {
        state
            .updates
            .iter()
            .filter(|update| update.alloc_id == alloc_id)
            .map(|update| update.client_status)
            .collect()
    });
    assert_eq!(statuses.last(), Some(&AllocClientStatus::Complete), "{statuses:?}");
    agent.stop().await;
}

#[tokio::test]
async fn batch_exit_three_runs_twice_then_fails_with_reasons() {
    let (server, addr) = start_server().await;
    let data = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(&addr, data.path(), true).await;
    let job = make_job("fails", JobType::Batch, "echo run; exit 3", quick_restarts(1));
    let alloc = alloc_for(&job, &agent.node_id);
    let alloc_id = alloc.id.clone();
    server.place(alloc, job);
    let failed = server.wait_for_status(&alloc_id, AllocClientStatus::Failed).await;
    let state = &failed.task_states["t"];
    assert!(state.failed);
    assert_eq!(state.restarts, 1);
    assert_eq!(
        event_types(&failed),
        vec![
            task_event::RECEIVED,
            task_event::SETUP,
            task_event::STARTED,
            task_event::TERMINATED,
            task_event::RESTARTING,
            task_event::STARTED,
            task_event::TERMINATED,
            task_event::NOT_RESTARTING,
        ]
    );
    let terminated: Vec<i32> = state
        .events
        .iter()
        .filter(|event| event.event_type == task_event::TERMINATED)
        .map(|event| event.exit_code)
        .collect();
    assert_eq!(terminated, vec![3, 3]);
    let last = state.events.last().expect("event");
    assert!(last.fails_task);
    assert!(
        last.display_message
            .starts_with("Exceeded allowed attempts 1 in interval"),
        "{}",
        last.display_message
    );
    let log = std::fs::read_to_string(log_of(data.path(), &alloc_id)).expect("stdout log");
    assert_eq!(log, "run\nrun\n");
    agent.stop().await;
}

#[tokio::test]
async fn stopping_a_service_kills_it_and_completes() {
    let (server, addr) = start_server().await;
    let data = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(&addr, data.path(), true).await;
    let job = make_job("web", JobType::Service, "exec sleep 300", RestartPolicy::default());
    let alloc = alloc_for(&job, &agent.node_id);
    let alloc_id = alloc.id.clone();
    server.place(alloc, job);
    server.wait_for_status(&alloc_id, AllocClientStatus::Running).await;
    let pid = task_pid(data.path(), &alloc_id).expect("pid in local state");
    assert!(process_alive(pid));

    server.stop(&alloc_id);
    let stopped = server.wait_for_status(&alloc_id, AllocClientStatus::Complete).await;
    let types = event_types(&stopped);
    assert_eq!(
        &types[types.len() - 3..],
        &[task_event::KILLING, task_event::TERMINATED, task_event::KILLED]
    );
    assert!(!stopped.task_states["t"].failed);
    assert!(!process_alive(pid), "task process {pid} survived the stop");

    // Once the server forgets the allocation, its directory and local
    // state go too. A later placement proves the client saw the removal
    // (answers carry every change up to their index), and shutdown waits
    // for collections in flight.
    let alloc_dir = data.path().join(format!("alloc/{alloc_id}"));
    let state_file = data.path().join(format!("client/allocs/{alloc_id}.json"));
    assert!(alloc_dir.is_dir() && state_file.is_file());
    server.change_allocs(|allocs| {
        allocs.remove(&alloc_id);
    });
    let marker = make_job("marker", JobType::Batch, "true", quick_restarts(0));
    let marker_alloc = alloc_for(&marker, &agent.node_id);
    let marker_id = marker_alloc.id.clone();
    server.place(marker_alloc, marker);
    server.wait_for_status(&marker_id, AllocClientStatus::Complete).await;
    agent.stop().await;
    assert!(!alloc_dir.exists(), "allocation directory left behind");
    assert!(!state_file.exists(), "local state left behind");
}

#[tokio::test]
async fn tasks_survive_an_agent_restart_and_are_reattached() {
    let (server, addr) = start_server().await;
    let data = tempfile::tempdir().expect("tempdir");
    let first = Agent::start(&addr, data.path(), false).await;
    let node_id = first.node_id.clone();
    let job = make_job(
        "keeps",
        JobType::Service,
        "echo started; exec sleep 300",
        RestartPolicy::default(),
    );
    let alloc = alloc_for(&job, &node_id);
    let alloc_id = alloc.id.clone();
    server.place(alloc, job);
    server.wait_for_status(&alloc_id, AllocClientStatus::Running).await;
    let pid = task_pid(data.path(), &alloc_id).expect("pid in local state");
    first.stop().await;
    assert!(process_alive(pid), "the task died with the agent");

    let second = Agent::start(&addr, data.path(), true).await;
    assert_eq!(second.node_id, node_id, "the node id changed across restarts");
    server
        .wait_until("second registration", |state| {
            (state.registrations.len() >= 2).then_some(())
        })
        .await;
    server.stop(&alloc_id);
    let stopped = server.wait_for_status(&alloc_id, AllocClientStatus::Complete).await;
    let state = &stopped.task_states["t"];
    assert_eq!(state.restarts, 0);
    let starts = event_types(&stopped)
        .iter()
        .filter(|kind| kind.as_str() == task_event::STARTED)
        .count();
    assert_eq!(starts, 1, "the task was started again: {:?}", event_types(&stopped));
    assert!(!process_alive(pid), "the reattached task survived the stop");
    let log = std::fs::read_to_string(log_of(data.path(), &alloc_id)).expect("stdout log");
    assert_eq!(log, "started\n");
    assert!(server.alloc(&alloc_id).is_some());
    second.stop().await;
}
