//! Real agent processes on loopback for the cluster tests: servers and
//! clients started from the `drover` binary with their own data dirs and
//! ports, stopped, killed (SIGKILL), paused (SIGSTOP) and restarted with
//! the same command. Every process of a cluster (and every task its
//! clients start, which inherit the agent's environment) carries a marker
//! variable, so dropping the cluster kills everything it started.

use api_client::Client;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that marks a cluster's processes.
pub const MARKER: &str = "DROVER_TEST_CLUSTER";

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// One agent process.
pub struct AgentProc {
    pub name: String,
    pub http: String,
    pub rpc: Option<String>,
    pub dir: PathBuf,
    args: Vec<String>,
    marker: String,
    child: Option<Child>,
    log: PathBuf,
    /// The network namespace the process runs in, if any.
    netns: Option<String>,
}

impl AgentProc {
    /// Starts `drover agent <args>` with its output in `<dir>.log`.
    pub fn spawn(
        name: &str,
        dir: &Path,
        http: String,
        rpc: Option<String>,
        args: Vec<String>,
        marker: &str,
    ) -> AgentProc {
        AgentProc::spawn_in(None, name, dir, http, rpc, args, marker)
    }

    /// Starts `drover agent <args>` inside a network namespace.
    pub fn spawn_in(
        netns: Option<String>,
        name: &str,
        dir: &Path,
        http: String,
        rpc: Option<String>,
        args: Vec<String>,
        marker: &str,
    ) -> AgentProc {
        let log = dir.with_extension("log");
        let mut agent = AgentProc {
            name: name.to_string(),
            http,
            rpc,
            dir: dir.to_path_buf(),
            args,
            marker: marker.to_string(),
            child: None,
            log,
            netns,
        };
        agent.start();
        agent
    }

    /// (Re)starts the process with its original command.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("agent log");
        let mut command = match &self.netns {
            // `ip netns exec` enters the namespace and execs: the child's
            // pid is the agent's.
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns, env!("CARGO_BIN_EXE_drover")]);
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_drover")),
        };
        let child = command
            .arg("agent")
            .args(&self.args)
            .env(MARKER, &self.marker)
            .env("DROVER_LOG", "info,openraft=warn")
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn drover agent");
        self.child = Some(child);
    }

    fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .status();
        }
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and wait for a clean exit (up to 30 s, then SIGKILL).
    pub fn stop(&mut self) {
        self.signal(15);
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// SIGSTOP: the process freezes (its tasks keep running).
    pub fn pause(&self) {
        self.signal(19);
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal(18);
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// An HTTP API client of this agent.
    pub fn api(&self) -> Client {
        Client::new(format!("http://{}", self.http))
    }

    /// The last lines of the agent's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Servers and clients of one test.
pub struct Cluster {
    pub servers: Vec<AgentProc>,
    pub clients: Vec<AgentProc>,
    pub root: tempfile::TempDir,
    pub marker: String,
}

/// What a test cluster looks like.
#[derive(Debug, Clone, Default)]
pub struct Shape {
    pub servers: usize,
    pub clients: usize,
    /// Extra HCL for every server's configuration file (the `server { }`
    /// block's body).
    pub server_block: String,
    /// Extra top-level HCL for every server's configuration file.
    pub server_config: String,
    /// Extra top-level HCL for every client's configuration file.
    pub client_config: String,
}

impl Cluster {
    /// Starts the servers (joined to each other, bootstrapping at their
    /// count) and the clients (registered with every server).
    pub fn start(shape: &Shape) -> Cluster {
        let root = tempfile::tempdir().expect("tempdir");
        let marker = format!("{}-{}", std::process::id(), free_port());
        let rpc_addrs: Vec<String> = (0..shape.servers)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let mut servers = Vec::new();
        for (index, rpc) in rpc_addrs.iter().enumerate() {
            let name = format!("s{}", index + 1);
            let dir = root.path().join(&name);
            let http = format!("127.0.0.1:{}", free_port());
            let config = root.path().join(format!("{name}.hcl"));
            std::fs::write(
                &config,
                format!("server {{\n{}\n}}\n{}\n", shape.server_block, shape.server_config),
            )
            .expect("config");
            let mut args = vec![
                "--server".to_string(),
                "--bootstrap-expect".to_string(),
                shape.servers.to_string(),
                "--data-dir".to_string(),
                dir.display().to_string(),
                "--http-addr".to_string(),
                http.clone(),
                "--rpc-addr".to_string(),
                rpc.clone(),
                "--node-name".to_string(),
                name.clone(),
                "--config".to_string(),
                config.display().to_string(),
            ];
            for other in rpc_addrs.iter().filter(|other| *other != rpc) {
                args.push("--join".to_string());
                args.push(other.clone());
            }
            servers.push(AgentProc::spawn(&name, &dir, http, Some(rpc.clone()), args, &marker));
        }
        let mut clients = Vec::new();
        for index in 0..shape.clients {
            let name = format!("c{}", index + 1);
            let dir = root.path().join(&name);
            let http = format!("127.0.0.1:{}", free_port());
            let config = root.path().join(format!("{name}.hcl"));
            std::fs::write(&config, &shape.client_config).expect("config");
            let args = vec![
                "--client".to_string(),
                "--servers".to_string(),
                rpc_addrs.join(","),
                "--data-dir".to_string(),
                dir.display().to_string(),
                "--http-addr".to_string(),
                http.clone(),
                "--node-name".to_string(),
                name.clone(),
                "--config".to_string(),
                config.display().to_string(),
            ];
            clients.push(AgentProc::spawn(&name, &dir, http, None, args, &marker));
        }
        Cluster {
            servers,
            clients,
            root,
            marker,
        }
    }

    /// Starts one server per namespaced host, on that host's address.
    pub fn start_on_hosts(hosts: &super::netns::Hosts, servers: usize, server_block: &str) -> Cluster {
        let root = tempfile::tempdir().expect("tempdir");
        let marker = format!("{}-{}", std::process::id(), free_port());
        let rpc_addrs: Vec<String> = (0..servers).map(|index| format!("{}:4647", hosts.ip(index))).collect();
        let mut started = Vec::new();
        for (index, rpc) in rpc_addrs.iter().enumerate() {
            let name = format!("s{}", index + 1);
            let dir = root.path().join(&name);
            let http = format!("{}:4646", hosts.ip(index));
            let config = root.path().join(format!("{name}.hcl"));
            std::fs::write(&config, format!("server {{\n{server_block}\n}}\n")).expect("config");
            let mut args = vec![
                "--server".to_string(),
                "--bootstrap-expect".to_string(),
                servers.to_string(),
                "--data-dir".to_string(),
                dir.display().to_string(),
                "--http-addr".to_string(),
                http.clone(),
                "--rpc-addr".to_string(),
                rpc.clone(),
                "--node-name".to_string(),
                name.clone(),
                "--config".to_string(),
                config.display().to_string(),
            ];
            for other in rpc_addrs.iter().filter(|other| *other != rpc) {
                args.push("--join".to_string());
                args.push(other.clone());
            }
            started.push(AgentProc::spawn_in(
                Some(hosts.netns(index)),
                &name,
                &dir,
                http,
                Some(rpc.clone()),
                args,
                &marker,
            ));
        }
        Cluster {
            servers: started,
            clients: Vec::new(),
            root,
            marker,
        }
    }

    /// Every running server's log tail, for failure messages.
    pub fn logs(&self) -> String {
        self.servers
            .iter()
            .chain(&self.clients)
            .map(|agent| format!("----- {} -----\n{}", agent.name, agent.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until every running server agrees on one leader; returns the
    /// leader's index in `servers`.
    pub async fn leader(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let mut seen = Vec::new();
            for server in self.servers.iter().filter(|server| server.is_running()) {
                let leader = server.api().leader().await.unwrap_or_default();
                seen.push(leader);
            }
            if let Some(first) = seen.first()
                && !first.is_empty()
                && seen.iter().all(|leader| leader == first)
                && let Some(index) = self
                    .servers
                    .iter()
                    .position(|server| server.rpc.as_deref() == Some(first.as_str()) && server.is_running())
            {
                return index;
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader within {within:?} (seen {seen:?})\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `count` nodes are ready, asking server `via`.
    pub async fn wait_nodes(&self, via: usize, count: usize, within: Duration) -> Vec<api_types::NodeListStub> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(nodes) = self.servers[via].api().nodes("").await {
                let ready: Vec<_> = nodes.into_iter().filter(|node| node.status == "ready").collect();
                if ready.len() >= count {
                    return ready;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{count} nodes not ready within {within:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills every process the cluster started, tasks included.
    pub fn kill_all(&mut self) {
        for agent in self.servers.iter_mut().chain(self.clients.iter_mut()) {
            agent.kill();
        }
        kill_marked(&self.marker);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Kills every process whose environment carries `MARKER=<marker>`.
pub fn kill_marked(marker: &str) {
    let needle = format!("{MARKER}={marker}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|byte| *byte == 0).any(|var| var == needle.as_bytes()) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

/// A job as the API's JSON, from HCL.
pub fn job_json(hcl: &str) -> serde_json::Value {
    let job = jobspec::parse(hcl, "test.nomad.hcl", &jobspec::ParseOptions::default()).expect("valid job");
    jobspec::job_to_api(&job)
}

/// A service job of `count` `sleep` tasks.
pub fn sleep_job(id: &str, count: u32, memory_mb: u32) -> serde_json::Value {
    job_json(&format!(
        r#"
job "{id}" {{
  group "g" {{
    count = {count}
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sleep"
        args    = ["600"]
      }}
      resources {{
        cpu    = 50
        memory = {memory_mb}
      }}
    }}
  }}
}}
"#
    ))
}

/// Polls until `check` passes or `within` runs out.
pub async fn eventually<T>(within: Duration, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until `check` passes or `within` runs out; on timeout the panic
/// message carries `check`'s last explanation of what it still waits for.
pub async fn eventually_explained<T>(
    within: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let why = match check().await {
            Ok(value) => return value,
            Err(why) => why,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}; last seen: {why}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
