//! `drover`: the agent and the command line in one binary.

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use drover::agent::{Agent, AgentConfig, ClientSettings, ServerSettings};
use drover::config::{FileConfig, load_files, parse_ports};
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
    /// Run an agent: a server, a client, or both (--dev).
    Agent(Box<AgentArgs>),
    /// A task's log collector, started by the agent (not for people).
    #[command(hide = true)]
    Logmon {
        /// The collector's configuration as JSON.
        config: String,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion { shell: clap_complete::Shell },
    #[command(flatten)]
    Api(cli::Command),
}

#[derive(Debug, Args)]
struct AgentArgs {
    /// Dev mode: server and client in one process on loopback, state in a
    /// temporary dir unless --data-dir is given.
    #[arg(long)]
    dev: bool,
    /// Run a server.
    #[arg(long)]
    server: bool,
    /// Run a client.
    #[arg(long)]
    client: bool,
    /// Read Nomad's agent configuration (HCL); may be repeated. Flags win.
    #[arg(long = "config", value_name = "FILE")]
    config: Vec<PathBuf>,
    /// Bootstrap a new cluster once this many servers have met.
    #[arg(long)]
    bootstrap_expect: Option<u32>,
    /// A server to join (RPC address); retried until it answers. Repeatable.
    #[arg(long = "join", visible_alias = "retry-join", value_name = "ADDR")]
    join: Vec<String>,
    /// Servers a client registers with (RPC addresses, comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "ADDRS")]
    servers: Vec<String>,
    /// Where state is kept; survives restarts.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address for the HTTP API and UI (default: the bind address, port 4646).
    #[arg(long)]
    http_addr: Option<SocketAddr>,
    /// Address for RPC (default: the bind address, port 4647).
    #[arg(long)]
    rpc_addr: Option<SocketAddr>,
    /// The address to bind (127.0.0.1 in dev mode, 0.0.0.0 otherwise).
    #[arg(long = "bind")]
    bind: Option<IpAddr>,
    /// The agent's name (the node's name for a client; default: hostname).
    #[arg(long, visible_alias = "node")]
    node_name: Option<String>,
    /// The client node's class.
    #[arg(long)]
    node_class: Option<String>,
    /// The client node's pool.
    #[arg(long)]
    node_pool: Option<String>,
    /// Client node metadata, `key=value`; repeatable.
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    meta: Vec<String>,
    /// The agent's datacenter.
    #[arg(long, visible_alias = "dc")]
    datacenter: Option<String>,
    /// The region.
    #[arg(long)]
    region: Option<String>,
    /// Log filter (a level such as INFO, or tracing's EnvFilter syntax).
    #[arg(long, env = "DROVER_LOG")]
    log_level: Option<String>,
    /// Enforce ACLs: every request needs a token allowed to make it
    /// (Nomad's -acl-enabled; also `acl { enabled = true }`).
    #[arg(long)]
    acl_enabled: bool,
    /// Address of the DNS server for services (default 127.0.0.1:8600;
    /// also `dns { addr }`).
    #[arg(long, value_name = "IP:PORT")]
    dns_addr: Option<SocketAddr>,
}

/// Nomad users type single-dash long flags (`-server`, `-config=FILE`):
/// rewrites each argument that is a known long flag with one dash into the
/// two-dash form clap expects. Short flags and values are left alone.
fn normalize_args(args: Vec<OsString>, command: &clap::Command) -> Vec<OsString> {
    fn collect(command: &clap::Command, names: &mut std::collections::BTreeSet<String>) {
        for arg in command.get_arguments() {
            if let Some(long) = arg.get_long() {
                names.insert(long.to_string());
            }
            for alias in arg.get_all_aliases().into_iter().flatten() {
                names.insert(alias.to_string());
            }
        }
        for sub in command.get_subcommands() {
            collect(sub, names);
        }
    }
    let mut names = std::collections::BTreeSet::new();
    collect(command, &mut names);
    names.insert("help".to_string());
    names.insert("version".to_string());
    let mut out = Vec::with_capacity(args.len());
    let mut rest_is_positional = false;
    for arg in args {
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if rest_is_positional {
            out.push(arg);
            continue;
        }
        if text == "--" {
            rest_is_positional = true;
            out.push(arg);
            continue;
        }
        if let Some(flag) = text.strip_prefix('-')
            && !flag.starts_with('-')
            && names.contains(flag.split('=').next().unwrap_or_default())
            && flag.len() > 1
        {
            out.push(OsString::from(format!("--{flag}")));
            continue;
        }
        out.push(arg);
    }
    out
}

/// Whether the binary was started under the name `nomad` (a symlink, as
/// existing scripts call it): then it names itself `nomad` in help and
/// errors, and otherwise behaves the same, since the commands and flags
/// are Nomad's.
fn invoked_as_nomad(argv0: Option<&OsString>) -> bool {
    argv0
        .map(std::path::Path::new)
        .and_then(std::path::Path::file_name)
        .is_some_and(|name| name == "nomad")
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let mut command = Cli::command();
    if invoked_as_nomad(args.first()) {
        command = command.name("nomad").bin_name("nomad");
    }
    let args = normalize_args(args, &command);
    let cli = match command
        .try_get_matches_from(args)
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    if let TopCommand::Completion { shell } = cli.command {
        let mut command = Cli::command();
        let name = if invoked_as_nomad(std::env::args_os().next().as_ref()) {
            "nomad"
        } else {
            "drover"
        };
        clap_complete::generate(shell, &mut command, name, &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    if let TopCommand::Agent(_) = &cli.command {
        let global = &cli.global;
        let cli_only = [
            ("-json", global.json),
            ("-t", global.template.is_some()),
            ("-verbose", global.verbose),
            ("-namespace", global.namespace.is_some()),
        ];
        if let Some((flag, _)) = cli_only.iter().find(|(_, given)| *given) {
            eprintln!("Error: {flag} applies to the API commands, not to the agent");
            return ExitCode::FAILURE;
        }
    }
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
            TopCommand::Agent(args) => run_agent(*args).await,
            TopCommand::Api(command) => cli::run(command, &cli.global).await,
            TopCommand::Logmon { .. } | TopCommand::Completion { .. } => Ok(ExitCode::FAILURE),
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

/// The log filter: Nomad's level names (any case), or an EnvFilter.
fn log_filter(level: Option<&str>) -> tracing_subscriber::EnvFilter {
    let level = level.unwrap_or("info");
    let lower = level.to_ascii_lowercase();
    let text = if ["trace", "debug", "info", "warn", "error", "off"].contains(&lower.as_str()) {
        format!("{lower},openraft=warn")
    } else {
        level.to_string()
    };
    tracing_subscriber::EnvFilter::try_new(&text).unwrap_or_else(|_| "info".into())
}

/// The first non-loopback IPv4 address of this machine, to advertise when
/// bound to every address.
fn routable_ip() -> Option<IpAddr> {
    let text = std::fs::read_to_string("/proc/net/fib_trie").ok()?;
    let mut previous = "";
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("/32 host LOCAL") {
            let candidate = previous.trim_start_matches("|-- ").trim();
            if let Ok(ip) = candidate.parse::<Ipv4Addr>()
                && !ip.is_loopback()
            {
                return Some(IpAddr::V4(ip));
            }
        }
        previous = line;
    }
    None
}

/// Merges the files and the flags into the agent's configuration.
fn agent_config(args: &AgentArgs, file: &FileConfig) -> anyhow::Result<AgentConfig> {
    let dev = args.dev;
    let bind = match (args.bind, file.bind_addr.as_deref()) {
        (Some(bind), _) => bind,
        (None, Some(text)) => text
            .parse()
            .map_err(|_| anyhow::anyhow!("bind_addr {text:?} is not an IP address"))?,
        (None, None) if dev => IpAddr::V4(Ipv4Addr::LOCALHOST),
        (None, None) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let http_addr = args
        .http_addr
        .unwrap_or_else(|| SocketAddr::new(bind, file.http_port.unwrap_or(4646)));
    let rpc_addr = args
        .rpc_addr
        .unwrap_or_else(|| SocketAddr::new(bind, file.rpc_port.unwrap_or(4647)));
    let advertise = |addr: SocketAddr| -> Option<String> {
        addr.ip()
            .is_unspecified()
            .then(|| SocketAddr::new(routable_ip().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)), addr.port()).to_string())
    };
    let server_enabled = dev || args.server || file.server.enabled == Some(true);
    let client_enabled = dev || args.client || file.client.enabled == Some(true);
    let server = server_enabled.then(|| {
        let mut join = args.join.clone();
        join.extend(file.server.retry_join.iter().cloned());
        ServerSettings {
            bootstrap_expect: args
                .bootstrap_expect
                .or(file.server.bootstrap_expect)
                .unwrap_or(if dev { 1 } else { 0 }),
            join,
            num_schedulers: file.server.num_schedulers,
            min_heartbeat_ttl: file.server.min_heartbeat_ttl,
            heartbeat_grace: file.server.heartbeat_grace,
            max_heartbeats_per_second: file.server.max_heartbeats_per_second,
            failover_heartbeat_ttl: file.server.failover_heartbeat_ttl,
            raft_snapshot_threshold: None,
        }
    });
    let client = if client_enabled {
        let mut servers = args.servers.clone();
        servers.extend(file.client.servers.iter().cloned());
        let mut meta = file.client.meta.clone();
        for pair in &args.meta {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--meta {pair:?} must be key=value"))?;
            meta.insert(key.to_string(), value.to_string());
        }
        let reserved = &file.client.reserved;
        let list = |key: &str| -> Vec<String> {
            file.client
                .options
                .get(key)
                .map(|text| {
                    text.split(',')
                        .map(str::trim)
                        .filter(|name| !name.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        Some(ClientSettings {
            servers,
            node_class: args
                .node_class
                .clone()
                .or_else(|| file.client.node_class.clone())
                .unwrap_or_default(),
            node_pool: args.node_pool.clone().or_else(|| file.client.node_pool.clone()),
            meta,
            reserved: types::ComparableResources {
                cpu_mhz: reserved.cpu.unwrap_or(0),
                memory_mb: reserved.memory.unwrap_or(0),
                disk_mb: reserved.disk.unwrap_or(0),
                ..types::ComparableResources::default()
            },
            reserved_ports: parse_ports(reserved.reserved_ports.as_deref().unwrap_or_default())
                .map_err(|error| anyhow::anyhow!("client.reserved.reserved_ports: {error}"))?,
            driver_allowlist: list("driver.allowlist"),
            driver_denylist: list("driver.denylist"),
            host_volumes: file.client.host_volumes.clone(),
            gc: {
                let defaults = client::gc::GcConfig::default();
                client::gc::GcConfig {
                    interval: file.client.gc_interval.unwrap_or(defaults.interval),
                    max_allocs: file
                        .client
                        .gc_max_allocs
                        .map_or(defaults.max_allocs, |max| usize::try_from(max).unwrap_or(usize::MAX)),
                    disk_usage_threshold: file
                        .client
                        .gc_disk_usage_threshold
                        .map_or(defaults.disk_usage_threshold, |percent| percent as f64),
                    inode_usage_threshold: file
                        .client
                        .gc_inode_usage_threshold
                        .map_or(defaults.inode_usage_threshold, |percent| percent as f64),
                }
            },
        })
    } else {
        None
    };
    Ok(AgentConfig {
        http_addr,
        rpc_addr,
        advertise_rpc: file.advertise_rpc.clone().or_else(|| advertise(rpc_addr)),
        advertise_http: file.advertise_http.clone().or_else(|| advertise(http_addr)),
        data_dir: args.data_dir.clone().or_else(|| file.data_dir.clone()),
        node_name: args.node_name.clone().or_else(|| file.name.clone()),
        datacenter: args
            .datacenter
            .clone()
            .or_else(|| file.datacenter.clone())
            .unwrap_or_else(|| "dc1".to_string()),
        region: args
            .region
            .clone()
            .or_else(|| file.region.clone())
            .unwrap_or_else(|| types::DEFAULT_REGION.to_string()),
        dev,
        server,
        client,
        // Log collectors re-execute this binary (`drover logmon`).
        drover_binary: std::env::current_exe().ok(),
        docker: docker::config::DockerPluginConfig::default(),
        network_ip: None,
        logs: http_api::LogBroadcast::default(),
        acl: {
            let mut acl = server::AclConfig {
                enabled: args.acl_enabled || file.acl.enabled == Some(true),
                ..server::AclConfig::default()
            };
            if let Some(ttl) = file.acl.token_min_expiration_ttl {
                acl.token_min_expiration_ttl = ttl;
            }
            if let Some(ttl) = file.acl.token_max_expiration_ttl {
                acl.token_max_expiration_ttl = ttl;
            }
            acl
        },
        tls: drover::agent::TlsSettings {
            http: file.tls.http.unwrap_or(false),
            rpc: file.tls.rpc.unwrap_or(false),
            ca_file: file.tls.ca_file.clone(),
            cert_file: file.tls.cert_file.clone(),
            key_file: file.tls.key_file.clone(),
            verify_server_hostname: file.tls.verify_server_hostname.unwrap_or(false),
            verify_https_client: file.tls.verify_https_client.unwrap_or(false),
        },
        dns: drover::agent::DnsSettings {
            enabled: file.dns.enabled.unwrap_or(true),
            addr: match (args.dns_addr, file.dns.addr.as_deref()) {
                (Some(addr), _) => Some(addr),
                (None, Some(text)) => Some(
                    text.parse()
                        .map_err(|_| anyhow::anyhow!("dns.addr {text:?} is not IP:PORT"))?,
                ),
                (None, None) => None,
            },
            domain: file.dns.domain.clone().unwrap_or_else(|| "nomad".to_string()),
        },
    })
}

async fn run_agent(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let file = load_files(&args.config)?;
    let level = args.log_level.clone().or_else(|| file.log_level.clone());
    let logs = http_api::LogBroadcast::default();
    if !drover::log_monitor::init(log_filter(level.as_deref()), logs.clone()) {
        anyhow::bail!("logging was already set up");
    }
    let config = AgentConfig {
        logs,
        ..agent_config(&args, &file)?
    };
    if !config.dev && config.server.is_none() && config.client.is_none() {
        anyhow::bail!("choose what the agent runs: --server, --client, both, or --dev");
    }
    if config
        .server
        .as_ref()
        .is_some_and(|server| server.bootstrap_expect == 0 && server.join.is_empty())
    {
        tracing::warn!("this server has neither --bootstrap-expect nor --join: it waits to be joined by a cluster");
    }
    let mode = match (config.dev, config.server.is_some(), config.client.is_some()) {
        (true, _, _) => "dev mode",
        (false, true, true) => "server and client",
        (false, true, false) => "server",
        (false, false, _) => "client",
    };
    let agent = Agent::start(config).await?;
    println!("==> Drover agent started ({mode})");
    println!("       HTTP API: http://{}", agent.http_addr);
    if let Some(rpc_addr) = agent.rpc_addr {
        println!("            RPC: {rpc_addr}");
    }
    println!("       Data dir: {}", agent.data_dir.display());
    if let Some(node_id) = &agent.node_id {
        println!("        Node ID: {node_id}");
    }
    if let Some(dns_addr) = agent.dns_addr {
        println!("            DNS: {dns_addr}");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    struct AgentOnly {
        #[command(flatten)]
        args: AgentArgs,
    }

    fn agent_args(args: &[&str]) -> AgentArgs {
        AgentOnly::try_parse_from(args).expect("args").args
    }

    fn normalized(args: &[&str]) -> Vec<String> {
        normalize_args(args.iter().map(OsString::from).collect(), &Cli::command())
            .into_iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        assert_eq!(
            normalized(&[
                "drover",
                "agent",
                "-server",
                "-bootstrap-expect=3",
                "-config",
                "a.hcl",
                "-dc",
                "eu"
            ]),
            vec![
                "drover",
                "agent",
                "--server",
                "--bootstrap-expect=3",
                "--config",
                "a.hcl",
                "--dc",
                "eu"
            ]
        );
        // Short flags, values and unknown words are left alone.
        assert_eq!(
            normalized(&["drover", "alloc", "logs", "-f", "-x", "--", "-server"]),
            vec!["drover", "alloc", "logs", "-f", "-x", "--", "-server"]
        );
        // The CLI's global flags, as a Nomad script passes them.
        assert_eq!(
            normalized(&[
                "nomad",
                "job",
                "status",
                "-json",
                "-namespace=*",
                "-address",
                "http://h:4646",
                "-verbose",
                "-region=global",
                "-token=x",
                "-t",
                "{{ .ID }}",
                "web"
            ]),
            vec![
                "nomad",
                "job",
                "status",
                "--json",
                "--namespace=*",
                "--address",
                "http://h:4646",
                "--verbose",
                "--region=global",
                "--token=x",
                "-t",
                "{{ .ID }}",
                "web"
            ]
        );
    }

    #[test]
    fn the_name_nomad_is_read_from_argv0() {
        assert!(invoked_as_nomad(Some(&OsString::from("/usr/local/bin/nomad"))));
        assert!(invoked_as_nomad(Some(&OsString::from("nomad"))));
        assert!(!invoked_as_nomad(Some(&OsString::from("/usr/bin/drover"))));
        assert!(!invoked_as_nomad(Some(&OsString::from("nomad-wrapper"))));
        assert!(!invoked_as_nomad(None));
    }

    #[test]
    fn flags_override_the_file_and_dev_defaults_apply() {
        let mut file = FileConfig {
            name: Some("from-file".into()),
            ..FileConfig::default()
        };
        file.server.enabled = Some(true);
        file.server.bootstrap_expect = Some(3);
        file.server.retry_join = vec!["10.0.0.2:4647".into()];
        file.http_port = Some(5646);
        let args = agent_args(&[
            "agent",
            "--node-name",
            "from-flag",
            "--join",
            "10.0.0.3:4647",
            "--bind",
            "127.0.0.2",
        ]);
        let config = agent_config(&args, &file).expect("config");
        assert_eq!(config.node_name.as_deref(), Some("from-flag"));
        assert_eq!(config.http_addr, "127.0.0.2:5646".parse::<SocketAddr>().expect("addr"));
        let server = config.server.expect("server");
        assert_eq!(server.bootstrap_expect, 3);
        assert_eq!(server.join, vec!["10.0.0.3:4647", "10.0.0.2:4647"]);
        assert!(config.client.is_none());

        let dev = agent_args(&["agent", "--dev"]);
        let config = agent_config(&dev, &FileConfig::default()).expect("config");
        assert_eq!(config.http_addr, "127.0.0.1:4646".parse::<SocketAddr>().expect("addr"));
        assert_eq!(config.server.map(|server| server.bootstrap_expect), Some(1));
        assert!(config.client.is_some());
    }
}
