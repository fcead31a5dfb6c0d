//! `drover-bench`: the benchmark commands behind BENCHMARKS.md. Each prints
//! its figures and ends with one `RESULT key=value …` line.
//!
//! * `latency --jobs N`: starts a dev agent (a separate `drover` process),
//!   submits N raw_exec jobs one after another over HTTP and times submit →
//!   task running; reports p50/p99 and the agent's idle RSS afterwards.
//! * `docker --replicas N --network none|bridge|host`: N containers as one
//!   Drover job against the engine's own create+start floor (see
//!   `docker.rs`).
//! * `scheduler --nodes N --jobs J --count C --seed S`: the pure scheduler on
//!   a synthetic cluster, one core, plans applied in memory.

mod docker;

use anyhow::{Context, bail};
use api_client::Client;
use api_types::AllocListStub;
use clap::{Parser, Subcommand};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(name = "drover-bench", about = "Drover's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Submit → running latency on a dev agent (DESIGN.md P3, P5).
    Latency {
        #[arg(long, default_value_t = 200)]
        jobs: usize,
        /// The drover binary to start (default: next to this one).
        #[arg(long)]
        drover: Option<PathBuf>,
    },
    /// N docker containers: a Drover job against the engine's own floor
    /// (DESIGN.md P4).
    Docker {
        #[arg(long, default_value_t = 100)]
        replicas: usize,
        /// The containers' Docker network mode: none, bridge or host.
        #[arg(long, default_value = "none")]
        network: String,
        /// The drover binary to start (default: next to this one).
        #[arg(long)]
        drover: Option<PathBuf>,
    },
    /// The pure scheduler's placement rate and packing (DESIGN.md P1, P6).
    Scheduler {
        #[arg(long, default_value_t = 10_000)]
        nodes: usize,
        #[arg(long, default_value_t = 1_000)]
        jobs: usize,
        #[arg(long, default_value_t = 1_000)]
        count: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Bench::Latency { jobs, drover } => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(latency(jobs, drover))
        }
        Bench::Docker {
            replicas,
            network,
            drover,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(docker::run(replicas, &network, drover))
        }
        Bench::Scheduler {
            nodes,
            jobs,
            count,
            seed,
        } => {
            let report = scheduler::bench::run(nodes, jobs, count, seed);
            let peak = drover::rss::peak_rss_mib(std::process::id()).unwrap_or(0.0);
            println!(
                "failed={} schedule_seconds={:.3} nodes={nodes} jobs={jobs} count={count} seed={seed}",
                report.failed, report.schedule_seconds
            );
            println!("{report} peak_rss_mib={peak:.0}");
            Ok(())
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct AgentProcess(Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64) * fraction).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn wait_running(client: &Client, job_id: &str) -> anyhow::Result<()> {
    let mut index = 0;
    let started = Instant::now();
    loop {
        let answer = client
            .get_blocking::<Vec<AllocListStub>>(&format!("/v1/job/{job_id}/allocations"), index, Duration::from_secs(5))
            .await?;
        if answer.value.iter().any(|alloc| alloc.client_status == "running") {
            return Ok(());
        }
        if answer.value.iter().any(|alloc| alloc.client_status == "failed") {
            bail!("job {job_id} failed");
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("job {job_id} not running after 30s");
        }
        index = answer.index;
    }
}

async fn latency(jobs: usize, drover: Option<PathBuf>) -> anyhow::Result<()> {
    let binary = match drover {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .context("bench binary has a directory")?
            .join("drover"),
    };
    let data_dir = tempfile::tempdir()?;
    let http_port = free_port()?;
    let rpc_port = free_port()?;
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
        if started.elapsed() > Duration::from_secs(10) {
            bail!("agent not ready within 10s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut samples = Vec::with_capacity(jobs);
    for n in 0..jobs {
        let job_id = format!("lat-{n}");
        let hcl = format!(
            r#"job "{job_id}" {{
  type = "service"
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sleep"
        args    = ["3600"]
      }}
      resources {{
        cpu    = 10
        memory = 10
      }}
    }}
  }}
}}"#
        );
        let job = jobspec::parse(&hcl, "bench.nomad.hcl", &jobspec::ParseOptions::default())
            .map_err(|diagnostics| anyhow::anyhow!("{diagnostics}"))?;
        let body = jobspec::job_to_api(&job);
        let submitted = Instant::now();
        client.register_job(body).await?;
        wait_running(&client, &job_id).await?;
        samples.push(submitted.elapsed().as_secs_f64() * 1000.0);
        // Stop it (untimed) so the node does not fill up.
        client.stop_job(&job_id, false).await?;
    }
    // Let the stops finish, then measure the idle agent.
    let settle = Instant::now();
    loop {
        let allocs = client.allocations("").await?;
        if allocs.iter().all(|alloc| alloc.client_status != "running") || settle.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = drover::rss::rss_mib(agent.0.id()).unwrap_or(0.0);
    samples.sort_by(f64::total_cmp);
    let p50 = percentile(&samples, 0.50);
    let p99 = percentile(&samples, 0.99);
    let max = samples.last().copied().unwrap_or(0.0);
    println!("jobs={jobs} agent_ready_ms={ready_ms:.0} max_ms={max:.1}");
    println!("RESULT p50_ms={p50:.1} p99_ms={p99:.1} agent_rss_mib={rss:.1}");
    drop(agent);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 0.50), 50.0);
        assert_eq!(percentile(&samples, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
