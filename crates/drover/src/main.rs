//! `drover`: the agent and the command line in one binary.

use clap::{Args, Parser, Subcommand};
use drover::agent::{Agent, AgentConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "drover",
    version,
    about = "A single-binary workload orchestrator that runs Nomad jobs"
)]
struct Cli {
    #[command(flatten)]
    global: cli::GlobalArgs,
    #[command(subcommand)]
    command: TopCommand,
}

#[derive(Debug, Subcommand)]
enum TopCommand {
    /// Run an agent (server and client).
    Agent(AgentArgs),
    /// A task's log collector, started by the agent (not for people).
    #[command(hide = true)]
    Logmon {
        /// The collector's configuration as JSON.
        config: String,
    },
    #[command(flatten)]
    Api(cli::Command),
}

#[derive(Debug, Args)]
struct AgentArgs {
    /// Dev mode: server and client in one process, state in a temporary dir
    /// unless --data-dir is given.
    #[arg(long)]
    dev: bool,
    /// Address for the HTTP API and UI.
    #[arg(long, default_value = "127.0.0.1:4646")]
    http_addr: SocketAddr,
    /// Address for RPC between clients and servers.
    #[arg(long, default_value = "127.0.0.1:4647")]
    rpc_addr: SocketAddr,
    /// Where state is kept; survives restarts.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The client node's name (default: the hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// The node's datacenter.
    #[arg(long, default_value = "dc1")]
    datacenter: String,
    /// The region.
    #[arg(long, default_value = "global")]
    region: String,
    /// Log filter (tracing's EnvFilter syntax).
    #[arg(long, env = "DROVER_LOG", default_value = "info,openraft=warn")]
    log_level: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let TopCommand::Logmon { config } = &cli.command {
        // Threads only, no runtime: the collector must stay small.
        let code = logmon::run_process(config);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error: start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            TopCommand::Agent(args) => run_agent(args).await,
            TopCommand::Api(command) => cli::run(command, &cli.global).await,
            TopCommand::Logmon { .. } => Ok(ExitCode::FAILURE),
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_agent(args: AgentArgs) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    if !args.dev {
        anyhow::bail!("only --dev agents are supported so far: run `drover agent --dev`");
    }
    let agent = Agent::start(AgentConfig {
        http_addr: args.http_addr,
        rpc_addr: args.rpc_addr,
        data_dir: args.data_dir,
        node_name: args.node_name,
        datacenter: args.datacenter,
        region: args.region,
        dev: args.dev,
        // Log collectors re-execute this binary (`drover logmon`).
        drover_binary: std::env::current_exe().ok(),
        ..AgentConfig::default()
    })
    .await?;
    println!("==> Drover agent started (dev mode)");
    println!("       HTTP API: http://{}", agent.http_addr);
    println!("            RPC: {}", agent.rpc_addr);
    println!("       Data dir: {}", agent.data_dir.display());
    println!("        Node ID: {}", agent.node_id);
    wait_for_signal().await;
    println!("==> Caught signal; shutting down");
    agent.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; only Ctrl-C stops the agent");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
