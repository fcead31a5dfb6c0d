//! Group networking through a real dev agent: a raw_exec task in
//! `network { mode = "bridge" port "http" { to = 8080 } }` listens on 8080
//! in its allocation's namespace and answers on the host port of the
//! loopback address, with Nomad's port variables set; `job stop` removes
//! the namespace. An exec task in `mode = "none"` has only loopback. A
//! docker task and a raw_exec task share a `bridge` group's namespace (a
//! pause container's), and the docker task's port is mapped to the host.

mod common;

use api_client::Client;
use api_types::AllocListStub;
use std::path::Path;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(60);

async fn running_alloc(client: &Client, job: &str) -> AllocListStub {
    let started = Instant::now();
    loop {
        let allocs = client.allocations("").await.expect("allocations");
        if let Some(alloc) = allocs
            .iter()
            .find(|alloc| alloc.job_id == job && alloc.client_status == "running")
        {
            return alloc.clone();
        }
        if let Some(failed) = allocs
            .iter()
            .find(|alloc| alloc.job_id == job && alloc.client_status == "failed")
        {
            let full = client.allocation(&failed.id).await.expect("alloc");
            panic!("{job} failed: {:?}", full.task_states);
        }
        assert!(started.elapsed() < DEADLINE, "no running allocation of {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_file(path: &Path) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        assert!(started.elapsed() < DEADLINE, "{} never written", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_task_answers_on_its_mapped_host_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(dir.path()).await;
    let client = Client::new(format!("http://{}", agent.http_addr));
    let hcl = r#"
job "bridged" {
  group "web" {
    network {
      mode = "bridge"
      port "http" {
        to = 8080
      }
    }
    task "server" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "cd $NOMAD_ALLOC_DIR/data && echo bridged > index.html && echo port=$NOMAD_PORT_http host=$NOMAD_HOST_PORT_http ip=$NOMAD_IP_http addr=$NOMAD_ADDR_http > ../env && exec python3 -m http.server $NOMAD_PORT_http"]
      }
    }
  }
}
"#;
    let job = jobspec::parse(hcl, "bridged.nomad.hcl", &jobspec::ParseOptions::default()).expect("job parses");
    client.register_job(jobspec::job_to_api(&job)).await.expect("register");
    let alloc = running_alloc(&client, "bridged").await;
    let full = client.allocation(&alloc.id).await.expect("alloc");
    let host_port = full.allocated_resources["Shared"]["Ports"][0]["Value"]
        .as_u64()
        .expect("host port");
    let env = wait_for_file(&dir.path().join("alloc").join(&alloc.id).join("alloc/env")).await;
    assert_eq!(
        env,
        format!("port=8080 host={host_port} ip=127.0.0.1 addr=127.0.0.1:{host_port}\n")
    );
    let netns = Path::new("/run/netns").join(format!("drover-{}", alloc.id));
    assert!(netns.exists());
    let url = format!("http://127.0.0.1:{host_port}/");
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
    assert_eq!(body, "bridged\n");
    client.stop_job("bridged", false).await.expect("stop");
    let started = Instant::now();
    while netns.exists() {
        assert!(started.elapsed() < DEADLINE, "the namespace outlived the stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_task_without_a_network_has_only_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(dir.path()).await;
    let client = Client::new(format!("http://{}", agent.http_addr));
    let hcl = r#"
job "offline" {
  group "g" {
    network {
      mode = "none"
    }
    task "t" {
      driver = "exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /alloc/data/links; exec sleep 300"]
      }
    }
  }
}
"#;
    let job = jobspec::parse(hcl, "offline.nomad.hcl", &jobspec::ParseOptions::default()).expect("job parses");
    client.register_job(jobspec::job_to_api(&job)).await.expect("register");
    let alloc = running_alloc(&client, "offline").await;
    let links = wait_for_file(&dir.path().join("alloc").join(&alloc.id).join("alloc/data/links")).await;
    assert_eq!(links, "lo\n");
    let netns = Path::new("/run/netns").join(format!("drover-{}", alloc.id));
    assert!(netns.exists());
    client.stop_job("offline", false).await.expect("stop");
    let started = Instant::now();
    while netns.exists() {
        assert!(started.elapsed() < DEADLINE, "the namespace outlived the stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_and_raw_exec_tasks_share_a_bridge_namespace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(dir.path()).await;
    let client = Client::new(format!("http://{}", agent.http_addr));
    let hcl = r#"
job "shared" {
  group "web" {
    network {
      mode = "bridge"
      port "http" {
        to = 8080
      }
    }
    task "server" {
      driver = "docker"
      config {
        image   = "drover-test/busybox:latest"
        command = "httpd"
        args    = ["-f", "-p", "8080", "-h", "/var/www"]
        ports   = ["http"]
      }
    }
    task "probe" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "until python3 -c 'import urllib.request,sys; sys.stdout.write(urllib.request.urlopen(\"http://127.0.0.1:8080/\").read().decode())' > $NOMAD_ALLOC_DIR/probe.tmp 2>/dev/null; do sleep 0.1; done; mv $NOMAD_ALLOC_DIR/probe.tmp $NOMAD_ALLOC_DIR/probe; exec sleep 300"]
      }
    }
  }
}
"#;
    let job = jobspec::parse(hcl, "shared.nomad.hcl", &jobspec::ParseOptions::default()).expect("job parses");
    client.register_job(jobspec::job_to_api(&job)).await.expect("register");
    let alloc = running_alloc(&client, "shared").await;
    // The raw_exec task reached the container on the namespace's loopback.
    let probe = wait_for_file(&dir.path().join("alloc").join(&alloc.id).join("alloc/probe")).await;
    assert_eq!(probe, "drover test image\n");
    let full = client.allocation(&alloc.id).await.expect("alloc");
    let host_port = full.allocated_resources["Shared"]["Ports"][0]["Value"]
        .as_u64()
        .expect("host port");
    let url = format!("http://127.0.0.1:{host_port}/");
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
    let pause = format!("drover-pause-{}", alloc.id);
    let pause_exists = || {
        std::process::Command::new("docker")
            .args(["inspect", &pause])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    assert!(pause_exists());
    client.stop_job("shared", false).await.expect("stop");
    let netns = Path::new("/run/netns").join(format!("drover-{}", alloc.id));
    let started = Instant::now();
    while netns.exists() || pause_exists() {
        assert!(
            started.elapsed() < DEADLINE,
            "the namespace or pause container outlived the stop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent.shutdown().await;
}
