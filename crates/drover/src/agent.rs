//! The agent: a server (Raft, scheduler workers, RPC) and a client (the
//! raw_exec, exec and docker drivers) in one process, with the HTTP API in front.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub http_addr: SocketAddr,
    pub rpc_addr: SocketAddr,
    /// Where state lives; `None` in dev mode means a fresh temporary dir.
    pub data_dir: Option<PathBuf>,
    pub node_name: Option<String>,
    pub datacenter: String,
    pub region: String,
    pub dev: bool,
    /// The drover binary, re-executed as `drover logmon` to collect task
    /// logs in processes that outlive the agent. `None` collects on the
    /// agent's own threads (logs then stop with the agent).
    pub drover_binary: Option<PathBuf>,
    /// The docker driver's plugin options.
    pub docker: docker::config::DockerPluginConfig,
    /// The address tasks' ports are published on; dev agents use the
    /// loopback address, as Nomad's do, otherwise it is detected.
    pub network_ip: Option<String>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 4646)),
            rpc_addr: SocketAddr::from(([127, 0, 0, 1], 4647)),
            data_dir: None,
            node_name: None,
            datacenter: "dc1".to_string(),
            region: types::DEFAULT_REGION.to_string(),
            dev: true,
            drover_binary: None,
            docker: docker::config::DockerPluginConfig::default(),
            network_ip: None,
        }
    }
}

/// A started agent. Dropping it does not stop it; call [`Agent::shutdown`].
pub struct Agent {
    pub http_addr: SocketAddr,
    pub rpc_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub node_id: String,
    pub server: server::Server,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
    client_task: tokio::task::JoinHandle<()>,
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

impl Agent {
    /// Binds the listeners, starts the server, then the client, then HTTP.
    pub async fn start(config: AgentConfig) -> anyhow::Result<Agent> {
        let (data_dir, temp_dir) = match &config.data_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("drover-dev-")
                    .tempdir()
                    .context("create a temporary data dir")?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        std::fs::create_dir_all(&data_dir).with_context(|| format!("create data dir {}", data_dir.display()))?;
        let rpc_listener = TcpListener::bind(config.rpc_addr)
            .await
            .with_context(|| format!("bind RPC address {}", config.rpc_addr))?;
        let rpc_addr = rpc_listener.local_addr().context("RPC listener address")?;
        let http_listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("bind HTTP address {}", config.http_addr))?;
        let http_addr = http_listener.local_addr().context("HTTP listener address")?;

        let mut server_config = server::ServerConfig::dev(data_dir.clone(), rpc_addr.to_string());
        server_config.region = config.region.clone();
        server_config.datacenter = config.datacenter.clone();
        let server = server::Server::start(server_config)
            .await
            .map_err(|error| anyhow::anyhow!("start server: {error}"))?;
        tokio::spawn(rpc::serve(
            rpc_listener,
            Arc::new(server::RpcService::new(server.clone())),
        ));

        let mut client_config = client::ClientConfig::new(data_dir.clone());
        client_config.node_name = config.node_name.clone().unwrap_or_default();
        client_config.datacenter = config.datacenter.clone();
        client_config.region = config.region.clone();
        client_config.http_addr = http_addr.to_string();
        client_config.stop_tasks_on_shutdown = config.dev && config.data_dir.is_none();
        if let Some(binary) = &config.drover_binary {
            client_config.log_launcher = logmon::Launcher::Process {
                program: binary.clone(),
                args: vec!["logmon".to_string()],
            };
        }
        let alloc_root = client_config.alloc_root();
        client_config.network_ip = match &config.network_ip {
            Some(ip) => ip.clone(),
            None if config.dev => "127.0.0.1".to_string(),
            None => String::new(),
        };
        let drivers: Vec<Arc<dyn driver_api::Driver>> = vec![
            Arc::new(raw_exec::RawExecDriver::new()),
            Arc::new(exec::ExecDriver::default()),
            Arc::new(docker::DockerDriver::new(config.docker.clone())),
        ];
        let rpc_client = Arc::new(rpc::RpcClient::new(rpc_addr.to_string()));
        let client = client::Client::new(client_config, drivers, rpc_client)
            .await
            .map_err(|error| anyhow::anyhow!("start client: {error}"))?;
        let node_id = client.node().id.clone();
        let node_name = client.node().name.clone();
        let (shutdown_tx, mut shutdown_rx) = tokio::sync::watch::channel(false);
        let client_task = tokio::spawn(client.run(async move {
            let _ = shutdown_rx.wait_for(|stop| *stop).await;
        }));

        let state = http_api::AppState {
            server: server.clone(),
            alloc_root: Some(alloc_root),
            agent: Arc::new(http_api::AgentInfo {
                node_name,
                datacenter: config.datacenter.clone(),
                region: config.region.clone(),
                http_addr: http_addr.to_string(),
                rpc_addr: rpc_addr.to_string(),
                data_dir: data_dir.display().to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                dev_mode: config.dev,
                client_node_id: Some(node_id.clone()),
            }),
        };
        let router = http_api::app(state);
        tokio::spawn(async move {
            if let Err(error) = axum::serve(http_listener, router).await {
                tracing::error!(%error, "HTTP server stopped");
            }
        });
        Ok(Agent {
            http_addr,
            rpc_addr,
            data_dir,
            node_id,
            server,
            shutdown_tx,
            client_task,
            _temp_dir: temp_dir,
        })
    }

    /// Stops the client (which stops its tasks in dev mode) and Raft.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        let _ = self.client_task.await;
        self.server.shutdown().await;
    }
}
