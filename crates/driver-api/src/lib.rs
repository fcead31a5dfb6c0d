//! The contract between the client agent and task drivers.
//!
//! A driver turns a [`TaskConfig`] into a running task and hands back a
//! [`TaskHandle`]: a small, serialisable record that is everything the driver
//! needs to find the task again. The client persists handles, so after an
//! agent restart it calls [`Driver::recover`] with the stored handle instead
//! of starting the task a second time. Drivers are used as `Arc<dyn Driver>`,
//! so the trait is object-safe (through `async-trait`).
//!
//! **Invariant:** this crate knows nothing about the client's runners, the
//! RPC wire or any concrete driver; it depends on `types` alone.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use types::{AllocatedTaskResources, DriverInfo, LogConfig};

/// The version of the [`TaskHandle`] layout. Bumped when a driver's handle
/// state changes shape, so an old agent's state file is recognised.
pub const TASK_HANDLE_VERSION: u32 = 1;

/// Everything a driver needs to start one task.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskConfig {
    /// The allocation the task belongs to.
    pub alloc_id: String,
    /// The task's name within its group.
    pub task_name: String,
    /// The task's `config` block, already interpolated, for the driver to decode.
    pub config: serde_json::Value,
    /// The complete environment of the task (nothing is inherited from the agent).
    pub env: BTreeMap<String, String>,
    /// The allocation's shared directory (`<alloc_id>/alloc`).
    pub alloc_dir: PathBuf,
    /// The task's own directory (`<alloc_id>/<task>`); the working directory.
    pub task_dir: PathBuf,
    /// The task's log layout and rotation limits.
    pub logs: LogPaths,
    /// Where the driver sends the task's stdout: the log collector's FIFO
    /// (see the `logmon` crate), `/dev/null` when logs are disabled. Empty
    /// means straight into `logs`' first file, unrotated.
    pub stdout_path: PathBuf,
    /// Where the driver sends the task's stderr; as `stdout_path`.
    pub stderr_path: PathBuf,
    /// The user to run as; empty means the agent's own user.
    pub user: String,
    /// The group's network: its mode and port mappings.
    pub network: TaskNetwork,
    /// What the task was granted.
    pub resources: AllocatedTaskResources,
    /// Host directories to mount into the task (its `volume_mount`s of
    /// host volumes). Only drivers that can mount (exec) are given any.
    pub mounts: Vec<Mount>,
}

/// A host directory mounted into a task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    /// The directory on the host.
    pub host_path: PathBuf,
    /// Where the task sees it, absolute inside the task's root.
    pub task_path: PathBuf,
    pub read_only: bool,
}

/// Where a task's output is written, laid out as Nomad does:
/// `<dir>/<task>.stdout.0`, `<dir>/<task>.stderr.0`, then `.1`, `.2`… when
/// rotated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogPaths {
    /// The allocation's log directory (`<alloc_id>/alloc/logs`).
    pub dir: PathBuf,
    /// File name prefix for stdout (`<task>.stdout`).
    pub stdout_prefix: String,
    /// File name prefix for stderr (`<task>.stderr`).
    pub stderr_prefix: String,
    /// Rotation limits from the task's `logs` block.
    pub config: LogConfig,
}

impl LogPaths {
    /// The standard layout for `task` inside `dir`.
    pub fn for_task(dir: impl Into<PathBuf>, task: &str, config: LogConfig) -> LogPaths {
        LogPaths {
            dir: dir.into(),
            stdout_prefix: format!("{task}.stdout"),
            stderr_prefix: format!("{task}.stderr"),
            config,
        }
    }

    /// The first stdout file (`<task>.stdout.0`).
    pub fn stdout_path(&self, index: u32) -> PathBuf {
        self.dir.join(format!("{}.{index}", self.stdout_prefix))
    }

    /// The first stderr file (`<task>.stderr.0`).
    pub fn stderr_path(&self, index: u32) -> PathBuf {
        self.dir.join(format!("{}.{index}", self.stderr_prefix))
    }
}

/// The network an allocation's tasks share, as the client prepared it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskNetwork {
    /// `host` (also when empty), `bridge` or `none`.
    pub mode: String,
    /// The host address the ports are published on.
    pub host_ip: String,
    /// The allocation's named ports.
    pub ports: Vec<PortMapping>,
    /// The allocation's network namespace (`bridge` and `none` modes),
    /// for drivers that join it.
    pub netns_path: Option<PathBuf>,
    /// What the driver that made the namespace joins it by (docker:
    /// `container:<pause id>`), when a driver made it.
    pub join: Option<String>,
}

/// One named port: where it is on the host and inside the task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortMapping {
    /// The port's label (`http`).
    pub label: String,
    /// The host port.
    pub host_port: u16,
    /// The port the task listens on (the `to` of the port block, or the
    /// host port when none is given).
    pub task_port: u16,
}

impl TaskNetwork {
    /// The mapping of a port label.
    pub fn port(&self, label: &str) -> Option<&PortMapping> {
        self.ports.iter().find(|port| port.label == label)
    }

    /// The mode with its default spelled out.
    pub fn mode(&self) -> &str {
        if self.mode.is_empty() { "host" } else { &self.mode }
    }
}

impl TaskConfig {
    /// Where stdout goes: `stdout_path`, or the first log file.
    pub fn stdout_sink(&self) -> PathBuf {
        if self.stdout_path.as_os_str().is_empty() {
            self.logs.stdout_path(0)
        } else {
            self.stdout_path.clone()
        }
    }

    /// Where stderr goes: `stderr_path`, or the first log file.
    pub fn stderr_sink(&self) -> PathBuf {
        if self.stderr_path.as_os_str().is_empty() {
            self.logs.stderr_path(0)
        } else {
            self.stderr_path.clone()
        }
    }
}

/// Opens a task's output sink for writing: a FIFO (whose collector must
/// already be reading: the open fails with `ENXIO` rather than blocking
/// forever when none is) or a file, created and appended to. The returned
/// file is blocking, as a task's stdout must be.
pub fn open_output(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) - nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    Ok(file)
}

/// A driver's record of a started task. Serialisable, so the client can
/// store it and hand it back to [`Driver::recover`] after an agent restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TaskHandle {
    /// Layout version; see [`TASK_HANDLE_VERSION`].
    pub version: u32,
    /// The driver that owns the task (`raw_exec`…).
    pub driver: String,
    /// The allocation the task belongs to.
    pub alloc_id: String,
    /// The task's name.
    pub task_name: String,
    /// Driver-specific state (for raw_exec: pid and process start time).
    pub state: serde_json::Value,
}

impl TaskHandle {
    /// A stable key for maps of running tasks: `<alloc_id>/<task>`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.alloc_id, self.task_name)
    }
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExitResult {
    /// The process exit code (0 when killed by a signal).
    pub exit_code: i32,
    /// The signal that killed the task, or 0.
    pub signal: i32,
    /// Whether the kernel killed the task for running out of memory.
    pub oom_killed: bool,
    /// Set when the driver could not observe the exit properly (for example
    /// after reattaching to a process it did not spawn).
    pub err: Option<String>,
}

impl ExitResult {
    /// Whether the task exited cleanly: code 0, no signal, no error.
    pub fn successful(&self) -> bool {
        self.exit_code == 0 && self.signal == 0 && self.err.is_none()
    }
}

/// Which optional operations a driver supports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Whether [`Driver::signal`] works.
    pub send_signals: bool,
    /// Whether [`Driver::exec`] works.
    pub exec: bool,
    /// Whether the driver copies the task's output inside the agent and
    /// writes the rotated log files itself (docker, from the Engine's log
    /// API): the client then starts no log collector and leaves
    /// [`TaskConfig::stdout_path`] empty.
    pub writes_log_files: bool,
    /// Filesystem isolation: "none", "chroot" or "image".
    pub fs_isolation: String,
}

/// CPU and memory use of a running task.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskStats {
    /// Resident memory in bytes.
    pub rss_bytes: u64,
    /// CPU time used so far (user + system).
    pub cpu_time: Duration,
    /// Processes in the task.
    pub pids: u32,
}

/// The output of a one-off command run inside a task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    /// Everything the command wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the command wrote to stderr.
    pub stderr: Vec<u8>,
    /// Its exit code (128 + the signal when a signal ended it).
    pub exit_code: i32,
}

/// Why [`Driver::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartTaskError {
    /// The task's `config` block does not decode (unknown key, wrong type…).
    #[error("invalid config for task {task}: {reason}")]
    InvalidConfig { task: String, reason: String },
    /// The process (or container) could not be created.
    #[error("start task {task}: {reason}")]
    Spawn { task: String, reason: String },
    /// Log files or directories could not be prepared.
    #[error("open log file {path}: {reason}")]
    Logs { path: PathBuf, reason: String },
    /// The configured user does not exist or cannot be switched to.
    #[error("run task {task} as user {user:?}: {reason}")]
    User { task: String, user: String, reason: String },
}

/// Why [`Driver::wait`] failed.
#[derive(Debug, thiserror::Error)]
pub enum WaitTaskError {
    #[error("unknown task {0}")]
    UnknownTask(String),
    #[error("wait for task {task}: {reason}")]
    Wait { task: String, reason: String },
}

/// Why [`Driver::stop`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StopTaskError {
    #[error("unknown task {0}")]
    UnknownTask(String),
    #[error("unknown signal {0:?}")]
    UnknownSignal(String),
    #[error("stop task {task}: {reason}")]
    Kill { task: String, reason: String },
}

/// Why [`Driver::destroy`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DestroyTaskError {
    #[error("destroy task {task}: {reason}")]
    Destroy { task: String, reason: String },
}

/// Why [`Driver::recover`] failed: the task cannot be reattached and must be
/// treated as gone.
#[derive(Debug, thiserror::Error)]
pub enum RecoverTaskError {
    #[error("handle for task {task} belongs to driver {driver:?}")]
    WrongDriver { task: String, driver: String },
    #[error("handle for task {task} is unreadable: {reason}")]
    BadHandle { task: String, reason: String },
    #[error("task {task} is no longer running (pid {pid})")]
    Gone { task: String, pid: i32 },
    /// The task's container (or other non-process unit) is gone.
    #[error("task {task} cannot be found: {reason}")]
    NotFound { task: String, reason: String },
}

/// Why [`Driver::signal`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SignalTaskError {
    #[error("unknown task {0}")]
    UnknownTask(String),
    #[error("unknown signal {0:?}")]
    UnknownSignal(String),
    #[error("signal task {task}: {reason}")]
    Send { task: String, reason: String },
    #[error("driver {0} cannot send signals")]
    NotSupported(String),
}

/// Why [`Driver::stats`] failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskStatsError {
    #[error("unknown task {0}")]
    UnknownTask(String),
    #[error("read stats of task {task}: {reason}")]
    Read { task: String, reason: String },
    #[error("driver {0} does not report stats")]
    NotSupported(String),
}

/// A network namespace a driver made for an allocation (docker: its pause
/// container's), for the client to wire up and the other tasks to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkIsolation {
    /// A process inside the namespace (the pause container's).
    pub pid: u32,
    /// What the driver's tasks join (docker: `container:<id>`).
    pub join: String,
}

/// Why [`Driver::create_network`] or [`Driver::destroy_network`] failed.
#[derive(Debug, thiserror::Error)]
#[error("network of allocation {alloc_id}: {reason}")]
pub struct AllocNetworkError {
    pub alloc_id: String,
    pub reason: String,
}

/// Why [`Driver::exec`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecTaskError {
    #[error("unknown task {0}")]
    UnknownTask(String),
    #[error("exec in task {task}: {reason}")]
    Exec { task: String, reason: String },
    #[error("driver {0} cannot exec into tasks")]
    NotSupported(String),
}

/// A task driver. Implementations keep their own table of live tasks, keyed
/// by [`TaskHandle::key`]; every method but `start` and `recover` looks the
/// task up there.
#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// The driver's name as job files spell it (`raw_exec`).
    fn name(&self) -> &str;

    /// Detects whether the driver works on this machine. The attributes end
    /// up in the node's attributes (`driver.raw_exec = "1"`).
    async fn fingerprint(&self) -> DriverInfo;

    /// What the driver supports beyond the basics.
    fn capabilities(&self) -> Capabilities;

    /// Starts a task and returns its handle once it is running.
    async fn start(&self, config: TaskConfig) -> Result<TaskHandle, StartTaskError>;

    /// Waits until the task exits. May be called again after it returned:
    /// the result is kept until [`Driver::destroy`].
    async fn wait(&self, handle: &TaskHandle) -> Result<ExitResult, WaitTaskError>;

    /// Sends `signal` (SIGTERM when empty) and, if the task has not exited
    /// after `timeout`, kills it (and everything it started) with SIGKILL.
    /// Returns once the task is gone.
    async fn stop(&self, handle: &TaskHandle, timeout: Duration, signal: &str) -> Result<(), StopTaskError>;

    /// Forgets the task and frees what the driver holds for it. With `force`
    /// a still running task is killed first.
    async fn destroy(&self, handle: &TaskHandle, force: bool) -> Result<(), DestroyTaskError>;

    /// Reattaches to a task started by an earlier agent process.
    async fn recover(&self, handle: &TaskHandle) -> Result<(), RecoverTaskError>;

    /// Sends a signal (`SIGHUP`, `SIGUSR1`…) to the task.
    async fn signal(&self, handle: &TaskHandle, signal: &str) -> Result<(), SignalTaskError>;

    /// Resource use of the task. Drivers without stats keep the default.
    async fn stats(&self, handle: &TaskHandle) -> Result<TaskStats, TaskStatsError> {
        let _ = handle;
        Err(TaskStatsError::NotSupported(self.name().to_string()))
    }

    /// Makes (or finds again) the allocation's network namespace, for a
    /// driver whose tasks cannot join one the client makes (docker tasks
    /// can only share another container's). `None`: the client makes it.
    async fn create_network(&self, alloc_id: &str) -> Result<Option<NetworkIsolation>, AllocNetworkError> {
        let _ = alloc_id;
        Ok(None)
    }

    /// Removes what [`Driver::create_network`] made.
    async fn destroy_network(&self, alloc_id: &str) -> Result<(), AllocNetworkError> {
        let _ = alloc_id;
        Ok(())
    }

    /// Runs a command inside the task's environment and waits for it.
    /// Drivers that cannot keep the default.
    async fn exec(
        &self,
        handle: &TaskHandle,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, ExecTaskError> {
        let _ = (handle, command, timeout);
        Err(ExecTaskError::NotSupported(self.name().to_string()))
    }
}

/// Parses a signal name as job files write it (`SIGTERM`, `TERM`, `sigint`,
/// or a number) into its number on this platform.
pub fn parse_signal(name: &str) -> Option<i32> {
    let trimmed = name.trim();
    if let Ok(number) = trimmed.parse::<i32>() {
        return (1..=64).contains(&number).then_some(number);
    }
    let upper = trimmed.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    // Linux numbering; the drivers that use it run on Linux.
    let number = match bare {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" | "IOT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "STKFLT" => 16,
        "CHLD" => 17,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "TTIN" => 21,
        "TTOU" => 22,
        "URG" => 23,
        "XCPU" => 24,
        "XFSZ" => 25,
        "VTALRM" => 26,
        "PROF" => 27,
        "WINCH" => 28,
        "IO" | "POLL" => 29,
        "PWR" => 30,
        "SYS" => 31,
        _ => return None,
    };
    Some(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_in_every_spelling() {
        assert_eq!(parse_signal("SIGTERM"), Some(15));
        assert_eq!(parse_signal("term"), Some(15));
        assert_eq!(parse_signal("SIGINT"), Some(2));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("SIGUSR1"), Some(10));
        assert_eq!(parse_signal("SIGNOPE"), None);
        assert_eq!(parse_signal("0"), None);
    }

    #[test]
    fn log_paths_follow_the_nomad_layout() {
        let logs = LogPaths::for_task("/a/alloc/logs", "web", LogConfig::default());
        assert_eq!(logs.stdout_path(0), PathBuf::from("/a/alloc/logs/web.stdout.0"));
        assert_eq!(logs.stderr_path(2), PathBuf::from("/a/alloc/logs/web.stderr.2"));
    }

    #[test]
    fn handles_round_trip_through_json() {
        let handle = TaskHandle {
            version: TASK_HANDLE_VERSION,
            driver: "raw_exec".into(),
            alloc_id: "a1".into(),
            task_name: "web".into(),
            state: serde_json::json!({"pid": 42}),
        };
        let text = serde_json::to_string(&handle).expect("encode");
        let back: TaskHandle = serde_json::from_str(&text).expect("decode");
        assert_eq!(back, handle);
        assert_eq!(back.key(), "a1/web");
    }

    #[test]
    fn driver_is_object_safe() {
        fn takes(_: Option<std::sync::Arc<dyn Driver>>) {}
        takes(None);
    }
}
