//! Helpers shared by the end-to-end tests: a dev agent on loopback with
//! ephemeral ports, waiting for a job's running allocation, and finding a
//! task's process by its allocation ID.
// Each test binary uses only some of these helpers.
#![allow(dead_code)]

pub mod cluster;
pub mod netns;

use drover::agent::{Agent, AgentConfig};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// Starts an in-process dev agent on 127.0.0.1 with ports chosen by the OS
/// and its state in `data_dir`.
pub async fn start_agent(data_dir: &Path) -> Agent {
    Agent::start(AgentConfig {
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        rpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: Some(data_dir.to_path_buf()),
        // Cargo builds the binary for integration tests and names it here.
        drover_binary: Some(env!("CARGO_BIN_EXE_drover").into()),
        // The test image is shared by every test: never collect it.
        docker: no_image_gc(),
        dns: any_dns_port(),
        ..AgentConfig::default()
    })
    .await
    .expect("agent starts")
}

/// Like [`start_agent`], with ACLs enforced (tokens may expire after one
/// second, so tests can watch them expire).
pub async fn start_agent_with_acls(data_dir: &Path) -> Agent {
    Agent::start(AgentConfig {
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        rpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: Some(data_dir.to_path_buf()),
        drover_binary: Some(env!("CARGO_BIN_EXE_drover").into()),
        docker: no_image_gc(),
        dns: any_dns_port(),
        acl: server::AclConfig {
            enabled: true,
            token_min_expiration_ttl: Duration::from_secs(1),
            ..server::AclConfig::default()
        },
        ..AgentConfig::default()
    })
    .await
    .expect("agent starts")
}

/// DNS on a port the OS picks, so tests never contend for 8600.
pub fn any_dns_port() -> drover::agent::DnsSettings {
    drover::agent::DnsSettings {
        addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..drover::agent::DnsSettings::default()
    }
}

/// The docker plugin's defaults, without image garbage collection, and
/// with the busybox test image (no registry here) as the pause image.
pub fn no_image_gc() -> docker::config::DockerPluginConfig {
    let mut plugin = docker::config::DockerPluginConfig::default();
    plugin.gc.image = false;
    plugin.infra_image = "drover-test/busybox:latest".to_string();
    plugin.infra_command = vec!["sleep".to_string(), "2147483647".to_string()];
    plugin
}

/// The process whose environment carries `NOMAD_ALLOC_ID=<alloc_id>`.
pub fn task_pid(alloc_id: &str) -> Option<u32> {
    let needle = format!("NOMAD_ALLOC_ID={alloc_id}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
        let environ = std::fs::read(entry.path().join("environ")).ok()?;
        environ
            .split(|byte| *byte == 0)
            .any(|var| var == needle.as_bytes())
            .then_some(pid)
    })
}

/// Waits (with blocking queries, at most 30 s) until `job_id` has a
/// running allocation, and returns its ID.
pub async fn running_alloc(client: &api_client::Client, job_id: &str) -> String {
    let started = Instant::now();
    let mut index = 0;
    loop {
        let answer = client
            .get_blocking::<Vec<api_types::AllocListStub>>(
                &format!("/v1/job/{job_id}/allocations"),
                index,
                Duration::from_secs(2),
            )
            .await
            .expect("list allocations");
        if let Some(alloc) = answer.value.iter().find(|alloc| alloc.client_status == "running") {
            return alloc.id.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no running allocation: {:?}",
            answer.value
        );
        index = answer.index;
    }
}

/// Stops `job_id` and waits (at most 30 s) until none of its allocations
/// is pending or running, so no task outlives the test's agent (tasks of
/// an agent with a data dir keep running across its shutdown).
pub async fn stop_job_and_wait(client: &api_client::Client, job_id: &str) {
    client.stop_job(job_id, false).await.expect("stop the job");
    let started = Instant::now();
    let mut index = 0;
    loop {
        let answer = client
            .get_blocking::<Vec<api_types::AllocListStub>>(
                &format!("/v1/job/{job_id}/allocations"),
                index,
                Duration::from_secs(2),
            )
            .await
            .expect("list allocations");
        if answer
            .value
            .iter()
            .all(|alloc| !matches!(alloc.client_status.as_str(), "pending" | "running"))
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "allocations still live: {:?}",
            answer.value
        );
        index = answer.index;
    }
}
