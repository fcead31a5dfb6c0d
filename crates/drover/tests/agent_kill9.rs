//! `kill -9` the agent process while a task runs, start it again on the same
//! data dir: the task keeps running under the same pid with no restart, its
//! log keeps growing (its collector is a process of its own), and the state (jobs, allocations, indexes) is intact
//! (DESIGN.md R3, R4).

mod common;

use api_client::Client;
use api_types::AllocListStub;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

struct AgentProcess(Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("free port")
}

fn spawn_agent(data_dir: &Path, http: u16, rpc: u16) -> AgentProcess {
    AgentProcess(
        Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(["agent", "--dev", "--log-level", "warn"])
            .args(["--http-addr", &format!("127.0.0.1:{http}")])
            .args(["--rpc-addr", &format!("127.0.0.1:{rpc}")])
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn agent"),
    )
}

/// Waits until the agent answers with a ready node (it needs a moment to
/// bind and elect itself; each attempt is a real request).
async fn wait_ready(client: &Client) {
    let started = Instant::now();
    loop {
        if let Ok(nodes) = client.nodes("").await
            && nodes.iter().any(|node| node.status == "ready")
        {
            return;
        }
        assert!(started.elapsed() < DEADLINE, "agent never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn running_alloc(client: &Client, job: &str) -> AllocListStub {
    let started = Instant::now();
    let mut index = 0;
    loop {
        let answer = client
            .get_blocking::<Vec<AllocListStub>>(&format!("/v1/job/{job}/allocations"), index, Duration::from_secs(2))
            .await
            .expect("allocations");
        if let Some(alloc) = answer.value.into_iter().find(|alloc| alloc.client_status == "running") {
            return alloc;
        }
        assert!(started.elapsed() < DEADLINE, "no running allocation");
        index = answer.index;
    }
}

fn log_len(data_dir: &Path, alloc_id: &str) -> u64 {
    std::fs::metadata(data_dir.join("alloc").join(alloc_id).join("alloc/logs/tick.stdout.0"))
        .map(|meta| meta.len())
        .unwrap_or(0)
}

const JOB: &str = r#"
job "survivor" {
  group "g" {
    task "tick" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "while true; do echo tick; sleep 0.1; done"]
      }
    }
  }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_survive_a_kill_9_of_the_agent_and_are_reattached() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (http, rpc) = (free_port(), free_port());
    let client = Client::new(format!("http://127.0.0.1:{http}"));
    let mut agent = spawn_agent(dir.path(), http, rpc);
    wait_ready(&client).await;
    let job = jobspec::parse(JOB, "survivor.nomad.hcl", &jobspec::ParseOptions::default()).expect("job parses");
    client.register_job(jobspec::job_to_api(&job)).await.expect("register");
    let alloc = running_alloc(&client, "survivor").await;
    let pid = common::task_pid(&alloc.id).expect("task pid");
    let jobs_before = client.jobs("").await.expect("jobs");

    // SIGKILL: no shutdown code runs in the agent.
    agent.0.kill().expect("kill -9");
    agent.0.wait().expect("reap agent");
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the task died with the agent"
    );
    let log_at_kill = log_len(dir.path(), &alloc.id);
    // The output goes through the collector's FIFO, and the collector is a
    // process of its own that outlived the agent.
    let logs_dir = dir.path().join("alloc").join(&alloc.id).join("alloc/logs");
    assert!(logs_dir.join(".tick.stdout.fifo").exists());
    let collector: i32 = std::fs::read_to_string(logs_dir.join(".tick.logmon"))
        .expect("collector pid file")
        .split_whitespace()
        .next()
        .and_then(|pid| pid.parse().ok())
        .expect("collector pid");
    assert!(
        Path::new(&format!("/proc/{collector}")).exists(),
        "the collector died with the agent"
    );

    let _agent = spawn_agent(dir.path(), http, rpc);
    wait_ready(&client).await;
    let after = running_alloc(&client, "survivor").await;
    assert_eq!(after.id, alloc.id, "the same allocation still runs");
    assert_eq!(
        common::task_pid(&alloc.id),
        Some(pid),
        "the task was reattached, not restarted"
    );
    let full = client.allocation(&alloc.id).await.expect("alloc");
    assert_eq!(full.task_states["tick"].restarts, 0);
    assert_eq!(full.task_states["tick"].state, "running");
    let jobs_after = client.jobs("").await.expect("jobs");
    assert_eq!(
        jobs_before.iter().map(|j| (&j.id, j.create_index)).collect::<Vec<_>>(),
        jobs_after.iter().map(|j| (&j.id, j.create_index)).collect::<Vec<_>>()
    );
    // The log keeps growing: the collector kept copying while the agent
    // was down, and still does.
    let started = Instant::now();
    while log_len(dir.path(), &alloc.id) <= log_at_kill {
        assert!(started.elapsed() < DEADLINE, "log stopped growing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client.stop_job("survivor", false).await.expect("stop");
    let started = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(started.elapsed() < DEADLINE, "reattached task survived the stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
