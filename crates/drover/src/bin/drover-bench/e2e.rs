//! `drover-bench e2e`: the whole path at scale (issue 9, P2). Starts real
//! `drover agent --server` processes on loopback (Raft on disk in a temp
//! dir), runs the node simulator against them, submits the workload's jobs
//! over HTTP from several concurrent submitters and waits until every
//! allocation is committed and reported running by its simulated node.
//!
//! Last line: `RESULT placements=… seconds=… placements_per_sec=…
//! failed_evals=… unplaced=… leader_rss_mib=… raft_log_mib=…` followed by
//! extra figures. The command fails (after printing it) unless every
//! allocation was placed and reported running and no evaluation failed.
//! Every server process is killed on every way out: the guard kills them
//! on drop, and the work runs under an overall timeout and Ctrl-C.

use crate::sim::{SimArgs, line};
use anyhow::{Context, bail};
use api_client::Client;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct E2eArgs {
    /// Server processes to start.
    #[arg(long, default_value_t = 3)]
    pub servers: usize,
    /// Jobs to submit.
    #[arg(long, default_value_t = 1_000)]
    pub jobs: usize,
    /// Allocations per job.
    #[arg(long, default_value_t = 1_000)]
    pub count: u32,
    /// Share of the cluster's binding dimension the jobs ask for.
    #[arg(long, default_value_t = 0.7)]
    pub fill: f64,
    /// Concurrent HTTP submitters.
    #[arg(long, default_value_t = 8)]
    pub submitters: usize,
    /// Give up (and fail) after this many seconds overall.
    #[arg(long, default_value_t = 900)]
    pub timeout_secs: u64,
    /// Seconds without progress after which a run that still misses
    /// allocations is judged stuck.
    #[arg(long, default_value_t = 30)]
    pub stall_secs: u64,
    /// Check every allocation's status over HTTP at the end (default: when
    /// the run has at most 100,000 allocations).
    #[arg(long)]
    pub verify_http: Option<bool>,
    /// The drover binary to start (default: next to this one).
    #[arg(long)]
    pub drover: Option<PathBuf>,
    #[command(flatten)]
    pub sim: SimArgs,
}

/// Limits of the command's inputs.
const MAX_SERVERS: usize = 7;
const MAX_JOBS: usize = 100_000;
const MAX_ALLOCS: u64 = 5_000_000;

/// One server process; killed (and reaped) on drop.
struct ServerProc {
    name: String,
    http: String,
    rpc: String,
    dir: PathBuf,
    log: PathBuf,
    child: Child,
}

impl ServerProc {
    fn api(&self) -> Client {
        Client::new(format!("http://{}", self.http))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(format!("127.0.0.1:{}", listener.local_addr()?.port()))
}

fn start_servers(binary: &Path, root: &Path, count: usize) -> anyhow::Result<Vec<ServerProc>> {
    let rpc_addrs: Vec<String> = (0..count).map(|_| free_addr()).collect::<anyhow::Result<_>>()?;
    let mut servers = Vec::new();
    for (index, rpc) in rpc_addrs.iter().enumerate() {
        let name = format!("s{}", index + 1);
        let dir = root.join(&name);
        let http = free_addr()?;
        let log = root.join(format!("{name}.log"));
        let mut args = vec![
            "agent".to_string(),
            "--server".to_string(),
            "--bootstrap-expect".to_string(),
            count.to_string(),
            "--data-dir".to_string(),
            dir.display().to_string(),
            "--http-addr".to_string(),
            http.clone(),
            "--rpc-addr".to_string(),
            rpc.clone(),
            "--node-name".to_string(),
            name.clone(),
        ];
        for other in rpc_addrs.iter().filter(|other| *other != rpc) {
            args.push("--join".to_string());
            args.push(other.clone());
        }
        let out = std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let child = Command::new(binary)
            .args(&args)
            .env("DROVER_LOG", "warn")
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        servers.push(ServerProc {
            name,
            http,
            rpc: rpc.clone(),
            dir,
            log,
            child,
        });
    }
    Ok(servers)
}

/// Waits until every server names the same leader; returns its index.
async fn wait_leader(servers: &[ServerProc], within: Duration) -> anyhow::Result<usize> {
    let deadline = Instant::now() + within;
    loop {
        let mut seen = Vec::new();
        for server in servers {
            seen.push(server.api().leader().await.unwrap_or_default());
        }
        if let Some(first) = seen.first()
            && !first.is_empty()
            && seen.iter().all(|leader| leader == first)
            && let Some(index) = servers.iter().position(|server| server.rpc == *first)
        {
            return Ok(index);
        }
        if Instant::now() > deadline {
            bail!("no agreed leader within {within:?} (seen {seen:?})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGINT (Ctrl-C) and SIGTERM, caught from before the first server
/// starts so neither can end the process with its servers still running.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn catch() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves on the first of them, with its name.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// CPU seconds (user + system) `pid` has used, from `/proc/<pid>/stat`
/// (in clock ticks of USER_HZ, 100 on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which sits in parentheses: the state
    // is field 3, utime field 14, stime field 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn file_mib(path: &Path) -> f64 {
    std::fs::metadata(path)
        .map(|meta| meta.len() as f64 / (1024.0 * 1024.0))
        .unwrap_or(0.0)
}

/// Runs the benchmark; every server is killed when this returns, however
/// it returns.
pub async fn run(args: E2eArgs) -> anyhow::Result<()> {
    if args.servers == 0 || args.servers > MAX_SERVERS {
        bail!("--servers must be 1..={MAX_SERVERS}");
    }
    if args.jobs == 0 || args.jobs > MAX_JOBS {
        bail!("--jobs must be 1..={MAX_JOBS}");
    }
    let expected = args.jobs as u64 * u64::from(args.count);
    if args.count == 0 || expected > MAX_ALLOCS {
        bail!("--count must be at least 1 and jobs × count at most {MAX_ALLOCS}");
    }
    if !(0.0..=1.0).contains(&args.fill) || args.fill == 0.0 {
        bail!("--fill must be in (0, 1]");
    }
    let binary = match &args.drover {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("bench binary has a directory")?
            .join("drover"),
    };
    let mut signals = Signals::catch()?;
    let root = tempfile::tempdir()?;
    let servers = start_servers(&binary, root.path(), args.servers)?;
    let pids: Vec<String> = servers.iter().map(|server| server.child.id().to_string()).collect();
    println!("server_pids={} data_dir={}", pids.join(","), root.path().display());
    let timeout = Duration::from_secs(args.timeout_secs);
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(timeout, drive(&args, &servers, expected)) => match outcome {
            Ok(outcome) => outcome,
            Err(_) => Err(anyhow::anyhow!("no result within --timeout-secs {}", args.timeout_secs)),
        },
        signal = signals.recv() => Err(anyhow::anyhow!("interrupted by {signal}")),
    };
    if outcome.is_err() {
        for server in &servers {
            eprintln!(
                "----- {} ({}) -----\n{}",
                server.name,
                server.log.display(),
                server.log_tail()
            );
        }
    }
    drop(servers);
    outcome
}

async fn drive(args: &E2eArgs, servers: &[ServerProc], expected: u64) -> anyhow::Result<()> {
    let boot = Instant::now();
    let leader = wait_leader(servers, Duration::from_secs(60)).await?;
    println!(
        "servers={} leader={} ready_seconds={:.2}",
        servers.len(),
        servers[leader].name,
        boot.elapsed().as_secs_f64()
    );

    // The simulated nodes.
    let config = args
        .sim
        .config(servers.iter().map(|server| server.rpc.clone()).collect());
    let mut jobs = workload::jobs(&config.nodes, args.jobs, args.count, args.sim.seed, args.fill);
    for task in jobs
        .iter_mut()
        .flat_map(|job| job.task_groups.iter_mut())
        .flat_map(|group| group.tasks.iter_mut())
    {
        // What the drivers' validation asks for; the simulated nodes run
        // nothing.
        task.config = match task.driver.as_str() {
            "docker" => serde_json::json!({ "image": "registry.example.com/bench/app:1.0" }),
            _ => serde_json::json!({ "command": "/usr/local/bin/app" }),
        };
    }
    let simulator = sim::Simulator::start(config)?;
    let registering = Instant::now();
    let registered = simulator.wait_registered(Duration::from_secs(args.timeout_secs)).await;
    if registered < args.sim.nodes as u64 {
        bail!("only {registered} of {} nodes registered", args.sim.nodes);
    }
    println!(
        "nodes={} register_seconds={:.2}",
        args.sim.nodes,
        registering.elapsed().as_secs_f64()
    );

    // Submit from several submitters, spread over the servers.
    let bodies: Arc<Vec<serde_json::Value>> = Arc::new(jobs.iter().map(jobspec::job_to_api).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut submitters = tokio::task::JoinSet::new();
    for submitter in 0..args.submitters.max(1) {
        let api = servers[submitter % servers.len()].api();
        let bodies = Arc::clone(&bodies);
        let next = Arc::clone(&next);
        submitters.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(index) else {
                    return Ok::<(), anyhow::Error>(());
                };
                let mut attempts = 0;
                loop {
                    match api.register_job(body.clone()).await {
                        Ok(_) => break,
                        Err(error)
                            if attempts < 5 && !error.status().is_some_and(|status| (400..500).contains(&status)) =>
                        {
                            attempts += 1;
                            tracing::warn!(%error, "job submission failed, retrying");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(error) => return Err(anyhow::anyhow!("submit job {index}: {error}")),
                    }
                }
            }
        });
    }
    while let Some(result) = submitters.join_next().await {
        result??;
    }
    let submit_seconds = started.elapsed().as_secs_f64();
    println!("jobs={} submit_seconds={submit_seconds:.2}", args.jobs);

    // Wait for every allocation to be reported running, or for the run to
    // stall.
    let leader_pid = servers[leader].child.id();
    let mut peak_rss = 0f64;
    let mut all_placed_at: Option<f64> = None;
    let mut last_progress = (0u64, 0u64, Instant::now());
    let mut last_print = Instant::now();
    let stalled = loop {
        let stats = simulator.stats();
        peak_rss = peak_rss.max(drover::rss::rss_mib(leader_pid).unwrap_or(0.0));
        if all_placed_at.is_none() && stats.placed >= expected {
            all_placed_at = Some(started.elapsed().as_secs_f64());
        }
        if stats.live >= expected {
            break false;
        }
        if (stats.placed, stats.live) != (last_progress.0, last_progress.1) {
            last_progress = (stats.placed, stats.live, Instant::now());
        } else if last_progress.2.elapsed() > Duration::from_secs(args.stall_secs) {
            break true;
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            last_print = Instant::now();
            println!(
                "t={:.1}s {} leader_rss_mib={:.0}",
                started.elapsed().as_secs_f64(),
                line(&stats),
                drover::rss::rss_mib(leader_pid).unwrap_or(0.0)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    let stats = simulator.stats();
    println!("t={seconds:.1}s {} stalled={stalled}", line(&stats));

    // What the servers say: evaluations and job summaries, from the leader.
    let leader = wait_leader(servers, Duration::from_secs(30)).await?;
    let api = servers[leader].api();
    let evals = api.evaluations("").await.context("list evaluations")?;
    let mut by_status: HashMap<String, u64> = HashMap::new();
    for eval in &evals {
        *by_status.entry(eval.status.clone()).or_default() += 1;
    }
    let failed_evals = by_status.get("failed").copied().unwrap_or(0);
    let mut placements = 0u64;
    let mut queued = 0u64;
    for job in &jobs {
        let summary = api
            .job_summary(&job.id)
            .await
            .with_context(|| format!("summary of {}", job.id))?;
        for group in summary.summary.values() {
            placements += group.running + group.starting;
            queued += group.queued;
        }
    }
    let unplaced = expected.saturating_sub(placements);
    let verify = args.verify_http.unwrap_or(expected <= 100_000);
    let http_running = if verify {
        let allocs = api.allocations("").await.context("list allocations")?;
        allocs.iter().filter(|alloc| alloc.client_status == "running").count() as i64
    } else {
        -1
    };
    let leader_pid = servers[leader].child.id();
    let leader_rss = drover::rss::rss_mib(leader_pid).unwrap_or(0.0);
    let follower_rss: Vec<String> = servers
        .iter()
        .filter(|server| server.child.id() != leader_pid)
        .map(|server| format!("{:.0}", drover::rss::rss_mib(server.child.id()).unwrap_or(0.0)))
        .collect();
    peak_rss = peak_rss.max(leader_rss);
    let raft_log = file_mib(&servers[leader].dir.join("server").join("raft.redb"));
    let raft_snapshot = file_mib(&servers[leader].dir.join("server").join("snapshot.bin"));
    // Where the CPU went: each server (leader first) and this process
    // (the simulator, the submitters and the HTTP checks).
    let mut cpu: Vec<String> = vec![format!(
        "{}(leader)={:.1}",
        servers[leader].name,
        cpu_seconds(leader_pid)
    )];
    for server in servers.iter().filter(|server| server.child.id() != leader_pid) {
        cpu.push(format!("{}={:.1}", server.name, cpu_seconds(server.child.id())));
    }
    cpu.push(format!("bench={:.1}", cpu_seconds(std::process::id())));
    println!("cpu_seconds {}", cpu.join(" "));
    let mut statuses: Vec<_> = by_status.into_iter().collect();
    statuses.sort();
    println!(
        "evals={} eval_statuses={statuses:?} queued={queued} all_placed_seconds={} sim_placed={} sim_running={} http_running={http_running} sim_errors={}",
        evals.len(),
        all_placed_at.map_or("never".to_string(), |at| format!("{at:.2}")),
        stats.placed,
        stats.running,
        stats.errors
    );
    simulator.shutdown().await;
    println!(
        "RESULT placements={placements} seconds={seconds:.3} placements_per_sec={:.0} failed_evals={failed_evals} unplaced={unplaced} leader_rss_mib={leader_rss:.0} raft_log_mib={raft_log:.1} leader_peak_rss_mib={peak_rss:.0} raft_snapshot_mib={raft_snapshot:.1} follower_rss_mib={} running={} running_reports={} expected={expected} http_running={http_running} submit_seconds={submit_seconds:.2} nodes={} servers={}",
        placements as f64 / seconds.max(1e-9),
        follower_rss.join(","),
        stats.live,
        stats.running,
        args.sim.nodes,
        servers.len()
    );
    if failed_evals > 0 || unplaced > 0 || stats.live != expected || (verify && http_running != expected as i64) {
        bail!(
            "incomplete or over-placed: failed_evals={failed_evals} unplaced={unplaced} running={} http_running={http_running} expected={expected}",
            stats.live
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cpu_seconds;

    #[test]
    fn reads_own_cpu_time() {
        let before = cpu_seconds(std::process::id());
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = cpu_seconds(std::process::id());
        assert!(after >= before + 0.1, "{before} -> {after}");
        assert_eq!(cpu_seconds(u32::MAX), 0.0);
    }
}
