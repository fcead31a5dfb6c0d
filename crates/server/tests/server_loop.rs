//! The server loop without a client agent: nodes register and heartbeat
//! through the RPC handler, jobs are scheduled through the broker, workers
//! and plan applier, and a node that stops heartbeating is marked down with
//! its allocations replaced elsewhere (DESIGN.md R6).

use rpc::{Handler, NodeHeartbeatRequest, NodeRegisterRequest, Request, Response};
use server::{RpcService, Server, ServerConfig};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use types::{
    AllocClientStatus, AllocClientUpdate, AllocDesiredStatus, DriverInfo, Job, JobType, Node, NodeResources,
    NodeStatus, Task, TaskGroup,
};

const DEADLINE: Duration = Duration::from_secs(20);

fn client_peer() -> rpc::PeerInfo {
    rpc::PeerInfo::anonymous("127.0.0.1:9".parse().expect("addr"))
}

async fn start(dir: &std::path::Path, ttl: Duration) -> (Server, Arc<RpcService>) {
    let mut config = ServerConfig::dev(dir.to_path_buf(), "127.0.0.1:14647".to_string());
    config.heartbeat_ttl = ttl;
    config.heartbeat_grace = ttl / 2;
    let server = Server::start(config).await.expect("server starts");
    let service = Arc::new(RpcService::new(server.clone()));
    (server, service)
}

fn node(id: &str) -> Node {
    Node {
        id: id.to_string(),
        secret_id: format!("secret-{id}"),
        name: id.to_string(),
        resources: NodeResources {
            cpu_mhz: 4000,
            cores: 4,
            memory_mb: 4096,
            disk_mb: 10_000,
            min_dynamic_port: 20000,
            max_dynamic_port: 32000,
            ..NodeResources::default()
        },
        attributes: BTreeMap::from([("kernel.name".to_string(), "linux".to_string())]),
        drivers: BTreeMap::from([(
            "raw_exec".to_string(),
            DriverInfo {
                detected: true,
                healthy: true,
                ..DriverInfo::default()
            },
        )]),
        status: NodeStatus::Ready,
        ..Node::default()
    }
}

fn job(id: &str, job_type: JobType, count: u32) -> Job {
    Job {
        id: id.to_string(),
        job_type,
        task_groups: vec![TaskGroup {
            name: "g".into(),
            count,
            tasks: vec![Task {
                name: "t".into(),
                driver: "raw_exec".into(),
                config: serde_json::json!({"command": "/bin/true"}),
                ..Task::default()
            }],
            ..TaskGroup::default()
        }],
        ..Job::default()
    }
}

async fn register(service: &RpcService, node: Node) {
    match service
        .handle(Request::NodeRegister(NodeRegisterRequest { node }), &client_peer())
        .await
        .expect("register node")
    {
        Response::NodeRegister(answer) => assert!(answer.index > 0),
        other => panic!("unexpected {other:?}"),
    }
}

/// Waits until `check` holds for the applied state.
async fn wait_state(server: &Server, what: &str, check: impl Fn(&server::StateSnapshot) -> bool) {
    let mut applied = server.subscribe();
    let wait = async {
        loop {
            if check(&server.state()) {
                return;
            }
            if applied.changed().await.is_err() {
                panic!("state watch closed");
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_is_marked_down_and_its_allocations_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, service) = start(dir.path(), Duration::from_millis(400)).await;
    register(&service, node("node-a")).await;
    register(&service, node("node-b")).await;
    server
        .register_job(job("web", JobType::Service, 1))
        .await
        .expect("register job");
    wait_state(&server, "one placed allocation", |state| {
        state.allocs_by_job("default", "web").len() == 1
    })
    .await;
    let first = server.state().allocs_by_job("default", "web")[0].clone();
    let (silent, alive) = if first.node_id == "node-a" {
        ("node-a", "node-b")
    } else {
        ("node-b", "node-a")
    };

    // Keep only the other node heartbeating.
    let heartbeats = {
        let service = Arc::clone(&service);
        tokio::spawn(async move {
            loop {
                let _ = service
                    .handle(
                        Request::NodeHeartbeat(NodeHeartbeatRequest {
                            node_id: alive.to_string(),
                            secret_id: format!("secret-{alive}"),
                            status: NodeStatus::Ready,
                        }),
                        &client_peer(),
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    wait_state(&server, "the silent node down", |state| {
        state.node(silent).is_some_and(|node| node.status == NodeStatus::Down)
    })
    .await;
    wait_state(&server, "a replacement on the live node", |state| {
        state
            .allocs_by_job("default", "web")
            .iter()
            .any(|alloc| alloc.node_id == alive && alloc.desired_status == AllocDesiredStatus::Run)
    })
    .await;
    let state = server.state();
    let old = state.alloc(&first.id).expect("old alloc kept");
    assert_eq!(old.desired_status, AllocDesiredStatus::Stop, "{old:?}");
    assert_eq!(old.client_status, AllocClientStatus::Lost, "{old:?}");
    let live: Vec<_> = state
        .allocs_by_job("default", "web")
        .into_iter()
        .filter(|alloc| alloc.desired_status == AllocDesiredStatus::Run)
        .collect();
    assert_eq!(live.len(), 1, "exactly one live replacement: {live:#?}");
    assert_eq!(state.node(alive).map(|node| node.status), Some(NodeStatus::Ready));
    heartbeats.abort();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_work_is_placed_when_capacity_frees_and_system_jobs_reach_new_nodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, service) = start(dir.path(), Duration::from_secs(30)).await;
    register(&service, node("node-a")).await;
    // Each allocation asks for 3000 of the node's 4000 MHz: one fits.
    let mut big = job("big", JobType::Batch, 1);
    big.task_groups[0].tasks[0].resources.cpu = 3000;
    server.register_job(big.clone()).await.expect("first");
    wait_state(&server, "first placed", |state| {
        state.allocs_by_job("default", "big").len() == 1
    })
    .await;
    let mut second = big.clone();
    second.id = "big2".into();
    server.register_job(second).await.expect("second");
    wait_state(&server, "a blocked evaluation", |state| {
        state
            .evals_by_job("default", "big2")
            .iter()
            .any(|eval| eval.status == types::EvalStatus::Blocked)
    })
    .await;
    assert!(server.state().allocs_by_job("default", "big2").is_empty());

    // The first allocation finishes: its capacity unblocks the second job.
    let first = server.state().allocs_by_job("default", "big")[0].clone();
    service
        .handle(
            Request::AllocUpdate(rpc::AllocUpdateRequest {
                node_id: "node-a".into(),
                secret_id: "secret-node-a".into(),
                updates: vec![AllocClientUpdate {
                    alloc_id: first.id.clone(),
                    client_status: AllocClientStatus::Complete,
                    ..AllocClientUpdate::default()
                }],
            }),
            &client_peer(),
        )
        .await
        .expect("alloc update");
    wait_state(&server, "the blocked job placed", |state| {
        state.allocs_by_job("default", "big2").len() == 1
    })
    .await;

    // A system job gets one allocation per node, including nodes that join later.
    server
        .register_job(job("sys", JobType::System, 1))
        .await
        .expect("system job");
    wait_state(&server, "system alloc on node-a", |state| {
        state.allocs_by_job("default", "sys").len() == 1
    })
    .await;
    register(&service, node("node-c")).await;
    wait_state(&server, "system alloc on the new node", |state| {
        state
            .allocs_by_job("default", "sys")
            .iter()
            .any(|alloc| alloc.node_id == "node-c")
    })
    .await;
    assert_eq!(server.state().allocs_by_job("default", "sys").len(), 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_rpcs_check_the_node_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, service) = start(dir.path(), Duration::from_secs(30)).await;
    register(&service, node("node-a")).await;
    let wrong = service
        .handle(
            Request::NodeHeartbeat(NodeHeartbeatRequest {
                node_id: "node-a".into(),
                secret_id: "guess".into(),
                status: NodeStatus::Ready,
            }),
            &client_peer(),
        )
        .await
        .expect_err("wrong secret");
    assert!(matches!(wrong, rpc::RpcError::PermissionDenied(_)), "{wrong:?}");
    let mut impostor = node("node-a");
    impostor.secret_id = "other".into();
    let error = service
        .handle(
            Request::NodeRegister(NodeRegisterRequest { node: impostor }),
            &client_peer(),
        )
        .await
        .expect_err("re-register with another secret");
    assert!(matches!(error, rpc::RpcError::PermissionDenied(_)), "{error:?}");
    let missing = service
        .handle(
            Request::NodeHeartbeat(NodeHeartbeatRequest {
                node_id: "ghost".into(),
                secret_id: String::new(),
                status: NodeStatus::Ready,
            }),
            &client_peer(),
        )
        .await
        .expect_err("unknown node");
    assert!(matches!(missing, rpc::RpcError::NotFound(_)), "{missing:?}");
    server.shutdown().await;
}

/// Jobs go only into namespaces that exist, and a namespace goes only when
/// no live job is left in it (Nomad's rules); `default` always stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_gate_job_registration_and_deletion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _service) = start(dir.path(), Duration::from_secs(10)).await;
    let mut in_prod = job("web", JobType::Service, 1);
    in_prod.namespace = "prod".into();
    let error = server
        .register_job(in_prod.clone())
        .await
        .expect_err("no such namespace");
    assert!(
        matches!(&error, server::ServerError::BadRequest(message) if message.contains("\"prod\", which does not exist")),
        "{error}"
    );
    let index = server
        .upsert_namespaces(vec![types::Namespace {
            name: "prod".into(),
            description: "production".into(),
            ..types::Namespace::default()
        }])
        .await
        .expect("create");
    assert_eq!(
        server.state().namespace("prod").map(|namespace| namespace.create_index),
        Some(index)
    );
    let bad = types::Namespace {
        name: "no spaces".into(),
        ..types::Namespace::default()
    };
    assert!(matches!(
        server.upsert_namespaces(vec![bad]).await,
        Err(server::ServerError::BadRequest(_))
    ));
    server.register_job(in_prod).await.expect("registered in prod");

    let error = server.delete_namespace("prod").await.expect_err("a live job");
    assert!(error.to_string().contains("non-terminal job(s) (web)"), "{error}");
    let error = server.delete_namespace("default").await.expect_err("default stays");
    assert!(
        error.to_string().contains("default namespace cannot be deleted"),
        "{error}"
    );
    assert!(matches!(
        server.delete_namespace("nope").await,
        Err(server::ServerError::NotFound(_))
    ));

    server.deregister_job("prod", "web", true).await.expect("purge");
    server.delete_namespace("prod").await.expect("deleted once empty");
    assert!(server.state().namespace("prod").is_none());
    server.shutdown().await;
}

/// Four workers scheduling at once on a cluster that best fit fills node
/// by node: they plan against the same snapshot, pick the same fullest
/// nodes, and the plan applier rejects all but one (more than half of the
/// plans here). Every allocation must still be
/// placed, with no evaluation failed and no node over-committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_workers_collide_and_still_place_everything() {
    const NODES: usize = 100;
    const JOBS: usize = 50;
    const COUNT: usize = 8;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ServerConfig::dev(dir.path().to_path_buf(), "127.0.0.1:14648".to_string());
    config.num_schedulers = 4;
    config.heartbeat_ttl = Duration::from_secs(60);
    let server = Server::start(config).await.expect("server starts");
    let service = Arc::new(RpcService::new(server.clone()));
    for index in 0..NODES {
        register(&service, node(&format!("node-{index:02}"))).await;
    }
    // Four of these fill a node's 4000 MHz exactly: the cluster holds
    // exactly JOBS * COUNT of them, so a placement lost to a conflict cannot hide.
    let mut submissions = tokio::task::JoinSet::new();
    for index in 0..JOBS {
        let mut job = job(&format!("job-{index:03}"), JobType::Service, COUNT as u32);
        job.task_groups[0].tasks[0].resources.cpu = 1000;
        job.task_groups[0].tasks[0].resources.memory_mb = 64;
        let server = server.clone();
        submissions.spawn(async move { server.register_job(job).await.map(drop) });
    }
    while let Some(joined) = submissions.join_next().await {
        joined.expect("submission task").expect("job registered");
    }
    wait_state(&server, "every allocation placed", |state| {
        state.allocs().filter(|alloc| !alloc.is_terminal()).count() == JOBS * COUNT
    })
    .await;
    wait_state(&server, "every evaluation settled", |state| {
        state
            .evals()
            .all(|eval| matches!(eval.status, types::EvalStatus::Complete | types::EvalStatus::Failed))
    })
    .await;
    let state = server.state();
    let failed: Vec<_> = state
        .evals()
        .filter(|eval| eval.status == types::EvalStatus::Failed)
        .map(|eval| format!("{}: {}", eval.job_id, eval.status_description))
        .collect();
    assert!(failed.is_empty(), "failed evaluations: {failed:?}");
    for node in state.nodes() {
        let used = state.node_usage(&node.id);
        assert_eq!(used.cpu_mhz, 4000, "node {} is filled exactly: {used:?}", node.id);
    }
    let stats = server.plan_stats();
    eprintln!("plan applier: {stats:?}");
    assert!(
        stats.rejected > 0,
        "the workers never collided ({stats:?}): the test did not exercise a conflict"
    );
    assert!(stats.applied >= JOBS as u64 + stats.rejected, "{stats:?}");
    server.shutdown().await;
}
