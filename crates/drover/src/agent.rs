//! The agent: a server (Raft, scheduler workers, RPC), a client (the
//! raw_exec, exec and docker drivers), or both in one process, with the HTTP API in front.
//!
//! `--dev` runs both, as a single-server cluster, with state in a
//! temporary directory unless one is given. A server-only agent serves the
//! whole API; a client-only agent serves its own endpoints (`agent/*`,
//! allocation logs) and passes every other request on to a server's HTTP
//! address, as Nomad's client agents do.

use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use types::ComparableResources;

/// Server settings of an agent.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Bootstrap once this many servers met (1: alone; 0: only join).
    pub bootstrap_expect: u32,
    /// Servers to join (RPC addresses), retried until they answer.
    pub join: Vec<String>,
    pub num_schedulers: Option<usize>,
    pub min_heartbeat_ttl: Option<Duration>,
    pub heartbeat_grace: Option<Duration>,
    pub max_heartbeats_per_second: Option<f64>,
    pub failover_heartbeat_ttl: Option<Duration>,
    /// Raft log entries between snapshots (Nomad's
    /// `raft_snapshot_threshold`; 50,000 by default).
    pub raft_snapshot_threshold: Option<u64>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bootstrap_expect: 1,
            join: Vec::new(),
            num_schedulers: None,
            min_heartbeat_ttl: None,
            heartbeat_grace: None,
            max_heartbeats_per_second: None,
            failover_heartbeat_ttl: None,
            raft_snapshot_threshold: None,
        }
    }
}

/// Client settings of an agent.
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    /// Servers to register with (RPC addresses). Empty on an agent that
    /// is also a server: it uses itself.
    pub servers: Vec<String>,
    pub node_class: String,
    pub node_pool: Option<String>,
    pub meta: BTreeMap<String, String>,
    pub reserved: ComparableResources,
    pub reserved_ports: Vec<u16>,
    /// Only these drivers (empty: all).
    pub driver_allowlist: Vec<String>,
    /// Never these drivers.
    pub driver_denylist: Vec<String>,
    /// Host volumes offered to jobs.
    pub host_volumes: BTreeMap<String, types::HostVolume>,
    /// When terminal allocations are collected.
    pub gc: client::gc::GcConfig,
}

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub http_addr: SocketAddr,
    pub rpc_addr: SocketAddr,
    /// The RPC address other agents dial, when not the bound one.
    pub advertise_rpc: Option<String>,
    /// The HTTP address advertised to other servers.
    pub advertise_http: Option<String>,
    /// Where state lives; `None` in dev mode means a fresh temporary dir.
    pub data_dir: Option<PathBuf>,
    /// The agent's name (the node's name for a client).
    pub node_name: Option<String>,
    pub datacenter: String,
    pub region: String,
    pub dev: bool,
    pub server: Option<ServerSettings>,
    pub client: Option<ClientSettings>,
    /// The drover binary, re-executed as `drover logmon` to collect task
    /// logs in processes that outlive the agent. `None` collects on the
    /// agent's own threads (logs then stop with the agent).
    pub drover_binary: Option<PathBuf>,
    /// The docker driver's plugin options.
    pub docker: docker::config::DockerPluginConfig,
    /// The address tasks' ports are published on; dev agents use the
    /// loopback address, as Nomad's do, otherwise it is detected.
    pub network_ip: Option<String>,
    /// The ACL system (`acl { }`, `--acl-enabled`).
    pub acl: server::AclConfig,
    /// TLS (`tls { }`).
    pub tls: TlsSettings,
    /// Where the agent's log lines go for `/v1/agent/monitor` (the
    /// process's tracing layer publishes into it; see `log_monitor`).
    pub logs: http_api::LogBroadcast,
    /// The DNS server for native services (`dns { }`, `--dns-addr`).
    pub dns: DnsSettings,
}

/// The `dns { }` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// Whether the agent serves DNS at all.
    pub enabled: bool,
    /// Where to listen; `None`: 127.0.0.1:8600, given up with a warning
    /// when taken (an address set by the operator must bind).
    pub addr: Option<SocketAddr>,
    /// The zone served.
    pub domain: String,
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            enabled: true,
            addr: None,
            domain: "nomad".to_string(),
        }
    }
}

/// The `tls { }` block: which listeners use TLS and the PEM files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// HTTPS on the HTTP API.
    pub http: bool,
    /// Mutual TLS on the RPC port and for every RPC this agent makes.
    pub rpc: bool,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Callers check that a server's certificate names
    /// `server.<region>.nomad`.
    pub verify_server_hostname: bool,
    /// HTTPS requires a client certificate from the CA.
    pub verify_https_client: bool,
}

impl TlsSettings {
    /// This agent's TLS material, when `http` or `rpc` is on.
    pub fn load(&self, region: &str) -> anyhow::Result<Option<rpc::RpcTls>> {
        if !self.http && !self.rpc {
            return Ok(None);
        }
        let file = |value: &Option<PathBuf>, key: &str| {
            value
                .clone()
                .ok_or_else(|| anyhow::anyhow!("tls.{key} is required when tls.http or tls.rpc is on"))
        };
        let tls = rpc::RpcTls::load(
            &file(&self.ca_file, "ca_file")?,
            &file(&self.cert_file, "cert_file")?,
            &file(&self.key_file, "key_file")?,
            region,
            self.verify_server_hostname,
        )?;
        Ok(Some(tls))
    }
}

impl Default for AgentConfig {
    /// A dev agent: server and client in one process on loopback.
    fn default() -> Self {
        AgentConfig {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 4646)),
            rpc_addr: SocketAddr::from(([127, 0, 0, 1], 4647)),
            advertise_rpc: None,
            advertise_http: None,
            data_dir: None,
            node_name: None,
            datacenter: "dc1".to_string(),
            region: types::DEFAULT_REGION.to_string(),
            dev: true,
            server: Some(ServerSettings::default()),
            client: Some(ClientSettings::default()),
            drover_binary: None,
            docker: docker::config::DockerPluginConfig::default(),
            network_ip: None,
            acl: server::AclConfig::default(),
            tls: TlsSettings::default(),
            logs: http_api::LogBroadcast::default(),
            dns: DnsSettings::default(),
        }
    }
}

/// A started agent. Dropping it does not stop it; call [`Agent::shutdown`].
pub struct Agent {
    pub http_addr: SocketAddr,
    /// The RPC listener's address (servers only).
    pub rpc_addr: Option<SocketAddr>,
    pub data_dir: PathBuf,
    /// The client node's ID (clients only).
    pub node_id: Option<String>,
    /// The DNS server's address, when it serves.
    pub dns_addr: Option<SocketAddr>,
    pub server: Option<server::Server>,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
    client_task: Option<tokio::task::JoinHandle<()>>,
    rpc_task: Option<tokio::task::JoinHandle<()>>,
    dns_task: Option<tokio::task::JoinHandle<()>>,
    _temp_dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("http_addr", &self.http_addr)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// The drivers a client runs, after its allow and deny lists.
fn drivers(settings: &ClientSettings, docker: &docker::config::DockerPluginConfig) -> Vec<Arc<dyn driver_api::Driver>> {
    let all: Vec<Arc<dyn driver_api::Driver>> = vec![
        Arc::new(raw_exec::RawExecDriver::new()),
        Arc::new(exec::ExecDriver::default()),
        Arc::new(docker::DockerDriver::new(docker.clone())),
    ];
    all.into_iter()
        .filter(|driver| {
            let name = driver.name().to_string();
            (settings.driver_allowlist.is_empty() || settings.driver_allowlist.contains(&name))
                && !settings.driver_denylist.contains(&name)
        })
        .collect()
}

impl Agent {
    /// Binds the listeners, starts the server, then the client, then HTTP.
    pub async fn start(config: AgentConfig) -> anyhow::Result<Agent> {
        if config.server.is_none() && config.client.is_none() {
            bail!("an agent must run a server, a client, or both (--server, --client or --dev)");
        }
        let (data_dir, temp_dir) = match (&config.data_dir, config.dev) {
            (Some(dir), _) => (dir.clone(), None),
            (None, true) => {
                let temp = tempfile::Builder::new()
                    .prefix("drover-dev-")
                    .tempdir()
                    .context("create a temporary data dir")?;
                (temp.path().to_path_buf(), Some(temp))
            }
            (None, false) => bail!("a data dir is required outside dev mode (--data-dir or data_dir)"),
        };
        raft::datadir::create_private_dir(&data_dir)
            .with_context(|| format!("create data dir {}", data_dir.display()))?;
        let tls = config.tls.load(&config.region).context("load TLS files")?;
        let rpc_tls = if config.tls.rpc { tls.clone() } else { None };
        let https = match (&tls, config.tls.http) {
            (Some(tls), true) => {
                if config.server.is_none() {
                    bail!(
                        "tls.http on an agent that runs only a client is not supported by Drover yet \
                         (its API passes requests on to the servers over plain HTTP)"
                    );
                }
                Some(tls.https_config(config.tls.verify_https_client)?)
            }
            _ => None,
        };
        let http_listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("bind HTTP address {}", config.http_addr))?;
        let http_addr = http_listener.local_addr().context("HTTP listener address")?;
        if let Some(warning) = http_api::exposure_warning(http_addr, config.acl.enabled) {
            tracing::warn!("{warning}");
        }
        let advertised_http = config.advertise_http.clone().unwrap_or_else(|| http_addr.to_string());
        let name = config
            .node_name
            .clone()
            .unwrap_or_else(|| nix_hostname().unwrap_or_else(|| "drover".to_string()));

        let mut server = None;
        let mut rpc_task = None;
        let mut rpc_addr = None;
        let mut own_rpc = None;
        if let Some(settings) = &config.server {
            let rpc_listener = TcpListener::bind(config.rpc_addr)
                .await
                .with_context(|| format!("bind RPC address {}", config.rpc_addr))?;
            let bound = rpc_listener.local_addr().context("RPC listener address")?;
            let advertised = config.advertise_rpc.clone().unwrap_or_else(|| bound.to_string());
            let mut server_config = server::ServerConfig::dev(data_dir.clone(), advertised.clone());
            server_config.name = format!("{name}.{}", config.region);
            server_config.http_addr = advertised_http.clone();
            server_config.region = config.region.clone();
            server_config.datacenter = config.datacenter.clone();
            server_config.bootstrap_expect = settings.bootstrap_expect;
            server_config.join = settings.join.clone();
            server_config.acl = config.acl.clone();
            server_config.rpc_tls = rpc_tls.clone();
            if let Some(workers) = settings.num_schedulers {
                server_config.num_schedulers = workers;
            }
            if let Some(ttl) = settings.min_heartbeat_ttl {
                server_config.heartbeat_ttl = ttl;
            }
            if let Some(grace) = settings.heartbeat_grace {
                server_config.heartbeat_grace = grace;
            }
            if let Some(rate) = settings.max_heartbeats_per_second {
                server_config.max_heartbeats_per_second = rate;
            }
            if let Some(ttl) = settings.failover_heartbeat_ttl {
                server_config.failover_heartbeat_ttl = ttl;
            }
            if let Some(threshold) = settings.raft_snapshot_threshold {
                server_config.snapshot_every = threshold.max(1);
            }
            let started = server::Server::start(server_config)
                .await
                .map_err(|error| anyhow::anyhow!("start server: {error}"))?;
            rpc_task = Some(tokio::spawn(rpc::serve_with(
                rpc_listener,
                Arc::new(server::RpcService::new(started.clone())),
                rpc::ServeConfig {
                    tls: rpc_tls.clone(),
                    ..rpc::ServeConfig::default()
                },
            )));
            rpc_addr = Some(bound);
            own_rpc = Some(advertised);
            server = Some(started);
        }

        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let mut client_task = None;
        let mut node_id = None;
        let mut alloc_root = None;
        let mut node_name = name.clone();
        let mut client_rpc = None;
        let mut client_handle = None;
        let mut client_catalog = None;
        if let Some(settings) = &config.client {
            let mut servers = settings.servers.clone();
            if servers.is_empty() {
                match &own_rpc {
                    Some(own) => servers.push(own.clone()),
                    None => bail!("a client needs servers to register with (--servers or client {{ servers }})"),
                }
            }
            let mut client_config = client::ClientConfig::new(data_dir.clone());
            client_config.node_name = name.clone();
            client_config.datacenter = config.datacenter.clone();
            client_config.region = config.region.clone();
            client_config.http_addr = advertised_http.clone();
            client_config.node_class = settings.node_class.clone();
            if let Some(pool) = &settings.node_pool {
                client_config.node_pool = pool.clone();
            }
            client_config.meta = settings.meta.clone();
            client_config.reserved = settings.reserved;
            client_config.reserved_ports = settings.reserved_ports.clone();
            client_config.host_volumes = settings.host_volumes.clone();
            client_config.gc = settings.gc;
            client_config.stop_tasks_on_shutdown = config.dev && config.data_dir.is_none();
            if let Some(binary) = &config.drover_binary {
                client_config.log_launcher = logmon::Launcher::Process {
                    program: binary.clone(),
                    args: vec!["logmon".to_string()],
                };
            }
            client_config.network_ip = match &config.network_ip {
                Some(ip) => ip.clone(),
                None if config.dev => "127.0.0.1".to_string(),
                None => String::new(),
            };
            alloc_root = Some(client_config.alloc_root());
            let rpc_client = Arc::new(rpc::RpcClient::with_servers(
                servers,
                rpc::ClientOptions {
                    tls: rpc_tls.clone(),
                    ..rpc::ClientOptions::default()
                },
            ));
            let client = client::Client::new(
                client_config,
                drivers(settings, &config.docker),
                Arc::clone(&rpc_client),
            )
            .await
            .map_err(|error| anyhow::anyhow!("start client: {error}"))?;
            node_id = Some(client.node().id.clone());
            node_name = client.node().name.clone();
            client_handle = Some(client.handle());
            client_catalog = Some(client.service_catalog());
            let mut shutdown_rx = shutdown_rx.clone();
            client_task = Some(tokio::spawn(client.run(async move {
                let _ = shutdown_rx.wait_for(|stop| *stop).await;
            })));
            client_rpc = Some(rpc_client);
        }

        let mut dns_addr = None;
        let mut dns_task = None;
        if config.dns.enabled {
            let domain = dns::validate_domain(&config.dns.domain).map_err(|error| anyhow::anyhow!("{error}"))?;
            let addr = config.dns.addr.unwrap_or_else(|| dns::DnsConfig::default().addr);
            let catalog: Option<dns::Catalog> = match (&server, &client_catalog) {
                (Some(server), _) => {
                    let server = server.clone();
                    Some(Arc::new(move |namespace: &str, name: &str| {
                        server
                            .state()
                            .service_registrations_by_name(namespace, name)
                            .iter()
                            .map(|registration| (**registration).clone())
                            .collect()
                    }))
                }
                (None, Some(catalog)) => {
                    let catalog = catalog.clone();
                    Some(Arc::new(move |namespace: &str, name: &str| {
                        catalog
                            .all()
                            .iter()
                            .filter(|registration| {
                                registration.namespace == namespace
                                    && registration.service_name.eq_ignore_ascii_case(name)
                            })
                            .cloned()
                            .collect()
                    }))
                }
                (None, None) => None,
            };
            if let Some(catalog) = catalog {
                match dns::bind(addr).await {
                    Ok(socket) => {
                        dns_addr = socket.local_addr().ok();
                        let dns_config = dns::DnsConfig {
                            addr,
                            domain,
                            ..dns::DnsConfig::default()
                        };
                        dns_task = Some(tokio::spawn(dns::serve(socket, dns_config, catalog)));
                    }
                    Err(error) if config.dns.addr.is_none() => {
                        tracing::warn!(%error, "DNS for services is off: its default address is taken (set dns {{ addr }} or --dns-addr)");
                    }
                    Err(error) => return Err(anyhow::anyhow!("{error}")),
                }
            }
        }

        let agent_info = Arc::new(http_api::AgentInfo {
            node_name,
            datacenter: config.datacenter.clone(),
            region: config.region.clone(),
            http_addr: advertised_http,
            rpc_addr: own_rpc.clone().unwrap_or_default(),
            data_dir: data_dir.display().to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            dev_mode: config.dev,
            client_node_id: node_id.clone(),
            logs: config.logs.clone(),
        });
        let router = match &server {
            Some(server) => http_api::app(http_api::AppState {
                server: server.clone(),
                alloc_root,
                agent: agent_info,
                client: client_handle,
            }),
            None => http_api::client_app(http_api::ClientAppState {
                alloc_root,
                agent: agent_info,
                client: client_handle,
                servers: Arc::new(Directory(
                    client_rpc.ok_or_else(|| anyhow::anyhow!("a client agent without an RPC client"))?,
                )),
                acl_enabled: config.acl.enabled,
            }),
        };
        let mut http_shutdown = shutdown_rx;
        let stopped = async move {
            let _ = http_shutdown.wait_for(|stop| *stop).await;
        };
        match https {
            None => {
                tokio::spawn(async move {
                    if let Err(error) = axum::serve(http_listener, router).with_graceful_shutdown(stopped).await {
                        tracing::error!(%error, "HTTP server stopped");
                    }
                });
            }
            Some(https) => {
                let listener = http_api::TlsListener::new(http_listener, https).context("HTTPS listener")?;
                tokio::spawn(async move {
                    if let Err(error) = axum::serve(listener, router).with_graceful_shutdown(stopped).await {
                        tracing::error!(%error, "HTTPS server stopped");
                    }
                });
            }
        }
        Ok(Agent {
            http_addr,
            rpc_addr,
            data_dir,
            node_id,
            dns_addr,
            server,
            shutdown_tx,
            client_task,
            rpc_task,
            dns_task,
            _temp_dir: temp_dir,
        })
    }

    /// Stops the client (which stops its tasks in dev mode), the HTTP API
    /// and the server.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.client_task {
            let _ = task.await;
        }
        if let Some(task) = &self.rpc_task {
            task.abort();
        }
        if let Some(task) = &self.dns_task {
            task.abort();
        }
        if let Some(server) = &self.server {
            server.shutdown().await;
        }
    }
}

/// The client's RPC connection as the HTTP API's directory of servers.
struct Directory(Arc<rpc::RpcClient>);

impl http_api::ServerDirectory for Directory {
    fn rpc_addrs(&self) -> Vec<String> {
        self.0.servers()
    }

    fn http_addrs(&self) -> Vec<String> {
        self.0.http_addrs()
    }
}

fn nix_hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}
