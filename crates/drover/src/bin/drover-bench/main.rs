//! `drover-bench`: the benchmark commands behind BENCHMARKS.md. Each prints
//! its figures and ends with one `RESULT key=value …` line.
//!
//! * `latency --jobs N`: starts a dev agent (a separate `drover` process),
//!   submits N raw_exec jobs one after another over HTTP and times submit →
//!   task running; reports p50/p99 and the agent's idle RSS afterwards.
//! * `docker --replicas N --network none|bridge|host`: N containers as one
//!   Drover job against the engine's own create+start floor (see
//!   `docker.rs`).
//! * `scheduler --nodes N --jobs J --count C --seed S [--workers W]`:
//!   placements per second through the server's own scheduling, plan
//!   verification and state store (see `scheduler.rs`); with W workers
//!   they plan concurrently against one applier and the conflict rate is
//!   reported.
//! * `encoding --allocs N --rounds R`: Raft entries (a job registration, a
//!   plan of N placements, N client updates) in the wire encoding
//!   (MessagePack) against JSON: bytes, encode and decode time.
//! * `sim --servers ADDR,… --nodes N`: simulated client nodes against any
//!   cluster until Ctrl-C (see `sim.rs`).
//! * `e2e --servers 3 --nodes N --jobs J --count C`: real server processes,
//!   the simulated nodes and jobs over HTTP, until every allocation runs
//!   (see `e2e.rs`).

mod docker;
mod e2e;
mod scheduler;
mod sim;

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
        /// Concurrent scheduler workers sharing one plan applier; above 1
        /// the report adds the plan conflict rate.
        #[arg(long, default_value_t = 1)]
        workers: usize,
    },
    /// Simulated client nodes against a running cluster, until Ctrl-C.
    Sim {
        /// The servers' RPC addresses, comma-separated.
        #[arg(long, value_name = "ADDR,...")]
        servers: String,
        #[command(flatten)]
        sim: sim::SimArgs,
    },
    /// Real servers, simulated nodes, jobs over HTTP: placements end to
    /// end (issue 9, P2).
    E2e(e2e::E2eArgs),
    /// Raft entries in the wire encoding against JSON (issue 8).
    Encoding {
        #[arg(long, default_value_t = 1_000)]
        allocs: usize,
        #[arg(long, default_value_t = 50)]
        rounds: usize,
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
            workers,
        } => {
            let report = if workers > 1 {
                scheduler::run_concurrent(nodes, jobs, count, seed, workers)
            } else {
                scheduler::run(nodes, jobs, count, seed)
            };
            let peak = drover::rss::peak_rss_mib(std::process::id()).unwrap_or(0.0);
            println!(
                "failed={} schedule_seconds={:.3} verify_seconds={:.3} apply_seconds={:.3} nodes={nodes} jobs={jobs} count={count} seed={seed} workers={workers}",
                report.failed, report.schedule_seconds, report.verify_seconds, report.apply_seconds
            );
            let conflict_rate = report.conflicts as f64 / report.plans.max(1) as f64;
            println!(
                "RESULT placements={} seconds={:.3} placements_per_sec={:.0} fill={:.3} nodes_used={} packing_efficiency={:.3} plans={} conflicts={} conflict_rate={conflict_rate:.3} peak_rss_mib={peak:.0}",
                report.placements,
                report.seconds,
                report.placements as f64 / report.seconds.max(1e-9),
                report.fill,
                report.nodes_used,
                report.packing_efficiency,
                report.plans,
                report.conflicts
            );
            Ok(())
        }
        Bench::Sim { servers, sim } => {
            init_logging();
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(sim::run(&servers, &sim))
        }
        Bench::E2e(args) => {
            init_logging();
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(e2e::run(args))
        }
        Bench::Encoding { allocs, rounds } => {
            encoding(allocs, rounds);
            Ok(())
        }
    }
}

/// Warnings (or `DROVER_LOG`) to stderr.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DROVER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Representative Raft commands: a job registration, a plan placing
/// `allocs` allocations as the scheduler builds them, and the clients'
/// reports for them.
fn sample_commands(allocs: usize) -> Vec<(&'static str, state::Command)> {
    let hcl = r#"job "web" {
  datacenters = ["dc1", "dc2"]
  group "api" {
    count = 1000
    network {
      port "http" {
        to = 8080
      }
    }
    task "server" {
      driver = "docker"
      config {
        image = "registry.example.com/web/api:1.42.0"
        ports = ["http"]
        args  = ["--listen", ":8080", "--log-level", "info"]
      }
      env { APP_MODE = "production" }
      resources {
        cpu    = 500
        memory = 256
      }
    }
  }
}"#;
    let job = jobspec::parse(hcl, "web.nomad.hcl", &jobspec::ParseOptions::default()).expect("the sample job parses");
    let id = |n: usize, salt: u128| types::uuid_from_bits(salt << 64 | n as u128);
    let eval_id = id(0, 7);
    let placements: Vec<types::Allocation> = (0..allocs)
        .map(|n| {
            let mut tasks = types::TaskResources::default();
            tasks.insert(
                "server".to_string(),
                types::AllocatedTaskResources {
                    cpu_mhz: 500,
                    memory_mb: 256,
                    ..types::AllocatedTaskResources::default()
                },
            );
            types::Allocation {
                id: id(n, 1),
                namespace: "default".into(),
                eval_id: eval_id.clone(),
                name: format!("web.api[{n}]"),
                node_id: id(n % 500, 3),
                node_name: format!("node-{:05}", n % 500),
                job_id: "web".into(),
                task_group: "api".into(),
                allocated_resources: types::AllocatedResources {
                    tasks,
                    disk_mb: 300,
                    networks: Vec::new(),
                },
                metrics: Some(types::AllocMetric {
                    nodes_evaluated: 14,
                    nodes_filtered: 2,
                    nodes_in_pool: 10_000,
                    ..types::AllocMetric::default()
                }),
                create_time: 1_795_305_300_000_000_000,
                ..types::Allocation::default()
            }
        })
        .collect();
    let updates: Vec<types::AllocClientUpdate> = placements
        .iter()
        .map(|alloc| types::AllocClientUpdate {
            alloc_id: alloc.id.clone(),
            client_status: types::AllocClientStatus::Running,
            task_states: [(
                "server".to_string(),
                types::TaskState {
                    state: types::TaskStateKind::Running,
                    started_at: 1_795_305_301_000_000_000,
                    ..types::TaskState::default()
                },
            )]
            .into(),
            modify_time: 1_795_305_301_000_000_000,
            ..types::AllocClientUpdate::default()
        })
        .collect();
    vec![
        (
            "job_register",
            state::Command::JobRegister {
                job,
                eval: None,
                now: 1,
                enforce_index: None,
            },
        ),
        (
            "plan_apply",
            state::Command::PlanApply {
                allocs: placements,
                eval_update: None,
                created_evals: Vec::new(),
                now: 1,
                deployment: None,
                deployment_updates: Vec::new(),
            },
        ),
        (
            "alloc_updates",
            state::Command::AllocClientUpdate {
                updates,
                evals: Vec::new(),
                now: 1,
            },
        ),
    ]
}

/// Bytes and encode/decode time of each sample command, MessagePack
/// against JSON, over `rounds` rounds (the fastest round counts).
fn encoding(allocs: usize, rounds: usize) {
    let commands = sample_commands(allocs);
    let mut totals = [0f64; 6];
    for (name, command) in &commands {
        let time = |f: &mut dyn FnMut()| -> f64 {
            (0..rounds.max(1))
                .map(|_| {
                    let started = Instant::now();
                    f();
                    started.elapsed().as_secs_f64() * 1e6
                })
                .fold(f64::INFINITY, f64::min)
        };
        let json = serde_json::to_vec(command).expect("json");
        let packed = rpc::encode(command).expect("msgpack");
        assert_eq!(&rpc::decode::<state::Command>(&packed).expect("decode"), command);
        let json_encode = time(&mut || {
            std::hint::black_box(serde_json::to_vec(command).expect("json"));
        });
        let packed_encode = time(&mut || {
            std::hint::black_box(rpc::encode(command).expect("msgpack"));
        });
        let json_decode = time(&mut || {
            std::hint::black_box(serde_json::from_slice::<state::Command>(&json).expect("json"));
        });
        let packed_decode = time(&mut || {
            std::hint::black_box(rpc::decode::<state::Command>(&packed).expect("msgpack"));
        });
        println!(
            "{name}: json_bytes={} msgpack_bytes={} json_encode_us={json_encode:.0} msgpack_encode_us={packed_encode:.0} json_decode_us={json_decode:.0} msgpack_decode_us={packed_decode:.0}",
            json.len(),
            packed.len()
        );
        for (total, value) in totals.iter_mut().zip([
            json.len() as f64,
            packed.len() as f64,
            json_encode,
            packed_encode,
            json_decode,
            packed_decode,
        ]) {
            *total += value;
        }
    }
    println!(
        "RESULT allocs={allocs} json_bytes={:.0} msgpack_bytes={:.0} size_ratio={:.3} json_encode_us={:.0} msgpack_encode_us={:.0} json_decode_us={:.0} msgpack_decode_us={:.0}",
        totals[0],
        totals[1],
        totals[1] / totals[0],
        totals[2],
        totals[3],
        totals[4],
        totals[5]
    );
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
