//! Three servers and two clients as real processes on loopback: a job
//! submitted to a follower runs on a client; the leader is killed
//! (SIGKILL) and the survivors accept a new job within 5 s while the first
//! job's allocation keeps running with the same ID; the killed server
//! restarts, rejoins and catches up.

mod common;

use common::cluster::{Cluster, Shape, eventually, sleep_job};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_survives_the_loss_of_the_leader_and_the_server_rejoins() {
    let mut cluster = Cluster::start(&Shape {
        servers: 3,
        clients: 2,
        ..Shape::default()
    });
    let leader = cluster.leader(Duration::from_secs(30)).await;
    let follower = (leader + 1) % 3;
    cluster.wait_nodes(follower, 2, Duration::from_secs(30)).await;

    // Submitted to a follower: forwarded to the leader, placed on a client.
    let api = cluster.servers[follower].api();
    api.register_job(sleep_job("first", 1, 64))
        .await
        .expect("register via a follower");
    let first = eventually(Duration::from_secs(30), "the first allocation running", async || {
        let allocs = api.job_allocations("first").await.ok()?;
        allocs.into_iter().find(|alloc| alloc.client_status == "running")
    })
    .await;
    let pid = common::task_pid(&first.id).expect("the task's process");

    // SIGKILL the leader: within 5 s the survivors take a new job.
    cluster.servers[leader].kill();
    let killed_at = Instant::now();
    let survivor = cluster.servers[follower].api();
    loop {
        if survivor.register_job(sleep_job("second", 1, 64)).await.is_ok() {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(5),
            "no new job accepted within 5s of the leader's death\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = killed_at.elapsed();
    eprintln!("a new job was accepted {took:?} after the leader was killed");
    assert!(took < Duration::from_secs(5));
    let new_leader = cluster.leader(Duration::from_secs(10)).await;
    assert_ne!(new_leader, leader);
    eventually(Duration::from_secs(30), "the second allocation running", async || {
        let allocs = survivor.job_allocations("second").await.ok()?;
        allocs
            .iter()
            .any(|alloc| alloc.client_status == "running")
            .then_some(())
    })
    .await;
    // The first allocation is untouched: same ID, still running, same process.
    let allocs = survivor.job_allocations("first").await.expect("allocations");
    assert_eq!(allocs.len(), 1, "{allocs:?}");
    assert_eq!(allocs[0].id, first.id);
    assert_eq!(allocs[0].client_status, "running");
    assert_eq!(common::task_pid(&first.id), Some(pid), "the task was restarted");

    // The killed server restarts, rejoins and catches up.
    cluster.servers[leader].start();
    let rejoined = cluster.servers[leader].api();
    eventually(
        Duration::from_secs(30),
        "the restarted server to catch up",
        async || {
            let jobs = rejoined
                .get::<Vec<api_types::JobListStub>>("/v1/jobs?stale")
                .await
                .ok()?;
            (jobs.value.len() == 2).then_some(())
        },
    )
    .await;
    let peers: Vec<String> = rejoined.get("/v1/status/peers").await.expect("peers").value;
    assert_eq!(peers.len(), 3, "{peers:?}");
    assert_eq!(cluster.leader(Duration::from_secs(10)).await, new_leader);
    cluster.kill_all();
}
