//! Fault tests on real processes (DESIGN.md R1, R4, R6, and client
//! failover), each bounded in time:
//!
//! - R1: SIGKILL the leader while several submitters send 10,000 jobs
//!   (`DROVER_R1_JOBS` changes the count): every acknowledged job exists
//!   afterwards, a new leader is agreed within 5 s, and no node holds more
//!   than it has.
//! - R4: stop every server and start them again: the whole state (jobs,
//!   allocations, evaluations, every index) is identical, byte for byte.
//! - R6: a client stops heartbeating (SIGSTOP): its node is marked down
//!   after TTL plus grace, and its allocation is replaced on the other
//!   client.
//! - A client that falls behind: allocations stopped before the client
//!   ever saw them end `complete`, not `pending` forever.
//! - Client failover: the server a client talks to is killed; the client
//!   carries on with another server within its TTL and its task keeps
//!   running.

mod common;

use common::cluster::{Cluster, Shape, eventually, eventually_explained, sleep_job};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Short heartbeats so node failures show within seconds.
const FAST_HEARTBEATS: &str = r#"
  min_heartbeat_ttl      = "1s"
  heartbeat_grace        = "1s"
  failover_heartbeat_ttl = "3s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_no_acknowledged_job_is_lost_when_the_leader_dies() {
    let total: usize = std::env::var("DROVER_R1_JOBS")
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(10_000);
    let mut cluster = Cluster::start(&Shape {
        servers: 3,
        clients: 2,
        ..Shape::default()
    });
    let leader = cluster.leader(Duration::from_secs(30)).await;
    cluster.wait_nodes(leader, 2, Duration::from_secs(30)).await;
    let apis: Arc<Vec<api_client::Client>> = Arc::new(cluster.servers.iter().map(|server| server.api()).collect());
    let acknowledged = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let submitters = 4;
    let mut tasks = Vec::new();
    let started = Instant::now();
    for submitter in 0..submitters {
        let apis = Arc::clone(&apis);
        let acknowledged = Arc::clone(&acknowledged);
        let done = Arc::clone(&done);
        tasks.push(tokio::spawn(async move {
            let mut failures = 0usize;
            for n in (submitter..total).step_by(submitters) {
                let id = format!("r1-{n:05}");
                // 2 GiB each: only a few fit on the two nodes, the rest
                // wait in blocked evaluations, so over-commit would show.
                let job = sleep_job(&id, 1, 2048);
                // Like a real client, try the next server when one fails.
                let mut accepted = false;
                for attempt in 0..apis.len() {
                    let api = &apis[(n + attempt) % apis.len()];
                    if api.register_job(job.clone()).await.is_ok() {
                        accepted = true;
                        break;
                    }
                }
                if accepted {
                    acknowledged.lock().expect("lock").insert(id);
                } else {
                    failures += 1;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }));
    }
    // Kill the leader a third of the way in.
    eventually(Duration::from_secs(600), "a third of the submissions", async || {
        (done.load(Ordering::Relaxed) >= total / 3).then_some(())
    })
    .await;
    cluster.servers[leader].kill();
    let killed_at = Instant::now();
    let new_leader = cluster.leader(Duration::from_secs(5)).await;
    let election = killed_at.elapsed();
    assert_ne!(new_leader, leader);
    let mut failures = 0;
    for task in tasks {
        failures += task.await.expect("submitter");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    eprintln!(
        "R1: {} of {total} submissions acknowledged ({failures} refused while the leader changed) in {:?}; new leader agreed {election:?} after the kill",
        acknowledged.len(),
        started.elapsed()
    );
    assert!(election < Duration::from_secs(5), "election took {election:?}");
    assert!(acknowledged.len() + failures == total);

    // Every acknowledged job exists, on every surviving server.
    for (index, server) in cluster.servers.iter().enumerate() {
        if index == leader {
            continue;
        }
        let jobs: Vec<api_types::JobListStub> = server.api().jobs("r1-").await.expect("jobs");
        let stored: BTreeSet<String> = jobs.into_iter().map(|job| job.id).collect();
        let missing: Vec<&String> = acknowledged.difference(&stored).collect();
        assert!(
            missing.is_empty(),
            "{} acknowledged jobs lost on {}: {:?}",
            missing.len(),
            server.name,
            &missing[..missing.len().min(10)]
        );
    }

    // No node holds more memory than it has.
    let api = cluster.servers[new_leader].api();
    let nodes = api.nodes("").await.expect("nodes");
    for node in nodes {
        let detail = api.node(&node.id).await.expect("node");
        let capacity = detail.node_resources["Memory"]["MemoryMB"].as_i64().unwrap_or(0)
            - detail.reserved_resources["Memory"]["MemoryMB"].as_i64().unwrap_or(0);
        let mut used = 0;
        for stub in api.node_allocations(&node.id).await.expect("allocs") {
            if stub.desired_status != "run" || matches!(stub.client_status.as_str(), "complete" | "failed" | "lost") {
                continue;
            }
            let alloc = api.allocation(&stub.id).await.expect("alloc");
            for task in alloc.allocated_resources["Tasks"]
                .as_object()
                .into_iter()
                .flat_map(|tasks| tasks.values())
            {
                used += task["Memory"]["MemoryMB"].as_i64().unwrap_or(0);
            }
        }
        eprintln!("R1: node {} holds {used} of {capacity} MiB", node.name);
        assert!(
            used <= capacity,
            "node {} over-committed: {used} > {capacity}",
            node.name
        );
        assert!(used > 0, "nothing was placed on {}", node.name);
    }
    cluster.kill_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_the_state_is_identical_after_every_server_restarts() {
    let mut cluster = Cluster::start(&Shape {
        servers: 3,
        clients: 1,
        ..Shape::default()
    });
    let leader = cluster.leader(Duration::from_secs(30)).await;
    cluster.wait_nodes(leader, 1, Duration::from_secs(30)).await;
    let api = cluster.servers[leader].api();
    for n in 0..5 {
        api.register_job(sleep_job(&format!("r4-{n}"), 2, 32))
            .await
            .expect("register");
    }
    api.stop_job("r4-4", false).await.expect("stop one");
    eventually_explained(Duration::from_secs(60), "every allocation settled", async || {
        let allocs = api.allocations("").await.map_err(|error| error.to_string())?;
        let unsettled: Vec<String> = allocs
            .iter()
            .filter(|alloc| {
                !((alloc.desired_status == "run" && alloc.client_status == "running")
                    || (alloc.desired_status == "stop" && alloc.client_status == "complete"))
            })
            .map(|alloc| format!("{} {}/{}", alloc.name, alloc.desired_status, alloc.client_status))
            .collect();
        let evals = api.evaluations("").await.map_err(|error| error.to_string())?;
        let open_evals: Vec<String> = evals
            .iter()
            .filter(|eval| eval.status != "complete")
            .map(|eval| format!("{} {} {}", eval.job_id, eval.triggered_by, eval.status))
            .collect();
        if allocs.len() == 10 && unsettled.is_empty() && open_evals.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} allocations, unsettled {unsettled:?}, open evaluations {open_evals:?}",
                allocs.len()
            ))
        }
    })
    .await;
    let before = api.snapshot_save().await.expect("snapshot before");
    let jobs_before = api.get::<serde_json::Value>("/v1/jobs").await.expect("jobs");

    for server in &mut cluster.servers {
        server.stop();
    }
    for server in &mut cluster.servers {
        server.start();
    }
    let leader = cluster.leader(Duration::from_secs(30)).await;
    let api = cluster.servers[leader].api();
    let after = eventually(Duration::from_secs(30), "a snapshot after the restart", async || {
        api.snapshot_save().await.ok()
    })
    .await;
    let jobs_after = api.get::<serde_json::Value>("/v1/jobs").await.expect("jobs");
    assert_eq!(jobs_after.index, jobs_before.index, "the jobs index moved");
    assert_eq!(jobs_after.value, jobs_before.value);
    assert_eq!(before.len(), after.len(), "the state's size changed");
    assert!(before == after, "the state changed across the restart");
    cluster.kill_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocations_stopped_before_their_client_saw_them_end_complete() {
    let mut cluster = Cluster::start(&Shape {
        servers: 1,
        clients: 1,
        ..Shape::default()
    });
    let leader = cluster.leader(Duration::from_secs(30)).await;
    cluster.wait_nodes(leader, 1, Duration::from_secs(30)).await;
    let api = cluster.servers[leader].api();
    // The client is frozen, so it cannot fetch what is placed on it. Its
    // allocation query already waiting on the server is answered by the
    // first job's placement, so the client's next look, after it thaws,
    // shows the second job's allocations only as stopped.
    cluster.clients[0].pause();
    api.register_job(sleep_job("first", 1, 32))
        .await
        .expect("register first");
    eventually(Duration::from_secs(30), "the first job placed", async || {
        let allocs = api.job_allocations("first").await.ok()?;
        (allocs.len() == 1).then_some(())
    })
    .await;
    api.register_job(sleep_job("unseen", 2, 32)).await.expect("register");
    eventually(Duration::from_secs(30), "both allocations placed", async || {
        let allocs = api.job_allocations("unseen").await.ok()?;
        (allocs.len() == 2).then_some(())
    })
    .await;
    api.stop_job("unseen", false).await.expect("stop");
    eventually(Duration::from_secs(30), "both allocations told to stop", async || {
        let allocs = api.job_allocations("unseen").await.ok()?;
        let stopped = allocs
            .iter()
            .all(|alloc| alloc.desired_status == "stop" && alloc.client_status == "pending");
        (allocs.len() == 2 && stopped).then_some(())
    })
    .await;
    cluster.clients[0].resume();
    eventually(Duration::from_secs(30), "both allocations complete", async || {
        let allocs = api.job_allocations("unseen").await.ok()?;
        let complete = allocs.iter().all(|alloc| alloc.client_status == "complete");
        (allocs.len() == 2 && complete).then_some(())
    })
    .await;
    cluster.kill_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r6_a_silent_node_is_marked_down_and_its_allocation_replaced() {
    let mut cluster = Cluster::start(&Shape {
        servers: 3,
        clients: 2,
        server_block: FAST_HEARTBEATS.to_string(),
        ..Shape::default()
    });
    let leader = cluster.leader(Duration::from_secs(30)).await;
    let nodes = cluster.wait_nodes(leader, 2, Duration::from_secs(30)).await;
    let api = cluster.servers[leader].api();
    api.register_job(sleep_job("r6", 1, 64)).await.expect("register");
    let first = eventually(Duration::from_secs(30), "the allocation running", async || {
        let allocs = api.job_allocations("r6").await.ok()?;
        allocs.into_iter().find(|alloc| alloc.client_status == "running")
    })
    .await;
    let silent_node = nodes
        .iter()
        .find(|node| node.id == first.node_id)
        .expect("the allocation's node");
    let silent = cluster
        .clients
        .iter()
        .position(|client| client.name == silent_node.name)
        .expect("the node's agent");
    cluster.clients[silent].pause();
    let paused_at = Instant::now();
    eventually(Duration::from_secs(30), "the silent node marked down", async || {
        let node = api.node(&first.node_id).await.ok()?;
        (node.status == "down").then_some(())
    })
    .await;
    let down_after = paused_at.elapsed();
    let replacement = eventually(Duration::from_secs(30), "a replacement running elsewhere", async || {
        let allocs = api.job_allocations("r6").await.ok()?;
        let lost = allocs
            .iter()
            .any(|alloc| alloc.id == first.id && alloc.client_status == "lost");
        let replacement = allocs
            .into_iter()
            .find(|alloc| alloc.id != first.id && alloc.client_status == "running")?;
        lost.then_some(replacement)
    })
    .await;
    eprintln!(
        "R6: node marked down {down_after:?} after it fell silent; replaced by {}",
        replacement.id
    );
    // TTL 1 s (up to 2 s with jitter) plus 1 s grace: never before the
    // TTL, and within TTL + grace plus scheduling slack.
    assert!(
        down_after >= Duration::from_secs(1),
        "marked down too early: {down_after:?}"
    );
    assert!(
        down_after < Duration::from_secs(10),
        "marked down too late: {down_after:?}"
    );
    assert_ne!(replacement.node_id, first.node_id);
    cluster.clients[silent].resume();
    cluster.kill_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_fails_over_when_its_server_dies() {
    let mut cluster = Cluster::start(&Shape {
        servers: 3,
        clients: 1,
        server_block: FAST_HEARTBEATS.to_string(),
        ..Shape::default()
    });
    let leader = cluster.leader(Duration::from_secs(30)).await;
    let nodes = cluster.wait_nodes(leader, 1, Duration::from_secs(30)).await;
    let node_id = nodes[0].id.clone();
    let observer = (leader + 1) % 3;
    let api = cluster.servers[observer].api();
    api.register_job(sleep_job("steady", 1, 64)).await.expect("register");
    let alloc = eventually(Duration::from_secs(30), "the allocation running", async || {
        let allocs = api.job_allocations("steady").await.ok()?;
        allocs.into_iter().find(|alloc| alloc.client_status == "running")
    })
    .await;
    let pid = common::task_pid(&alloc.id).expect("task process");
    // The client talks to the first server of its list: kill that one.
    // Pick an observer that survives.
    let talking_to = 0;
    let observer = if observer == talking_to { 1 } else { observer };
    cluster.servers[talking_to].kill();
    let api = cluster.servers[observer].api();
    cluster.leader(Duration::from_secs(10)).await;
    // Past failover TTL plus grace (3 s + 1 s) the node must still be
    // ready: its heartbeats reach another server.
    let watch_until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < watch_until {
        if let Ok(node) = api.node(&node_id).await {
            assert_eq!(
                node.status,
                "ready",
                "the client lost its node after its server died\n{}",
                cluster.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(common::task_pid(&alloc.id), Some(pid), "the task was disturbed");
    // And it still takes new work through the other servers.
    api.register_job(sleep_job("after", 1, 64))
        .await
        .expect("register after");
    eventually(Duration::from_secs(30), "new work running on the client", async || {
        let allocs = api.job_allocations("after").await.ok()?;
        allocs
            .iter()
            .any(|alloc| alloc.client_status == "running")
            .then_some(())
    })
    .await;
    let allocs: BTreeMap<String, String> = api
        .job_allocations("steady")
        .await
        .expect("allocs")
        .into_iter()
        .map(|alloc| (alloc.id, alloc.client_status))
        .collect();
    assert_eq!(allocs, BTreeMap::from([(alloc.id.clone(), "running".to_string())]));
    cluster.kill_all();
}
