//! Forced evaluations on a real dev agent: `drover job eval
//! -force-reschedule` replaces a failed allocation whose reschedule policy
//! gave up, and `/v1/node/:id/evaluate` evaluates the node's jobs.

mod common;

use api_client::Client;
use common::cluster::{eventually, job_json};
use std::process::Output;
use std::time::Duration;

async fn drover(address: &str, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_drover"));
    command.arg("-address").arg(address).args(args).kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("command finishes in time")
        .expect("drover runs")
}

const JOB: &str = r#"
job "flaky" {
  type = "batch"
  group "g" {
    reschedule {
      attempts  = 0
      unlimited = false
    }
    restart {
      attempts = 0
      mode     = "fail"
    }
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "exit 3"]
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
async fn force_reschedule_replaces_a_failed_allocation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(&dir.path().join("agent")).await;
    let address = format!("http://{}", agent.http_addr);
    let client = Client::new(address.clone());
    let node_id = agent.node_id.clone().expect("a client");
    eventually(Duration::from_secs(30), "a ready node", async || {
        client
            .nodes("")
            .await
            .ok()
            .filter(|nodes| nodes.iter().any(|node| node.status == "ready"))
    })
    .await;
    client.register_job(job_json(JOB)).await.expect("register");
    eventually(Duration::from_secs(15), "the allocation fails", async || {
        let allocs = client.job_allocations("flaky").await.ok()?;
        allocs.iter().any(|alloc| alloc.client_status == "failed").then_some(())
    })
    .await;
    // Its policy gives up: no replacement comes on its own.
    let output = drover(&address, &["job", "eval", "flaky"]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(client.job_allocations("flaky").await.expect("allocations").len(), 1);

    let output = drover(&address, &["job", "eval", "-force-reschedule", "flaky"]).await;
    assert!(output.status.success(), "{output:?}");
    let allocs = eventually(Duration::from_secs(15), "a replacement", async || {
        Some(client.job_allocations("flaky").await.ok()?).filter(|allocs| allocs.len() == 2)
    })
    .await;
    assert!(allocs.iter().any(|alloc| alloc.desired_status == "stop"), "{allocs:#?}");

    let answer: api_types::NodeDrainUpdateResponse = client
        .put_json_value(&format!("/v1/node/{node_id}/evaluate"), &serde_json::json!({}))
        .await
        .expect("node evaluate");
    assert_eq!(answer.eval_ids.len(), 1, "{answer:?}");
    let eval = client.evaluation(&answer.eval_ids[0]).await.expect("evaluation");
    assert_eq!(eval.job_id, "flaky");
    assert_eq!(eval.triggered_by, "node-update");
    // A job that does not exist is a 404.
    let missing = client
        .put_json_value::<_, serde_json::Value>("/v1/job/nope/evaluate", &serde_json::json!({}))
        .await
        .expect_err("missing job");
    assert_eq!(missing.status(), Some(404));
    agent.shutdown().await;
}

const SCALED: &str = r#"
job "scaled" {
  group "api" {
    count = 2
    scaling {
      min = 1
      max = 5
      policy {
        cooldown = "1m"
      }
    }
    task "server" {
      driver = "raw_exec"
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
async fn scaling_policies_are_listed_and_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(&dir.path().join("agent")).await;
    let client = Client::new(format!("http://{}", agent.http_addr));
    client.register_job(job_json(SCALED)).await.expect("register");
    let listed: serde_json::Value = client.get("/v1/scaling/policies").await.expect("list").value;
    let stubs = listed.as_array().expect("a list");
    assert_eq!(stubs.len(), 1, "{listed}");
    assert_eq!(stubs[0]["Target"]["Group"], "api");
    assert_eq!(stubs[0]["Type"], "horizontal");
    let id = stubs[0]["ID"].as_str().expect("an ID").to_string();
    let policy: serde_json::Value = client
        .get(&format!("/v1/scaling/policy/{id}"))
        .await
        .expect("read")
        .value;
    assert_eq!(policy["Max"], 5, "{policy}");
    assert_eq!(policy["Min"], 1, "{policy}");
    assert_eq!(policy["Target"]["Job"], "scaled");
    let filtered: serde_json::Value = client.get("/v1/scaling/policies?job=other").await.expect("list").value;
    assert_eq!(filtered, serde_json::json!([]));
    let missing = client
        .get::<serde_json::Value>("/v1/scaling/policy/00000000-0000-4000-8000-000000000000")
        .await
        .expect_err("missing");
    assert_eq!(missing.status(), Some(404));
    agent.shutdown().await;
}
