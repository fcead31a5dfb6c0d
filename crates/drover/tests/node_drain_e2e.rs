//! `drover node drain` on a real cluster (one server, two clients): a
//! service group of 4 with `migrate { max_parallel = 2 }` moves off the
//! drained node in batches of 2, never dropping below `count -
//! max_parallel` running allocations, and the drain then completes
//! (`DrainStrategy` null, `LastDrain` complete).

mod common;

use common::cluster::{Cluster, Shape, eventually, job_json};
use std::process::Output;
use std::time::{Duration, Instant};

async fn drover(address: &str, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_drover"));
    command.arg("-address").arg(address).args(args).kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("command finishes in time")
        .expect("drover runs")
}

const JOB: &str = r#"
job "web" {
  group "api" {
    count = 4
    migrate {
      max_parallel     = 2
      health_check     = "task_states"
      min_healthy_time = "1s"
      healthy_deadline = "30s"
    }
    task "server" {
      driver = "raw_exec"
      kill_timeout = "1s"
      config {
        command = "/bin/sleep"
        args    = ["600"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_migrates_in_batches_of_max_parallel() {
    let mut cluster = Cluster::start(&Shape {
        servers: 1,
        clients: 2,
        ..Shape::default()
    });
    let api = cluster.servers[0].api();
    let address = format!("http://{}", cluster.servers[0].http);
    let nodes = cluster.wait_nodes(0, 2, Duration::from_secs(30)).await;
    let drained = nodes.iter().find(|node| node.name == "c1").expect("c1").id.clone();
    let other = nodes.iter().find(|node| node.name == "c2").expect("c2").id.clone();

    // Everything starts on c1.
    let output = drover(&address, &["node", "eligibility", "-disable", &other]).await;
    assert!(output.status.success(), "{output:?}");
    api.register_job(job_json(JOB)).await.expect("register");
    eventually(Duration::from_secs(20), "4 allocations running on c1", async || {
        let allocs = api.job_allocations("web").await.ok()?;
        (allocs
            .iter()
            .filter(|alloc| alloc.client_status == "running" && alloc.node_id == drained)
            .count()
            == 4)
            .then_some(())
    })
    .await;
    let output = drover(&address, &["node", "eligibility", "-enable", &other]).await;
    assert!(output.status.success(), "{output:?}");
    // Healthy means running for min_healthy_time (1 s).
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let output = drover(
        &address,
        &[
            "node",
            "drain",
            "-enable",
            "-yes",
            "-detach",
            "-deadline",
            "1m",
            &drained,
        ],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let node = api.node(&drained).await.expect("node");
    assert!(node.drain_strategy.is_some(), "{node:?}");
    assert_eq!(node.scheduling_eligibility, "ineligible");

    // Sample until the drain completes.
    let mut stopped_seen = vec![0usize];
    let mut fewest_running = usize::MAX;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let allocs = api.job_allocations("web").await.expect("allocations");
        let stopped = allocs
            .iter()
            .filter(|alloc| alloc.node_id == drained && alloc.desired_status != "run")
            .count();
        let running = allocs
            .iter()
            .filter(|alloc| alloc.desired_status == "run" && alloc.client_status == "running")
            .count();
        fewest_running = fewest_running.min(running);
        if stopped_seen.last() != Some(&stopped) {
            stopped_seen.push(stopped);
        }
        let node = api.node(&drained).await.expect("node");
        if node.drain_strategy.is_none() {
            assert_eq!(
                node.last_drain.as_ref().map(|last| last.status.as_str()),
                Some("complete")
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "drain not complete; stopped counts seen {stopped_seen:?}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("stopped on the drained node, as sampled: {stopped_seen:?}; fewest running: {fewest_running}");
    assert_eq!(stopped_seen.last(), Some(&4), "{stopped_seen:?}");
    assert!(
        stopped_seen.windows(2).all(|pair| pair[1] - pair[0] <= 2),
        "more than max_parallel moved at once: {stopped_seen:?}"
    );
    assert!(
        stopped_seen.contains(&2),
        "no batch of 2 was seen on its own: {stopped_seen:?}"
    );
    assert!(
        fewest_running >= 2,
        "fewer than count - max_parallel ran: {fewest_running}"
    );
    let allocs = api.job_allocations("web").await.expect("allocations");
    let on_other = allocs
        .iter()
        .filter(|alloc| alloc.desired_status == "run" && alloc.node_id == other)
        .count();
    assert_eq!(on_other, 4, "{allocs:#?}");

    // Ending a drain that is over is harmless; it makes the node eligible.
    let output = drover(&address, &["node", "drain", "-disable", &drained]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        api.node(&drained).await.expect("node").scheduling_eligibility,
        "eligible"
    );
    // A bad body is refused.
    let refused = api
        .put_json_value::<_, serde_json::Value>(
            &format!("/v1/node/{drained}/drain"),
            &serde_json::json!({ "DrainSpec": { "Deadline": 1 }, "MarkEligible": true }),
        )
        .await
        .expect_err("refused");
    assert_eq!(refused.status(), Some(400));
    cluster.kill_all();
}
