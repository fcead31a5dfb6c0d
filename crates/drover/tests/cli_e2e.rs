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

    // alloc fs: a directory is listed, a file printed.
    let listing = run(&address, &["alloc", "fs", short, "alloc/logs"]).await;
    assert!(listing.status.success(), "{}", text(&listing));
    assert!(text(&listing).contains("hello.stdout.0"), "{}", text(&listing));
    let cat = run(&address, &["alloc", "fs", short, "alloc/logs/hello.stdout.0"]).await;
    assert!(
        text(&cat).starts_with(&format!("hello from {alloc_id} line 1\n")),
        "{}",
        text(&cat)
    );
    let escape = run(&address, &["alloc", "fs", short, "../../client"]).await;
    assert!(!escape.status.success(), "{}", text(&escape));

    // alloc signal (a harmless one), then alloc restart: the task starts
    // again in place, with a new process.
    let signal = run(&address, &["alloc", "signal", "-s", "SIGCONT", short, "hello"]).await;
    assert!(signal.status.success(), "{}", text(&signal));
    let old_pid = common::task_pid(&alloc_id).expect("task pid");
    let restart = run(&address, &["alloc", "restart", short]).await;
    assert!(restart.status.success(), "{}", text(&restart));
    let started = Instant::now();
    while common::task_pid(&alloc_id).is_none_or(|pid| pid == old_pid) {
        assert!(started.elapsed() < Duration::from_secs(30), "the task did not restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alloc_status = run(&address, &["alloc", "status", short]).await;
    assert!(
        text(&alloc_status).contains("Restart Signaled"),
        "{}",
        text(&alloc_status)
    );

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

/// `namespace apply|list|status|delete`, and the rules behind them: a job
/// needs its namespace to exist, and a namespace with a live job stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(dir.path()).await;
    let address = format!("http://{}", agent.http_addr);
    let client = api_client::Client::new(address.clone());

    let list = run(&address, &["namespace", "list"]).await;
    assert!(
        text(&list).contains("default  Default shared namespace"),
        "{}",
        text(&list)
    );

    let hello = std::fs::read_to_string(repo_file("examples/hello.nomad.hcl")).expect("example");
    let mut job = jobspec::parse(&hello, "hello.nomad.hcl", &jobspec::ParseOptions::default()).expect("parses");
    job.namespace = "prod".into();
    let job = jobspec::job_to_api(&job);
    let error = client.register_job(job.clone()).await.expect_err("no such namespace");
    assert_eq!(error.status(), Some(400), "{error}");
    assert!(
        error.to_string().contains("namespace \"prod\", which does not exist"),
        "{error}"
    );

    let apply = run(
        &address,
        &[
            "namespace",
            "apply",
            "--description",
            "production",
            "--meta",
            "team=a",
            "prod",
        ],
    )
    .await;
    assert!(apply.status.success(), "{}", text(&apply));
    assert!(
        text(&apply).contains("Successfully applied namespace \"prod\"!"),
        "{}",
        text(&apply)
    );
    // Applying again keeps what the flags leave alone.
    let apply = run(&address, &["namespace", "apply", "--meta", "owner=ops", "prod"]).await;
    assert!(apply.status.success(), "{}", text(&apply));
    let status = run(&address, &["namespace", "status", "pro"]).await;
    let printed = text(&status);
    assert!(printed.contains("Description = production"), "{printed}");
    assert!(
        printed.contains("owner = ops") && printed.contains("team  = a"),
        "{printed}"
    );
    let bad = run(&address, &["namespace", "apply", "no_underscores"]).await;
    assert!(!bad.status.success());
    assert!(text(&bad).contains("only letters, digits and dashes"), "{}", text(&bad));

    client.register_job(job).await.expect("registered in prod");
    let refused = run(&address, &["namespace", "delete", "prod"]).await;
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("non-terminal job(s) (hello)"),
        "{}",
        text(&refused)
    );
    let refused = run(&address, &["namespace", "delete", "default"]).await;
    assert!(
        text(&refused).contains("default namespace cannot be deleted"),
        "{}",
        text(&refused)
    );

    let purge = reqwest::Client::new()
        .delete(format!("{address}/v1/job/hello?namespace=prod&purge=true"))
        .send()
        .await
        .expect("purge");
    assert_eq!(purge.status(), 200);
    // The task is stopped before the agent goes (its processes outlive it).
    let started = Instant::now();
    loop {
        let allocs: Vec<api_types::AllocListStub> = client
            .get("/v1/allocations?namespace=*")
            .await
            .expect("allocations")
            .value;
        if allocs
            .iter()
            .all(|alloc| !matches!(alloc.client_status.as_str(), "pending" | "running"))
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "still running: {allocs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deleted = run(&address, &["namespace", "delete", "prod"]).await;
    assert!(deleted.status.success(), "{}", text(&deleted));
    assert!(text(&deleted).contains("Successfully deleted namespace \"prod\"!"));
    let list = run(&address, &["namespace", "list"]).await;
    assert!(!text(&list).contains("prod"), "{}", text(&list));
    agent.shutdown().await;
}

/// A job that uses Vault is refused by a real agent at `job run`, with the
/// block's path and the reason, and nothing is registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_using_vault_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(dir.path()).await;
    let address = format!("http://{}", agent.http_addr);
    let file = dir.path().join("secrets.nomad.hcl");
    std::fs::write(
        &file,
        r#"job "secrets" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
      }
      vault {
        policies = ["db-read"]
      }
    }
  }
}
"#,
    )
    .expect("write job");
    let output = run(&address, &["job", "run", file.to_str().expect("utf-8 path")]).await;
    let printed = text(&output);
    assert!(!output.status.success(), "{printed}");
    assert!(
        printed.contains(
            "job \"secrets\" → group \"g\" → task \"t\" → vault: Vault integration is not supported by Drover"
        ),
        "{printed}"
    );
    let jobs = api_client::Client::new(address).jobs("").await.expect("jobs");
    assert!(jobs.is_empty(), "{jobs:?}");
    agent.shutdown().await;
}
