//! Hostile inputs against a real dev agent: each limit answers with a 4xx
//! naming what is wrong, and nothing already stored can crash a restart.
//! Waits use blocking queries with an overall deadline, never fixed sleeps.

use api_client::Client;
mod common;

use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

const SMALL: &str = r#"
job "limits" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["60"]
      }
      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
"#;

fn job_value(hcl: &str) -> serde_json::Value {
    let job = jobspec::parse(hcl, "test.nomad.hcl", &jobspec::ParseOptions::default()).expect("test job parses");
    jobspec::job_to_api(&job)
}

/// Registers `job` and expects a 400 whose message names `field`.
async fn expect_refused(client: &Client, job: serde_json::Value, field: &str) -> String {
    let error = client.register_job(job).await.expect_err("the job is refused");
    assert_eq!(error.status(), Some(400), "{error}");
    let message = error.to_string();
    assert!(message.contains(field), "the message names {field}: {message}");
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_billion_allocations_are_refused_and_a_stored_one_survives_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(dir.path()).await;
    let client = Client::new(format!("http://{}", agent.http_addr));

    let mut job = job_value(SMALL);
    job["TaskGroups"][0]["Count"] = 1_000_000_000.into();
    let message = expect_refused(&client, job, "count").await;
    assert!(message.contains("limit of 100000"), "{message}");

    // A job stored before the limit existed: written through Raft as the
    // server writes jobs, bypassing only the validation. No node can take
    // it (it asks for more memory than any node has), so its evaluation
    // blocks with every allocation queued.
    let mut stored = jobspec::parse(SMALL, "test.nomad.hcl", &jobspec::ParseOptions::default()).expect("parses");
    stored.id = "huge".into();
    stored.name = "huge".into();
    stored.task_groups[0].count = 1_000_000_000;
    stored.task_groups[0].tasks[0].resources.memory_mb = 1 << 29;
    let now = server::now_nanos();
    let eval = types::Evaluation {
        id: server::new_id(),
        namespace: stored.namespace.clone(),
        priority: stored.priority,
        job_type: Some(stored.job_type),
        triggered_by: types::trigger::JOB_REGISTER.to_string(),
        job_id: stored.id.clone(),
        status: types::EvalStatus::Pending,
        create_time: now,
        modify_time: now,
        ..types::Evaluation::default()
    };
    let eval_id = eval.id.clone();
    agent
        .server
        .as_ref()
        .expect("a server")
        .raft()
        .write(state::Command::JobRegister {
            job: stored,
            eval: Some(eval),
            now,
            enforce_index: None,
        })
        .await
        .expect("write the job through raft");
    agent.shutdown().await;

    // Every start runs the stored evaluation again; twice, for good measure.
    for _ in 0..2 {
        let agent = common::start_agent(dir.path()).await;
        let client = Client::new(format!("http://{}", agent.http_addr));
        let started = Instant::now();
        let eval = loop {
            let eval = client.evaluation(&eval_id).await.expect("evaluation");
            if eval.status != "pending" {
                break eval;
            }
            assert!(started.elapsed() < DEADLINE, "the evaluation never ran: {eval:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(eval.status, "complete", "{eval:?}");
        let queued = eval
            .queued_allocations
            .as_ref()
            .and_then(|queued| queued.get("g").copied());
        assert_eq!(queued, Some(1_000_000_000), "{eval:?}");
        let summary = client.job_summary("huge").await.expect("the agent still answers");
        assert_eq!(summary.job_id, "huge");
        agent.shutdown().await;
    }
}

/// Two tasks of 2^62 MiB used to wrap the group's sum negative and be
/// placed; a task with `CPU: i64::MAX` was placed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_amounts_that_overflow_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(dir.path()).await;
    let client = Client::new(format!("http://{}", agent.http_addr));

    let mut job = job_value(SMALL);
    let mut second = job["TaskGroups"][0]["Tasks"][0].clone();
    second["Name"] = "second".into();
    job["TaskGroups"][0]["Tasks"]
        .as_array_mut()
        .expect("tasks")
        .push(second);
    for task in job["TaskGroups"][0]["Tasks"].as_array_mut().expect("tasks") {
        task["Resources"]["MemoryMB"] = 4_611_686_018_427_387_904_i64.into();
    }
    expect_refused(&client, job, "resources.memory").await;

    let mut job = job_value(SMALL);
    job["TaskGroups"][0]["Tasks"][0]["Resources"]["CPU"] = i64::MAX.into();
    expect_refused(&client, job, "resources.cpu").await;

    let jobs = client.jobs("").await.expect("list jobs");
    assert!(jobs.is_empty(), "nothing was stored: {jobs:?}");
    agent.shutdown().await;
}

/// A task named `..` escaped its allocation directory, and a 70,000-byte
/// job ID was stored and could then never be read or deleted (414).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_leave_a_directory_and_overlong_ids_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(dir.path()).await;
    let client = Client::new(format!("http://{}", agent.http_addr));

    let mut job = job_value(SMALL);
    job["TaskGroups"][0]["Tasks"][0]["Name"] = "..".into();
    let message = expect_refused(&client, job, "name").await;
    assert!(message.contains("invalid task name"), "{message}");

    let mut job = job_value(SMALL);
    job["TaskGroups"][0]["Name"] = "a/b".into();
    expect_refused(&client, job, "invalid group name").await;

    let mut job = job_value(SMALL);
    let long_id = "j".repeat(70_000);
    job["ID"] = long_id.clone().into();
    job["Name"] = "limits".into();
    let message = expect_refused(&client, job, "id").await;
    assert!(message.contains("limit of 256"), "{message}");
    assert!(message.len() < 2_000, "the answer does not echo the ID back in full");

    // The longest ID allowed can be registered, read and deleted (with no
    // allocation to run).
    let mut job = job_value(SMALL);
    let longest = "j".repeat(types::limits::MAX_JOB_ID_LEN);
    job["ID"] = longest.clone().into();
    job["TaskGroups"][0]["Count"] = 0.into();
    client.register_job(job).await.expect("the longest ID is fine");
    client.job(&longest).await.expect("and can be read");
    client.stop_job(&longest, true).await.expect("and purged");
    agent.shutdown().await;
}

/// Resets the process's peak RSS (`VmHWM`) to its current RSS.
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS");
}

/// A 200 MB log read in JSON frames took 1 GB of RSS: a 32 MiB log
/// (sparse, so nothing is written) now streams in bounded frames, and the
/// agent's (this process's) peak RSS hardly moves while it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_logs_stream_with_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(dir.path()).await;
    let client = Client::new(format!("http://{}", agent.http_addr));
    client.register_job(job_value(SMALL)).await.expect("register");
    let alloc_id = common::running_alloc(&client, "limits").await;
    let size: u64 = 32 << 20;
    let log = agent.data_dir.join(format!("alloc/{alloc_id}/alloc/logs/t.stdout.0"));
    // The log collector creates the file as it starts.
    let waited = std::time::Instant::now();
    while !log.exists() {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "no log file {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .expect("the task's log file")
        .set_len(size)
        .expect("grow the log");

    reset_peak_rss();
    let before = drover::rss::rss_mib(std::process::id()).expect("rss");
    let url = format!(
        "http://{}/v1/client/fs/logs/{alloc_id}?task=t&type=stdout",
        agent.http_addr
    );
    let mut response = reqwest::get(&url).await.expect("logs");
    assert_eq!(response.status(), 200);
    let mut pending: Vec<u8> = Vec::new();
    let (mut decoded, mut frames, mut largest_frame) = (0u64, 0u64, 0usize);
    while let Some(chunk) = response.chunk().await.expect("a chunk") {
        pending.extend_from_slice(&chunk);
        let mut frames_in = serde_json::Deserializer::from_slice(&pending).into_iter::<serde_json::Value>();
        let mut consumed = 0;
        while let Some(Ok(frame)) = frames_in.next() {
            let frame_len = frames_in.byte_offset() - consumed;
            consumed = frames_in.byte_offset();
            largest_frame = largest_frame.max(frame_len);
            let data = frame["Data"].as_str().expect("base64 data");
            decoded += (data.len() / 4 * 3 - data.bytes().rev().take_while(|byte| *byte == b'=').count()) as u64;
            frames += 1;
        }
        pending.drain(..consumed);
    }
    let peak = drover::rss::peak_rss_mib(std::process::id()).expect("peak rss");
    assert!(pending.is_empty(), "the body ends with a whole frame");
    assert_eq!(decoded, size, "every byte of the log arrived");
    assert!(frames >= 256, "{frames} frames");
    assert!(largest_frame < 128 << 10, "a frame of {largest_frame} bytes");
    assert!(
        peak - before < 16.0,
        "serving a {} MiB log raised the peak RSS by {:.1} MiB",
        size >> 20,
        peak - before
    );
    common::stop_job_and_wait(&client, "limits").await;
    agent.shutdown().await;
}
