//! The node simulator against real server processes (issue 9):
//! - `drover-bench e2e` on a small cluster (3 servers, 200 simulated nodes,
//!   20 jobs × 50) places every allocation, every one is reported running
//!   by its node, and no evaluation fails. A correctness check only: no
//!   timing is asserted.
//! - Simulated faults reach the servers: a failed task shows as a failed
//!   allocation, and a silent node is marked down, its allocations lost
//!   and replaced on other simulated nodes; when it comes back it is ready
//!   again and learns its allocations were lost.

mod common;

use common::cluster::{Cluster, Shape, eventually, job_json};
use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::time::Duration;

fn result_fields(stdout: &str) -> BTreeMap<String, String> {
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("RESULT "), "last line is not RESULT: {stdout}");
    last.split_whitespace()
        .skip(1)
        .filter_map(|field| field.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

#[test]
fn e2e_places_every_allocation_and_every_one_runs() {
    let output = Command::new(env!("CARGO_BIN_EXE_drover-bench"))
        .args([
            "e2e",
            "--servers",
            "3",
            "--nodes",
            "200",
            "--jobs",
            "20",
            "--count",
            "50",
            "--timeout-secs",
            "90",
            "--stall-secs",
            "20",
            "--verify-http",
            "true",
            "--drover",
            env!("CARGO_BIN_EXE_drover"),
        ])
        .output()
        .expect("run drover-bench e2e");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "e2e failed\n{stdout}\n{stderr}");
    let fields = result_fields(&stdout);
    let field = |key: &str| fields.get(key).map(String::as_str).unwrap_or_default();
    assert_eq!(field("failed_evals"), "0", "{stdout}");
    assert_eq!(field("unplaced"), "0", "{stdout}");
    assert_eq!(field("placements"), "1000", "{stdout}");
    assert_eq!(field("expected"), "1000", "{stdout}");
    // Reported running by the simulated nodes, and seen running by the
    // servers over HTTP.
    assert_eq!(field("running"), "1000", "{stdout}");
    assert_eq!(field("http_running"), "1000", "{stdout}");
    for key in ["seconds", "placements_per_sec", "leader_rss_mib", "raft_log_mib"] {
        let value: f64 = field(key).parse().unwrap_or(-1.0);
        assert!(value > 0.0, "{key}={value}\n{stdout}");
    }
}

const FAST_HEARTBEATS: &str = r#"
  min_heartbeat_ttl      = "1s"
  heartbeat_grace        = "1s"
  failover_heartbeat_ttl = "3s"
"#;

async fn job_allocs(api: &api_client::Client, job: &str) -> Vec<api_types::AllocListStub> {
    api.job_allocations(job).await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_task_and_node_failures_reach_the_servers() {
    let cluster = Cluster::start(&Shape {
        servers: 3,
        clients: 0,
        server_block: FAST_HEARTBEATS.to_string(),
        server_config: String::new(),
        client_config: String::new(),
    });
    let leader = cluster.leader(Duration::from_secs(30)).await;
    let servers: Vec<String> = cluster.servers.iter().filter_map(|server| server.rpc.clone()).collect();
    let mut config = sim::SimConfig::new(servers, 30, 7);
    config.nodes_per_client = 8;
    config.run_delay = Duration::from_millis(50);
    config.alloc_query_wait = Duration::from_secs(5);
    let simulator = sim::Simulator::start(config).expect("simulator starts");
    assert_eq!(simulator.wait_registered(Duration::from_secs(30)).await, 30);
    cluster.wait_nodes(leader, 30, Duration::from_secs(30)).await;

    let api = cluster.servers[leader].api();
    api.register_job(job_json(
        r#"
job "simfault" {
  group "g" {
    count = 6
    task "t" {
      driver = "exec"
      config {
        command = "/bin/app"
      }
      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
"#,
    ))
    .await
    .expect("register");
    let running = eventually(Duration::from_secs(30), "6 running allocations", async || {
        let allocs = job_allocs(&api, "simfault").await;
        let running: Vec<_> = allocs
            .into_iter()
            .filter(|alloc| alloc.client_status == "running")
            .collect();
        (running.len() == 6).then_some(running)
    })
    .await;
    assert!(simulator.stats().running >= 6, "{:?}", simulator.stats());

    // A task fails: the servers see the allocation failed.
    let failing = running[0].id.clone();
    assert!(simulator.fail_alloc(&failing));
    assert!(!simulator.fail_alloc("no-such-alloc"));
    eventually(Duration::from_secs(20), "the failed allocation", async || {
        let alloc = api.allocation(&failing).await.ok()?;
        (alloc.client_status == "failed").then_some(())
    })
    .await;

    // A node holding another allocation goes silent: it is marked down,
    // its allocations lost and replaced elsewhere.
    let victim_node = running[1].node_id.clone();
    let victim = simulator.node_index(&victim_node).expect("a simulated node");
    let on_victim: HashSet<String> = running
        .iter()
        .filter(|alloc| alloc.node_id == victim_node && alloc.id != failing)
        .map(|alloc| alloc.id.clone())
        .collect();
    assert!(!on_victim.is_empty());
    assert!(simulator.silence_node(victim));
    eventually(Duration::from_secs(30), "the silent node marked down", async || {
        let node = api.node(&victim_node).await.ok()?;
        (node.status == "down").then_some(())
    })
    .await;
    eventually(Duration::from_secs(30), "replacements running elsewhere", async || {
        let allocs = job_allocs(&api, "simfault").await;
        let lost = allocs
            .iter()
            .filter(|alloc| on_victim.contains(&alloc.id) && alloc.client_status == "lost")
            .count();
        let running_elsewhere = allocs
            .iter()
            .filter(|alloc| alloc.client_status == "running" && alloc.node_id != victim_node)
            .count();
        // Six wanted: one failed (rescheduled after its delay), the lost
        // ones replaced at once.
        (lost == on_victim.len() && running_elsewhere >= 5).then_some(())
    })
    .await;

    // The node comes back: ready again, and it learns its allocations
    // were lost.
    assert!(simulator.revive_node(victim));
    eventually(Duration::from_secs(30), "the node ready again", async || {
        let node = api.node(&victim_node).await.ok()?;
        (node.status == "ready").then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(30),
        "lost allocations seen by the node",
        async || (simulator.stats().lost >= on_victim.len() as u64).then_some(()),
    )
    .await;
    assert!(
        simulator.running_allocs(victim).is_empty(),
        "{:?}",
        simulator.running_allocs(victim)
    );
    assert!(simulator.stats().failed >= 1);
    // The simulator's count of live allocations matches the servers'.
    eventually(Duration::from_secs(30), "live allocations agree", async || {
        let running = job_allocs(&api, "simfault")
            .await
            .iter()
            .filter(|alloc| alloc.client_status == "running")
            .count() as u64;
        (simulator.stats().live == running).then_some(())
    })
    .await;
    simulator.shutdown().await;
}

/// The server PIDs `drover-bench e2e` printed.
fn server_pids(stdout: &str) -> Vec<u32> {
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("server_pids="))
        .unwrap_or_else(|| panic!("no server_pids line in {stdout}"));
    let pids: Vec<u32> = line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .split(',')
        .map(|pid| pid.parse().expect("a pid"))
        .collect();
    assert_eq!(pids.len(), 3, "{line}");
    pids
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn e2e_command(timeout_secs: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_drover-bench"));
    command.args([
        "e2e",
        "--servers",
        "3",
        "--nodes",
        "50",
        "--jobs",
        "2000",
        "--count",
        "1000",
        "--timeout-secs",
        timeout_secs,
        "--drover",
        env!("CARGO_BIN_EXE_drover"),
    ]);
    command
}

#[test]
fn e2e_kills_its_servers_when_it_times_out() {
    let output = e2e_command("2").output().expect("run drover-bench e2e");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}");
    assert!(stderr.contains("no result within"), "{stderr}");
    for pid in server_pids(&stdout) {
        assert!(!alive(pid), "server {pid} outlived drover-bench\n{stdout}");
    }
}

#[test]
fn e2e_kills_its_servers_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let mut child = e2e_command("120")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start drover-bench e2e");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a first line").expect("read");
    let pids = server_pids(&first);
    assert!(pids.iter().all(|pid| alive(*pid)), "{first}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "drover-bench did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!exit.success());
    for pid in pids {
        assert!(!alive(pid), "server {pid} outlived drover-bench");
    }
}
