//! `drover job plan` and `job run -check-index` against a real dev agent:
//! the plan shows an edited field's diff and exits 1, an unchanged job
//! plans to exit 0, and a run with a stale check index is refused.

mod common;

use api_client::Client;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

fn job_file(marker: &str) -> String {
    format!(
        r#"
job "planned" {{
  type = "service"
  group "api" {{
    count = 2
    task "server" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "sleep 300"]
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
    )
}

async fn drover(address: &str, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_drover"));
    command.arg("-address").arg(address).args(args).kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("command finishes in time")
        .expect("drover runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write job file");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_the_diff_and_a_stale_check_index_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(&dir.path().join("agent")).await;
    let client = Client::new(format!("http://{}", agent.http_addr));
    let started = Instant::now();
    while !client
        .nodes("")
        .await
        .is_ok_and(|nodes| nodes.iter().any(|node| node.status == "ready"))
    {
        assert!(started.elapsed() < Duration::from_secs(30), "no ready node");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let address = format!("http://{}", agent.http_addr);
    let v0 = write(dir.path(), "v0.nomad.hcl", &job_file("v0"));
    let v1 = write(dir.path(), "v1.nomad.hcl", &job_file("v1"));

    // A new job: everything is created.
    let output = drover(&address, &["job", "plan", &v0]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let text = stdout(&output);
    assert!(text.contains("+ Job: \"planned\""), "{text}");
    assert!(text.contains("+ Task Group: \"api\" (2 create)"), "{text}");
    assert!(text.contains("Job Modify Index: 0"), "{text}");
    let output = drover(&address, &["job", "run", "-check-index", "0", "-detach", &v0]).await;
    assert!(output.status.success(), "{output:?}");

    // Unchanged: nothing to do, exit 0.
    let output = drover(&address, &["job", "plan", &v0]).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = stdout(&output);
    assert!(text.starts_with("Job: \"planned\""), "{text}");

    // An edited field: its diff, the counts, exit 1 and the index to use.
    let output = drover(&address, &["job", "plan", &v1]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let text = stdout(&output);
    assert!(text.contains("+/- Job: \"planned\""), "{text}");
    // The default update block replaces one allocation at a time.
    assert!(
        text.contains("+/- Task Group: \"api\" (1 create/destroy update, 1 ignore)"),
        "{text}"
    );
    assert!(
        text.contains("+/- Task: \"server\" (forces create/destroy update)"),
        "{text}"
    );
    assert!(text.contains("+/- Env[MARKER]: \"v0\" => \"v1\""), "{text}");
    let index_line = text
        .lines()
        .find_map(|line| line.strip_prefix("Job Modify Index: "))
        .expect("the job modify index");
    let index: u64 = index_line.trim().parse().expect("a number");
    assert!(index > 0);
    assert!(
        text.contains(&format!("drover job run -check-index {index} {v1}")),
        "{text}"
    );
    // The plan changed nothing.
    let job = client.job("planned").await.expect("job");
    assert_eq!(job["Version"], 0);

    // Someone else changes the job: the planned index is stale.
    let v2 = write(dir.path(), "v2.nomad.hcl", &job_file("v2"));
    let output = drover(&address, &["job", "run", "-detach", &v2]).await;
    assert!(output.status.success(), "{output:?}");
    let output = drover(
        &address,
        &["job", "run", "-check-index", &index.to_string(), "-detach", &v1],
    )
    .await;
    assert!(!output.status.success(), "{output:?}");
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("conflicting job modify index"), "{error}");
    let job = client.job("planned").await.expect("job");
    assert_eq!(job["TaskGroups"][0]["Tasks"][0]["Env"]["MARKER"], "v2");
    // With the current index it goes through.
    let current = job["JobModifyIndex"].as_u64().expect("index");
    let output = drover(
        &address,
        &["job", "run", "-check-index", &current.to_string(), "-detach", &v1],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let job = client.job("planned").await.expect("job");
    assert_eq!(job["TaskGroups"][0]["Tasks"][0]["Env"]["MARKER"], "v1");
    // An error exits 255.
    let output = drover(
        &address,
        &["job", "plan", &dir.path().join("missing.hcl").display().to_string()],
    )
    .await;
    assert_eq!(output.status.code(), Some(255), "{output:?}");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_scale_stays_within_the_scaling_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(&dir.path().join("agent")).await;
    let client = Client::new(format!("http://{}", agent.http_addr));
    let address = format!("http://{}", agent.http_addr);
    let file = write(
        dir.path(),
        "scaled.nomad.hcl",
        &job_file("s").replace(
            "count = 2",
            "count = 1\n    scaling {\n      min = 1\n      max = 3\n    }",
        ),
    );
    let output = drover(&address, &["job", "run", "-detach", &file]).await;
    assert!(output.status.success(), "{output:?}");
    let output = drover(&address, &["job", "scale", "planned", "api", "3"]).await;
    assert!(output.status.success(), "{output:?}");
    assert!(stdout(&output).contains("Scaled task group \"api\" of job \"planned\" to 3"));
    let job = client.job("planned").await.expect("job");
    assert_eq!(job["TaskGroups"][0]["Count"], 3);
    assert_eq!(job["Version"], 1);
    // Beyond max (the group is found on its own) and below min: refused.
    let output = drover(&address, &["job", "scale", "planned", "4"]).await;
    assert!(!output.status.success(), "{output:?}");
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("group count was greater than scaling policy maximum: 4 > 3"),
        "{error}"
    );
    let output = drover(&address, &["job", "scale", "planned", "api", "0"]).await;
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("less than scaling policy minimum: 0 < 1"), "{error}");
    let job = client.job("planned").await.expect("job");
    assert_eq!(job["TaskGroups"][0]["Count"], 3, "refusals change nothing");
    // The accepted change is a recorded event, and the allocations follow.
    let status: serde_json::Value = client.get("/v1/job/planned/scale").await.expect("scale status").value;
    let events = status["TaskGroups"]["api"]["Events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{status}");
    assert_eq!(events[0]["Count"], 3);
    assert_eq!(events[0]["PreviousCount"], 1);
    assert_eq!(events[0]["Message"], "submitted using the Drover CLI");
    let started = Instant::now();
    loop {
        let allocs = client.job_allocations("planned").await.expect("allocations");
        let running = allocs
            .iter()
            .filter(|alloc| alloc.client_status == "running" && alloc.desired_status == "run")
            .count();
        if running == 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "scaled allocations: {allocs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_diffs_revert_and_stable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(&dir.path().join("agent")).await;
    let client = Client::new(format!("http://{}", agent.http_addr));
    let address = format!("http://{}", agent.http_addr);
    for marker in ["v0", "v1"] {
        let file = write(dir.path(), &format!("{marker}.nomad.hcl"), &job_file(marker));
        let output = drover(&address, &["job", "run", "-detach", &file]).await;
        assert!(output.status.success(), "{output:?}");
    }
    let output = drover(&address, &["job", "history", "-p", "planned"]).await;
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    assert!(text.starts_with("Version     = 1\n"), "{text}");
    assert!(text.contains("+/- Env[MARKER]: \"v0\" => \"v1\""), "{text}");
    assert!(text.contains("Version     = 0\n"), "{text}");
    let versions: serde_json::Value = client
        .get("/v1/job/planned/versions?diffs=true")
        .await
        .expect("versions")
        .value;
    assert_eq!(versions["Diffs"].as_array().map(Vec::len), Some(1), "{versions}");
    assert_eq!(versions["Diffs"][0]["Type"], "Edited");

    // EnforcePriorVersion must name the current version.
    let stale = serde_json::json!({ "JobID": "planned", "JobVersion": 0, "EnforcePriorVersion": 0 });
    let refused = client
        .put_json_value::<_, serde_json::Value>("/v1/job/planned/revert", &stale)
        .await
        .expect_err("stale prior version");
    assert!(
        refused
            .to_string()
            .contains("current job has version 1; enforcing version 0"),
        "{refused}"
    );
    let output = drover(&address, &["job", "revert", "planned", "0"]).await;
    assert!(output.status.success(), "{output:?}");
    let job = client.job("planned").await.expect("job");
    assert_eq!(job["Version"], 2);
    assert_eq!(job["TaskGroups"][0]["Tasks"][0]["Env"]["MARKER"], "v0");

    // The stable flag, set and cleared by hand.
    let stable = serde_json::json!({ "JobVersion": 2, "Stable": true });
    client
        .put_json_value::<_, serde_json::Value>("/v1/job/planned/stable", &stable)
        .await
        .expect("stable");
    let output = drover(&address, &["job", "inspect", "planned"]).await;
    assert!(output.status.success(), "{output:?}");
    let inspected: serde_json::Value = serde_json::from_slice(&output.stdout).expect("inspect prints JSON");
    assert_eq!(inspected["Job"]["Stable"], true);
    assert_eq!(inspected["Job"]["Version"], 2);
    let missing = serde_json::json!({ "JobVersion": 9, "Stable": true });
    assert!(
        client
            .put_json_value::<_, serde_json::Value>("/v1/job/planned/stable", &missing)
            .await
            .is_err()
    );
    agent.shutdown().await;
}
