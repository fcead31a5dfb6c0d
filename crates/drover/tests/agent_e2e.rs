//! End to end through a real dev agent: HTTP over a real socket, Raft on
//! disk, the scheduler, the RPC to the client and real raw_exec processes.
//! Waits use blocking queries with an overall deadline, never fixed sleeps.

use api_client::{Client, LogsRequest};
use api_types::AllocListStub;
mod common;

use drover::agent::Agent;
use futures::StreamExt;
use std::path::Path;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

async fn start_agent(data_dir: &Path) -> (Agent, Client) {
    let agent = common::start_agent(data_dir).await;
    let client = Client::new(format!("http://{}", agent.http_addr));
    (agent, client)
}

fn job_value(hcl: &str) -> serde_json::Value {
    let job = jobspec::parse(hcl, "test.nomad.hcl", &jobspec::ParseOptions::default()).expect("test job parses");
    jobspec::job_to_api(&job)
}

/// Waits (with blocking queries) until `check` accepts the job's allocations.
async fn wait_allocs(
    client: &Client,
    job_id: &str,
    what: &str,
    check: impl Fn(&[AllocListStub]) -> bool,
) -> Vec<AllocListStub> {
    let started = Instant::now();
    let mut index = 0;
    loop {
        let answer = client
            .get_blocking::<Vec<AllocListStub>>(&format!("/v1/job/{job_id}/allocations"), index, Duration::from_secs(2))
            .await
            .expect("list allocations");
        if check(&answer.value) {
            return answer.value;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting for {what}: {:#?}",
            answer.value
        );
        index = answer.index;
    }
}

async fn wait_for_node(client: &Client) -> api_types::NodeListStub {
    let started = Instant::now();
    let mut index = 0;
    loop {
        let answer = client
            .get_blocking::<Vec<api_types::NodeListStub>>("/v1/nodes", index, Duration::from_secs(2))
            .await
            .expect("list nodes");
        if let Some(node) = answer.value.into_iter().find(|node| node.status == "ready") {
            return node;
        }
        assert!(started.elapsed() < DEADLINE, "no ready node");
        index = answer.index;
    }
}

const SERVICE: &str = r#"
job "svc" {
  type = "service"
  group "web" {
    task "loop" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo started $NOMAD_TASK_NAME $NOMAD_JOB_NAME; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"]
      }
      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_endpoints_describe_one_ready_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, client) = start_agent(dir.path()).await;
    let leader = client.leader().await.expect("leader");
    assert_eq!(leader, agent.rpc_addr.expect("a server").to_string());
    let agent_self = client.agent_self().await.expect("agent self");
    assert_eq!(agent_self["config"]["Datacenter"], "dc1");
    let node_id = agent.node_id.clone().expect("a client");
    assert_eq!(agent_self["stats"]["client"]["node_id"], node_id.as_str());
    let stub = wait_for_node(&client).await;
    assert_eq!(stub.id, node_id);
    let raw_exec = &stub.drivers["raw_exec"];
    assert!(raw_exec.detected && raw_exec.healthy, "{raw_exec:?}");
    let node = client.node(&stub.id).await.expect("node");
    let cpu = node.node_resources["Cpu"]["CpuShares"].as_i64().expect("cpu shares");
    let memory = node.node_resources["Memory"]["MemoryMB"].as_i64().expect("memory");
    assert!(cpu >= 1000, "cpu {cpu} MHz is a real figure");
    assert!(memory >= 512, "memory {memory} MiB is a real figure");
    assert_eq!(node.attributes["kernel.name"], "linux");
    assert!(node.attributes.contains_key("unique.hostname"));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_runs_logs_follow_and_stop_kills_the_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, client) = start_agent(dir.path()).await;
    wait_for_node(&client).await;
    let registered = client.register_job(job_value(SERVICE)).await.expect("register");
    assert!(!registered.eval_id.is_empty());
    let allocs = wait_allocs(&client, "svc", "a running alloc", |allocs| {
        allocs.iter().any(|alloc| alloc.client_status == "running")
    })
    .await;
    let alloc_id = allocs[0].id.clone();

    // Follow the log until two ticks arrive: new output keeps streaming.
    let request = LogsRequest {
        task: "loop".into(),
        log_type: "stdout".into(),
        follow: true,
        ..LogsRequest::default()
    };
    let mut stream = Box::pin(client.logs(&alloc_id, &request).await.expect("follow logs"));
    let mut seen = String::new();
    let started = Instant::now();
    while !(seen.contains("tick 1\n") && seen.contains("tick 2\n")) {
        assert!(started.elapsed() < DEADLINE, "log never showed ticks: {seen:?}");
        let chunk = tokio::time::timeout(DEADLINE, stream.next())
            .await
            .expect("log chunk in time")
            .expect("stream open")
            .expect("chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.starts_with("started loop svc\n"), "{seen:?}");

    // The task's pid, from its environment, must be gone after the stop.
    let pid = common::task_pid(&alloc_id).expect("task process is running");
    client.stop_job("svc", false).await.expect("stop");
    wait_allocs(&client, "svc", "the alloc to complete", |allocs| {
        allocs.iter().all(|alloc| alloc.client_status == "complete")
    })
    .await;
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} still alive after stop"
    );
    let job = client.job("svc").await.expect("job");
    assert_eq!(job["Stop"], true);
    assert_eq!(job["Status"], "dead");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_jobs_complete_or_fail_after_their_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, client) = start_agent(dir.path()).await;
    wait_for_node(&client).await;
    let ok = r#"
job "ok" {
  type = "batch"
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "exit 0"]
      }
    }
  }
}
"#;
    let failing = r#"
job "bad" {
  type = "batch"
  group "g" {
    restart {
      attempts = 1
      delay    = "100ms"
      interval = "1h"
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo run; exit 3"]
      }
    }
  }
}
"#;
    client.register_job(job_value(ok)).await.expect("register ok");
    client.register_job(job_value(failing)).await.expect("register bad");
    wait_allocs(&client, "ok", "complete", |allocs| {
        allocs.len() == 1 && allocs[0].client_status == "complete"
    })
    .await;
    let allocs = wait_allocs(&client, "bad", "failed", |allocs| {
        !allocs.is_empty() && allocs.iter().all(|alloc| alloc.client_status == "failed")
    })
    .await;
    assert_eq!(allocs.len(), 1, "no reschedule was allowed: {allocs:#?}");
    let alloc = client.allocation(&allocs[0].id).await.expect("alloc");
    let state = &alloc.task_states["t"];
    assert!(state.failed);
    assert_eq!(state.restarts, 1);
    let types: Vec<&str> = state.events.iter().map(|event| event.event_type.as_str()).collect();
    assert_eq!(
        types.iter().filter(|t| **t == "Started").count(),
        2,
        "ran twice: {types:?}"
    );
    assert_eq!(types.iter().filter(|t| **t == "Terminated").count(), 2, "{types:?}");
    assert!(types.contains(&"Restarting"), "{types:?}");
    let last = state.events.last().expect("events");
    assert_eq!(last.event_type, "Not Restarting");
    assert!(last.display_message.contains("Exceeded allowed attempts 1"), "{last:?}");
    let terminated = state
        .events
        .iter()
        .find(|event| event.event_type == "Terminated")
        .expect("terminated");
    assert_eq!(terminated.exit_code, 3);
    let logs = client
        .logs(
            &alloc.id,
            &LogsRequest {
                task: "t".into(),
                log_type: "stdout".into(),
                ..LogsRequest::default()
            },
        )
        .await
        .expect("logs");
    let chunks: Vec<_> = logs.collect().await;
    let text: String = chunks
        .into_iter()
        .map(|chunk| String::from_utf8_lossy(&chunk.expect("chunk")).to_string())
        .collect();
    assert_eq!(text, "run\nrun\n");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_restart_with_the_same_indexes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, client) = start_agent(dir.path()).await;
    wait_for_node(&client).await;
    let job = r#"
job "once" {
  type = "batch"
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
      }
    }
  }
}
"#;
    client.register_job(job_value(job)).await.expect("register");
    wait_allocs(&client, "once", "complete", |allocs| {
        allocs.len() == 1 && allocs[0].client_status == "complete"
    })
    .await;
    let jobs_before = client.jobs("").await.expect("jobs");
    let allocs_before = client.allocations("").await.expect("allocs");
    let evals_before = client.evaluations("").await.expect("evals");
    let config_url = format!("http://{}/v1/operator/scheduler/configuration", agent.http_addr);
    let http = reqwest::Client::new();
    let set: serde_json::Value = http
        .put(&config_url)
        .body(r#"{"SchedulerAlgorithm": "spread", "PreemptionConfig": {"SystemSchedulerEnabled": true}}"#)
        .send()
        .await
        .expect("set config")
        .json()
        .await
        .expect("set config JSON");
    assert_eq!(set["Updated"], true, "{set}");
    agent.shutdown().await;

    let (agent, client) = start_agent(dir.path()).await;
    wait_for_node(&client).await;
    let index = |pairs: Vec<(String, u64, u64)>| {
        let mut pairs = pairs;
        pairs.sort();
        pairs
    };
    let config_url = format!("http://{}/v1/operator/scheduler/configuration", agent.http_addr);
    let config: serde_json::Value = http
        .get(&config_url)
        .send()
        .await
        .expect("get config")
        .json()
        .await
        .expect("config JSON");
    assert_eq!(config["SchedulerConfig"]["SchedulerAlgorithm"], "spread", "{config}");
    assert_eq!(config["SchedulerConfig"]["ModifyIndex"], set["Index"], "{config}");
    let jobs_after = client.jobs("").await.expect("jobs");
    let allocs_after = client.allocations("").await.expect("allocs");
    let evals_after = client.evaluations("").await.expect("evals");
    assert_eq!(
        index(
            jobs_before
                .iter()
                .map(|j| (j.id.clone(), j.create_index, j.modify_index))
                .collect()
        ),
        index(
            jobs_after
                .iter()
                .map(|j| (j.id.clone(), j.create_index, j.modify_index))
                .collect()
        ),
    );
    assert_eq!(
        index(
            allocs_before
                .iter()
                .map(|a| (a.id.clone(), a.create_index, a.modify_index))
                .collect()
        ),
        index(
            allocs_after
                .iter()
                .map(|a| (a.id.clone(), a.create_index, a.modify_index))
                .collect()
        ),
    );
    assert_eq!(
        index(
            evals_before
                .iter()
                .map(|e| (e.id.clone(), e.create_index, e.modify_index))
                .collect()
        ),
        index(
            evals_after
                .iter()
                .map(|e| (e.id.clone(), e.create_index, e.modify_index))
                .collect()
        ),
    );
    let highest = allocs_after
        .iter()
        .map(|a| a.modify_index)
        .chain(evals_after.iter().map(|e| e.modify_index))
        .max();
    let next = client.stop_job("once", false).await.expect("stop after restart");
    assert!(Some(next.index) > highest, "{} must exceed {highest:?}", next.index);
    agent.shutdown().await;
}

/// Nomad's operator scheduler configuration: the defaults, a change, a
/// stale check-and-set that changes nothing, a fresh one, and bad input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_scheduler_configuration_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, _client) = start_agent(dir.path()).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/operator/scheduler/configuration", agent.http_addr);
    let get = || async {
        let response = http.get(&url).send().await.expect("get");
        assert_eq!(response.status().as_u16(), 200);
        response.json::<serde_json::Value>().await.expect("JSON")
    };
    let put = |query: &str, body: &'static str| {
        let request = http.put(format!("{url}{query}")).body(body);
        async move {
            let response = request.send().await.expect("put");
            let status = response.status().as_u16();
            (status, response.text().await.expect("text"))
        }
    };
    let defaults = get().await;
    let config = &defaults["SchedulerConfig"];
    assert_eq!(config["SchedulerAlgorithm"], "binpack", "{defaults}");
    assert_eq!(config["PreemptionConfig"]["SystemSchedulerEnabled"], true, "{defaults}");
    assert_eq!(
        config["PreemptionConfig"]["ServiceSchedulerEnabled"], false,
        "{defaults}"
    );
    assert_eq!(
        config["PreemptionConfig"]["SysBatchSchedulerEnabled"], false,
        "{defaults}"
    );

    let (status, text) = put(
        "",
        r#"{"SchedulerAlgorithm": "spread", "PreemptionConfig": {"SystemSchedulerEnabled": true, "ServiceSchedulerEnabled": true}}"#,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let set: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(set["Updated"], true, "{set}");
    let index = set["Index"].as_u64().expect("Index");
    let changed = get().await;
    assert_eq!(changed["SchedulerConfig"]["SchedulerAlgorithm"], "spread", "{changed}");
    assert_eq!(
        changed["SchedulerConfig"]["PreemptionConfig"]["ServiceSchedulerEnabled"],
        true
    );
    assert_eq!(changed["SchedulerConfig"]["ModifyIndex"].as_u64(), Some(index));

    // A stale check-and-set index is answered, not applied.
    let (status, text) = put("?cas=1", r#"{"SchedulerAlgorithm": "binpack"}"#).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"Updated\":false"), "{text}");
    assert_eq!(get().await["SchedulerConfig"]["SchedulerAlgorithm"], "spread");
    let (status, text) = put(&format!("?cas={index}"), r#"{"SchedulerAlgorithm": "binpack"}"#).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"Updated\":true"), "{text}");
    let back = get().await;
    assert_eq!(back["SchedulerConfig"]["SchedulerAlgorithm"], "binpack", "{back}");
    // Missing booleans read as false, as Nomad's decoder gives them.
    assert_eq!(
        back["SchedulerConfig"]["PreemptionConfig"]["SystemSchedulerEnabled"], false,
        "{back}"
    );

    for (query, body, needle) in [
        ("", r#"{"SchedulerAlgorithm": "random"}"#, "SchedulerAlgorithm"),
        ("", "{nope", "invalid JSON"),
        ("", "", "empty"),
        ("", r#"{"PauseEvalBroker": true}"#, "PauseEvalBroker"),
        ("", r#"{"MemoryOversubscriptionEnabled": true}"#, "not supported"),
        ("?cas=soon", r#"{"SchedulerAlgorithm": "spread"}"#, "cas"),
    ] {
        let (status, text) = put(query, body).await;
        assert_eq!(status, 400, "{query} {body}: {text}");
        assert!(text.contains(needle), "{query} {body}: {text:?} lacks {needle:?}");
    }
    assert_eq!(get().await["SchedulerConfig"]["SchedulerAlgorithm"], "binpack");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_4xx_and_the_agent_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, client) = start_agent(dir.path()).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", agent.http_addr);
    let cases: Vec<(reqwest::Method, &str, Option<&str>, u16, &str)> = vec![
        (reqwest::Method::PUT, "/v1/jobs", Some("{not json"), 400, "invalid JSON"),
        (reqwest::Method::PUT, "/v1/jobs", Some(""), 400, "empty"),
        (
            reqwest::Method::PUT,
            "/v1/jobs",
            Some("{\"Nope\": 1}"),
            400,
            "no \"Job\"",
        ),
        (
            reqwest::Method::PUT,
            "/v1/jobs",
            Some("{\"Job\": {\"ID\": \"x\"}}"),
            400,
            "group",
        ),
        (reqwest::Method::GET, "/v1/job/missing", None, 404, "not found"),
        (reqwest::Method::GET, "/v1/allocation/missing", None, 404, "not found"),
        (reqwest::Method::GET, "/v1/evaluation/missing", None, 404, "not found"),
        (reqwest::Method::GET, "/v1/node/missing", None, 404, "not found"),
        (reqwest::Method::DELETE, "/v1/job/missing", None, 404, "not found"),
        (reqwest::Method::GET, "/v1/no/such/path", None, 404, "not found"),
        (reqwest::Method::DELETE, "/v1/job/x?purge=maybe", None, 400, "purge"),
        (
            reqwest::Method::GET,
            "/v1/jobs?index=1&wait=soon",
            None,
            400,
            "invalid wait",
        ),
    ];
    for (method, path, body, status, needle) in cases {
        let mut request = http.request(method.clone(), format!("{base}{path}"));
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await.expect("send");
        let got = response.status().as_u16();
        let text = response.text().await.expect("text");
        assert_eq!(got, status, "{method} {path}: {text}");
        assert!(text.contains(needle), "{method} {path}: {text:?} lacks {needle:?}");
    }
    // Still serving.
    assert!(!client.leader().await.expect("leader after bad input").is_empty());
    agent.shutdown().await;
}

/// `PUT /v1/system/gc` collects a stopped job with its evaluations and
/// allocations once its work is dead, and a finished batch job too; a
/// running service job and everything of it stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_gc_collects_dead_jobs_and_keeps_live_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, client) = start_agent(dir.path()).await;
    wait_for_node(&client).await;
    let service = |id: &str| {
        job_value(&format!(
            r#"job "{id}" {{
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sleep"
        args    = ["600"]
      }}
    }}
  }}
}}"#
        ))
    };
    let batch = job_value(
        r#"job "once" {
  type = "batch"
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
      }
    }
  }
}"#,
    );
    client.register_job(service("keep")).await.expect("register keep");
    client.register_job(service("drop")).await.expect("register drop");
    client.register_job(batch).await.expect("register once");
    for job in ["keep", "drop"] {
        wait_allocs(&client, job, "running", |allocs| {
            allocs.iter().any(|alloc| alloc.client_status == "running")
        })
        .await;
    }
    wait_allocs(&client, "once", "complete", |allocs| {
        allocs.iter().any(|alloc| alloc.client_status == "complete")
    })
    .await;
    client.stop_job("drop", false).await.expect("stop");
    wait_allocs(&client, "drop", "stopped", |allocs| {
        allocs.iter().all(|alloc| alloc.client_status == "complete")
    })
    .await;
    // The job turns dead once its evaluations are done.
    let started = Instant::now();
    loop {
        let jobs = client.jobs("").await.expect("jobs");
        if jobs.iter().filter(|job| job.status == "dead").count() == 2 {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "jobs never turned dead: {jobs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client.put_empty("/v1/system/gc").await.expect("gc");
    let jobs: Vec<String> = client
        .jobs("")
        .await
        .expect("jobs")
        .into_iter()
        .map(|job| job.id)
        .collect();
    assert_eq!(jobs, vec!["keep".to_string()]);
    let allocs = client.allocations("").await.expect("allocs");
    assert!(allocs.iter().all(|alloc| alloc.job_id == "keep"), "{allocs:?}");
    assert_eq!(allocs.len(), 1);
    let evals = client.evaluations("").await.expect("evals");
    assert!(evals.iter().all(|eval| eval.job_id == "keep"), "{evals:?}");
    agent.shutdown().await;
}
