//! `drover-bench sim`: simulated client nodes against any cluster, until
//! Ctrl-C, printing what they did every few seconds.

use std::time::{Duration, Instant};

/// The simulator's knobs shared by `sim` and `e2e`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Simulated nodes.
    #[arg(long, default_value_t = 1_000)]
    pub nodes: usize,
    /// Seeds the nodes (shapes, classes, datacenters, IDs).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Nodes sharing one RPC client (one connection per server).
    #[arg(long, default_value_t = 128)]
    pub nodes_per_client: usize,
    /// Milliseconds from seeing an allocation to reporting it running.
    #[arg(long, default_value_t = 200)]
    pub run_delay_ms: u64,
    /// Registrations in flight at once.
    #[arg(long, default_value_t = 64)]
    pub register_concurrency: usize,
}

impl SimArgs {
    pub fn config(&self, servers: Vec<String>) -> sim::SimConfig {
        let mut config = sim::SimConfig::new(servers, self.nodes, self.seed);
        config.nodes_per_client = self.nodes_per_client;
        config.run_delay = Duration::from_millis(self.run_delay_ms);
        config.register_concurrency = self.register_concurrency;
        config
    }
}

pub fn line(stats: &sim::SimStats) -> String {
    format!(
        "registered={} heartbeats={} placed={} running={} live={} failed={} completed={} lost={} update_calls={} queries={} errors={}",
        stats.registered,
        stats.heartbeats,
        stats.placed,
        stats.running,
        stats.live,
        stats.failed,
        stats.completed,
        stats.lost,
        stats.update_calls,
        stats.queries,
        stats.errors
    )
}

/// Runs the simulator against `servers` until Ctrl-C.
pub async fn run(servers: &str, args: &SimArgs) -> anyhow::Result<()> {
    let servers: Vec<String> = servers
        .split(',')
        .map(str::trim)
        .filter(|addr| !addr.is_empty())
        .map(str::to_string)
        .collect();
    let simulator = sim::Simulator::start(args.config(servers))?;
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    ticker.tick().await;
    loop {
        tokio::select! {
            signal = tokio::signal::ctrl_c() => {
                signal?;
                break;
            }
            _ = ticker.tick() => {
                println!("t={:.0}s {}", started.elapsed().as_secs_f64(), line(&simulator.stats()));
            }
        }
    }
    let stats = simulator.stats();
    simulator.shutdown().await;
    println!(
        "RESULT nodes={} seconds={:.1} {}",
        args.nodes,
        started.elapsed().as_secs_f64(),
        line(&stats)
    );
    Ok(())
}
