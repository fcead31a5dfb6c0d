//! Isolation through a real dev agent: a raw_exec task's double-forked
//! daemon is gone after `drover job stop` (the task's cgroup holds it), and
//! an exec task runs as process 1 of its own PID namespace.

mod common;

use api_client::Client;
use api_types::AllocListStub;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(60);

async fn running_alloc(client: &Client, job: &str) -> AllocListStub {
    let started = Instant::now();
    loop {
        let allocs = client.allocations("").await.expect("allocations");
        if let Some(alloc) = allocs
            .iter()
            .find(|alloc| alloc.job_id == job && alloc.client_status == "running")
        {
            return alloc.clone();
        }
        assert!(started.elapsed() < DEADLINE, "no running allocation of {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_file(path: &Path) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        assert!(started.elapsed() < DEADLINE, "{} never written", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rfind(')').map(|at| !stat[at + 1..].trim_start().starts_with('Z')))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_stop_kills_a_double_forked_raw_exec_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(dir.path()).await;
    let address = format!("http://{}", agent.http_addr);
    let client = Client::new(address.clone());
    let hcl = r#"
job "forker" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "setsid sh -c 'echo $$ > $NOMAD_ALLOC_DIR/daemon.pid; exec sleep 300' & exec sleep 300"]
      }
    }
  }
}
"#;
    let job = jobspec::parse(hcl, "forker.nomad.hcl", &jobspec::ParseOptions::default()).expect("job parses");
    client.register_job(jobspec::job_to_api(&job)).await.expect("register");
    let alloc = running_alloc(&client, "forker").await;
    let pid_file = dir.path().join("alloc").join(&alloc.id).join("alloc/daemon.pid");
    let daemon: i32 = wait_for_file(&pid_file).await.trim().parse().expect("pid");
    assert!(alive(daemon));
    let status = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["job", "stop", "--address", &address, "forker"])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("drover job stop");
    assert!(status.success());
    let started = Instant::now();
    while alive(daemon) {
        assert!(started.elapsed() < DEADLINE, "the daemon {daemon} outlived job stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_task_is_process_one_of_its_namespace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(dir.path()).await;
    let client = Client::new(format!("http://{}", agent.http_addr));
    let hcl = r#"
job "isolated" {
  group "g" {
    task "t" {
      driver = "exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo pid=$$ dir=$NOMAD_ALLOC_DIR user=$(id -un) > /alloc/data/report; exec sleep 300"]
      }
    }
  }
}
"#;
    let job = jobspec::parse(hcl, "isolated.nomad.hcl", &jobspec::ParseOptions::default()).expect("job parses");
    client.register_job(jobspec::job_to_api(&job)).await.expect("register");
    let alloc = running_alloc(&client, "isolated").await;
    let report = dir.path().join("alloc").join(&alloc.id).join("alloc/data/report");
    assert_eq!(wait_for_file(&report).await, "pid=1 dir=/alloc user=nobody\n");
    client.stop_job("isolated", false).await.expect("stop");
    agent.shutdown().await;
}
