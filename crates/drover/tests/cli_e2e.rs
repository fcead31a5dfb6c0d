//! The `drover` binary's CLI against a real dev agent: `job run` returns once
//! the task runs, `alloc logs` shows and follows its output, short ID
//! prefixes work, `job stop` ends the process, and `job validate` prints
//! every error with its path and line:column.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn drover() -> Command {
    Command::new(env!("CARGO_BIN_EXE_drover"))
}

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

async fn run(address: &str, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_drover"));
    command.arg("--address").arg(address).args(args).kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("command finishes in time")
        .expect("drover runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_logs_follow_and_stop_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(dir.path()).await;
    let address = format!("http://{}", agent.http_addr);

    let hello = repo_file("examples/hello.nomad.hcl");
    let output = run(&address, &["job", "run", hello.to_str().expect("utf-8 path")]).await;
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("==> Job \"hello\" is running"), "{printed}");

    let allocs = api_client::Client::new(address.clone())
        .job_allocations("hello")
        .await
        .expect("allocations");
    let running: Vec<_> = allocs.iter().filter(|alloc| alloc.client_status == "running").collect();
    assert_eq!(running.len(), 1, "{allocs:#?}");
    let alloc_id = running[0].id.clone();
    let short = &alloc_id[..8];

    let status = run(&address, &["job", "status", "hello"]).await;
    assert!(text(&status).contains(&format!("{short}  ")), "{}", text(&status));
    let alloc_status = run(&address, &["alloc", "status", short]).await;
    assert!(
        text(&alloc_status).contains("Task \"hello\" is \"running\""),
        "{}",
        text(&alloc_status)
    );
    let node_status = run(&address, &["node", "status"]).await;
    assert!(text(&node_status).contains("ready"), "{}", text(&node_status));

    // Follow the log: lines keep arriving after the command started.
    let mut follower = drover()
        .args(["--address", &address, "alloc", "logs", "-f", short])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn follower");
    let stdout = follower.stdout.take().expect("piped stdout");
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("log line");
            lines.push(line);
            if lines.len() >= 3 {
                break;
            }
        }
        lines
    });
    let lines = tokio::time::timeout(Duration::from_secs(30), lines)
        .await
        .expect("three lines followed in time")
        .expect("join");
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(
        lines
            .iter()
            .all(|line| line.starts_with(&format!("hello from {alloc_id} line "))),
        "{lines:?}"
    );
    let logs = run(&address, &["alloc", "logs", short, "hello"]).await;
    assert!(text(&logs).contains("line 1\n"), "{}", text(&logs));

    let pid = common::task_pid(&alloc_id).expect("task pid");
    let stop = run(&address, &["job", "stop", "hello"]).await;
    assert!(stop.status.success(), "{}", text(&stop));
    let started = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "pid {pid} survived the stop"
        );
        // Waits for the kernel to reap the killed process; bounded above.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.shutdown().await;
}

#[test]
fn validate_prints_every_error_with_path_and_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("broken.nomad.hcl");
    std::fs::write(
        &file,
        r#"job "web" {
  type = "service"
  group "api" {
    count = 2
    task "server" {
      resources {
        memory = 1
      }
    }
  }
}
"#,
    )
    .expect("write job");
    let output = drover()
        .args(["job", "validate", file.to_str().expect("utf-8 path")])
        .output()
        .expect("run validate");
    let printed = text(&output);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(printed.contains("task \"server\""), "{printed}");
    assert!(printed.contains("driver"), "missing driver is reported: {printed}");
    assert!(printed.contains("resources.memory"), "memory is reported: {printed}");
    assert!(printed.contains(":7:"), "memory error points at line 7: {printed}");

    let good = repo_file("examples/batch.nomad.hcl");
    let output = drover()
        .args(["job", "validate", good.to_str().expect("utf-8 path")])
        .output()
        .expect("run validate");
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("Job validation successful"));

    let output = drover()
        .args(["job", "run", "--output", good.to_str().expect("utf-8 path")])
        .output()
        .expect("run --output");
    assert!(output.status.success(), "{}", text(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON job");
    assert_eq!(json["Job"]["ID"], "batch");
    assert_eq!(json["Job"]["Type"], "batch");
}
