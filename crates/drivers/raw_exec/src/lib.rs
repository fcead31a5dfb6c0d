//! The `raw_exec` driver: runs a task's command as a plain process of the
//! agent's host, with no isolation.
//!
//! Each task runs in its own control group (v1 or v2, see the `cgroups`
//! crate), joined before the command execs, so everything it starts, a
//! double-forked daemon included, is killed with it; its CPU and memory
//! use are read from that group, and its memory limit makes the kernel's
//! OOM killer end it, reported as such. The task also leads its own process
//! group, which is where the stop signal goes. stdout and stderr are opened as files in
//! the allocation's log directory and handed straight to the process, so a
//! task keeps writing its logs while the agent is down. The handle records
//! the pid and the kernel's start time of the process; after an agent
//! restart [`RawExecDriver`] reattaches to the same process (the start time
//! guards against a recycled pid) and waits for it through a pidfd.
//!
//! Limits, on purpose for now: no log rotation (the files are owned by the
//! task, not piped through the agent), and a reattached process's exit code
//! cannot be known (it is no longer the agent's child). A host without
//! cgroups runs tasks without them (tracked by process group only).

#![allow(unsafe_code)]

mod proc_fs;

use async_trait::async_trait;
use cgroups::{Cgroup, Hierarchy, Limits};
use driver_api::{
    Capabilities, DestroyTaskError, Driver, ExecOutput, ExecTaskError, ExitResult, RecoverTaskError, SignalTaskError,
    StartTaskError, StopTaskError, TASK_HANDLE_VERSION, TaskConfig, TaskHandle, TaskStats, TaskStatsError,
    WaitTaskError, parse_signal,
};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use types::{AllocatedTaskResources, DriverInfo};

/// The driver's name, as job files spell it.
pub const DRIVER_NAME: &str = "raw_exec";

/// How often a reattached task is checked when the kernel offers no pidfd.
const RECOVERED_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// The parent of every task's control group.
const CGROUP_PARENT: &str = "drover";
/// How long the members of a killed group may take to disappear.
const CGROUP_DRAIN: Duration = Duration::from_secs(5);
/// How many more times `exec` reads a task's environment that came back
/// empty (5 ms apart) before using it as it is.
const ENVIRON_REREADS: usize = 40;

/// The task `config` block raw_exec understands. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExecTaskConfig {
    command: String,
    #[serde(default)]
    args: Vec<String>,
    /// Working directory; the task directory when absent.
    #[serde(default)]
    work_dir: Option<String>,
    #[serde(default)]
    oom_score_adj: Option<i32>,
    /// Environment variable names to leave out of the task's environment.
    #[serde(default)]
    denied_envvars: Vec<String>,
    /// A unified group (absolute, or relative to the cgroup mount) to run
    /// in instead of the task's own one.
    #[serde(default)]
    cgroup_v2_override: Option<String>,
    /// v1 controller → group path, instead of the task's own groups.
    #[serde(default)]
    cgroup_v1_override: Option<BTreeMap<String, String>>,
}

/// What a raw_exec handle stores: enough to find the process again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RawExecState {
    pid: i32,
    /// Field 22 of `/proc/<pid>/stat`: clock ticks after boot at which the
    /// process started. A recycled pid has a different value.
    start_time_ticks: u64,
    /// The task's control group, when the host has cgroups.
    #[serde(default)]
    cgroup: Option<Cgroup>,
}

/// One live (or finished but not destroyed) task.
struct TaskEntry {
    pid: i32,
    cgroup: Option<Cgroup>,
    exit: watch::Receiver<Option<ExitResult>>,
}

/// The table of a process driver's tasks and everything done to them
/// once started: waiting, stopping (the process group, then the whole
/// cgroup), destroying, reattaching, signals, stats and exec. Shared by
/// raw_exec and exec, which differ only in how they build the command.
pub struct ProcessTasks {
    /// The driver's name, checked against handles.
    name: &'static str,
    tasks: Mutex<HashMap<String, Arc<TaskEntry>>>,
    /// The host's cgroup trees; `None` where none are mounted.
    cgroups: Option<Hierarchy>,
}

impl std::fmt::Debug for ProcessTasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessTasks")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The raw_exec driver. Cheap to share: wrap it in an `Arc`.
#[derive(Debug)]
pub struct RawExecDriver {
    tasks: ProcessTasks,
}

impl Default for RawExecDriver {
    fn default() -> Self {
        RawExecDriver {
            tasks: ProcessTasks::new(DRIVER_NAME),
        }
    }
}

impl RawExecDriver {
    /// A driver with no tasks.
    pub fn new() -> RawExecDriver {
        RawExecDriver::default()
    }
}

impl ProcessTasks {
    /// An empty table for the driver `name`, with the host's cgroups.
    pub fn new(name: &'static str) -> ProcessTasks {
        let cgroups = match Hierarchy::detect() {
            Ok(hierarchy) => Some(hierarchy),
            Err(error) => {
                tracing::warn!(%error, driver = name, "no cgroups: tasks are tracked by process group only");
                None
            }
        };
        ProcessTasks {
            name,
            tasks: Mutex::new(HashMap::new()),
            cgroups,
        }
    }

    /// The host's cgroup trees, if any.
    pub fn cgroups(&self) -> Option<&Hierarchy> {
        self.cgroups.as_ref()
    }

    /// A new `<alloc_id>.<task>` group with the task's limits; a group left
    /// over from an earlier run of the task is emptied first.
    pub fn create_cgroup(&self, config: &TaskConfig) -> Result<Option<Cgroup>, StartTaskError> {
        let Some(hierarchy) = &self.cgroups else {
            return Ok(None);
        };
        let task_key = format!("{}/{}", config.alloc_id, config.task_name);
        let spawn_error = |reason: String| StartTaskError::Spawn {
            task: task_key.clone(),
            reason,
        };
        let name = format!("{}.{}", config.alloc_id, config.task_name);
        let cgroup = hierarchy
            .create(CGROUP_PARENT, &name, &task_limits(&config.resources))
            .map_err(|error| spawn_error(error.to_string()))?;
        if !cgroup.is_empty() {
            cgroup.kill_all().map_err(|error| spawn_error(error.to_string()))?;
        }
        Ok(Some(cgroup))
    }

    fn entry(&self, key: &str) -> Option<Arc<TaskEntry>> {
        self.lock_tasks().get(key).cloned()
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<TaskEntry>>> {
        // A poisoned map is still a consistent map: entries are inserted and
        // removed whole.
        self.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn insert(&self, key: String, entry: TaskEntry) {
        self.lock_tasks().insert(key, Arc::new(entry));
    }
}

impl RawExecDriver {
    /// The group the task runs in: the one named by an override, or a new
    /// `<alloc_id>.<task>` group with the task's limits.
    fn task_cgroup(
        &self,
        config: &TaskConfig,
        task_config: &RawExecTaskConfig,
        task_key: &str,
    ) -> Result<Option<Cgroup>, StartTaskError> {
        let invalid = |reason: String| StartTaskError::InvalidConfig {
            task: task_key.to_string(),
            reason,
        };
        let Some(hierarchy) = self.tasks.cgroups() else {
            if task_config.cgroup_v1_override.is_some() || task_config.cgroup_v2_override.is_some() {
                return Err(invalid(
                    "cgroup overrides need cgroups, and this host has none".to_string(),
                ));
            }
            return Ok(None);
        };
        let overrides = match (
            hierarchy.version(),
            &task_config.cgroup_v1_override,
            &task_config.cgroup_v2_override,
        ) {
            (cgroups::Version::V1, Some(paths), _) => Some(paths.clone()),
            (cgroups::Version::V2, _, Some(path)) => Some(BTreeMap::from([("unified".to_string(), path.clone())])),
            _ => None,
        };
        if let Some(paths) = overrides {
            return hierarchy
                .existing(&paths)
                .map(Some)
                .map_err(|error| invalid(error.to_string()));
        }
        self.tasks.create_cgroup(config)
    }
}

fn decode_state(name: &str, handle: &TaskHandle) -> Result<RawExecState, RecoverTaskError> {
    if handle.driver != name {
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

/// The limits Nomad applies to a task: CPU shares from its MHz, cores as a
/// cpuset, and memory: `memory_max` is the hard limit when set (with
/// `memory` as the soft one), otherwise `memory` is.
pub fn task_limits(resources: &AllocatedTaskResources) -> Limits {
    let mib = |value: i64| u64::try_from(value).unwrap_or(0).saturating_mul(1 << 20);
    let (hard, soft) = if resources.memory_max_mb > resources.memory_mb {
        (mib(resources.memory_max_mb), mib(resources.memory_mb))
    } else {
        (mib(resources.memory_mb), 0)
    };
    let cores: Vec<String> = resources.reserved_cores.iter().map(u16::to_string).collect();
    Limits {
        cpu_shares: u64::try_from(resources.cpu_mhz).unwrap_or(0),
        cpuset_cpus: cores.join(","),
        memory_bytes: hard,
        memory_soft_bytes: soft,
        pids_max: 0,
    }
}

/// Makes `command`'s child enter the network namespace at `path` before
/// it execs. The returned file must stay open until the child is spawned.
pub fn join_netns_on_spawn(command: &mut std::process::Command, path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let file = std::fs::File::open(path)?;
    let fd = file.as_raw_fd();
    // SAFETY: the hook runs between fork and exec and only calls setns(2)
    // on a descriptor the returned file keeps open until after the spawn.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(file)
}

/// Kills what is left in a task's group and waits (bounded) for it to
/// empty.
async fn drain_cgroup(cgroup: &Cgroup) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + CGROUP_DRAIN;
    loop {
        if cgroup.is_empty() {
            return Ok(());
        }
        cgroup.kill_all().map_err(|error| error.to_string())?;
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("processes {:?} survived SIGKILL", cgroup.pids()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn open_log(path: &Path) -> Result<std::fs::File, StartTaskError> {
    driver_api::open_output(path).map_err(|error| StartTaskError::Logs {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })
}

/// Resolves the command the way Nomad does for raw_exec: a relative path
/// with a slash is relative to the task directory; a bare name is looked up
/// on the task's PATH by the exec call.
fn resolve_command(command: &str, task_dir: &Path) -> PathBuf {
    let path = Path::new(command);
    if path.is_relative() && command.contains('/') {
        task_dir.join(path)
    } else {
        path.to_path_buf()
    }
}

fn exit_from_status(status: std::process::ExitStatus) -> ExitResult {
    ExitResult {
        exit_code: status.code().unwrap_or(0),
        signal: status.signal().unwrap_or(0),
        oom_killed: false,
        err: None,
    }
}

fn signal_from_name(name: &str) -> Option<Signal> {
    let number = if name.trim().is_empty() {
        libc::SIGTERM
    } else {
        parse_signal(name)?
    };
    Signal::try_from(number).ok()
}

/// Signals the whole process group led by `pid`. A group that is already
/// gone is not an error.
fn signal_group(pid: i32, signal: Signal) -> Result<(), nix::Error> {
    match killpg(Pid::from_raw(pid), signal) {
        Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
        // EPERM for a group whose members all became zombies is also "gone".
        Err(nix::Error::EPERM) if !proc_fs::is_alive(pid) => Ok(()),
        Err(error) => Err(error),
    }
}

/// Waits for a process that is not our child to exit: through a pidfd
/// (readable once the process has exited), or by polling `/proc`.
async fn wait_foreign(state: &RawExecState) -> ExitResult {
    let unknown = || ExitResult {
        exit_code: 0,
        signal: 0,
        oom_killed: false,
        err: Some(format!("exit status of reattached process {} is unknown", state.pid)),
    };
    if let Some(pidfd) = pidfd::open(state.pid) {
        // SAFETY: `pidfd` is an OwnedFd that was just opened; the AsyncFd
        // takes ownership of it, so it stays open and refers to the same
        // descriptor until the AsyncFd is dropped.
        let registered =
            unsafe { tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) };
        match registered {
            Ok(async_fd) => {
                if async_fd.readable().await.is_ok() {
                    return unknown();
                }
            }
            Err(error) => tracing::debug!(pid = state.pid, %error, "pidfd not pollable, polling /proc"),
        }
    }
    while proc_fs::start_time(state.pid) == Some(state.start_time_ticks) && proc_fs::is_alive(state.pid) {
        tokio::time::sleep(RECOVERED_POLL_INTERVAL).await;
    }
    unknown()
}

mod pidfd {
    //! `pidfd_open(2)`: a file descriptor that becomes readable when a
    //! process exits, for any process, not only our children.

    use std::os::fd::{FromRawFd, OwnedFd};

    /// Opens a pidfd for `pid`, or `None` when the kernel has none (before
    /// Linux 5.3) or the process is gone.
    pub fn open(pid: i32) -> Option<OwnedFd> {
        // SAFETY: pidfd_open takes two integers and returns a new file
        // descriptor or -1; no memory is shared with the kernel.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return None;
        }
        let fd = i32::try_from(fd).ok()?;
        // SAFETY: the kernel just returned `fd` as a new open descriptor
        // owned by nobody else; OwnedFd takes sole ownership and closes it.
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

#[async_trait]
impl Driver for RawExecDriver {
    fn name(&self) -> &str {
        DRIVER_NAME
    }

    async fn fingerprint(&self) -> DriverInfo {
        let mut attributes = BTreeMap::new();
        attributes.insert(format!("driver.{DRIVER_NAME}"), "1".to_string());
        DriverInfo {
            detected: true,
            healthy: true,
            health_description: "Healthy".to_string(),
            attributes,
            update_time: 0,
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            send_signals: true,
            exec: true,
            writes_log_files: false,
            fs_isolation: "none".to_string(),
        }
    }

    async fn start(&self, config: TaskConfig) -> Result<TaskHandle, StartTaskError> {
        let task_key = format!("{}/{}", config.alloc_id, config.task_name);
        let task_config: RawExecTaskConfig =
            serde_json::from_value(config.config.clone()).map_err(|error| StartTaskError::InvalidConfig {
                task: task_key.clone(),
                reason: error.to_string(),
            })?;
        if task_config.command.trim().is_empty() {
            return Err(StartTaskError::InvalidConfig {
                task: task_key,
                reason: "command is empty".to_string(),
            });
        }
        std::fs::create_dir_all(&config.logs.dir).map_err(|error| StartTaskError::Logs {
            path: config.logs.dir.clone(),
            reason: error.to_string(),
        })?;
        let stdout = open_log(&config.stdout_sink())?;
        let stderr = open_log(&config.stderr_sink())?;

        let work_dir = match &task_config.work_dir {
            Some(dir) if Path::new(dir).is_absolute() => PathBuf::from(dir),
            Some(dir) => config.task_dir.join(dir),
            None => config.task_dir.clone(),
        };
        let mut command = tokio::process::Command::new(resolve_command(&task_config.command, &config.task_dir));
        command
            .args(&task_config.args)
            .env_clear()
            .envs(
                config
                    .env
                    .iter()
                    .filter(|(name, _)| !task_config.denied_envvars.contains(name)),
            )
            .current_dir(&work_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            // A new process group led by the task, so stop reaches its children.
            .process_group(0)
            .kill_on_drop(false);
        if !config.user.is_empty() {
            let user = nix::unistd::User::from_name(&config.user)
                .map_err(|error| StartTaskError::User {
                    task: task_key.clone(),
                    user: config.user.clone(),
                    reason: error.to_string(),
                })?
                .ok_or_else(|| StartTaskError::User {
                    task: task_key.clone(),
                    user: config.user.clone(),
                    reason: "no such user".to_string(),
                })?;
            if user.uid != nix::unistd::geteuid() {
                command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
            }
        }
        let cgroup = self.task_cgroup(&config, &task_config, &task_key)?;
        self.tasks
            .launch(&config, command, cgroup, task_config.oom_score_adj, true)
    }

    async fn wait(&self, handle: &TaskHandle) -> Result<ExitResult, WaitTaskError> {
        self.tasks.wait(handle).await
    }

    async fn stop(&self, handle: &TaskHandle, timeout: Duration, signal: &str) -> Result<(), StopTaskError> {
        self.tasks.stop(handle, timeout, signal).await
    }

    async fn destroy(&self, handle: &TaskHandle, force: bool) -> Result<(), DestroyTaskError> {
        self.tasks.destroy(handle, force).await
    }

    async fn recover(&self, handle: &TaskHandle) -> Result<(), RecoverTaskError> {
        self.tasks.recover(handle).await
    }

    async fn signal(&self, handle: &TaskHandle, signal: &str) -> Result<(), SignalTaskError> {
        self.tasks.signal(handle, signal).await
    }

    async fn stats(&self, handle: &TaskHandle) -> Result<TaskStats, TaskStatsError> {
        self.tasks.stats(handle).await
    }

    async fn exec(
        &self,
        handle: &TaskHandle,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, ExecTaskError> {
        self.tasks.exec(handle, command, timeout).await
    }
}

impl ProcessTasks {
    /// Spawns a prepared command as the task and starts tracking it. With
    /// `join`, the child joins `cgroup` before it execs; without, the
    /// command's own `pre_exec` hook must have done so.
    pub fn launch(
        &self,
        config: &TaskConfig,
        mut command: tokio::process::Command,
        cgroup: Option<Cgroup>,
        oom_score_adj: Option<i32>,
        join: bool,
    ) -> Result<TaskHandle, StartTaskError> {
        let task_key = format!("{}/{}", config.alloc_id, config.task_name);
        let program = command.as_std().get_program().to_string_lossy().into_owned();
        let joined = match cgroup.as_ref().filter(|_| join) {
            Some(cgroup) => {
                Some(
                    cgroup
                        .join_on_spawn(command.as_std_mut())
                        .map_err(|error| StartTaskError::Spawn {
                            task: task_key.clone(),
                            reason: error.to_string(),
                        })?,
                )
            }
            None => None,
        };
        let netns = match config.network.netns_path.as_ref().filter(|_| join) {
            Some(path) => {
                Some(
                    join_netns_on_spawn(command.as_std_mut(), path).map_err(|error| StartTaskError::Spawn {
                        task: task_key.clone(),
                        reason: format!("open network namespace {}: {error}", path.display()),
                    })?,
                )
            }
            None => None,
        };
        let spawned = command.spawn();
        drop(joined);
        drop(netns);
        let mut child = spawned.map_err(|error| StartTaskError::Spawn {
            task: task_key.clone(),
            reason: format!("{program}: {error}"),
        })?;
        let pid = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .ok_or_else(|| StartTaskError::Spawn {
                task: task_key.clone(),
                reason: "process exited before its pid was known".to_string(),
            })?;
        let start_time_ticks = proc_fs::start_time(pid).unwrap_or(0);
        if let Some(adjust) = oom_score_adj
            && let Err(error) = std::fs::write(format!("/proc/{pid}/oom_score_adj"), adjust.to_string())
        {
            tracing::warn!(task = %task_key, %error, "could not set oom_score_adj");
        }

        let (exit_tx, exit_rx) = watch::channel(None);
        let waited_cgroup = cgroup.clone();
        tokio::spawn(async move {
            let mut result = match child.wait().await {
                Ok(status) => exit_from_status(status),
                Err(error) => ExitResult {
                    exit_code: 0,
                    signal: 0,
                    oom_killed: false,
                    err: Some(format!("wait for process {pid}: {error}")),
                },
            };
            result.oom_killed = waited_cgroup.is_some_and(|cgroup| cgroup.oom_kills() > 0);
            let _ = exit_tx.send(Some(result));
        });
        let state = RawExecState {
            pid,
            start_time_ticks,
            cgroup: cgroup.clone(),
        };
        self.insert(
            task_key,
            TaskEntry {
                pid,
                cgroup,
                exit: exit_rx,
            },
        );
        tracing::debug!(alloc_id = %config.alloc_id, task = %config.task_name, pid, "raw_exec task started");
        Ok(TaskHandle {
            version: TASK_HANDLE_VERSION,
            driver: self.name.to_string(),
            alloc_id: config.alloc_id.clone(),
            task_name: config.task_name.clone(),
            state: serde_json::to_value(state).unwrap_or(serde_json::Value::Null),
        })
    }

    pub async fn wait(&self, handle: &TaskHandle) -> Result<ExitResult, WaitTaskError> {
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

    pub async fn stop(&self, handle: &TaskHandle, timeout: Duration, signal: &str) -> Result<(), StopTaskError> {
        let entry = self
            .entry(&handle.key())
            .ok_or_else(|| StopTaskError::UnknownTask(handle.key()))?;
        let signal = signal_from_name(signal).ok_or_else(|| StopTaskError::UnknownSignal(signal.to_string()))?;
        let mut exit = entry.exit.clone();
        if exit.borrow().is_none() {
            signal_group(entry.pid, signal).map_err(|error| StopTaskError::Kill {
                task: handle.key(),
                reason: format!("send {signal} to process group {}: {error}", entry.pid),
            })?;
            let exited = tokio::time::timeout(timeout, exit.wait_for(Option::is_some)).await;
            if exited.is_err() {
                tracing::debug!(task = %handle.key(), pid = entry.pid, "kill timeout passed, sending SIGKILL");
            }
        }
        // Whether the leader went on its own or not, nothing it started may
        // outlive the stop: not its process group, not a daemon that left
        // the group but not the cgroup.
        signal_group(entry.pid, Signal::SIGKILL).map_err(|error| StopTaskError::Kill {
            task: handle.key(),
            reason: format!("send SIGKILL to process group {}: {error}", entry.pid),
        })?;
        if let Some(cgroup) = &entry.cgroup {
            drain_cgroup(cgroup).await.map_err(|reason| StopTaskError::Kill {
                task: handle.key(),
                reason,
            })?;
        }
        exit.wait_for(Option::is_some).await.map_err(|_| StopTaskError::Kill {
            task: handle.key(),
            reason: "the waiter went away".to_string(),
        })?;
        Ok(())
    }

    pub async fn destroy(&self, handle: &TaskHandle, force: bool) -> Result<(), DestroyTaskError> {
        let Some(entry) = self.entry(&handle.key()) else {
            return Ok(());
        };
        let running = entry.exit.borrow().is_none();
        if running && !force {
            return Err(DestroyTaskError::Destroy {
                task: handle.key(),
                reason: format!("process {} is still running", entry.pid),
            });
        }
        signal_group(entry.pid, Signal::SIGKILL).map_err(|error| DestroyTaskError::Destroy {
            task: handle.key(),
            reason: format!("kill process group {}: {error}", entry.pid),
        })?;
        if let Some(cgroup) = &entry.cgroup {
            let destroy_error = |reason: String| DestroyTaskError::Destroy {
                task: handle.key(),
                reason,
            };
            drain_cgroup(cgroup).await.map_err(destroy_error)?;
            cgroup.destroy().map_err(|error| destroy_error(error.to_string()))?;
        }
        if running {
            let mut exit = entry.exit.clone();
            let _ = exit.wait_for(Option::is_some).await;
        }
        self.lock_tasks().remove(&handle.key());
        Ok(())
    }

    pub async fn recover(&self, handle: &TaskHandle) -> Result<(), RecoverTaskError> {
        let state = decode_state(self.name, handle)?;
        if self.entry(&handle.key()).is_some() {
            return Ok(());
        }
        let alive = proc_fs::is_alive(state.pid) && proc_fs::start_time(state.pid) == Some(state.start_time_ticks);
        if !alive {
            return Err(RecoverTaskError::Gone {
                task: handle.key(),
                pid: state.pid,
            });
        }
        let (exit_tx, exit_rx) = watch::channel(None);
        let pid = state.pid;
        let cgroup = state.cgroup.clone();
        tokio::spawn(async move {
            let mut result = wait_foreign(&state).await;
            result.oom_killed = state.cgroup.is_some_and(|cgroup| cgroup.oom_kills() > 0);
            let _ = exit_tx.send(Some(result));
        });
        self.insert(
            handle.key(),
            TaskEntry {
                pid,
                cgroup,
                exit: exit_rx,
            },
        );
        tracing::debug!(task = %handle.key(), pid, "raw_exec task reattached");
        Ok(())
    }

    pub async fn signal(&self, handle: &TaskHandle, signal: &str) -> Result<(), SignalTaskError> {
        let entry = self
            .entry(&handle.key())
            .ok_or_else(|| SignalTaskError::UnknownTask(handle.key()))?;
        let parsed = parse_signal(signal)
            .and_then(|number| Signal::try_from(number).ok())
            .ok_or_else(|| SignalTaskError::UnknownSignal(signal.to_string()))?;
        kill(Pid::from_raw(entry.pid), parsed).map_err(|error| SignalTaskError::Send {
            task: handle.key(),
            reason: format!("send {parsed} to process {}: {error}", entry.pid),
        })
    }

    pub async fn stats(&self, handle: &TaskHandle) -> Result<TaskStats, TaskStatsError> {
        let entry = self
            .entry(&handle.key())
            .ok_or_else(|| TaskStatsError::UnknownTask(handle.key()))?;
        if let Some(cgroup) = &entry.cgroup {
            let stats = cgroup.stats();
            // The kernel batches a group's memory counters per CPU: a small
            // task can read 0 there. Its members' own RSS is exact.
            let rss_bytes = if stats.rss_bytes > 0 {
                stats.rss_bytes
            } else {
                proc_fs::pids_rss(&cgroup.pids())
            };
            return Ok(TaskStats {
                rss_bytes,
                cpu_time: stats.cpu_time,
                pids: stats.pids,
            });
        }
        proc_fs::group_stats(entry.pid).map_err(|error| TaskStatsError::Read {
            task: handle.key(),
            reason: error.to_string(),
        })
    }

    pub async fn exec(
        &self,
        handle: &TaskHandle,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, ExecTaskError> {
        let entry = self
            .entry(&handle.key())
            .ok_or_else(|| ExecTaskError::UnknownTask(handle.key()))?;
        let exec_error = |reason: String| ExecTaskError::Exec {
            task: handle.key(),
            reason,
        };
        let (program, args) = command
            .split_first()
            .ok_or_else(|| exec_error("empty command".to_string()))?;
        // The task's own environment and working directory, read back from
        // the kernel, so exec works the same after a reattach.
        let mut env = proc_fs::environ(entry.pid).map_err(|error| exec_error(format!("read environment: {error}")))?;
        // A task always has an environment (the driver sets Nomad's
        // variables); an empty read means the kernel caught the task in the
        // middle of an execve (a shell `exec`ing its program), so read again.
        for _ in 0..ENVIRON_REREADS {
            if !env.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            env = proc_fs::environ(entry.pid).map_err(|error| exec_error(format!("read environment: {error}")))?;
        }
        let cwd = std::fs::read_link(format!("/proc/{}/cwd", entry.pid))
            .map_err(|error| exec_error(format!("read working directory: {error}")))?;
        let child = tokio::process::Command::new(resolve_command(program, &cwd))
            .args(args)
            .env_clear()
            .envs(env)
            .current_dir(&cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| exec_error(format!("{program}: {error}")))?;
        let output = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .map_err(|_| exec_error(format!("{program}: timed out after {timeout:?}")))?
            .map_err(|error| exec_error(format!("{program}: {error}")))?;
        let exit = exit_from_status(output.status);
        Ok(ExecOutput {
            stdout: output.stdout,
            stderr: output.stderr,
            exit_code: if exit.signal != 0 {
                128 + exit.signal
            } else {
                exit.exit_code
            },
        })
    }
}
