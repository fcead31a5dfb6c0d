//! Deployments end to end on a real dev agent with raw_exec tasks: a
//! rolling update paced by `max_parallel` until every allocation runs the
//! new version, an automatic revert to the last stable version when a new
//! version's task fails, and a canary that waits for `drover deployment
//! promote`. Waits poll the API with an overall deadline, never fixed sleeps.

use api_client::Client;
use api_types::{AllocListStub, Deployment};
mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

async fn start_agent(data_dir: &Path) -> (drover::agent::Agent, Client) {
    let agent = common::start_agent(data_dir).await;
    let client = Client::new(format!("http://{}", agent.http_addr));
    (agent, client)
}

/// A service job of `count` raw_exec sleepers; `marker` changes the task
/// (so each marker is a destructive update), `update` is the update block.
fn job(count: u32, marker: &str, update: &str, command: &str) -> serde_json::Value {
    let hcl = format!(
        r#"
job "web" {{
  type = "service"
  group "api" {{
    count = {count}
    {update}
    restart {{
      attempts = 0
      mode     = "fail"
    }}
    reschedule {{
      attempts  = 0
      unlimited = false
    }}
    task "server" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "{command}"]
      }}
      env {{
        MARKER = "{marker}"
      }}
      resources {{
        cpu    = 20
        memory = 16
      }}
    }}
  }}
}}
"#
    );
    let job = jobspec::parse(&hcl, "web.nomad.hcl", &jobspec::ParseOptions::default()).expect("test job parses");
    jobspec::job_to_api(&job)
}

const SLEEP: &str = "sleep 300";

async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

async fn wait_for_node(client: &Client) {
    wait_for("a ready node", async || {
        let nodes = client.nodes("").await.ok()?;
        nodes.iter().any(|node| node.status == "ready").then_some(())
    })
    .await;
}

/// Waits until the job's deployment of `version` reaches `status`.
async fn wait_deployment(client: &Client, version: u64, status: &str) -> Deployment {
    wait_for(&format!("deployment of version {version} {status}"), async || {
        let deployments = client.job_deployments("web").await.ok()?;
        deployments
            .into_iter()
            .find(|deployment| deployment.job_version == version && deployment.status == status)
    })
    .await
}

fn live(allocs: &[AllocListStub]) -> Vec<&AllocListStub> {
    allocs
        .iter()
        .filter(|alloc| alloc.desired_status == "run" && alloc.client_status == "running")
        .collect()
}

fn healthy(alloc: &AllocListStub) -> bool {
    alloc
        .deployment_status
        .as_ref()
        .is_some_and(|status| status.healthy == Some(true))
}

async fn drover(address: &str, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_drover"));
    command.arg("--address").arg(address).args(args).kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("command finishes in time")
        .expect("drover runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_of_five_with_max_parallel_two_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, client) = start_agent(dir.path()).await;
    wait_for_node(&client).await;
    let update = r#"update {
      max_parallel      = 2
      min_healthy_time  = "1s"
      healthy_deadline  = "20s"
      progress_deadline = "40s"
    }"#;
    client
        .register_job(job(5, "v0", update, SLEEP))
        .await
        .expect("register v0");
    let first = wait_deployment(&client, 0, "successful").await;
    assert_eq!(first.task_groups["api"].healthy_allocs, 5);
    let job_v0 = client.job("web").await.expect("job");
    assert_eq!(
        job_v0["Stable"], true,
        "a successful deployment marks its version stable"
    );

    client
        .register_job(job(5, "v1", update, SLEEP))
        .await
        .expect("register v1");
    // Watch the rollout: never more than max_parallel new allocations in
    // flight (placed but not yet healthy), and batches, not all at once.
    let started = Instant::now();
    let mut most_in_flight = 0;
    let mut seen_partial = false;
    let deployment = loop {
        let allocs = client.job_allocations("web").await.expect("allocations");
        let new: Vec<&AllocListStub> = allocs
            .iter()
            .filter(|alloc| alloc.job_version == 1 && alloc.desired_status == "run")
            .collect();
        let in_flight = new.iter().filter(|alloc| !healthy(alloc)).count();
        most_in_flight = most_in_flight.max(in_flight);
        let old_running = live(&allocs).iter().filter(|alloc| alloc.job_version == 0).count();
        seen_partial |= !new.is_empty() && old_running > 0;
        let deployments = client.job_deployments("web").await.expect("deployments");
        if let Some(done) = deployments
            .into_iter()
            .find(|deployment| deployment.job_version == 1 && deployment.status != "running")
        {
            break done;
        }
        assert!(started.elapsed() < DEADLINE, "rollout did not finish: {allocs:#?}");
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(deployment.status, "successful", "{deployment:#?}");
    assert_eq!(deployment.status_description, "Deployment completed successfully");
    let group = &deployment.task_groups["api"];
    assert_eq!(
        (group.desired_total, group.placed_allocs, group.healthy_allocs),
        (5, 5, 5)
    );
    assert!(
        most_in_flight <= 2,
        "{most_in_flight} new allocations were in flight at once"
    );
    assert!(seen_partial, "old and new versions ran side by side during the rollout");
    // The first deployment was cancelled? No: it had finished; it stays successful.
    let first_again = client.deployment(&first.id).await.expect("first deployment");
    assert_eq!(first_again.status, "successful");
    // Every running allocation is on the new version, and healthy.
    let allocs = wait_for("old allocations to stop", async || {
        let allocs = client.job_allocations("web").await.ok()?;
        let running = live(&allocs);
        (running.len() == 5 && running.iter().all(|alloc| alloc.job_version == 1)).then_some(allocs)
    })
    .await;
    assert!(live(&allocs).iter().all(|alloc| healthy(alloc)));
    assert!(
        allocs
            .iter()
            .filter(|alloc| alloc.job_version == 0)
            .all(|alloc| alloc.desired_status == "stop")
    );
    let in_deployment = client
        .deployment_allocations(&deployment.id)
        .await
        .expect("deployment allocations");
    assert_eq!(in_deployment.len(), 5);
    // The CLI shows it.
    let address = format!("http://{}", agent.http_addr);
    let output = drover(&address, &["deployment", "status", &deployment.id[..8]]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(text.contains("Status      = successful"), "{text}");
    assert!(text.contains("api         5        5       5        0"), "{text}");
    let output = drover(&address, &["deployment", "list"]).await;
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 3, "{output:?}");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_version_is_reverted_to_the_last_stable_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, client) = start_agent(dir.path()).await;
    wait_for_node(&client).await;
    let update = r#"update {
      max_parallel      = 1
      min_healthy_time  = "1s"
      healthy_deadline  = "20s"
      progress_deadline = "0s"
      auto_revert       = true
    }"#;
    client
        .register_job(job(2, "good", update, SLEEP))
        .await
        .expect("register v0");
    wait_deployment(&client, 0, "successful").await;
    client
        .register_job(job(2, "bad", update, "exit 3"))
        .await
        .expect("register v1");
    let failed = wait_deployment(&client, 1, "failed").await;
    assert_eq!(
        failed.status_description,
        "Failed due to unhealthy allocations - rolling back to job version 0"
    );
    assert_eq!(failed.task_groups["api"].unhealthy_allocs, 1);
    // The revert is version 2, with version 0's task, and it rolls out.
    let reverted = wait_deployment(&client, 2, "successful").await;
    assert_eq!(reverted.task_groups["api"].healthy_allocs, 2);
    let job = client.job("web").await.expect("job");
    assert_eq!(job["Version"], 2);
    assert_eq!(job["TaskGroups"][0]["Tasks"][0]["Env"]["MARKER"], "good");
    let allocs = client.job_allocations("web").await.expect("allocations");
    let running = live(&allocs);
    assert_eq!(running.len(), 2, "{allocs:#?}");
    assert!(
        running
            .iter()
            .all(|alloc| alloc.job_version == 2 || alloc.job_version == 0)
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_waits_for_promotion_then_the_rollout_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, client) = start_agent(dir.path()).await;
    wait_for_node(&client).await;
    let update = r#"update {
      max_parallel      = 1
      canary            = 1
      min_healthy_time  = "1s"
      healthy_deadline  = "20s"
      progress_deadline = "40s"
    }"#;
    client
        .register_job(job(2, "v0", update, SLEEP))
        .await
        .expect("register v0");
    wait_deployment(&client, 0, "successful").await;
    client
        .register_job(job(2, "v1", update, SLEEP))
        .await
        .expect("register v1");
    // The canary turns healthy, and the deployment then waits.
    let waiting = wait_for("a healthy canary", async || {
        let deployment = client.job_latest_deployment("web").await.ok()??;
        let group = deployment.task_groups.get("api")?;
        (deployment.job_version == 1 && group.healthy_allocs == 1).then_some(deployment)
    })
    .await;
    assert_eq!(waiting.status, "running");
    assert_eq!(
        waiting.status_description,
        "Deployment is running but requires manual promotion"
    );
    assert_eq!(waiting.task_groups["api"].placed_canaries.len(), 1);
    // Nothing else moves while it waits: both old allocations still run.
    let allocs = client.job_allocations("web").await.expect("allocations");
    let running = live(&allocs);
    assert_eq!(running.iter().filter(|alloc| alloc.job_version == 0).count(), 2);
    assert_eq!(running.iter().filter(|alloc| alloc.job_version == 1).count(), 1);
    let address = format!("http://{}", agent.http_addr);
    let output = drover(&address, &["deployment", "promote", &waiting.id]).await;
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("promoted"),
        "{output:?}"
    );
    let done = wait_deployment(&client, 1, "successful").await;
    assert!(done.task_groups["api"].promoted);
    assert_eq!(done.task_groups["api"].healthy_allocs, 2);
    let allocs = wait_for("only the new version running", async || {
        let allocs = client.job_allocations("web").await.ok()?;
        let running = live(&allocs);
        (running.len() == 2 && running.iter().all(|alloc| alloc.job_version == 1)).then_some(allocs)
    })
    .await;
    // The canary kept running through the promotion.
    assert!(allocs.iter().any(
        |alloc| waiting.task_groups["api"].placed_canaries.contains(&alloc.id) && alloc.client_status == "running"
    ));
    agent.shutdown().await;
}
