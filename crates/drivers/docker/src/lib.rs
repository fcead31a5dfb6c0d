//! The `docker` driver: runs a task as a container through the Docker
//! Engine API (bollard, version negotiated with the engine: 1.41 here).
//!
//! - Images come from the local store, or are pulled (with `auth`,
//!   `auth_soft_fail`, `force_pull`, `image_pull_timeout`); a missing image
//!   fails the start with a message naming it.
//! - The container is named `<task>-<alloc_id>` and labelled with the
//!   allocation and task, so a restarted agent finds it again by label even
//!   if its handle's container ID is stale (R3: reattached, 0 restarts).
//! - The allocation's `alloc/`, `local/` and `secrets/` are bind-mounted at
//!   `/alloc`, `/local` and `/secrets`; the group's ports are published on
//!   the host address (`ports = ["http"]`).
//! - Resources: cpu shares, cores as a cpuset, memory (hard) and
//!   `memory_max` (hard, with `memory` as the reservation), and CFS quota
//!   with `cpu_hard_limit`.
//! - Output is copied from the log API into the task's log sinks (see
//!   [`logs`]), resumable after an agent restart.
//! - Containers are removed when their task is destroyed; images no task
//!   uses any more are removed after `gc.image_delay`.
//! - `privileged` and host paths outside the allocation need the plugin's
//!   `allow_privileged` / `volumes_enabled`.

pub mod config;
pub mod logs;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, HealthConfig, HostConfig, HostConfigLogConfig, Mount, MountType, PortBinding,
};
use config::{DockerPluginConfig, DockerTaskConfig, MountConfig, split_image};
use driver_api::{
    AllocNetworkError, Capabilities, DestroyTaskError, Driver, ExitResult, NetworkIsolation, RecoverTaskError,
    SignalTaskError, StartTaskError, StopTaskError, TASK_HANDLE_VERSION, TaskConfig, TaskHandle, TaskStats,
    TaskStatsError, WaitTaskError, parse_signal,
};
use futures::StreamExt;
use logs::LogSinks;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OnceCell, watch};
use types::DriverInfo;

/// The driver's name, as job files spell it.
pub const DRIVER_NAME: &str = "docker";
/// Label holding the allocation ID of a Drover container.
pub const LABEL_ALLOC_ID: &str = "io.drover.alloc_id";
/// Label holding the task name of a Drover container.
pub const LABEL_TASK: &str = "io.drover.task_name";
/// Label marking an allocation's pause container.
pub const LABEL_PAUSE: &str = "io.drover.pause";
/// Label holding the job ID of a Drover container.
pub const LABEL_JOB_ID: &str = "io.drover.job_id";
/// How long the log copy may take to finish after the container exits.
const LOG_DRAIN: Duration = Duration::from_secs(10);
/// How long an image name's resolved ID is reused without asking again.
const IMAGE_ID_TTL: Duration = Duration::from_secs(10);
/// How long one Engine request for a container's state may take.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(60);

/// A container's network mode, port bindings and exposed ports.
type ContainerNetwork = (
    Option<String>,
    Option<HashMap<String, Option<Vec<PortBinding>>>>,
    Vec<String>,
);

/// What a docker handle stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DockerState {
    container_id: String,
    image_id: String,
    logs: logs::LogTarget,
    log_mark: PathBuf,
}

/// One live (or finished but not destroyed) container.
struct TaskEntry {
    container_id: String,
    image_id: String,
    exit: watch::Receiver<Option<ExitResult>>,
}

/// The docker driver. Cheap to share: wrap it in an `Arc`.
pub struct DockerDriver {
    plugin: DockerPluginConfig,
    docker: OnceCell<Docker>,
    tasks: Mutex<HashMap<String, Arc<TaskEntry>>>,
    /// How many live tasks use each image ID (for image GC).
    image_users: Arc<Mutex<HashMap<String, usize>>>,
    /// MHz of one core, for `cpu_hard_limit`.
    mhz_per_core: f64,
    /// Image name → (ID, when resolved).
    image_ids: Mutex<HashMap<String, (String, tokio::time::Instant)>>,
}

impl std::fmt::Debug for DockerDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerDriver")
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

/// Why the Engine could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("connect to the docker engine: {0}")]
pub struct ConnectDockerError(String);

fn cpu_mhz_per_core() -> f64 {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("cpu MHz"))
                .and_then(|line| line.split(':').nth(1))
                .and_then(|value| value.trim().parse::<f64>().ok())
        })
        .filter(|mhz| *mhz > 0.0)
        .unwrap_or(1000.0)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Entries are inserted and removed whole: a poisoned map is consistent.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether an Engine error is "no such thing".
fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }
    )
}

/// The pause container holding an allocation's `bridge` namespace.
fn pause_name(alloc_id: &str) -> String {
    format!("drover-pause-{alloc_id}")
}

fn container_name(config: &TaskConfig) -> String {
    format!("{}-{}", config.task_name, config.alloc_id)
}

fn decode_state(handle: &TaskHandle) -> Result<DockerState, RecoverTaskError> {
    if handle.driver != DRIVER_NAME {
        return Err(RecoverTaskError::WrongDriver {
            task: handle.key(),
            driver: handle.driver.clone(),
        });
    }
    serde_json::from_value(handle.state.clone()).map_err(|error| RecoverTaskError::BadHandle {
        task: handle.key(),
        reason: error.to_string(),
    })
}

/// The signal name the Engine understands (`SIGTERM`), from any spelling.
fn engine_signal(name: &str) -> Option<String> {
    let number = if name.trim().is_empty() {
        15
    } else {
        parse_signal(name)?
    };
    Some(number.to_string())
}

impl DockerDriver {
    /// A driver with the given plugin options. The Engine is contacted on
    /// first use (fingerprint or start).
    pub fn new(plugin: DockerPluginConfig) -> DockerDriver {
        DockerDriver {
            plugin,
            docker: OnceCell::new(),
            tasks: Mutex::new(HashMap::new()),
            image_users: Arc::new(Mutex::new(HashMap::new())),
            mhz_per_core: cpu_mhz_per_core(),
            image_ids: Mutex::new(HashMap::new()),
        }
    }

    /// The Engine client, connected through the local socket with the API
    /// version negotiated down to what the engine speaks.
    pub async fn client(&self) -> Result<Docker, ConnectDockerError> {
        self.docker
            .get_or_try_init(|| async {
                let docker =
                    Docker::connect_with_local_defaults().map_err(|error| ConnectDockerError(error.to_string()))?;
                docker
                    .negotiate_version()
                    .await
                    .map_err(|error| ConnectDockerError(error.to_string()))
            })
            .await
            .cloned()
    }

    fn entry(&self, key: &str) -> Option<Arc<TaskEntry>> {
        lock(&self.tasks).get(key).cloned()
    }

    /// The ID an image name resolved to within the last
    /// [`IMAGE_ID_TTL`]: a job of many replicas asks the Engine once.
    fn cached_image(&self, image: &str) -> Option<String> {
        let cache = lock(&self.image_ids);
        let (id, at) = cache.get(image)?;
        (at.elapsed() < IMAGE_ID_TTL).then(|| id.clone())
    }

    /// Makes sure the image is present: local unless `force_pull`, pulled
    /// otherwise. Returns its ID.
    async fn ensure_image(
        &self,
        docker: &Docker,
        config: &DockerTaskConfig,
        task: &str,
    ) -> Result<String, StartTaskError> {
        let fail = |reason: String| StartTaskError::Spawn {
            task: task.to_string(),
            reason,
        };
        if !config.force_pull {
            if let Some(id) = self.cached_image(&config.image) {
                return Ok(id);
            }
            if let Ok(image) = docker.inspect_image(&config.image).await {
                let id = image.id.unwrap_or_default();
                lock(&self.image_ids).insert(config.image.clone(), (id.clone(), tokio::time::Instant::now()));
                return Ok(id);
            }
        }
        let credentials = config.auth.as_ref().map(|auth| bollard::auth::DockerCredentials {
            username: Some(auth.username.clone()).filter(|text| !text.is_empty()),
            password: Some(auth.password.clone()).filter(|text| !text.is_empty()),
            email: Some(auth.email.clone()).filter(|text| !text.is_empty()),
            serveraddress: Some(auth.server_address.clone()).filter(|text| !text.is_empty()),
            ..Default::default()
        });
        let pulled = self.pull(docker, config, credentials.clone()).await;
        let pulled = match pulled {
            Err(error) if credentials.is_some() && config.auth_soft_fail => {
                tracing::warn!(image = %config.image, %error, "pull with credentials failed; auth_soft_fail: trying without");
                self.pull(docker, config, None).await
            }
            other => other,
        };
        if let Err(error) = pulled {
            return Err(fail(format!(
                "image {:?} is not in the local store and could not be pulled: {error}",
                config.image
            )));
        }
        let image = docker
            .inspect_image(&config.image)
            .await
            .map_err(|error| fail(format!("inspect image {:?} after the pull: {error}", config.image)))?;
        Ok(image.id.unwrap_or_default())
    }

    async fn pull(
        &self,
        docker: &Docker,
        config: &DockerTaskConfig,
        credentials: Option<bollard::auth::DockerCredentials>,
    ) -> Result<(), String> {
        let (repository, tag) = split_image(&config.image);
        let options = bollard::query_parameters::CreateImageOptions {
            from_image: Some(repository),
            tag: Some(tag).filter(|tag| !tag.is_empty()),
            ..Default::default()
        };
        let pull = async {
            let mut stream = docker.create_image(Some(options), None, credentials);
            while let Some(progress) = stream.next().await {
                progress.map_err(|error| error.to_string())?;
            }
            Ok::<(), String>(())
        };
        tokio::time::timeout(config.pull_timeout(), pull)
            .await
            .map_err(|_| format!("pull timed out after {:?}", config.pull_timeout()))?
    }

    /// The binds and mounts: the allocation's directories, `volumes` and
    /// `mount` blocks (host paths outside the task need `volumes_enabled`).
    fn mounts(&self, config: &TaskConfig, task_config: &DockerTaskConfig) -> Result<(Vec<String>, Vec<Mount>), String> {
        let mut binds = vec![
            format!("{}:/alloc", config.alloc_dir.display()),
            format!("{}:/local", config.task_dir.join("local").display()),
            format!("{}:/secrets", config.task_dir.join("secrets").display()),
        ];
        let host_path = |source: &str| -> Result<PathBuf, String> {
            let path = Path::new(source);
            if path.is_absolute() {
                if !self.plugin.volumes_enabled {
                    return Err(format!(
                        "host path {source:?} is outside the allocation and the docker plugin has volumes disabled"
                    ));
                }
                Ok(path.to_path_buf())
            } else {
                if path.components().any(|part| part == std::path::Component::ParentDir) {
                    return Err(format!(
                        "relative host path {source:?} may not leave the task directory"
                    ));
                }
                Ok(config.task_dir.join(path))
            }
        };
        for volume in &task_config.volumes {
            let mut parts = volume.splitn(3, ':');
            let (Some(source), Some(target)) = (parts.next(), parts.next()) else {
                return Err(format!("volume {volume:?} is not host:container[:options]"));
            };
            let options = parts.next();
            let mut bind = format!("{}:{target}", host_path(source)?.display());
            if let Some(options) = options {
                bind.push(':');
                bind.push_str(options);
            }
            binds.push(bind);
        }
        let mut mounts = Vec::new();
        for mount in task_config.mount.iter().chain(task_config.mounts.iter()) {
            mounts.push(self.mount(mount, &host_path)?);
        }
        Ok((binds, mounts))
    }

    fn mount(&self, mount: &MountConfig, host_path: &dyn Fn(&str) -> Result<PathBuf, String>) -> Result<Mount, String> {
        let mut out = Mount {
            target: Some(mount.target.clone()),
            read_only: Some(mount.readonly),
            ..Default::default()
        };
        match mount.mount_type.as_str() {
            "bind" => {
                out.typ = Some(MountType::BIND);
                out.source = Some(host_path(&mount.source)?.display().to_string());
                if let Some(options) = &mount.bind_options
                    && !options.propagation.is_empty()
                {
                    let propagation = serde_json::from_value(serde_json::Value::String(options.propagation.clone()))
                        .map_err(|_| format!("unknown bind propagation {:?}", options.propagation))?;
                    out.bind_options = Some(bollard::models::MountBindOptions {
                        propagation: Some(propagation),
                        ..Default::default()
                    });
                }
            }
            "volume" | "" => {
                out.typ = Some(MountType::VOLUME);
                out.source = Some(mount.source.clone()).filter(|source| !source.is_empty());
            }
            "tmpfs" => {
                out.typ = Some(MountType::TMPFS);
                if let Some(options) = &mount.tmpfs_options {
                    out.tmpfs_options = Some(bollard::models::MountTmpfsOptions {
                        size_bytes: Some(options.size).filter(|size| *size > 0),
                        mode: Some(options.mode).filter(|mode| *mode > 0),
                        ..Default::default()
                    });
                }
            }
            other => return Err(format!("mount type {other:?} is not bind, volume or tmpfs")),
        }
        if mount.target.is_empty() {
            return Err("a mount needs a target".to_string());
        }
        Ok(out)
    }

    /// The container's network mode, published ports and exposed ports.
    fn network(config: &TaskConfig, task_config: &DockerTaskConfig) -> Result<ContainerNetwork, String> {
        let group_mode = config.network.mode();
        if let Some(join) = &config.network.join {
            // The group's namespace is the pause container's: join it; its
            // ports are mapped by the client's DNAT rules.
            if let Some(mode) = task_config.network_mode.as_deref().filter(|mode| mode != join) {
                return Err(format!(
                    "network_mode {mode:?} conflicts with the group's {group_mode:?} network"
                ));
            }
            for label in &task_config.ports {
                if config.network.port(label).is_none() {
                    return Err(format!("port {label:?} is not in the group's network block"));
                }
            }
            return Ok((Some(join.clone()), None, Vec::new()));
        }
        let mode = match (group_mode, task_config.network_mode.as_deref()) {
            ("host", None) => None,
            ("host", Some(mode)) => Some(mode.to_string()),
            ("none", None | Some("none")) => Some("none".to_string()),
            ("none", Some(mode)) => {
                return Err(format!(
                    "network_mode {mode:?} conflicts with the group's network mode \"none\""
                ));
            }
            (other, _) => {
                return Err(format!(
                    "group network mode {other:?} is not supported by the docker driver yet"
                ));
            }
        };
        if task_config.ports.is_empty() {
            return Ok((mode, None, Vec::new()));
        }
        if matches!(mode.as_deref(), Some("none" | "host"))
            || mode.as_deref().is_some_and(|m| m.starts_with("container:"))
        {
            return Err(format!(
                "ports cannot be published with network_mode {:?}",
                mode.unwrap_or_default()
            ));
        }
        let mut bindings = HashMap::new();
        let mut exposed = Vec::new();
        for label in &task_config.ports {
            let port = config
                .network
                .port(label)
                .ok_or_else(|| format!("port {label:?} is not in the group's network block"))?;
            for protocol in ["tcp", "udp"] {
                let key = format!("{}/{protocol}", port.task_port);
                exposed.push(key.clone());
                bindings.insert(
                    key,
                    Some(vec![PortBinding {
                        host_ip: Some(config.network.host_ip.clone()),
                        host_port: Some(port.host_port.to_string()),
                    }]),
                );
            }
        }
        Ok((mode, Some(bindings), exposed))
    }

    fn create_body(
        &self,
        config: &TaskConfig,
        task_config: &DockerTaskConfig,
        image_id: &str,
    ) -> Result<ContainerCreateBody, String> {
        if task_config.privileged && !self.plugin.allow_privileged {
            return Err("privileged containers are not allowed by the docker plugin's configuration".to_string());
        }
        let (binds, mounts) = self.mounts(config, task_config)?;
        let (network_mode, port_bindings, exposed) = DockerDriver::network(config, task_config)?;
        let resources = &config.resources;
        let mib = |value: i64| value.max(0).saturating_mul(1 << 20);
        let (memory, reservation) = match task_config.memory_hard_limit {
            Some(hard) if hard > 0 => (mib(hard), mib(resources.memory_mb)),
            _ if resources.memory_max_mb > resources.memory_mb => {
                (mib(resources.memory_max_mb), mib(resources.memory_mb))
            }
            _ => (mib(resources.memory_mb), 0),
        };
        let period = task_config.cpu_cfs_period.unwrap_or(100_000).clamp(1000, 1_000_000);
        let quota = task_config
            .cpu_hard_limit
            .then(|| (period as f64 * resources.cpu_mhz as f64 / self.mhz_per_core).ceil() as i64)
            .filter(|quota| *quota >= 1000);
        let cores: Vec<String> = resources.reserved_cores.iter().map(u16::to_string).collect();
        let mut labels: HashMap<String, String> = task_config.labels.clone().into_iter().collect();
        labels.insert(LABEL_ALLOC_ID.to_string(), config.alloc_id.clone());
        labels.insert(LABEL_TASK.to_string(), config.task_name.clone());
        if let Some(job_id) = config.env.get("NOMAD_JOB_ID") {
            labels.insert(LABEL_JOB_ID.to_string(), job_id.clone());
        }
        // The Engine's own copy holds at least what the task's rotated
        // files hold: a follow across the Engine's rotation can repeat
        // lines (Engine 20.10), so it should happen rarely.
        let max_size_mb = (u64::from(config.logs.config.max_file_size_mb.max(1))
            * u64::from(config.logs.config.max_files.max(1)))
        .max(16);
        let host_config = HostConfig {
            binds: Some(binds),
            mounts: Some(mounts).filter(|mounts| !mounts.is_empty()),
            network_mode,
            port_bindings,
            cpu_shares: Some(resources.cpu_mhz.max(2)).filter(|_| resources.cpu_mhz > 0),
            cpu_period: quota.map(|_| period),
            cpu_quota: quota,
            cpuset_cpus: Some(cores.join(",")).filter(|cores| !cores.is_empty()),
            memory: Some(memory).filter(|memory| *memory > 0),
            memory_reservation: Some(reservation).filter(|reservation| *reservation > 0),
            // Memory and swap together capped at the limit: no swapping
            // past it.
            memory_swap: Some(memory).filter(|memory| *memory > 0),
            privileged: Some(task_config.privileged),
            dns: Some(task_config.dns_servers.clone()).filter(|list| !list.is_empty()),
            dns_search: Some(task_config.dns_search_domains.clone()).filter(|list| !list.is_empty()),
            dns_options: Some(task_config.dns_options.clone()).filter(|list| !list.is_empty()),
            extra_hosts: Some(task_config.extra_hosts.clone()).filter(|list| !list.is_empty()),
            readonly_rootfs: Some(task_config.readonly_rootfs),
            oom_score_adj: task_config.oom_score_adj,
            pids_limit: task_config.pids_limit,
            init: Some(task_config.init).filter(|init| *init),
            shm_size: task_config.shm_size,
            sysctls: Some(task_config.sysctl.clone().into_iter().collect())
                .filter(|map: &HashMap<_, _>| !map.is_empty()),
            security_opt: Some(task_config.security_opt.clone()).filter(|list| !list.is_empty()),
            group_add: Some(task_config.group_add.clone()).filter(|list| !list.is_empty()),
            // The Engine's own copy of the output is bounded too; ours is
            // the rotated files.
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".to_string()),
                config: Some(HashMap::from([
                    ("max-size".to_string(), format!("{max_size_mb}m")),
                    ("max-file".to_string(), "2".to_string()),
                ])),
            }),
            ..Default::default()
        };
        let mut cmd = Vec::new();
        if let Some(command) = &task_config.command {
            cmd.push(command.clone());
        }
        cmd.extend(task_config.args.iter().cloned());
        Ok(ContainerCreateBody {
            image: Some(image_id.to_string()),
            cmd: Some(cmd).filter(|cmd| !cmd.is_empty()),
            entrypoint: Some(task_config.entrypoint.clone()).filter(|entry| !entry.is_empty()),
            working_dir: task_config.work_dir.clone(),
            env: Some(
                config
                    .env
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect(),
            ),
            user: Some(config.user.clone()).filter(|user| !user.is_empty()),
            hostname: task_config.hostname.clone(),
            labels: Some(labels),
            exposed_ports: Some(exposed).filter(|exposed| !exposed.is_empty()),
            tty: Some(task_config.tty),
            open_stdin: Some(task_config.interactive),
            healthcheck: task_config
                .healthchecks
                .as_ref()
                .filter(|checks| checks.disable)
                .map(|_| HealthConfig {
                    test: Some(vec!["NONE".to_string()]),
                    ..Default::default()
                }),
            host_config: Some(host_config),
            ..Default::default()
        })
    }

    /// Starts the log copy and the exit waiter of a container, and records
    /// the task.
    fn track(&self, docker: &Docker, key: String, state: &DockerState, resume_after: Option<i128>) {
        let sinks = LogSinks {
            target: state.logs.clone(),
            mark: state.log_mark.clone(),
        };
        let log_copy = tokio::spawn(logs::copy_logs(
            docker.clone(),
            state.container_id.clone(),
            sinks,
            resume_after,
        ));
        let (exit_tx, exit_rx) = watch::channel(None);
        let waiter_docker = docker.clone();
        let container_id = state.container_id.clone();
        tokio::spawn(async move {
            let result = wait_exit(&waiter_docker, &container_id).await;
            // The output is complete once the log stream has ended.
            let _ = tokio::time::timeout(LOG_DRAIN, log_copy).await;
            let _ = exit_tx.send(Some(result));
        });
        *lock(&self.image_users).entry(state.image_id.clone()).or_insert(0) += 1;
        lock(&self.tasks).insert(
            key,
            Arc::new(TaskEntry {
                container_id: state.container_id.clone(),
                image_id: state.image_id.clone(),
                exit: exit_rx,
            }),
        );
    }

    /// Drops one user of an image and, when it was the last and image GC
    /// is on, removes the image after `image_delay` if still unused.
    fn release_image(&self, docker: &Docker, image_id: &str) {
        let remaining = {
            let mut users = lock(&self.image_users);
            let count = users.entry(image_id.to_string()).or_insert(1);
            *count = count.saturating_sub(1);
            *count
        };
        if remaining > 0 || !self.plugin.gc.image || image_id.is_empty() {
            return;
        }
        let docker = docker.clone();
        let users = Arc::clone(&self.image_users);
        let image_id = image_id.to_string();
        let delay = self.plugin.gc.image_delay;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if lock(&users).get(&image_id).copied().unwrap_or(0) > 0 {
                return;
            }
            // Without force: an image another container uses stays.
            if let Err(error) = docker
                .remove_image(&image_id, None::<bollard::query_parameters::RemoveImageOptions>, None)
                .await
            {
                tracing::debug!(image = %image_id, %error, "image not removed");
            }
        });
    }
}

/// Waits for a container to exit and reads how it ended.
async fn wait_exit(docker: &Docker, container_id: &str) -> ExitResult {
    let mut stream = docker.wait_container(container_id, None);
    let waited = stream.next().await;
    let mut result = ExitResult::default();
    match waited {
        Some(Ok(response)) => result.exit_code = i32::try_from(response.status_code).unwrap_or(-1),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
            result.exit_code = i32::try_from(code).unwrap_or(-1);
        }
        Some(Err(error)) => result.err = Some(format!("wait for container {container_id}: {error}")),
        None => result.err = Some(format!("wait for container {container_id}: no answer")),
    }
    if let Ok(Ok(inspect)) = tokio::time::timeout(ENGINE_TIMEOUT, docker.inspect_container(container_id, None)).await
        && let Some(state) = inspect.state
    {
        result.oom_killed = state.oom_killed.unwrap_or(false);
        if result.err.is_some()
            && let Some(code) = state.exit_code
        {
            result.exit_code = i32::try_from(code).unwrap_or(-1);
            result.err = None;
        }
    }
    result
}

#[async_trait]
impl Driver for DockerDriver {
    fn name(&self) -> &str {
        DRIVER_NAME
    }

    async fn fingerprint(&self) -> DriverInfo {
        let mut info = DriverInfo {
            detected: false,
            healthy: false,
            health_description: String::new(),
            attributes: BTreeMap::new(),
            update_time: 0,
        };
        let version = match self.client().await {
            Ok(docker) => docker.version().await.map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match version {
            Ok(version) => {
                info.detected = true;
                info.healthy = true;
                info.health_description = "Healthy".to_string();
                info.attributes.insert("driver.docker".to_string(), "1".to_string());
                info.attributes
                    .insert("driver.docker.version".to_string(), version.version.unwrap_or_default());
                info.attributes.insert(
                    "driver.docker.api_version".to_string(),
                    version.api_version.unwrap_or_default(),
                );
                if self.plugin.allow_privileged {
                    info.attributes
                        .insert("driver.docker.privileged.enabled".to_string(), "true".to_string());
                }
                if self.plugin.volumes_enabled {
                    info.attributes
                        .insert("driver.docker.volumes.enabled".to_string(), "true".to_string());
                }
            }
            Err(error) => {
                info.health_description = format!("Failed to connect to the docker engine: {error}");
            }
        }
        info
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            send_signals: true,
            exec: false,
            writes_log_files: true,
            fs_isolation: "image".to_string(),
        }
    }

    async fn start(&self, config: TaskConfig) -> Result<TaskHandle, StartTaskError> {
        let task_key = format!("{}/{}", config.alloc_id, config.task_name);
        let invalid = |reason: String| StartTaskError::InvalidConfig {
            task: task_key.clone(),
            reason,
        };
        let spawn_error = |reason: String| StartTaskError::Spawn {
            task: task_key.clone(),
            reason,
        };
        let task_config = DockerTaskConfig::decode(&config.config).map_err(invalid)?;
        let docker = self.client().await.map_err(|error| spawn_error(error.to_string()))?;
        let image_id = self.ensure_image(&docker, &task_config, &task_key).await?;
        let body = self.create_body(&config, &task_config, &image_id).map_err(invalid)?;
        let name = container_name(&config);
        let create = |body: ContainerCreateBody| {
            docker.create_container(
                Some(bollard::query_parameters::CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
        };
        let created = match create(body.clone()).await {
            // A container left by an earlier run of this task (a restart,
            // or an agent that died between create and start) holds the
            // name: it goes, and the create is tried once more.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {
                tracing::debug!(container = %name, "removing a stale container");
                docker
                    .remove_container(
                        &name,
                        Some(bollard::query_parameters::RemoveContainerOptions {
                            force: true,
                            ..Default::default()
                        }),
                    )
                    .await
                    .map_err(|error| spawn_error(format!("remove stale container {name}: {error}")))?;
                create(body).await
            }
            other => other,
        }
        .map_err(|error| spawn_error(format!("create container {name}: {error}")))?;
        let state = DockerState {
            container_id: created.id.clone(),
            image_id,
            logs: if config.stdout_path.as_os_str().is_empty() {
                // No collector: the copy writes the rotated files.
                logs::LogTarget::Rotated(logs::RotatedFiles {
                    dir: config.logs.dir.clone(),
                    stdout_prefix: config.logs.stdout_prefix.clone(),
                    stderr_prefix: config.logs.stderr_prefix.clone(),
                    max_files: config.logs.config.max_files.max(1),
                    max_file_size: u64::from(config.logs.config.max_file_size_mb.max(1)) << 20,
                })
            } else {
                logs::LogTarget::Sinks {
                    stdout: config.stdout_sink(),
                    stderr: config.stderr_sink(),
                }
            },
            log_mark: config.logs.dir.join(format!(".{}.docker.since", config.task_name)),
        };
        if let Err(error) = docker.start_container(&created.id, None).await {
            let _ = docker
                .remove_container(
                    &created.id,
                    Some(bollard::query_parameters::RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await;
            return Err(spawn_error(format!("start container {name}: {error}")));
        }
        let _ = std::fs::remove_file(&state.log_mark);
        self.track(&docker, task_key, &state, None);
        tracing::debug!(container = %created.id, task = %config.task_name, "docker task started");
        Ok(TaskHandle {
            version: TASK_HANDLE_VERSION,
            driver: DRIVER_NAME.to_string(),
            alloc_id: config.alloc_id,
            task_name: config.task_name,
            state: serde_json::to_value(state).unwrap_or(serde_json::Value::Null),
        })
    }

    async fn wait(&self, handle: &TaskHandle) -> Result<ExitResult, WaitTaskError> {
        let entry = self
            .entry(&handle.key())
            .ok_or_else(|| WaitTaskError::UnknownTask(handle.key()))?;
        let mut exit = entry.exit.clone();
        let result = exit.wait_for(Option::is_some).await.map_err(|_| WaitTaskError::Wait {
            task: handle.key(),
            reason: "the waiter went away".to_string(),
        })?;
        Ok(result.clone().unwrap_or_default())
    }

    async fn stop(&self, handle: &TaskHandle, timeout: Duration, signal: &str) -> Result<(), StopTaskError> {
        let entry = self
            .entry(&handle.key())
            .ok_or_else(|| StopTaskError::UnknownTask(handle.key()))?;
        let signal = engine_signal(signal).ok_or_else(|| StopTaskError::UnknownSignal(signal.to_string()))?;
        let kill_error = |reason: String| StopTaskError::Kill {
            task: handle.key(),
            reason,
        };
        let docker = self.client().await.map_err(|error| kill_error(error.to_string()))?;
        let mut exit = entry.exit.clone();
        if exit.borrow().is_none() {
            let kill = |signal: String| {
                docker.kill_container(
                    &entry.container_id,
                    Some(bollard::query_parameters::KillContainerOptions { signal }),
                )
            };
            match kill(signal.clone()).await {
                Ok(()) => {}
                // 409: not running any more.
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {}
                Err(error) if is_not_found(&error) => {}
                Err(error) => return Err(kill_error(format!("send signal {signal}: {error}"))),
            }
            if tokio::time::timeout(timeout, exit.wait_for(Option::is_some))
                .await
                .is_err()
            {
                tracing::debug!(task = %handle.key(), "kill timeout passed, sending SIGKILL");
                match kill("9".to_string()).await {
                    Ok(()) => {}
                    Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {}
                    Err(error) if is_not_found(&error) => {}
                    Err(error) => return Err(kill_error(format!("send SIGKILL: {error}"))),
                }
            }
        }
        exit.wait_for(Option::is_some)
            .await
            .map_err(|_| kill_error("the waiter went away".to_string()))?;
        Ok(())
    }

    async fn destroy(&self, handle: &TaskHandle, force: bool) -> Result<(), DestroyTaskError> {
        let Some(entry) = self.entry(&handle.key()) else {
            return Ok(());
        };
        let destroy_error = |reason: String| DestroyTaskError::Destroy {
            task: handle.key(),
            reason,
        };
        let running = entry.exit.borrow().is_none();
        if running && !force {
            return Err(destroy_error(format!(
                "container {} is still running",
                entry.container_id
            )));
        }
        let docker = self.client().await.map_err(|error| destroy_error(error.to_string()))?;
        if self.plugin.gc.container || running {
            match docker
                .remove_container(
                    &entry.container_id,
                    Some(bollard::query_parameters::RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await
            {
                Ok(()) => {}
                Err(error) if is_not_found(&error) => {}
                Err(error) => {
                    return Err(destroy_error(format!(
                        "remove container {}: {error}",
                        entry.container_id
                    )));
                }
            }
        }
        if running {
            let mut exit = entry.exit.clone();
            let _ = exit.wait_for(Option::is_some).await;
        }
        lock(&self.tasks).remove(&handle.key());
        self.release_image(&docker, &entry.image_id);
        Ok(())
    }

    async fn recover(&self, handle: &TaskHandle) -> Result<(), RecoverTaskError> {
        let mut state = decode_state(handle)?;
        if self.entry(&handle.key()).is_some() {
            return Ok(());
        }
        let gone = |reason: String| RecoverTaskError::NotFound {
            task: handle.key(),
            reason,
        };
        let docker = self.client().await.map_err(|error| gone(error.to_string()))?;
        let inspect = match docker.inspect_container(&state.container_id, None).await {
            Ok(inspect) => Some(inspect),
            Err(error) if is_not_found(&error) => None,
            Err(error) => return Err(gone(format!("inspect container {}: {error}", state.container_id))),
        };
        // The handle's ID may be stale; the labels are not.
        let inspect = match inspect {
            Some(inspect) => inspect,
            None => {
                let filters = HashMap::from([(
                    "label".to_string(),
                    vec![
                        format!("{LABEL_ALLOC_ID}={}", handle.alloc_id),
                        format!("{LABEL_TASK}={}", handle.task_name),
                    ],
                )]);
                let found = docker
                    .list_containers(Some(bollard::query_parameters::ListContainersOptions {
                        all: true,
                        filters: Some(filters),
                        ..Default::default()
                    }))
                    .await
                    .map_err(|error| gone(format!("list containers: {error}")))?;
                let id = found
                    .into_iter()
                    .find_map(|container| container.id)
                    .ok_or_else(|| gone("no container carries the task's labels".to_string()))?;
                state.container_id = id.clone();
                docker
                    .inspect_container(&id, None)
                    .await
                    .map_err(|error| gone(format!("inspect container {id}: {error}")))?
            }
        };
        let running = inspect.state.as_ref().and_then(|state| state.running).unwrap_or(false);
        if !running {
            return Err(gone(format!("container {} is not running", state.container_id)));
        }
        let resume_after = logs::read_mark(&state.log_mark);
        self.track(&docker, handle.key(), &state, resume_after.or(Some(0)));
        tracing::debug!(task = %handle.key(), container = %state.container_id, "docker task reattached");
        Ok(())
    }

    async fn create_network(&self, alloc_id: &str) -> Result<Option<NetworkIsolation>, AllocNetworkError> {
        let fail = |reason: String| AllocNetworkError {
            alloc_id: alloc_id.to_string(),
            reason,
        };
        let docker = self.client().await.map_err(|error| fail(error.to_string()))?;
        let name = pause_name(alloc_id);
        let existing = match docker.inspect_container(&name, None).await {
            Ok(inspect) => Some(inspect),
            Err(error) if is_not_found(&error) => None,
            Err(error) => return Err(fail(format!("inspect {name}: {error}"))),
        };
        let running = existing
            .as_ref()
            .and_then(|inspect| inspect.state.as_ref())
            .and_then(|state| state.running)
            .unwrap_or(false);
        if existing.is_none() {
            let image = DockerTaskConfig {
                image: self.plugin.infra_image.clone(),
                ..DockerTaskConfig::default()
            };
            let image_id = self
                .ensure_image(&docker, &image, alloc_id)
                .await
                .map_err(|error| fail(format!("infra image: {error}")))?;
            let body = ContainerCreateBody {
                image: Some(image_id),
                cmd: Some(self.plugin.infra_command.clone()).filter(|cmd| !cmd.is_empty()),
                labels: Some(HashMap::from([
                    (LABEL_ALLOC_ID.to_string(), alloc_id.to_string()),
                    (LABEL_PAUSE.to_string(), "true".to_string()),
                ])),
                host_config: Some(HostConfig {
                    network_mode: Some("none".to_string()),
                    init: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            };
            docker
                .create_container(
                    Some(bollard::query_parameters::CreateContainerOptions {
                        name: Some(name.clone()),
                        ..Default::default()
                    }),
                    body,
                )
                .await
                .map_err(|error| fail(format!("create {name}: {error}")))?;
        }
        if !running {
            docker
                .start_container(&name, None)
                .await
                .map_err(|error| fail(format!("start {name}: {error}")))?;
        }
        let inspect = docker
            .inspect_container(&name, None)
            .await
            .map_err(|error| fail(format!("inspect {name}: {error}")))?;
        let pid = inspect
            .state
            .and_then(|state| state.pid)
            .and_then(|pid| u32::try_from(pid).ok())
            .filter(|pid| *pid > 0)
            .ok_or_else(|| fail(format!("{name} has no process")))?;
        let id = inspect.id.unwrap_or(name);
        Ok(Some(NetworkIsolation {
            pid,
            join: format!("container:{id}"),
        }))
    }

    async fn destroy_network(&self, alloc_id: &str) -> Result<(), AllocNetworkError> {
        let fail = |reason: String| AllocNetworkError {
            alloc_id: alloc_id.to_string(),
            reason,
        };
        let docker = self.client().await.map_err(|error| fail(error.to_string()))?;
        match docker
            .remove_container(
                &pause_name(alloc_id),
                Some(bollard::query_parameters::RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(fail(error.to_string())),
        }
    }

    async fn signal(&self, handle: &TaskHandle, signal: &str) -> Result<(), SignalTaskError> {
        let entry = self
            .entry(&handle.key())
            .ok_or_else(|| SignalTaskError::UnknownTask(handle.key()))?;
        let engine = engine_signal(signal)
            .filter(|_| !signal.trim().is_empty())
            .ok_or_else(|| SignalTaskError::UnknownSignal(signal.to_string()))?;
        let docker = self.client().await.map_err(|error| SignalTaskError::Send {
            task: handle.key(),
            reason: error.to_string(),
        })?;
        docker
            .kill_container(
                &entry.container_id,
                Some(bollard::query_parameters::KillContainerOptions { signal: engine }),
            )
            .await
            .map_err(|error| SignalTaskError::Send {
                task: handle.key(),
                reason: format!("signal container {}: {error}", entry.container_id),
            })
    }

    async fn stats(&self, handle: &TaskHandle) -> Result<TaskStats, TaskStatsError> {
        let entry = self
            .entry(&handle.key())
            .ok_or_else(|| TaskStatsError::UnknownTask(handle.key()))?;
        let read_error = |reason: String| TaskStatsError::Read {
            task: handle.key(),
            reason,
        };
        let docker = self.client().await.map_err(|error| read_error(error.to_string()))?;
        let mut stream = docker.stats(
            &entry.container_id,
            Some(bollard::query_parameters::StatsOptions {
                stream: false,
                one_shot: true,
            }),
        );
        let stats = stream
            .next()
            .await
            .ok_or_else(|| read_error("no stats".to_string()))?
            .map_err(|error| read_error(error.to_string()))?;
        let memory = stats.memory_stats.unwrap_or_default();
        let rss = memory
            .stats
            .as_ref()
            .and_then(|stats| stats.get("rss").or_else(|| stats.get("anon")).copied())
            .or(memory.usage)
            .unwrap_or(0);
        let cpu = stats
            .cpu_stats
            .and_then(|cpu| cpu.cpu_usage)
            .and_then(|usage| usage.total_usage)
            .unwrap_or(0);
        let pids = stats.pids_stats.and_then(|pids| pids.current).unwrap_or(0);
        Ok(TaskStats {
            rss_bytes: rss,
            cpu_time: Duration::from_nanos(cpu),
            pids: u32::try_from(pids).unwrap_or(u32::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_sent_as_numbers() {
        assert_eq!(engine_signal(""), Some("15".to_string()));
        assert_eq!(engine_signal("SIGINT"), Some("2".to_string()));
        assert_eq!(engine_signal("usr1"), Some("10".to_string()));
        assert_eq!(engine_signal("SIGNOPE"), None);
    }
}
