//! The `exec` driver: runs a task's command isolated with the kernel's own
//! primitives (see [`isolate`] for the steps):
//! - PID, mount, IPC and UTS namespaces (the task is process 1 of its PID
//!   namespace and sees only its own processes);
//! - a chroot of the task directory, with the client's `chroot_env` host
//!   directories bind-mounted read-only, `/alloc` read-write, `/local` and
//!   `/secrets` as the task's own, a fresh `/proc` and a minimal `/dev`;
//! - the task's cgroup (v1 or v2) with cpu shares, cores, memory and
//!   `memory_max`, so the kernel OOM-kills it at its limit (reported);
//! - no_new_privs, a bounding set cut down to Nomad's default capabilities
//!   (less `cap_drop`), and the task's `user` (`nobody` by default).
//!
//! Once started, a task is tracked like a raw_exec task
//! ([`raw_exec::ProcessTasks`]): the handle holds the pid of the process
//! that forwards signals to it and exits as it exits.

#![allow(unsafe_code)]

pub mod isolate;

use async_trait::async_trait;
use driver_api::{
    Capabilities, DestroyTaskError, Driver, ExitResult, RecoverTaskError, SignalTaskError, StartTaskError,
    StopTaskError, TaskConfig, TaskHandle, TaskStats, TaskStatsError, WaitTaskError,
};
use isolate::{Bind, Plan};
use raw_exec::ProcessTasks;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use types::DriverInfo;

/// The driver's name, as job files spell it.
pub const DRIVER_NAME: &str = "exec";

/// Nomad's default `chroot_env`: host path → path in the chroot.
pub const DEFAULT_CHROOT_ENV: &[(&str, &str)] = &[
    ("/bin", "/bin"),
    ("/etc", "/etc"),
    ("/lib", "/lib"),
    ("/lib32", "/lib32"),
    ("/lib64", "/lib64"),
    ("/run/resolvconf", "/run/resolvconf"),
    ("/sbin", "/sbin"),
    ("/usr", "/usr"),
];

/// Capabilities an exec task keeps (Nomad's default `allow_caps`), by
/// name and number.
const DEFAULT_CAPS: &[(&str, u32)] = &[
    ("chown", 0),
    ("dac_override", 1),
    ("fowner", 3),
    ("fsetid", 4),
    ("kill", 5),
    ("setgid", 6),
    ("setuid", 7),
    ("setpcap", 8),
    ("net_bind_service", 10),
    ("sys_chroot", 18),
    ("mknod", 27),
    ("audit_write", 29),
    ("setfcap", 31),
];

/// Device nodes bound into the task's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// The task `config` block exec understands. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecTaskConfig {
    command: String,
    #[serde(default)]
    args: Vec<String>,
    /// Working directory inside the chroot (`/` by default).
    #[serde(default)]
    work_dir: Option<String>,
    /// `private` (default) or `host`.
    #[serde(default)]
    pid_mode: Option<String>,
    /// `private` (default) or `host`.
    #[serde(default)]
    ipc_mode: Option<String>,
    /// Capabilities to keep beyond the default set (must be in it).
    #[serde(default)]
    cap_add: Vec<String>,
    /// Capabilities to drop from the default set (`all` drops every one).
    #[serde(default)]
    cap_drop: Vec<String>,
    #[serde(default)]
    oom_score_adj: Option<i32>,
    #[serde(default)]
    denied_envvars: Vec<String>,
}

/// The exec driver. Cheap to share: wrap it in an `Arc`.
#[derive(Debug)]
pub struct ExecDriver {
    tasks: ProcessTasks,
    chroot_env: BTreeMap<PathBuf, PathBuf>,
}

impl Default for ExecDriver {
    fn default() -> Self {
        ExecDriver::new(
            DEFAULT_CHROOT_ENV
                .iter()
                .map(|(host, inside)| (PathBuf::from(host), PathBuf::from(inside)))
                .collect(),
        )
    }
}

fn cap_number(name: &str) -> Option<u32> {
    let lower = name.trim().to_ascii_lowercase();
    let bare = lower.strip_prefix("cap_").unwrap_or(&lower);
    DEFAULT_CAPS
        .iter()
        .find(|(known, _)| *known == bare)
        .map(|(_, number)| *number)
}

/// The capabilities kept after `cap_add` and `cap_drop`.
fn kept_caps(config: &ExecTaskConfig) -> Result<Vec<u32>, String> {
    let mut kept: Vec<u32> = DEFAULT_CAPS.iter().map(|(_, number)| *number).collect();
    for name in &config.cap_add {
        if cap_number(name).is_none() {
            return Err(format!(
                "capability {name:?} is not allowed for exec tasks (allowed: the default set)"
            ));
        }
    }
    for name in &config.cap_drop {
        if name.eq_ignore_ascii_case("all") {
            kept.clear();
            continue;
        }
        let number = cap_number(name).ok_or_else(|| format!("unknown capability {name:?} in cap_drop"))?;
        kept.retain(|kept| *kept != number);
    }
    for name in &config.cap_add {
        if let Some(number) = cap_number(name)
            && !kept.contains(&number)
        {
            kept.push(number);
        }
    }
    Ok(kept)
}

fn c_path(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| format!("path {} holds a NUL byte", path.display()))
}

fn namespace_mode(value: &Option<String>, key: &str) -> Result<bool, String> {
    match value.as_deref() {
        None | Some("private") => Ok(true),
        Some("host") => Ok(false),
        Some(other) => Err(format!("{key} must be \"private\" or \"host\", not {other:?}")),
    }
}

impl ExecDriver {
    /// A driver whose chroots hold `chroot_env` (host path → chroot path).
    pub fn new(chroot_env: BTreeMap<PathBuf, PathBuf>) -> ExecDriver {
        ExecDriver {
            tasks: ProcessTasks::new(DRIVER_NAME),
            chroot_env,
        }
    }

    /// Creates the mount points in the task directory and lists the binds.
    fn prepare_root(&self, config: &TaskConfig) -> Result<Vec<Bind>, String> {
        let root = &config.task_dir;
        let mut binds = Vec::new();
        for (host, inside) in &self.chroot_env {
            let Ok(meta) = std::fs::metadata(host) else {
                continue;
            };
            let relative = inside.strip_prefix("/").unwrap_or(inside);
            let target = root.join(relative);
            if meta.is_dir() {
                std::fs::create_dir_all(&target).map_err(|error| format!("create {}: {error}", target.display()))?;
            } else {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|error| format!("create {}: {error}", parent.display()))?;
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&target)
                    .map_err(|error| format!("create {}: {error}", target.display()))?;
            }
            binds.push(Bind {
                source: c_path(host)?,
                target: c_path(&target)?,
                read_only: true,
            });
        }
        let alloc_target = root.join("alloc");
        std::fs::create_dir_all(&alloc_target)
            .map_err(|error| format!("create {}: {error}", alloc_target.display()))?;
        binds.push(Bind {
            source: c_path(&config.alloc_dir)?,
            target: c_path(&alloc_target)?,
            read_only: false,
        });
        for dir in ["proc", "dev", "tmp", "local", "secrets"] {
            std::fs::create_dir_all(root.join(dir)).map_err(|error| format!("create {dir}: {error}"))?;
        }
        for mount in &config.mounts {
            binds.push(self.volume_bind(root, mount)?);
        }
        Ok(binds)
    }

    /// The bind of a host volume: the mount point is created inside the
    /// task's root, and must still be inside it with symlinks resolved (a
    /// link a task left there would otherwise aim the mount at the host).
    fn volume_bind(&self, root: &std::path::Path, mount: &driver_api::Mount) -> Result<Bind, String> {
        // Under a host directory of the chroot the mount point would be the
        // host's own (the bind covers what is made here): refused.
        for inside in self.chroot_env.values() {
            if mount.task_path.starts_with(inside) && inside != Path::new("/") {
                return Err(format!(
                    "mount point {} is inside {}, which the chroot takes from the host",
                    mount.task_path.display(),
                    inside.display()
                ));
            }
        }
        let meta = std::fs::metadata(&mount.host_path)
            .map_err(|error| format!("host volume {}: {error}", mount.host_path.display()))?;
        if !meta.is_dir() {
            return Err(format!("host volume {} is not a directory", mount.host_path.display()));
        }
        let relative = mount.task_path.strip_prefix("/").unwrap_or(&mount.task_path);
        if relative
            .components()
            .any(|part| !matches!(part, std::path::Component::Normal(_)))
        {
            return Err(format!("mount point {} is not a plain path", mount.task_path.display()));
        }
        let target = root.join(relative);
        std::fs::create_dir_all(&target).map_err(|error| format!("create {}: {error}", target.display()))?;
        let real_root = std::fs::canonicalize(root).map_err(|error| format!("{}: {error}", root.display()))?;
        let real_target = std::fs::canonicalize(&target).map_err(|error| format!("{}: {error}", target.display()))?;
        if !real_target.starts_with(&real_root) || real_target == real_root {
            return Err(format!(
                "mount point {} leaves the task's root",
                mount.task_path.display()
            ));
        }
        Ok(Bind {
            source: c_path(&mount.host_path)?,
            target: c_path(&real_target)?,
            read_only: mount.read_only,
        })
    }

    /// Lets the task's user write where a task may write: its own
    /// directories and the allocation's shared `data` and `tmp`.
    fn grant_dirs(config: &TaskConfig, uid: u32, gid: u32) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        for dir in ["local", "secrets", "tmp"] {
            let path = config.task_dir.join(dir);
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                .map_err(|error| format!("chown {}: {error}", path.display()))?;
        }
        for dir in ["data", "tmp"] {
            let path = config.alloc_dir.join(dir);
            if path.is_dir() {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o1777))
                    .map_err(|error| format!("chmod {}: {error}", path.display()))?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Driver for ExecDriver {
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
        if !nix::unistd::geteuid().is_root() {
            info.health_description = "exec needs the agent to run as root".to_string();
        } else if self.tasks.cgroups().is_none() {
            info.health_description = "exec needs cgroups, and none are mounted".to_string();
        } else {
            info.detected = true;
            info.healthy = true;
            info.health_description = "Healthy".to_string();
            info.attributes.insert(format!("driver.{DRIVER_NAME}"), "1".to_string());
        }
        info
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            send_signals: true,
            exec: false,
            writes_log_files: false,
            fs_isolation: "chroot".to_string(),
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
        let task_config: ExecTaskConfig =
            serde_json::from_value(config.config.clone()).map_err(|error| invalid(error.to_string()))?;
        if task_config.command.trim().is_empty() {
            return Err(invalid("command is empty".to_string()));
        }
        let new_pid_ns = namespace_mode(&task_config.pid_mode, "pid_mode").map_err(invalid)?;
        let new_ipc_ns = namespace_mode(&task_config.ipc_mode, "ipc_mode").map_err(invalid)?;
        let keep_caps = kept_caps(&task_config).map_err(invalid)?;
        let user_name = if config.user.is_empty() {
            "nobody"
        } else {
            config.user.as_str()
        };
        let user = nix::unistd::User::from_name(user_name)
            .map_err(|error| StartTaskError::User {
                task: task_key.clone(),
                user: user_name.to_string(),
                reason: error.to_string(),
            })?
            .ok_or_else(|| StartTaskError::User {
                task: task_key.clone(),
                user: user_name.to_string(),
                reason: "no such user".to_string(),
            })?;
        let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
        let binds = self.prepare_root(&config).map_err(&spawn_error)?;
        ExecDriver::grant_dirs(&config, uid, gid).map_err(&spawn_error)?;

        let cgroup = self
            .tasks
            .create_cgroup(&config)?
            .ok_or_else(|| spawn_error("exec needs cgroups, and this host has none".to_string()))?;
        let procs = cgroup.open_procs().map_err(|error| spawn_error(error.to_string()))?;
        let netns = match &config.network.netns_path {
            Some(path) => Some(
                std::fs::File::open(path)
                    .map_err(|error| spawn_error(format!("open network namespace {}: {error}", path.display())))?,
            ),
            None => None,
        };
        let root = &config.task_dir;
        let work_dir = match &task_config.work_dir {
            Some(dir) if dir.starts_with('/') => dir.clone(),
            Some(dir) => format!("/{dir}"),
            None => "/".to_string(),
        };
        let plan = Plan {
            cgroup_fds: procs.raw(),
            netns_fd: netns.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
            new_pid_ns,
            new_ipc_ns,
            root: c_path(root).map_err(&invalid)?,
            binds,
            proc_dir: c_path(&root.join("proc")).map_err(&invalid)?,
            dev_dir: c_path(&root.join("dev")).map_err(&invalid)?,
            devices: DEVICES
                .iter()
                .filter(|name| Path::new("/dev").join(name).exists())
                .map(|name| {
                    Ok((
                        c_path(&Path::new("/dev").join(name))?,
                        c_path(&root.join("dev").join(name))?,
                    ))
                })
                .collect::<Result<_, String>>()
                .map_err(&invalid)?,
            dev_links: [
                ("/proc/self/fd", "fd"),
                ("/proc/self/fd/0", "stdin"),
                ("/proc/self/fd/1", "stdout"),
                ("/proc/self/fd/2", "stderr"),
            ]
            .iter()
            .map(|(text, name)| Ok((c_path(Path::new(text))?, c_path(&root.join("dev").join(name))?)))
            .collect::<Result<_, String>>()
            .map_err(&invalid)?,
            hostname: CString::new(types::short_id(&config.alloc_id)).map_err(|error| invalid(error.to_string()))?,
            work_dir: CString::new(work_dir).map_err(|error| invalid(error.to_string()))?,
            user: (uid != 0).then_some((uid, gid)),
            keep_caps,
        };

        std::fs::create_dir_all(&config.logs.dir).map_err(|error| StartTaskError::Logs {
            path: config.logs.dir.clone(),
            reason: error.to_string(),
        })?;
        let open = |path: PathBuf| {
            driver_api::open_output(&path).map_err(|error| StartTaskError::Logs {
                path,
                reason: error.to_string(),
            })
        };
        let stdout = open(config.stdout_sink())?;
        let stderr = open(config.stderr_sink())?;
        let mut command = tokio::process::Command::new(&task_config.command);
        command
            .args(&task_config.args)
            .env_clear()
            .envs(
                config
                    .env
                    .iter()
                    .filter(|(name, _)| !task_config.denied_envvars.contains(name)),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .process_group(0)
            .kill_on_drop(false);
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: `isolate` only makes system calls on the plan's
            // prepared data (see its module doc); the plan moves into the
            // hook and the cgroup files it names stay open in `procs` until
            // the spawn below has returned.
            unsafe {
                command.as_std_mut().pre_exec(move || isolate::isolate(&plan));
            }
        }
        let handle = self
            .tasks
            .launch(&config, command, Some(cgroup), task_config.oom_score_adj, false);
        drop(procs);
        drop(netns);
        handle
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cap_add: &[&str], cap_drop: &[&str]) -> ExecTaskConfig {
        ExecTaskConfig {
            command: "/bin/true".into(),
            args: Vec::new(),
            work_dir: None,
            pid_mode: None,
            ipc_mode: None,
            cap_add: cap_add.iter().map(|name| name.to_string()).collect(),
            cap_drop: cap_drop.iter().map(|name| name.to_string()).collect(),
            oom_score_adj: None,
            denied_envvars: Vec::new(),
        }
    }

    #[test]
    fn capabilities_follow_cap_add_and_cap_drop() {
        assert_eq!(kept_caps(&config(&[], &[])).expect("default").len(), DEFAULT_CAPS.len());
        let dropped = kept_caps(&config(&[], &["CAP_KILL", "chown"])).expect("drop");
        assert!(!dropped.contains(&5) && !dropped.contains(&0));
        assert_eq!(kept_caps(&config(&["kill"], &["all"])).expect("only kill"), vec![5]);
        assert!(kept_caps(&config(&["sys_admin"], &[])).is_err());
        assert!(kept_caps(&config(&[], &["bogus"])).is_err());
    }

    #[test]
    fn namespace_modes() {
        assert_eq!(namespace_mode(&None, "pid_mode"), Ok(true));
        assert_eq!(namespace_mode(&Some("host".into()), "pid_mode"), Ok(false));
        assert!(namespace_mode(&Some("shared".into()), "pid_mode").is_err());
    }
}
