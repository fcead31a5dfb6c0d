//! `drover-bench docker --replicas N --network none|bridge|host` (DESIGN.md
//! P4): the same N containers of the busybox test image started two ways
//! on this machine's Docker Engine, timed from the first request until all
//! N run:
//!
//! - the engine's floor: N × (create + start) through the Engine API,
//!   8 in flight at a time;
//! - Drover: one job of N replicas submitted to a dev agent (a separate
//!   `drover` process) over HTTP, until the API shows all N allocations
//!   running.
//!
//! Both use the same image, command and Docker network mode. Everything is
//! removed between the runs (untimed). The last line is
//! `RESULT replicas=… network=… drover_s=… floor_s=… ratio=…`.

use anyhow::{Context, bail};
use api_client::Client;
use api_types::AllocListStub;
use bollard::Docker;
use futures::StreamExt;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "drover-test/busybox:latest";
/// Creates and starts in flight at once for the floor.
const FLOOR_CONCURRENCY: usize = 8;
/// The label that marks the floor's containers, for cleanup.
const FLOOR_LABEL: &str = "io.drover.bench";
/// The label of the benchmark job's containers.
const DROVER_LABEL: &str = "io.drover.job_id=bench-docker";
/// Longest any phase may take before the benchmark gives up.
const PHASE_LIMIT: Duration = Duration::from_secs(300);

async fn engine() -> anyhow::Result<Docker> {
    let docker = Docker::connect_with_local_defaults().context("connect to the docker engine")?;
    docker
        .negotiate_version()
        .await
        .context("negotiate the Engine API version")
}

/// Removes every container carrying `label` (`key=value`).
async fn remove_labelled(docker: &Docker, label: &str) -> anyhow::Result<usize> {
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let containers = docker
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await?;
    let ids: Vec<String> = containers.into_iter().filter_map(|container| container.id).collect();
    let count = ids.len();
    futures::stream::iter(ids)
        .for_each_concurrent(FLOOR_CONCURRENCY, |id| {
            let docker = docker.clone();
            async move {
                let _ = docker
                    .remove_container(
                        &id,
                        Some(bollard::query_parameters::RemoveContainerOptions {
                            force: true,
                            ..Default::default()
                        }),
                    )
                    .await;
            }
        })
        .await;
    Ok(count)
}

/// N × (create + start), 8 at a time. Returns the seconds taken.
async fn floor(docker: &Docker, replicas: usize, network: &str) -> anyhow::Result<f64> {
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..replicas)
        .map(|index| {
            let docker = docker.clone();
            let network = network.to_string();
            async move {
                let body = bollard::models::ContainerCreateBody {
                    image: Some(IMAGE.to_string()),
                    cmd: Some(vec!["sleep".to_string(), "3600".to_string()]),
                    labels: Some(HashMap::from([(FLOOR_LABEL.to_string(), "floor".to_string())])),
                    host_config: Some(bollard::models::HostConfig {
                        network_mode: Some(network),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                let created = docker
                    .create_container(
                        Some(bollard::query_parameters::CreateContainerOptions {
                            name: Some(format!("drover-bench-floor-{index}")),
                            ..Default::default()
                        }),
                        body,
                    )
                    .await?;
                docker.start_container(&created.id, None).await?;
                Ok(())
            }
        })
        .buffer_unordered(FLOOR_CONCURRENCY)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    for result in results {
        result?;
    }
    Ok(seconds)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct AgentProcess(std::process::Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn job_hcl(replicas: usize, network: &str) -> String {
    format!(
        r#"job "bench-docker" {{
  type = "service"
  group "g" {{
    count = {replicas}
    restart {{
      attempts = 0
      mode     = "fail"
    }}
    ephemeral_disk {{
      size = 10
    }}
    task "t" {{
      driver = "docker"
      config {{
        image        = "{IMAGE}"
        command      = "sleep"
        args         = ["3600"]
        network_mode = "{network}"
      }}
      resources {{
        cpu    = 10
        memory = 16
      }}
    }}
  }}
}}"#
    )
}

/// Submits the job and waits until all replicas run. Returns the seconds
/// from submit to the last one running.
async fn drover_run(client: &Client, replicas: usize, network: &str) -> anyhow::Result<f64> {
    let job = jobspec::parse(
        &job_hcl(replicas, network),
        "bench.nomad.hcl",
        &jobspec::ParseOptions::default(),
    )
    .map_err(|diagnostics| anyhow::anyhow!("{diagnostics}"))?;
    let body = jobspec::job_to_api(&job);
    let submitted = Instant::now();
    client.register_job(body).await?;
    let mut index = 0;
    loop {
        let answer = client
            .get_blocking::<Vec<AllocListStub>>("/v1/job/bench-docker/allocations", index, Duration::from_secs(5))
            .await?;
        let running = answer
            .value
            .iter()
            .filter(|alloc| alloc.client_status == "running")
            .count();
        if running >= replicas {
            return Ok(submitted.elapsed().as_secs_f64());
        }
        if let Some(failed) = answer.value.iter().find(|alloc| alloc.client_status == "failed") {
            let full = client.allocation(&failed.id).await?;
            bail!("allocation {} failed: {:?}", failed.id, full.task_states);
        }
        if submitted.elapsed() > PHASE_LIMIT {
            bail!("only {running} of {replicas} running after {PHASE_LIMIT:?}");
        }
        index = answer.index;
    }
}

/// Runs the benchmark and prints its `RESULT` line.
pub async fn run(replicas: usize, network: &str, drover: Option<PathBuf>) -> anyhow::Result<()> {
    if !matches!(network, "none" | "bridge" | "host") {
        bail!("--network must be none, bridge or host, not {network:?}");
    }
    let docker = engine().await?;
    if docker.inspect_image(IMAGE).await.is_err() {
        bail!("image {IMAGE} is missing: run scripts/docker-test-image.sh");
    }
    let version = docker.version().await?;
    println!(
        "engine={} api={} replicas={replicas} network={network}",
        version.version.unwrap_or_default(),
        version.api_version.unwrap_or_default()
    );
    remove_labelled(&docker, &format!("{FLOOR_LABEL}=floor")).await?;
    remove_labelled(&docker, DROVER_LABEL).await?;

    let floor_s = floor(&docker, replicas, network).await?;
    println!("floor: {replicas} x create+start, {FLOOR_CONCURRENCY} in flight: {floor_s:.3}s");
    remove_labelled(&docker, &format!("{FLOOR_LABEL}=floor")).await?;

    let binary = match drover {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .context("bench binary has a directory")?
            .join("drover"),
    };
    let data_dir = tempfile::tempdir()?;
    let (http_port, rpc_port) = (free_port()?, free_port()?);
    let agent = AgentProcess(
        Command::new(&binary)
            .args([
                "agent",
                "--dev",
                "--http-addr",
                &format!("127.0.0.1:{http_port}"),
                "--rpc-addr",
                &format!("127.0.0.1:{rpc_port}"),
                "--data-dir",
                &data_dir.path().display().to_string(),
                "--log-level",
                "warn",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?,
    );
    let client = Client::new(format!("http://127.0.0.1:{http_port}"));
    let started = Instant::now();
    loop {
        if let Ok(nodes) = client.nodes("").await
            && nodes.iter().any(|node| node.status == "ready")
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("agent not ready within 30s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drover_s = drover_run(&client, replicas, network).await;
    // Untimed cleanup, whatever happened.
    let _ = client.stop_job("bench-docker", true).await;
    let cleanup = Instant::now();
    while cleanup.elapsed() < Duration::from_secs(120) {
        if remove_labelled(&docker, DROVER_LABEL).await? == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(agent);
    remove_labelled(&docker, DROVER_LABEL).await?;
    let drover_s = drover_s?;
    println!("drover: job of {replicas} replicas, submit -> all running: {drover_s:.3}s");
    println!(
        "RESULT replicas={replicas} network={network} drover_s={drover_s:.3} floor_s={floor_s:.3} ratio={:.3}",
        drover_s / floor_s
    );
    Ok(())
}
