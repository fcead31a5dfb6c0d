//! The task environment: the `NOMAD_*` variables Nomad sets, the task's own
//! `env` block, and runtime interpolation of `${...}` references in env
//! values and driver config.
//!
//! Pure: everything (node, allocation, job, directories, the agent's own
//! environment) comes in as arguments.

use crate::alloc_dir::AllocDir;
use std::collections::BTreeMap;
use types::{Allocation, Job, Node, Task, TaskGroup};

/// Used when neither the agent nor the task provides a `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the environment of one task is built from.
#[derive(Debug, Clone, Copy)]
pub struct EnvInputs<'a> {
    /// The node the task runs on.
    pub node: &'a Node,
    /// The region (`NOMAD_REGION`, `${node.region}`).
    pub region: &'a str,
    /// The allocation, with its granted resources and ports.
    pub alloc: &'a Allocation,
    /// The job version the allocation runs.
    pub job: &'a Job,
    /// The task's group.
    pub group: &'a TaskGroup,
    /// The task.
    pub task: &'a Task,
    /// The allocation's directories.
    pub alloc_dir: &'a AllocDir,
    /// The agent's environment to pass through (already filtered); empty
    /// for drivers that isolate tasks.
    pub host_env: &'a BTreeMap<String, String>,
    /// Whether the task sees its directories at `/alloc`, `/local` and
    /// `/secrets` (drivers with their own root filesystem).
    pub isolated_fs: bool,
}

/// The allocation's group network as the drivers get it: the mode, the
/// host address and every named port with its host and task side. A port
/// with `to` is reached inside the task on `to` (mapped by the driver or
/// the bridge), otherwise on its host port. Pure.
pub fn group_network(node: &Node, alloc: &Allocation) -> driver_api::TaskNetwork {
    let mut network = driver_api::TaskNetwork {
        host_ip: node
            .resources
            .networks
            .first()
            .map_or_else(|| "127.0.0.1".to_string(), |host| host.ip.clone()),
        ..driver_api::TaskNetwork::default()
    };
    for (idx, resource) in alloc.allocated_resources.networks.iter().enumerate() {
        if idx == 0 {
            network.mode = resource.mode.clone();
            if !resource.ip.is_empty() {
                network.host_ip = resource.ip.clone();
            }
        }
        for port in resource.reserved_ports.iter().chain(resource.dynamic_ports.iter()) {
            let task_port = u16::try_from(port.to).ok().filter(|to| *to > 0).unwrap_or(port.value);
            network.ports.push(driver_api::PortMapping {
                label: port.label.clone(),
                host_port: port.value,
                task_port,
            });
        }
    }
    network
}

/// A task's environment, plus what `${node.*}`/`${attr.*}`/`${meta.*}`
/// resolve to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskEnv {
    vars: BTreeMap<String, String>,
    node_values: BTreeMap<String, String>,
}

/// Replaces every character that cannot appear in an environment variable
/// name with `_`.
pub fn clean_env_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect()
}

impl TaskEnv {
    /// Builds the environment of `inputs.task`.
    pub fn build(inputs: EnvInputs<'_>) -> TaskEnv {
        let EnvInputs {
            node,
            region,
            alloc,
            job,
            group,
            task,
            alloc_dir,
            host_env,
            isolated_fs,
        } = inputs;
        let mut node_values = BTreeMap::new();
        node_values.insert("node.unique.id".to_string(), node.id.clone());
        node_values.insert("node.unique.name".to_string(), node.name.clone());
        node_values.insert("node.datacenter".to_string(), node.datacenter.clone());
        node_values.insert("node.class".to_string(), node.node_class.clone());
        node_values.insert("node.pool".to_string(), node.node_pool.clone());
        node_values.insert("node.region".to_string(), region.to_string());
        for (key, value) in &node.attributes {
            node_values.insert(format!("attr.{key}"), value.clone());
        }
        for (key, value) in &node.meta {
            node_values.insert(format!("meta.{key}"), value.clone());
        }

        let mut vars: BTreeMap<String, String> = host_env
            .iter()
            .filter(|(name, _)| !name.starts_with("NOMAD_"))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        vars.entry("PATH".to_string())
            .or_insert_with(|| DEFAULT_PATH.to_string());
        let mut set = |name: &str, value: String| {
            vars.insert(name.to_string(), value);
        };
        set("NOMAD_ALLOC_ID", alloc.id.clone());
        set("NOMAD_SHORT_ALLOC_ID", types::short_id(&alloc.id).to_string());
        set("NOMAD_ALLOC_NAME", alloc.name.clone());
        set("NOMAD_ALLOC_INDEX", alloc.index().unwrap_or(0).to_string());
        if isolated_fs {
            // Drivers with their own root mount the directories where
            // Nomad does.
            set("NOMAD_ALLOC_DIR", "/alloc".to_string());
            set("NOMAD_TASK_DIR", "/local".to_string());
            set("NOMAD_SECRETS_DIR", "/secrets".to_string());
        } else {
            set("NOMAD_ALLOC_DIR", alloc_dir.shared_dir().display().to_string());
            set("NOMAD_TASK_DIR", alloc_dir.local_dir(&task.name).display().to_string());
            set(
                "NOMAD_SECRETS_DIR",
                alloc_dir.secrets_dir(&task.name).display().to_string(),
            );
        }
        set("NOMAD_JOB_ID", job.id.clone());
        set("NOMAD_JOB_NAME", job.name.clone());
        if !job.parent_id.is_empty() {
            set("NOMAD_JOB_PARENT_ID", job.parent_id.clone());
        }
        set("NOMAD_GROUP_NAME", group.name.clone());
        set("NOMAD_TASK_NAME", task.name.clone());
        let namespace = if alloc.namespace.is_empty() {
            &job.namespace
        } else {
            &alloc.namespace
        };
        set("NOMAD_NAMESPACE", namespace.clone());
        set("NOMAD_REGION", region.to_string());
        set("NOMAD_DC", node.datacenter.clone());

        let granted = alloc.allocated_resources.tasks.get(&task.name);
        let cpu = granted.map_or(task.resources.cpu, |granted| granted.cpu_mhz);
        let memory = granted.map_or(task.resources.memory_mb, |granted| granted.memory_mb);
        let memory_max = granted.map_or(task.resources.memory_max_mb, |granted| granted.memory_max_mb);
        set("NOMAD_CPU_LIMIT", cpu.to_string());
        set("NOMAD_MEMORY_LIMIT", memory.to_string());
        if memory_max > 0 {
            set("NOMAD_MEMORY_MAX_LIMIT", memory_max.to_string());
        }
        if let Some(cores) = granted.filter(|granted| !granted.reserved_cores.is_empty()) {
            let list: Vec<String> = cores.reserved_cores.iter().map(u16::to_string).collect();
            set("NOMAD_CPU_CORES", list.join(","));
        }

        let network = group_network(node, alloc);
        for port in &network.ports {
            let label = clean_env_name(&port.label);
            let ip = &network.host_ip;
            set(&format!("NOMAD_IP_{label}"), ip.clone());
            set(&format!("NOMAD_PORT_{label}"), port.task_port.to_string());
            set(&format!("NOMAD_ADDR_{label}"), format!("{ip}:{}", port.host_port));
            set(&format!("NOMAD_HOST_IP_{label}"), ip.clone());
            set(&format!("NOMAD_HOST_PORT_{label}"), port.host_port.to_string());
            set(&format!("NOMAD_HOST_ADDR_{label}"), format!("{ip}:{}", port.host_port));
            if network.mode() == "bridge" {
                set(&format!("NOMAD_ALLOC_PORT_{label}"), port.task_port.to_string());
                set(&format!("NOMAD_ALLOC_ADDR_{label}"), format!("{ip}:{}", port.task_port));
            }
        }

        let mut meta = job.meta.clone();
        meta.extend(group.meta.clone());
        meta.extend(task.meta.clone());
        for (key, value) in meta {
            let cleaned = clean_env_name(&key);
            set(&format!("NOMAD_META_{cleaned}"), value.clone());
            set(&format!("NOMAD_META_{}", cleaned.to_ascii_uppercase()), value);
        }

        let mut env = TaskEnv { vars, node_values };
        for (name, value) in &task.env {
            let value = env.interpolate(value);
            env.vars.insert(name.clone(), value);
        }
        env
    }

    /// An environment of just these variables (no node values).
    pub fn from_vars(vars: BTreeMap<String, String>) -> TaskEnv {
        TaskEnv {
            vars,
            node_values: BTreeMap::new(),
        }
    }

    /// The variables, ready for the driver.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// Replaces `${NAME}`, `${env["NAME"]}`, `${node.*}`, `${attr.*}` and
    /// `${meta.*}` references. Unknown references are left as written.
    pub fn interpolate(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                return out;
            };
            let key = after[..end].trim();
            match self.lookup(key) {
                Some(value) => out.push_str(value),
                None => out.push_str(&rest[start..start + 2 + end + 1]),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn lookup(&self, key: &str) -> Option<&str> {
        if let Some(inner) = key.strip_prefix("env[").and_then(|inner| inner.strip_suffix(']')) {
            let name = inner.trim().trim_matches('"').trim_matches('\'');
            return self.vars.get(name).map(String::as_str);
        }
        if key.starts_with("node.") || key.starts_with("attr.") || key.starts_with("meta.") {
            return self.node_values.get(key).map(String::as_str);
        }
        self.vars.get(key).map(String::as_str)
    }

    /// Interpolates every string in a driver config tree (keys stay).
    pub fn interpolate_json(&self, value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::String(text) => serde_json::Value::String(self.interpolate(text)),
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(|item| self.interpolate_json(item)).collect())
            }
            serde_json::Value::Object(map) => serde_json::Value::Object(
                map.iter()
                    .map(|(key, item)| (key.clone(), self.interpolate_json(item)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use types::{AllocatedTaskResources, NetworkResource, Port};

    fn fixture() -> (Node, Allocation, Job) {
        let mut node = Node {
            id: "node-1".into(),
            name: "alpha".into(),
            datacenter: "dc7".into(),
            ..Node::default()
        };
        node.attributes.insert("kernel.name".into(), "linux".into());
        node.meta.insert("rack".into(), "r9".into());
        let mut alloc = Allocation {
            id: "0123456789abcdef".into(),
            name: Allocation::make_name("web", "api", 2),
            namespace: "default".into(),
            task_group: "api".into(),
            ..Allocation::default()
        };
        alloc.allocated_resources.tasks.insert(
            "server".into(),
            AllocatedTaskResources {
                cpu_mhz: 250,
                memory_mb: 128,
                memory_max_mb: 256,
                ..AllocatedTaskResources::default()
            },
        );
        alloc.allocated_resources.networks.push(NetworkResource {
            ip: "10.0.0.5".into(),
            dynamic_ports: vec![Port {
                label: "http-api".into(),
                value: 23456,
                to: 0,
                host_network: String::new(),
            }],
            ..NetworkResource::default()
        });
        let mut job = Job {
            id: "web".into(),
            name: "web".into(),
            ..Job::default()
        };
        job.meta.insert("owner".into(), "ops".into());
        (node, alloc, job)
    }

    fn build(task: &Task, host_env: &BTreeMap<String, String>) -> TaskEnv {
        let (node, alloc, job) = fixture();
        let mut group = TaskGroup {
            name: "api".into(),
            ..TaskGroup::default()
        };
        group.meta.insert("owner".into(), "team-a".into());
        let alloc_dir = AllocDir::new(Path::new("/data/alloc"), &alloc.id);
        TaskEnv::build(EnvInputs {
            node: &node,
            region: "global",
            alloc: &alloc,
            job: &job,
            group: &group,
            task,
            alloc_dir: &alloc_dir,
            host_env,
            isolated_fs: false,
        })
    }

    #[test]
    fn mapped_ports_and_isolated_directories() {
        let (node, mut alloc, job) = fixture();
        alloc.allocated_resources.networks[0].mode = "bridge".into();
        alloc.allocated_resources.networks[0].dynamic_ports.push(Port {
            label: "db".into(),
            value: 25000,
            to: 5432,
            host_network: String::new(),
        });
        let group = TaskGroup {
            name: "api".into(),
            ..TaskGroup::default()
        };
        let alloc_dir = AllocDir::new(Path::new("/data/alloc"), &alloc.id);
        let task = server_task();
        let env = TaskEnv::build(EnvInputs {
            node: &node,
            region: "global",
            alloc: &alloc,
            job: &job,
            group: &group,
            task: &task,
            alloc_dir: &alloc_dir,
            host_env: &BTreeMap::new(),
            isolated_fs: true,
        });
        let vars = env.vars();
        for (name, value) in [
            ("NOMAD_PORT_db", "5432"),
            ("NOMAD_HOST_PORT_db", "25000"),
            ("NOMAD_IP_db", "10.0.0.5"),
            ("NOMAD_ADDR_db", "10.0.0.5:25000"),
            ("NOMAD_HOST_ADDR_db", "10.0.0.5:25000"),
            ("NOMAD_ALLOC_PORT_db", "5432"),
            ("NOMAD_ALLOC_DIR", "/alloc"),
            ("NOMAD_TASK_DIR", "/local"),
            ("NOMAD_SECRETS_DIR", "/secrets"),
        ] {
            assert_eq!(vars.get(name).map(String::as_str), Some(value), "{name}");
        }
        let network = group_network(&node, &alloc);
        assert_eq!(network.mode(), "bridge");
        assert_eq!(
            network.port("db").map(|port| (port.host_port, port.task_port)),
            Some((25000, 5432))
        );
        assert_eq!(network.port("http-api").map(|port| port.task_port), Some(23456));
    }

    fn server_task() -> Task {
        Task {
            name: "server".into(),
            driver: "raw_exec".into(),
            ..Task::default()
        }
    }

    #[test]
    fn sets_the_nomad_variables() {
        let env = build(&server_task(), &BTreeMap::new());
        let vars = env.vars();
        let expect = [
            ("NOMAD_ALLOC_ID", "0123456789abcdef"),
            ("NOMAD_SHORT_ALLOC_ID", "01234567"),
            ("NOMAD_ALLOC_NAME", "web.api[2]"),
            ("NOMAD_ALLOC_INDEX", "2"),
            ("NOMAD_ALLOC_DIR", "/data/alloc/0123456789abcdef/alloc"),
            ("NOMAD_TASK_DIR", "/data/alloc/0123456789abcdef/server/local"),
            ("NOMAD_SECRETS_DIR", "/data/alloc/0123456789abcdef/server/secrets"),
            ("NOMAD_JOB_ID", "web"),
            ("NOMAD_JOB_NAME", "web"),
            ("NOMAD_GROUP_NAME", "api"),
            ("NOMAD_TASK_NAME", "server"),
            ("NOMAD_NAMESPACE", "default"),
            ("NOMAD_REGION", "global"),
            ("NOMAD_DC", "dc7"),
            ("NOMAD_CPU_LIMIT", "250"),
            ("NOMAD_MEMORY_LIMIT", "128"),
            ("NOMAD_MEMORY_MAX_LIMIT", "256"),
            ("NOMAD_PORT_http_api", "23456"),
            ("NOMAD_HOST_PORT_http_api", "23456"),
            ("NOMAD_ADDR_http_api", "10.0.0.5:23456"),
            ("NOMAD_IP_http_api", "10.0.0.5"),
            // Group meta overrides job meta.
            ("NOMAD_META_owner", "team-a"),
            ("NOMAD_META_OWNER", "team-a"),
            ("PATH", DEFAULT_PATH),
        ];
        for (name, value) in expect {
            assert_eq!(vars.get(name).map(String::as_str), Some(value), "{name}");
        }
        assert!(!vars.contains_key("NOMAD_JOB_PARENT_ID"));
    }

    #[test]
    fn task_env_is_interpolated_and_wins() {
        let mut task = server_task();
        task.env.insert("LISTEN".into(), "${NOMAD_ADDR_http_api}".into());
        task.env.insert(
            "WHERE".into(),
            "${node.unique.name}/${attr.kernel.name}/${meta.rack}".into(),
        );
        task.env.insert("HOME_COPY".into(), "${env[\"HOME\"]}".into());
        task.env.insert("UNKNOWN".into(), "${nope.x} and ${".into());
        task.env.insert("PATH".into(), "/opt/bin".into());
        let mut host = BTreeMap::new();
        host.insert("HOME".to_string(), "/root".to_string());
        host.insert("NOMAD_ALLOC_ID".to_string(), "from-the-agent".to_string());
        let env = build(&task, &host);
        let vars = env.vars();
        assert_eq!(vars["LISTEN"], "10.0.0.5:23456");
        assert_eq!(vars["WHERE"], "alpha/linux/r9");
        assert_eq!(vars["HOME_COPY"], "/root");
        assert_eq!(vars["UNKNOWN"], "${nope.x} and ${");
        assert_eq!(vars["PATH"], "/opt/bin");
        assert_eq!(vars["NOMAD_ALLOC_ID"], "0123456789abcdef");
    }

    #[test]
    fn config_trees_are_interpolated() {
        let env = build(&server_task(), &BTreeMap::new());
        let config = serde_json::json!({
            "command": "${NOMAD_TASK_DIR}/run",
            "args": ["--port", "${NOMAD_PORT_http_api}", 3],
            "nested": {"dc": "${node.datacenter}"}
        });
        assert_eq!(
            env.interpolate_json(&config),
            serde_json::json!({
                "command": "/data/alloc/0123456789abcdef/server/local/run",
                "args": ["--port", "23456", 3],
                "nested": {"dc": "dc7"}
            })
        );
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_env_name("http-api.v2"), "http_api_v2");
    }
}
