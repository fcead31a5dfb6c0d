//! R2: three servers in their own network namespaces. One is cut off from
//! the other two (its firewall drops their packets), then healed. While
//! cut off it commits nothing: writes sent to it fail and its applied
//! index stands still, while the majority goes on committing. After
//! healing it catches up, and all three hold one history: the same state,
//! byte for byte.

mod common;

use common::cluster::{Cluster, eventually, sleep_job};
use common::netns::Hosts;
use std::time::Duration;

async fn applied_index(api: &api_client::Client) -> Option<u64> {
    let agent = api.agent_self().await.ok()?;
    agent["stats"]["raft"]["applied_index"].as_str()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2_a_partitioned_minority_commits_nothing_and_heals_to_one_history() {
    let hosts = Hosts::create(3);
    let mut cluster = Cluster::start_on_hosts(&hosts, 3, "");
    let leader = cluster.leader(Duration::from_secs(30)).await;
    let api = cluster.servers[leader].api();
    for n in 0..3 {
        api.register_job(sleep_job(&format!("before-{n}"), 1, 64))
            .await
            .expect("register");
    }
    // Cut off a server that is not the leader (a cut-off leader steps
    // down; the same test covers it with the minority being a follower).
    let minority = (leader + 1) % 3;
    let majority: Vec<usize> = (0..3).filter(|index| *index != minority).collect();
    let minority_api = cluster.servers[minority].api();
    eventually(Duration::from_secs(10), "the minority to catch up first", async || {
        let jobs = minority_api
            .get::<Vec<api_types::JobListStub>>("/v1/jobs?stale")
            .await
            .ok()?;
        (jobs.value.len() == 3).then_some(())
    })
    .await;
    hosts.isolate(minority);
    let frozen = applied_index(&minority_api).await.expect("applied index");

    // The majority goes on committing (electing a new leader if needed).
    let majority_api = cluster.servers[majority[0]].api();
    for n in 0..5 {
        let id = format!("during-{n}");
        let written = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                if majority_api.register_job(sleep_job(&id, 1, 64)).await.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert!(
            written.is_ok(),
            "the majority took no write {id} within 15 s (minority {minority}, leader was {leader}):\n{}",
            cluster.logs()
        );
    }
    // The minority refuses writes: no leader is reachable from it.
    let refused = minority_api.register_job(sleep_job("minority", 1, 64)).await;
    assert!(refused.is_err(), "the cut-off server acknowledged a write");
    let stale: Vec<api_types::JobListStub> = minority_api
        .get::<Vec<api_types::JobListStub>>("/v1/jobs?stale")
        .await
        .expect("stale read")
        .value;
    assert_eq!(stale.len(), 3, "the minority applied entries while cut off");
    assert_eq!(
        applied_index(&minority_api).await,
        Some(frozen),
        "the minority's applied index moved"
    );

    hosts.heal(minority);
    eventually(Duration::from_secs(30), "the minority to catch up", async || {
        let jobs = minority_api
            .get::<Vec<api_types::JobListStub>>("/v1/jobs?stale")
            .await
            .ok()?;
        (jobs.value.len() == 8).then_some(())
    })
    .await;
    cluster.leader(Duration::from_secs(30)).await;
    // One history: once the cluster is quiet, every server's state is the
    // same, byte for byte (each read is linearizable, then local).
    let apis: Vec<api_client::Client> = cluster.servers.iter().map(|server| server.api()).collect();
    eventually(
        Duration::from_secs(30),
        "every server to hold the same state",
        async || {
            let mut states = Vec::new();
            for api in &apis {
                states.push(api.snapshot_save().await.ok()?);
            }
            states.windows(2).all(|pair| pair[0] == pair[1]).then_some(())
        },
    )
    .await;
    let jobs: Vec<api_types::JobListStub> = majority_api.jobs("").await.expect("jobs");
    assert!(
        !jobs.iter().any(|job| job.id == "minority"),
        "the refused write appeared"
    );
    cluster.kill_all();
}
