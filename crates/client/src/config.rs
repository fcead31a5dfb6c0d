//! The client agent's configuration: identity fields of the node, reserved
//! resources, and the timings of its loops.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use types::ComparableResources;

/// Environment variables of the agent that never reach tasks, even for
/// drivers without isolation: credentials a task should be given
/// explicitly, not inherit.
pub const DEFAULT_ENV_DENYLIST: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "CONSUL_HTTP_TOKEN",
    "CONSUL_TOKEN",
    "DROVER_TOKEN",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "NOMAD_TOKEN",
    "VAULT_TOKEN",
];

/// Nomad's default `max_kill_timeout`.
pub const DEFAULT_MAX_KILL_TIMEOUT: Duration = Duration::from_secs(30);

/// How a client agent is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// Root of everything the client stores: `client/` (identity and local
    /// state) and `alloc/` (allocation directories).
    pub data_dir: PathBuf,
    /// The node's name; the hostname when empty.
    pub node_name: String,
    /// The node's datacenter (`dc1` by default).
    pub datacenter: String,
    /// The region the servers serve (`global` by default); `NOMAD_REGION`.
    pub region: String,
    /// The node class, for constraints and feasibility caching.
    pub node_class: String,
    /// The node pool the node joins (`default`).
    pub node_pool: String,
    /// Node metadata (`${meta.key}`).
    pub meta: BTreeMap<String, String>,
    /// Resources held back from scheduling for the OS and the agent.
    pub reserved: ComparableResources,
    /// Host ports never handed to tasks.
    pub reserved_ports: Vec<u16>,
    /// Lowest port of the dynamic range the scheduler picks from (20000).
    pub min_dynamic_port: u16,
    /// Highest port of the dynamic range (32000).
    pub max_dynamic_port: u16,
    /// The address tasks' ports are advertised on; detected when empty.
    pub network_ip: String,
    /// The agent's HTTP address, shown on the node (`host:port`).
    pub http_addr: String,
    /// Overrides the fingerprinted total CPU (MHz) when non-zero.
    pub cpu_total_compute: i64,
    /// Overrides the fingerprinted memory (MiB) when non-zero.
    pub memory_total_mb: i64,
    /// How long one blocking allocation query may wait on the server.
    pub alloc_query_wait: Duration,
    /// How long updates are gathered before they are sent as one batch.
    pub update_batch_window: Duration,
    /// Longest pause between retries when a server does not answer.
    pub max_retry_backoff: Duration,
    /// Whether tasks are stopped when the agent shuts down (dev mode).
    /// Otherwise they keep running and are reattached on the next start.
    pub stop_tasks_on_shutdown: bool,
    /// Agent environment variables withheld from tasks.
    pub env_denylist: Vec<String>,
    /// The longest any task may take to stop before it is killed, whatever
    /// its `kill_timeout` says (Nomad's `max_kill_timeout`, 30 s).
    pub max_kill_timeout: Duration,
    /// How tasks' log collectors run: the agent re-executes its own binary
    /// (`drover logmon`) so logs outlive it; tests without that binary
    /// collect on threads of their own process.
    pub log_launcher: logmon::Launcher,
    /// The host bridge of `bridge` group networks.
    pub bridge: network::BridgeConfig,
    /// How often a running task's templates are rendered again, so that a
    /// changed input (a `source` file, a file read with `file`) is noticed.
    pub template_poll_interval: Duration,
    /// The most bytes the node's artifact cache keeps.
    pub artifact_cache_max_bytes: u64,
    /// Bounds on every artifact download and archive.
    pub artifact_limits: crate::artifact::ArtifactLimits,
    /// When terminal allocations' directories are removed.
    pub gc: crate::gc::GcConfig,
    /// Host volumes offered to jobs, by name.
    pub host_volumes: BTreeMap<String, types::HostVolume>,
}

impl ClientConfig {
    /// A configuration with Nomad's defaults, storing its data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> ClientConfig {
        ClientConfig {
            data_dir: data_dir.into(),
            ..ClientConfig::default()
        }
    }

    /// `<data_dir>/client`: identity and local state.
    pub fn client_dir(&self) -> PathBuf {
        self.data_dir.join("client")
    }

    /// `<data_dir>/alloc`: one directory per allocation.
    pub fn alloc_root(&self) -> PathBuf {
        self.data_dir.join("alloc")
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            data_dir: PathBuf::from("/var/lib/drover"),
            node_name: String::new(),
            datacenter: "dc1".to_string(),
            region: types::DEFAULT_REGION.to_string(),
            node_class: String::new(),
            node_pool: types::DEFAULT_NODE_POOL.to_string(),
            meta: BTreeMap::new(),
            reserved: ComparableResources::default(),
            reserved_ports: Vec::new(),
            min_dynamic_port: 20000,
            max_dynamic_port: 32000,
            network_ip: String::new(),
            http_addr: String::new(),
            cpu_total_compute: 0,
            memory_total_mb: 0,
            alloc_query_wait: Duration::from_secs(300),
            update_batch_window: Duration::from_millis(10),
            max_retry_backoff: Duration::from_secs(5),
            stop_tasks_on_shutdown: false,
            env_denylist: DEFAULT_ENV_DENYLIST.iter().map(|name| name.to_string()).collect(),
            max_kill_timeout: DEFAULT_MAX_KILL_TIMEOUT,
            log_launcher: logmon::Launcher::InProcess,
            bridge: network::BridgeConfig::default(),
            template_poll_interval: Duration::from_secs(1),
            artifact_cache_max_bytes: 4 << 30,
            artifact_limits: crate::artifact::ArtifactLimits::default(),
            gc: crate::gc::GcConfig::default(),
            host_volumes: BTreeMap::new(),
        }
    }
}
