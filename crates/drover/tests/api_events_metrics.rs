//! Issue 13's cross-cutting endpoints on a real dev agent over real
//! sockets: the event stream (a job's register → evaluation → allocation
//! → running sequence, resuming from an index, topic filters), the
//! metrics in Prometheus text (parsed by a Prometheus parser; the
//! placement counter moves once a job runs), search by prefix, node pools
//! and the evaluation count.

mod common;

use api_client::Client;
use futures::StreamExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);

fn job_value(id: &str) -> Value {
    let hcl = format!(
        r#"
job "{id}" {{
  type = "service"
  group "web" {{
    task "sleep" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sleep"
        args    = ["300"]
      }}
      resources {{
        cpu    = 50
        memory = 32
      }}
    }}
  }}
}}
"#
    );
    let job = jobspec::parse(&hcl, "test.nomad.hcl", &jobspec::ParseOptions::default()).expect("test job parses");
    jobspec::job_to_api(&job)
}

/// A batch job that exits at once (nothing outlives the test).
fn batch_value(id: &str) -> Value {
    let mut job = job_value(id);
    job["Type"] = json!("batch");
    job["TaskGroups"][0]["Tasks"][0]["Config"]["command"] = json!("/bin/true");
    job["TaskGroups"][0]["Tasks"][0]["Config"]["args"] = json!([]);
    job
}

/// Reads NDJSON frames from an event stream until `done` says so (or the
/// deadline passes, which fails the test). Heartbeats are counted apart.
struct Frames {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: Vec<u8>,
}

impl Frames {
    async fn open(address: &str, query: &str) -> Frames {
        let response = reqwest::get(format!("{address}/v1/event/stream?{query}"))
            .await
            .expect("open the event stream");
        assert_eq!(response.status(), 200, "stream refused: {:?}", response.text().await);
        Frames {
            body: response.bytes_stream().boxed(),
            buffer: Vec::new(),
        }
    }

    /// The next non-heartbeat frame.
    async fn next(&mut self) -> Value {
        loop {
            if let Some(at) = self.buffer.iter().position(|byte| *byte == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=at).collect();
                let frame: Value = serde_json::from_slice(&line).expect("each line is JSON");
                if frame.as_object().is_some_and(|object| object.is_empty()) {
                    continue;
                }
                return frame;
            }
            let chunk = tokio::time::timeout(DEADLINE, self.body.next())
                .await
                .expect("a frame within the deadline")
                .expect("the stream stays open")
                .expect("read the stream");
            self.buffer.extend_from_slice(&chunk);
        }
    }

    /// Events (as (topic, type, key, payload)) until `done` accepts the
    /// list so far.
    async fn collect_until(
        &mut self,
        done: impl Fn(&[(String, String, Value)]) -> bool,
    ) -> Vec<(String, String, Value)> {
        let started = Instant::now();
        let mut seen = Vec::new();
        while !done(&seen) {
            assert!(started.elapsed() < DEADLINE, "events so far: {seen:#?}");
            let frame = self.next().await;
            let index = frame["Index"].as_u64().expect("frame index");
            for event in frame["Events"].as_array().expect("frame events") {
                assert_eq!(event["Index"].as_u64(), Some(index), "events carry their frame's index");
                seen.push((
                    event["Topic"].as_str().expect("topic").to_string(),
                    event["Type"].as_str().expect("type").to_string(),
                    event.clone(),
                ));
            }
        }
        seen
    }
}

fn position(events: &[(String, String, Value)], what: impl Fn(&(String, String, Value)) -> bool) -> Option<usize> {
    events.iter().position(what)
}

fn alloc_running(event: &(String, String, Value)) -> bool {
    event.0 == "Allocation" && event.2["Payload"]["Allocation"]["ClientStatus"] == "running"
}

fn prometheus(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_string()))).expect("Prometheus text parses")
}

fn value_of(scrape: &prometheus_parse::Scrape, name: &str) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|sample| sample.metric == name)
        .map(|sample| match sample.value {
            prometheus_parse::Value::Counter(value)
            | prometheus_parse::Value::Gauge(value)
            | prometheus_parse::Value::Untyped(value) => value,
            _ => f64::NAN,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_follows_a_job_from_registration_to_running_and_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(dir.path()).await;
    let address = format!("http://{}", agent.http_addr);
    let client = Client::new(address.clone());

    // Subscribed before the job exists: Job, Evaluation and Allocation
    // events of this job only.
    let mut stream = Frames::open(&address, "topic=Job:ev&topic=Evaluation:ev&topic=Allocation:ev").await;
    // And one for another job's key: it must see nothing of `ev`.
    let mut other = Frames::open(&address, "topic=Job:other-job").await;

    let metrics_before = prometheus(
        &reqwest::get(format!("{address}/v1/metrics?format=prometheus"))
            .await
            .expect("scrape")
            .text()
            .await
            .expect("text"),
    );
    let placements_before = value_of(&metrics_before, "drover_scheduler_placements").unwrap_or(0.0);

    let registered = client.register_job(job_value("ev")).await.expect("register");
    let events = stream.collect_until(|seen| seen.iter().any(alloc_running)).await;

    let registered_at = position(&events, |e| e.0 == "Job" && e.1 == "JobRegistered").expect("JobRegistered");
    let eval_at = position(&events, |e| {
        e.0 == "Evaluation" && e.1 == "EvaluationUpdated" && e.2["Key"] == registered.eval_id.as_str()
    })
    .expect("the registration's evaluation");
    let placed_at = position(&events, |e| e.0 == "Allocation" && e.1 == "PlanResult").expect("the plan's allocation");
    let running_at = position(&events, alloc_running).expect("running");
    assert!(
        registered_at <= eval_at && eval_at < placed_at && placed_at < running_at,
        "out of order: {events:#?}"
    );
    for (topic, _, event) in &events {
        assert_eq!(event["Namespace"], "default");
        match topic.as_str() {
            "Job" => assert_eq!(event["Payload"]["Job"]["ID"], "ev"),
            "Allocation" => {
                assert_eq!(event["Payload"]["Allocation"]["JobID"], "ev");
                assert!(
                    event["FilterKeys"]
                        .as_array()
                        .expect("filter keys")
                        .contains(&json!("ev"))
                );
            }
            "Evaluation" => assert_eq!(event["Payload"]["Evaluation"]["JobID"], "ev"),
            other => panic!("unexpected topic {other}"),
        }
    }

    // Resume: from the registration's index, the same events again, from
    // that index on (none older).
    let from = events[registered_at].2["Index"].as_u64().expect("index");
    let mut resumed = Frames::open(&address, &format!("topic=Job:ev&topic=Allocation:ev&index={from}")).await;
    let replay = resumed.collect_until(|seen| seen.iter().any(alloc_running)).await;
    assert_eq!(replay[0].1, "JobRegistered");
    assert!(replay.iter().all(|e| e.2["Index"].as_u64() >= Some(from)));
    assert!(
        replay.iter().all(|e| e.0 != "Evaluation"),
        "topic filter: no evaluations"
    );
    // From past the registration: it is not replayed.
    let mut later = Frames::open(
        &address,
        &format!("topic=Job:ev&topic=Allocation:ev&index={}", from + 1),
    )
    .await;
    let later_events = later.collect_until(|seen| seen.iter().any(alloc_running)).await;
    assert!(later_events.iter().all(|e| e.1 != "JobRegistered"), "{later_events:#?}");

    // The CLI follows the same stream, with Nomad's single-dash flags.
    let mut cli = tokio::process::Command::new(env!("CARGO_BIN_EXE_drover"))
        .args([
            "event", "stream", "-topic", "Job:ev", "-index", "1", "-address", &address,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start drover event stream");
    let stdout = cli.stdout.take().expect("piped stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let first = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("a line in time")
        .expect("read")
        .expect("a line");
    let frame: Value = serde_json::from_str(&first).expect("the CLI prints frames as JSON");
    assert_eq!(frame["Events"][0]["Type"], "JobRegistered", "{frame}");
    cli.kill().await.expect("stop the CLI");

    // A topic filter with another key: deregistering `ev` sends it
    // nothing, and registering `other-job` does.
    client
        .register_job(job_value("other-job"))
        .await
        .expect("register other");
    let seen_other = other.collect_until(|seen| !seen.is_empty()).await;
    assert!(seen_other.iter().all(|e| e.2["Key"] == "other-job"), "{seen_other:#?}");

    // Node topic and a bad topic.
    let mut nodes = Frames::open(&address, "topic=Node&index=1").await;
    let node_events = nodes.collect_until(|seen| !seen.is_empty()).await;
    assert_eq!(node_events[0].1, "NodeRegistration");
    let bad = reqwest::get(format!("{address}/v1/event/stream?topic=Bogus"))
        .await
        .expect("request");
    assert_eq!(bad.status(), 400);

    // Metrics: the Prometheus text parses, carries Nomad's names and
    // Drover's own, and placements moved (both jobs placed one
    // allocation; polled, as the counter moves once each commit returns).
    let started = Instant::now();
    let text = loop {
        let text = reqwest::get(format!("{address}/v1/metrics?format=prometheus"))
            .await
            .expect("scrape")
            .text()
            .await
            .expect("text");
        let placements = value_of(&prometheus(&text), "drover_scheduler_placements").unwrap_or(0.0);
        if placements >= placements_before + 2.0 {
            break text;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "placements {placements_before} → {placements}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let scrape = prometheus(&text);
    for name in [
        "nomad_nomad_broker_total_ready",
        "nomad_nomad_broker_total_unacked",
        "nomad_client_allocations_running",
        "nomad_nomad_job_summary_running",
        "nomad_nomad_job_status_running",
        "nomad_nomad_heartbeat_active",
        "nomad_raft_apply",
        "drover_plan_applied",
        "drover_plan_conflicts",
        "drover_raft_fsm_apply",
    ] {
        assert!(value_of(&scrape, name).is_some(), "{name} missing from:\n{text}");
    }
    for summary in [
        "nomad_nomad_plan_apply",
        "drover_scheduler_eval_time",
        "drover_raft_commit_time",
    ] {
        // Summaries come as `_sum` and `_count` series.
        let count = value_of(&scrape, &format!("{summary}_count"));
        assert!(
            count.is_some_and(|count| count >= 1.0),
            "{summary} missing from:\n{text}"
        );
        assert!(value_of(&scrape, &format!("{summary}_sum")).is_some());
    }
    let placements = value_of(&scrape, "drover_scheduler_placements").expect("placements");
    assert!(
        placements >= placements_before + 2.0,
        "placements {placements_before} → {placements}"
    );
    assert!(value_of(&scrape, "nomad_client_allocations_running").expect("running") >= 1.0);
    let json_metrics: Value = reqwest::get(format!("{address}/v1/metrics"))
        .await
        .expect("json")
        .json()
        .await
        .expect("json body");
    assert!(
        json_metrics["Gauges"]
            .as_array()
            .expect("gauges")
            .iter()
            .any(|g| g["Name"] == "nomad.nomad.broker.total_ready")
    );
    assert!(
        json_metrics["Counters"]
            .as_array()
            .expect("counters")
            .iter()
            .any(|c| c["Name"] == "drover.scheduler.placements")
    );
    assert!(
        json_metrics["Samples"]
            .as_array()
            .expect("samples")
            .iter()
            .any(|s| s["Name"] == "nomad.nomad.plan.apply")
    );

    // Search by prefix, over jobs and everything.
    let http = reqwest::Client::new();
    let found: Value = http
        .post(format!("{address}/v1/search"))
        .json(&json!({ "Prefix": "e", "Context": "jobs" }))
        .send()
        .await
        .expect("search")
        .json()
        .await
        .expect("search body");
    assert_eq!(found["Matches"]["jobs"], json!(["ev"]));
    assert_eq!(found["Truncations"]["jobs"], false);
    let all: Value = http
        .post(format!("{address}/v1/search"))
        .json(&json!({ "Prefix": &registered.eval_id[..8], "Context": "all" }))
        .send()
        .await
        .expect("search all")
        .json()
        .await
        .expect("search all body");
    assert!(
        all["Matches"]["evals"]
            .as_array()
            .expect("evals")
            .contains(&json!(registered.eval_id))
    );
    let fuzzy: Value = http
        .post(format!("{address}/v1/search/fuzzy"))
        .json(&json!({ "Text": "her-jo", "Context": "jobs" }))
        .send()
        .await
        .expect("fuzzy")
        .json()
        .await
        .expect("fuzzy body");
    assert_eq!(
        fuzzy["Matches"]["jobs"],
        json!([{ "ID": "other-job", "Scope": ["default", "other-job"] }])
    );
    let parts: Value = http
        .post(format!("{address}/v1/search/fuzzy"))
        .json(&json!({ "Text": "slee", "Context": "all" }))
        .send()
        .await
        .expect("fuzzy tasks")
        .json()
        .await
        .expect("fuzzy tasks body");
    assert_eq!(
        parts["Matches"]["tasks"],
        json!([
            { "ID": "sleep", "Scope": ["default", "ev", "web"] },
            { "ID": "sleep", "Scope": ["default", "other-job", "web"] }
        ])
    );
    assert_eq!(parts["Matches"]["groups"], json!([]));
    let refused = http
        .post(format!("{address}/v1/search"))
        .json(&json!({ "Prefix": "e", "Context": "volumes" }))
        .send()
        .await
        .expect("search volumes");
    assert_eq!(refused.status(), 400);

    // Node pools and the evaluation count.
    let pools: Value = client.get::<Value>("/v1/node/pools").await.expect("pools").value;
    let names: Vec<&str> = pools
        .as_array()
        .expect("pool list")
        .iter()
        .filter_map(|p| p["Name"].as_str())
        .collect();
    assert_eq!(names, vec!["all", "default"]);
    let pool_nodes: Value = client
        .get::<Value>("/v1/node/pool/default/nodes")
        .await
        .expect("pool nodes")
        .value;
    assert_eq!(pool_nodes.as_array().expect("nodes").len(), 1);
    let pool_jobs: Value = client
        .get::<Value>("/v1/node/pool/all/jobs")
        .await
        .expect("pool jobs")
        .value;
    assert_eq!(pool_jobs.as_array().expect("jobs").len(), 2);
    assert!(client.get::<Value>("/v1/node/pool/nope").await.is_err());
    let count: Value = client.get::<Value>("/v1/evaluations/count").await.expect("count").value;
    assert!(count["Count"].as_u64().expect("count") >= 2);

    common::stop_job_and_wait(&client, "ev").await;
    common::stop_job_and_wait(&client, "other-job").await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_monitor_streams_log_lines_and_host_reports_the_machine() {
    let logs = http_api::LogBroadcast::default();
    assert!(
        drover::log_monitor::init(tracing_subscriber::EnvFilter::new("warn"), logs.clone()),
        "this test binary's tests run one per process"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = drover::agent::Agent::start(drover::agent::AgentConfig {
        http_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        rpc_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: Some(dir.path().to_path_buf()),
        drover_binary: Some(env!("CARGO_BIN_EXE_drover").into()),
        docker: common::no_image_gc(),
        logs,
        ..drover::agent::AgentConfig::default()
    })
    .await
    .expect("agent starts");
    let address = format!("http://{}", agent.http_addr);

    // Plain text at info: the monitor's own attach line arrives first.
    let response = reqwest::get(format!("{address}/v1/agent/monitor?log_level=info&plain=true"))
        .await
        .expect("monitor");
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let started = Instant::now();
    while !text.contains("agent monitor attached") {
        assert!(started.elapsed() < DEADLINE, "no line: {text:?}");
        let chunk = tokio::time::timeout(DEADLINE, body.next())
            .await
            .expect("a line in time")
            .expect("stream open")
            .expect("read");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("[WARN]"), "{text}");

    // Framed (Nomad's default): JSON objects with base64 data.
    let framed = reqwest::get(format!("{address}/v1/agent/monitor?log_level=debug"))
        .await
        .expect("framed monitor");
    let mut framed_body = framed.bytes_stream();
    let chunk = tokio::time::timeout(DEADLINE, framed_body.next())
        .await
        .expect("a frame in time")
        .expect("stream open")
        .expect("read");
    let frame: Value =
        serde_json::from_slice(chunk.split(|b| *b == b'\n').next().expect("line")).expect("frame is JSON");
    assert!(frame["Data"].as_str().is_some_and(|data| !data.is_empty()), "{frame}");

    for bad in ["log_level=loud", "log_json=true", "node_id=someone-else"] {
        let refused = reqwest::get(format!("{address}/v1/agent/monitor?{bad}"))
            .await
            .expect("request");
        assert_eq!(refused.status(), 400, "{bad}");
    }

    let host: Value = reqwest::get(format!("{address}/v1/agent/host"))
        .await
        .expect("host")
        .json()
        .await
        .expect("host body");
    assert_eq!(host["HostData"]["OS"]["Type"], "Linux");
    assert!(
        host["HostData"]["Network"]
            .as_array()
            .is_some_and(|nets| !nets.is_empty())
    );
    agent.shutdown().await;
}

async fn call(address: &str, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let http = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = http.request(method, format!("{address}{path}"));
    if let Some(token) = token {
        request = request.header("X-Nomad-Token", token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_and_search_show_only_what_the_token_may_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent_with_acls(dir.path()).await;
    let address = format!("http://{}", agent.http_addr);
    let (status, boot) = call(&address, "PUT", "/v1/acl/bootstrap", None, None).await;
    assert_eq!(status, 200, "{boot}");
    let root_secret = boot["SecretID"].as_str().expect("root secret").to_string();
    let root = Some(root_secret.as_str());
    let rules = r#"namespace "default" { policy = "read" }"#;
    let policy = json!({ "Name": "default-read", "Rules": rules });
    assert_eq!(
        call(&address, "PUT", "/v1/acl/policy/default-read", root, Some(policy))
            .await
            .0,
        200
    );
    let token = json!({ "Name": "reader", "Type": "client", "Policies": ["default-read"] });
    let (_, reader) = call(&address, "PUT", "/v1/acl/token", root, Some(token)).await;
    let reader = reader["SecretID"].as_str().expect("reader secret").to_string();
    assert_eq!(
        call(
            &address,
            "PUT",
            "/v1/namespace",
            root,
            Some(json!({ "Name": "team-a" }))
        )
        .await
        .0,
        200
    );

    // The hidden job first, so a stream that reached the public one has
    // passed the hidden one's events.
    let mut hidden = batch_value("hid");
    hidden["Namespace"] = json!("team-a");
    assert_eq!(
        call(&address, "PUT", "/v1/jobs", root, Some(json!({ "Job": hidden })))
            .await
            .0,
        200
    );
    assert_eq!(
        call(
            &address,
            "PUT",
            "/v1/jobs",
            root,
            Some(json!({ "Job": batch_value("pub") }))
        )
        .await
        .0,
        200
    );

    // Topics the reader may not follow are refused.
    for query in [
        "",
        "topic=*",
        "topic=Node",
        "topic=ACLToken",
        "topic=Job&namespace=team-a",
    ] {
        let (status, _) = call(
            &address,
            "GET",
            &format!("/v1/event/stream?{query}"),
            Some(&reader),
            None,
        )
        .await;
        assert_eq!(status, 403, "{query:?}");
    }
    // Every namespace asked: only default's events arrive.
    let response = reqwest::Client::new()
        .get(format!("{address}/v1/event/stream?topic=Job&namespace=*&index=1"))
        .header("X-Nomad-Token", &reader)
        .send()
        .await
        .expect("reader stream");
    assert_eq!(response.status(), 200);
    let mut frames = Frames {
        body: response.bytes_stream().boxed(),
        buffer: Vec::new(),
    };
    let seen = frames
        .collect_until(|seen| seen.iter().any(|e| e.2["Key"] == "pub"))
        .await;
    assert!(seen.iter().all(|e| e.2["Namespace"] == "default"), "{seen:#?}");
    // The management token sees both.
    let response = reqwest::Client::new()
        .get(format!("{address}/v1/event/stream?namespace=*&index=1"))
        .header("X-Nomad-Token", &root_secret)
        .send()
        .await
        .expect("root stream");
    let mut frames = Frames {
        body: response.bytes_stream().boxed(),
        buffer: Vec::new(),
    };
    let seen = frames
        .collect_until(|seen| seen.iter().any(|e| e.2["Key"] == "pub"))
        .await;
    assert!(seen.iter().any(|e| e.2["Key"] == "hid"), "{seen:#?}");

    // Search: the reader finds default's job only, anonymous nothing.
    let search = json!({ "Prefix": "", "Context": "jobs" });
    let (_, found) = call(
        &address,
        "POST",
        "/v1/search?namespace=*",
        Some(&reader),
        Some(search.clone()),
    )
    .await;
    assert_eq!(found["Matches"]["jobs"], json!(["pub"]));
    let (_, anonymous) = call(&address, "POST", "/v1/search?namespace=*", None, Some(search)).await;
    assert_eq!(anonymous["Matches"]["jobs"], json!([]));

    agent.shutdown().await;
}
