//! Periodic and parameterized jobs on a real dev agent: a per-two-seconds
//! cron launches children on its schedule, `job periodic force` launches
//! at once, a dispatch carries its payload and meta into the task, the
//! payload limit and idempotency tokens hold, and `max_concurrent` (a
//! Drover extension) keeps at most that many children running while all
//! of them complete.

mod common;

use api_client::Client;
use common::cluster::{eventually, job_json};
use std::collections::{BTreeMap, BTreeSet};
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

async fn ready(client: &Client) {
    eventually(Duration::from_secs(30), "a ready node", async || {
        client
            .nodes("")
            .await
            .ok()
            .filter(|nodes| nodes.iter().any(|node| node.status == "ready"))
    })
    .await;
}

/// The children of `parent` the servers hold, by ID.
async fn children(client: &Client, parent: &str) -> Vec<String> {
    client
        .jobs(&format!("{parent}/"))
        .await
        .expect("jobs")
        .into_iter()
        .map(|job| job.id)
        .collect()
}

fn batch_job(id: &str, extra: &str, command: &str) -> serde_json::Value {
    job_json(&format!(
        r#"
job "{id}" {{
  type = "batch"
  {extra}
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", {command:?}]
      }}
      resources {{
        cpu    = 20
        memory = 16
      }}
    }}
  }}
}}
"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_periodic_job_launches_on_schedule_and_on_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(&dir.path().join("agent")).await;
    let address = format!("http://{}", agent.http_addr);
    let client = Client::new(address.clone());
    ready(&client).await;

    // Nomad's 7-field form starts with seconds: every two seconds.
    let job = batch_job("tick", r#"periodic { cron = "*/2 * * * * * *" }"#, "true");
    client.register_job(job).await.expect("register");
    let launched = eventually(Duration::from_secs(10), "two periodic launches", async || {
        Some(children(&client, "tick").await).filter(|ids| ids.len() >= 2)
    })
    .await;
    let mut times: Vec<i64> = launched
        .iter()
        .map(|id| {
            id.strip_prefix("tick/periodic-")
                .and_then(|unix| unix.parse().ok())
                .unwrap_or_else(|| panic!("child ID {id:?} is not tick/periodic-<unix>"))
        })
        .collect();
    times.sort();
    assert!(
        times.iter().all(|unix| unix % 2 == 0),
        "launches off schedule: {times:?}"
    );
    assert!(
        times.windows(2).all(|pair| pair[1] > pair[0]),
        "a launch repeated: {times:?}"
    );
    // The children run to completion.
    let first = launched[0].clone();
    eventually(
        Duration::from_secs(10),
        "the first child's allocation completes",
        async || {
            let allocs = client.job_allocations(&first).await.ok()?;
            allocs
                .iter()
                .any(|alloc| alloc.client_status == "complete")
                .then_some(())
        },
    )
    .await;
    let output = drover(&address, &["job", "stop", "-detach", "tick"]).await;
    assert!(output.status.success(), "{output:?}");

    // Once a year, so nothing but a forced launch runs during the test.
    let job = batch_job("yearly", r#"periodic { crons = ["@yearly"] }"#, "true");
    client.register_job(job).await.expect("register");
    let output = drover(&address, &["job", "periodic", "force", "yearly"]).await;
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(stdout.contains("Launched Job ID = yearly/periodic-"), "{stdout}");
    assert!(stdout.contains("finished with status \"complete\""), "{stdout}");
    let forced = children(&client, "yearly").await;
    assert_eq!(forced.len(), 1, "{forced:?}");
    eventually(Duration::from_secs(10), "the forced child completes", async || {
        let allocs = client.job_allocations(&forced[0]).await.ok()?;
        allocs
            .iter()
            .any(|alloc| alloc.client_status == "complete")
            .then_some(())
    })
    .await;

    // Forcing a job that is not periodic is refused with the reason.
    client
        .register_job(batch_job("plain", "", "true"))
        .await
        .expect("register");
    let output = drover(&address, &["job", "periodic", "force", "plain"]).await;
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("non-periodic"),
        "{output:?}"
    );
    // A schedule the servers cannot read is refused at registration.
    let mut bad = batch_job("badcron", r#"periodic { cron = "@daily" }"#, "true");
    bad["Periodic"]["Spec"] = "61 * * * *".into();
    bad["Periodic"]["Specs"] = serde_json::json!(["61 * * * *"]);
    let refused = client.register_job(bad).await.expect_err("bad cron refused");
    assert_eq!(refused.status(), Some(400), "{refused}");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatch_carries_its_payload_and_meta_into_the_task() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(&dir.path().join("agent")).await;
    let address = format!("http://{}", agent.http_addr);
    let client = Client::new(address.clone());
    ready(&client).await;
    let out = dir.path().join("out");
    std::fs::create_dir(&out).expect("out dir");
    let job = job_json(&format!(
        r#"
job "greet" {{
  type = "batch"
  parameterized {{
    payload       = "required"
    meta_required = ["who"]
  }}
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      dispatch_payload {{
        file = "input.txt"
      }}
      config {{
        command = "/bin/sh"
        args    = ["-c", "cp \"$NOMAD_TASK_DIR/input.txt\" {out}/payload-$NOMAD_META_who"]
      }}
      resources {{
        cpu    = 20
        memory = 16
      }}
    }}
  }}
}}
"#,
        out = out.display()
    ));
    client.register_job(job).await.expect("register");
    let payload_file = dir.path().join("payload.bin");
    let payload: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    std::fs::write(&payload_file, &payload).expect("payload");
    let output = drover(
        &address,
        &[
            "job",
            "dispatch",
            "-meta",
            "who=alice",
            "greet",
            &payload_file.display().to_string(),
        ],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let child = stdout
        .lines()
        .find_map(|line| line.strip_prefix("Dispatched Job ID = "))
        .expect("a dispatched job ID")
        .to_string();
    let suffix = child.strip_prefix("greet/dispatch-").expect("child of greet");
    let (unix, hex) = suffix.split_once('-').expect("<unix>-<hex>");
    assert!(
        unix.parse::<i64>().is_ok() && hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "{child}"
    );
    let written = out.join("payload-alice");
    let copied = eventually(Duration::from_secs(10), "the task copies its payload", async || {
        std::fs::read(&written)
            .ok()
            .filter(|bytes| bytes.len() == payload.len())
    })
    .await;
    assert_eq!(copied, payload);

    // Missing required meta, and a payload over 16 KiB, are refused.
    let mut meta = BTreeMap::new();
    let refused = client
        .dispatch_job("greet", b"x", &meta, "")
        .await
        .expect_err("no meta");
    assert_eq!(refused.status(), Some(400), "{refused}");
    meta.insert("who".to_string(), "bob".to_string());
    let too_big = vec![b'x'; 16 * 1024 + 1];
    let refused = client
        .dispatch_job("greet", &too_big, &meta, "")
        .await
        .expect_err("too big");
    assert_eq!(refused.status(), Some(400));
    assert!(refused.to_string().contains("maximum size"), "{refused}");
    let output = drover(&address, &["job", "dispatch", "-meta", "who=bob", "greet", "-"]).await;
    assert!(
        !output.status.success(),
        "an empty required payload is refused: {output:?}"
    );
    // The same idempotency token twice makes one child.
    let first = client
        .dispatch_job("greet", b"hi", &meta, "once")
        .await
        .expect("dispatch");
    let second = client
        .dispatch_job("greet", b"hi", &meta, "once")
        .await
        .expect("dispatch again");
    assert_eq!(first.dispatched_job_id, second.dispatched_job_id);
    assert!(second.eval_id.is_empty());
    assert_eq!(children(&client, "greet").await.len(), 2);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_caps_running_children_and_all_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(&dir.path().join("agent")).await;
    let address = format!("http://{}", agent.http_addr);
    let client = Client::new(address.clone());
    ready(&client).await;
    let job = batch_job(
        "capped",
        r#"parameterized {
    payload        = "forbidden"
    max_concurrent = 2
  }"#,
        "sleep 0.4",
    );
    client.register_job(job).await.expect("register");
    let meta = BTreeMap::new();
    let mut dispatched = Vec::new();
    for _ in 0..10 {
        let response = client.dispatch_job("capped", b"", &meta, "").await.expect("dispatch");
        dispatched.push(response.dispatched_job_id);
    }
    let distinct: BTreeSet<&String> = dispatched.iter().collect();
    assert_eq!(distinct.len(), 10, "{dispatched:?}");
    // Sample the children's allocations until every child completed.
    let mut most_running = 0;
    let mut samples = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let allocs: Vec<_> = client
            .allocations("")
            .await
            .expect("allocations")
            .into_iter()
            .filter(|alloc| alloc.job_id.starts_with("capped/"))
            .collect();
        let running = allocs
            .iter()
            .filter(|alloc| matches!(alloc.client_status.as_str(), "pending" | "running"))
            .count();
        most_running = most_running.max(running);
        samples += 1;
        assert!(running <= 2, "{running} children run at once: {allocs:#?}");
        let complete: BTreeSet<&str> = allocs
            .iter()
            .filter(|alloc| alloc.client_status == "complete")
            .map(|alloc| alloc.job_id.as_str())
            .collect();
        if complete.len() == 10 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of 10 children completed: {allocs:#?}",
            complete.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(most_running, 2, "the cap was never used in full ({samples} samples)");
    println!("max_concurrent = 2: at most {most_running} running over {samples} samples");
    agent.shutdown().await;
}
