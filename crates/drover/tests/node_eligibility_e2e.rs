//! `drover node eligibility` on a real dev agent: an ineligible node gets
//! no new allocations (the evaluation blocks), and marking it eligible
//! again places the waiting work.

mod common;

use api_client::Client;
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
job "waiting" {
  type = "service"
  group "api" {
    task "server" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "sleep 300"]
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
async fn an_ineligible_node_gets_no_new_work_until_enabled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(&dir.path().join("agent")).await;
    let client = Client::new(format!("http://{}", agent.http_addr));
    let address = format!("http://{}", agent.http_addr);
    let node_id = agent.node_id.clone().expect("a client");
    let started = Instant::now();
    while !client
        .nodes("")
        .await
        .is_ok_and(|nodes| nodes.iter().any(|node| node.status == "ready"))
    {
        assert!(started.elapsed() < Duration::from_secs(30), "no ready node");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let output = drover(&address, &["node", "eligibility", "-disable", &node_id[..8]]).await;
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("ineligible for scheduling"));
    let node = client.node(&node_id).await.expect("node");
    assert_eq!(node.scheduling_eligibility, "ineligible");

    let file = dir.path().join("waiting.nomad.hcl");
    std::fs::write(&file, JOB).expect("write job");
    let output = drover(&address, &["job", "run", "-detach", &file.display().to_string()]).await;
    assert!(output.status.success(), "{output:?}");
    // The evaluation blocks: nothing may go on the only node.
    let started = Instant::now();
    loop {
        let evals = client.job_evaluations("waiting").await.expect("evaluations");
        if evals.iter().any(|eval| eval.status == "blocked") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no blocked evaluation: {evals:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(client.job_allocations("waiting").await.expect("allocations").is_empty());

    let output = drover(&address, &["node", "eligibility", "-enable", &node_id]).await;
    assert!(output.status.success(), "{output:?}");
    let started = Instant::now();
    loop {
        let allocs = client.job_allocations("waiting").await.expect("allocations");
        if allocs.iter().any(|alloc| alloc.client_status == "running") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not placed after enabling: {allocs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A bad value is refused.
    let bad = serde_json::json!({ "Eligibility": "maybe" });
    let refused = client
        .put_json_value::<_, serde_json::Value>(&format!("/v1/node/{node_id}/eligibility"), &bad)
        .await
        .expect_err("refused");
    assert_eq!(refused.status(), Some(400));
    agent.shutdown().await;
}
