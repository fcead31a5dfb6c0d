//! A job in the shape of Nomad's getting-started tutorial on a real dev
//! agent and the real Docker Engine: a docker task (the busybox test image
//! built by `scripts/docker-test-image.sh`, serving with `httpd`) behind
//! `network { port "http" { to = 8080 } }` and `ports = ["http"]` answers
//! on its host port; `drover job stop` (the CLI binary) removes its
//! container; its output reaches the allocation's log files.

mod common;

use api_client::Client;
use api_types::AllocListStub;
use std::process::Command;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(60);

const JOB: &str = r#"
job "webapp" {
  datacenters = ["dc1"]

  group "web" {
    network {
      port "http" {
        to = 8080
      }
    }

    task "server" {
      driver = "docker"

      config {
        image   = "drover-test/busybox:latest"
        command = "/bin/sh"
        args    = ["-c", "echo serving on $NOMAD_PORT_http for host port $NOMAD_HOST_PORT_http; exec httpd -f -p $NOMAD_PORT_http -h /var/www"]
        ports   = ["http"]
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
"#;

async fn running_alloc(client: &Client, job: &str) -> AllocListStub {
    let started = Instant::now();
    let mut index = 0;
    loop {
        let answer = client
            .get_blocking::<Vec<AllocListStub>>(&format!("/v1/job/{job}/allocations"), index, Duration::from_secs(2))
            .await
            .expect("allocations");
        if let Some(alloc) = answer.value.iter().find(|alloc| alloc.client_status == "running") {
            return alloc.clone();
        }
        if let Some(failed) = answer.value.iter().find(|alloc| alloc.client_status == "failed") {
            let full = client.allocation(&failed.id).await.expect("alloc");
            panic!("allocation failed: {:?}", full.task_states);
        }
        assert!(started.elapsed() < DEADLINE, "no running allocation");
        index = answer.index;
    }
}

fn containers_of(alloc_id: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=io.drover.alloc_id={alloc_id}")])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_getting_started_job_answers_on_its_host_port_and_stop_removes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(dir.path()).await;
    let address = format!("http://{}", agent.http_addr);
    let client = Client::new(address.clone());
    let job = jobspec::parse(JOB, "webapp.nomad.hcl", &jobspec::ParseOptions::default()).expect("job parses");
    client.register_job(jobspec::job_to_api(&job)).await.expect("register");
    let alloc = running_alloc(&client, "webapp").await;
    let full = client.allocation(&alloc.id).await.expect("alloc");
    let port = full.allocated_resources["Shared"]["Ports"][0]["Value"]
        .as_u64()
        .expect("a host port");
    assert_eq!(full.allocated_resources["Shared"]["Ports"][0]["To"], 8080);
    assert_eq!(containers_of(&alloc.id).len(), 1);

    // The dev agent publishes ports on the loopback address.
    let url = format!("http://127.0.0.1:{port}/");
    let started = Instant::now();
    let body = loop {
        match reqwest::get(&url).await {
            Ok(response) if response.status().is_success() => break response.text().await.expect("body"),
            other => {
                assert!(started.elapsed() < DEADLINE, "no answer on {url}: {other:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(body, "drover test image\n");
    let log = dir
        .path()
        .join("alloc")
        .join(&alloc.id)
        .join("alloc/logs/server.stdout.0");
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("serving on 8080 for host port") {
            assert!(text.contains(&format!("host port {port}")), "{text}");
            break;
        }
        assert!(started.elapsed() < DEADLINE, "no output in {}: {text:?}", log.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let status = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["job", "stop", "--address", &address, "webapp"])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("drover job stop");
    assert!(status.success());
    let started = Instant::now();
    while !containers_of(&alloc.id).is_empty() {
        assert!(started.elapsed() < DEADLINE, "the container outlived the stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reqwest::get(&url).await.is_err(), "still answering after the stop");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_fails_the_task_with_a_clear_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(dir.path()).await;
    let client = Client::new(format!("http://{}", agent.http_addr));
    let hcl = r#"
job "ghost" {
  group "g" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    task "t" {
      driver = "docker"
      config {
        image = "drover-test/no-such-image:1"
      }
    }
  }
}
"#;
    let job = jobspec::parse(hcl, "ghost.nomad.hcl", &jobspec::ParseOptions::default()).expect("job parses");
    client.register_job(jobspec::job_to_api(&job)).await.expect("register");
    let started = Instant::now();
    loop {
        let allocs = client.allocations("").await.expect("allocs");
        if let Some(alloc) = allocs
            .iter()
            .find(|alloc| alloc.job_id == "ghost" && alloc.client_status == "failed")
        {
            let full = client.allocation(&alloc.id).await.expect("alloc");
            let events = &full.task_states["t"].events;
            let failure = events
                .iter()
                .find(|event| event.event_type == "Driver Failure")
                .expect("a driver failure event");
            assert!(
                failure.display_message.contains("drover-test/no-such-image:1")
                    || failure.driver_error.contains("drover-test/no-such-image:1"),
                "{failure:?}"
            );
            break;
        }
        assert!(started.elapsed() < DEADLINE, "the task never failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent.shutdown().await;
}
