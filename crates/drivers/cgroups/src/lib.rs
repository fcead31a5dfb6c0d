//! Control groups for the drivers, v1 and v2, written against cgroupfs by
//! hand (no library between us and the kernel's files).
//!
//! [`Hierarchy::detect`] reads `/proc/self/mountinfo` and tells which
//! version the host runs: a unified (v2) hierarchy mounted at
//! `/sys/fs/cgroup` means v2; v1 controllers mounted under it mean v1 (a
//! hybrid host, with an empty v2 tree at `/sys/fs/cgroup/unified`, counts as
//! v1 because the controllers live in the v1 trees).
//!
//! A task's [`Cgroup`] is a set of directories: one per v1 controller
//! (cpu, cpuacct, cpuset, memory, pids, freezer), or one in the unified
//! tree. It is serialisable so a driver can store it in its task handle and
//! find the group again after an agent restart. Where the groups go:
//! - v1: `<controller mount>/<the agent's own group>/<parent>/<name>`,
//!   nested under the agent's own group in each tree, so tasks stay inside
//!   whatever limits the agent itself was started under.
//! - v2: `<mount>/<parent>.slice/<name>`; the unified tree forbids
//!   processes in inner nodes that delegate controllers, so the parent sits
//!   beside the agent's group, as Nomad's `nomad.slice` does.
//!
//! Joining happens before `exec`: a driver opens the `cgroup.procs` files
//! with [`Cgroup::open_procs`] and the child writes `0` (itself) into them
//! from a `pre_exec` hook with [`join_self`], which only calls `write(2)`,
//! so nothing the task starts is ever outside the group.
//!
//! Killing every process of a group is race-free: v2 writes `cgroup.kill`;
//! v1 freezes the group, sends SIGKILL to every member and thaws it, so no
//! member can fork between the listing and the signal.

#![allow(unsafe_code)]

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The v1 controllers a task group is created in.
const V1_CONTROLLERS: &[&str] = &["cpu", "cpuacct", "cpuset", "memory", "pids", "freezer"];
/// The v2 controllers enabled for task groups, when the host offers them.
const V2_CONTROLLERS: &[&str] = &["cpu", "cpuset", "memory", "pids"];
/// The key of the one directory of a v2 group.
const UNIFIED: &str = "unified";
/// How long a v1 freeze may take before the kill goes ahead without it.
const FREEZE_WAIT: Duration = Duration::from_millis(500);
/// The largest control file read (they are a few hundred bytes).
const MAX_CONTROL_FILE: u64 = 1 << 20;

/// Which cgroup version a group lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Version {
    /// One tree per controller.
    V1,
    /// One unified tree.
    V2,
}

/// Why the cgroup filesystems could not be found.
#[derive(Debug, thiserror::Error)]
pub enum DetectCgroupsError {
    #[error("read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("no cgroup filesystem is mounted")]
    NotMounted,
}

/// Why a task's group could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateCgroupError {
    #[error("create cgroup {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("set {file} of cgroup {path}: {source}")]
    Limit {
        path: PathBuf,
        file: String,
        source: std::io::Error,
    },
    #[error("cgroup {path} does not exist")]
    Missing { path: PathBuf },
    #[error("the {controller} controller is not mounted")]
    NoController { controller: String },
}

/// Why a process could not be put into or taken out of a group.
#[derive(Debug, thiserror::Error)]
#[error("{operation} cgroup {path}: {source}")]
pub struct CgroupIoError {
    pub operation: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Resource limits for a task's group. Zero (or empty) leaves a limit
/// unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Relative CPU weight in v1 shares (Nomad passes the task's MHz).
    pub cpu_shares: u64,
    /// CPUs the task may run on, in cpuset list form (`0-1,3`).
    pub cpuset_cpus: String,
    /// The hard memory limit in bytes: the task is OOM-killed above it.
    pub memory_bytes: u64,
    /// The soft memory limit (reclaimed first under pressure) in bytes.
    pub memory_soft_bytes: u64,
    /// Most processes the group may hold.
    pub pids_max: u64,
}

/// Resource use of a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// Anonymous (RSS) memory in bytes.
    pub rss_bytes: u64,
    /// All memory charged to the group, page cache included.
    pub usage_bytes: u64,
    /// CPU time used (user + system).
    pub cpu_time: Duration,
    /// Processes in the group.
    pub pids: u32,
}

/// Where the cgroup trees are mounted and where this process sits in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    version: Version,
    /// v1: controller → mount point; v2: [`UNIFIED`] → mount point.
    mounts: BTreeMap<String, PathBuf>,
    /// v1: controller → this process's group path in that tree.
    own: BTreeMap<String, String>,
}

fn read_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_CONTROL_FILE).read_to_string(&mut text)?;
    Ok(text)
}

fn write_text(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Parses `/proc/self/mountinfo`: cgroup v1 mounts (controller → mount
/// point) and the first cgroup2 mount.
fn parse_mountinfo(text: &str) -> (BTreeMap<String, PathBuf>, Option<PathBuf>) {
    let mut v1 = BTreeMap::new();
    let mut v2 = None;
    for line in text.lines() {
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = before.split_whitespace().nth(4) else {
            continue;
        };
        let mut after = after.split_whitespace();
        let fs_type = after.next().unwrap_or_default();
        let _source = after.next();
        let super_options = after.next().unwrap_or_default();
        let mount_point = PathBuf::from(unescape_mount(mount_point));
        match fs_type {
            "cgroup2" if v2.is_none() => v2 = Some(mount_point),
            "cgroup" => {
                for option in super_options.split(',') {
                    if V1_CONTROLLERS.contains(&option) {
                        v1.entry(option.to_string()).or_insert_with(|| mount_point.clone());
                    }
                }
            }
            _ => {}
        }
    }
    (v1, v2)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while idx < bytes.len() {
        if bytes[idx] == b'\\'
            && idx + 3 < bytes.len() + 1
            && let Some(octal) = text.get(idx + 1..idx + 4)
            && let Ok(value) = u8::from_str_radix(octal, 8)
        {
            out.push(value);
            idx += 4;
            continue;
        }
        out.push(bytes[idx]);
        idx += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/self/cgroup`: v1 controller → path, and the v2 path.
fn parse_proc_cgroup(text: &str) -> (BTreeMap<String, String>, Option<String>) {
    let mut v1 = BTreeMap::new();
    let mut v2 = None;
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if controllers.is_empty() {
            v2 = Some(path.to_string());
            continue;
        }
        for controller in controllers.split(',') {
            v1.insert(controller.to_string(), path.to_string());
        }
    }
    (v1, v2)
}

/// Joins a group path (`/a/b`) below a mount point.
fn below(mount: &Path, group: &str) -> PathBuf {
    let mut path = mount.to_path_buf();
    for part in group.split('/').filter(|part| !part.is_empty() && *part != "..") {
        path.push(part);
    }
    path
}

impl Hierarchy {
    /// Finds the cgroup trees of this host and this process's place in them.
    pub fn detect() -> Result<Hierarchy, DetectCgroupsError> {
        let read = |path: &str| {
            read_text(Path::new(path)).map_err(|source| DetectCgroupsError::Read {
                path: PathBuf::from(path),
                source,
            })
        };
        let (v1_mounts, v2_mount) = parse_mountinfo(&read("/proc/self/mountinfo")?);
        let (own_v1, _own_v2) = parse_proc_cgroup(&read("/proc/self/cgroup")?);
        if v1_mounts.is_empty() {
            let mount = v2_mount.ok_or(DetectCgroupsError::NotMounted)?;
            return Ok(Hierarchy::v2_at(mount));
        }
        Ok(Hierarchy {
            version: Version::V1,
            mounts: v1_mounts,
            own: own_v1,
        })
    }

    /// A unified (v2) tree mounted at `mount`. Used by [`Hierarchy::detect`]
    /// and by tests on hybrid hosts, whose v2 tree sits beside the v1 ones.
    pub fn v2_at(mount: impl Into<PathBuf>) -> Hierarchy {
        Hierarchy {
            version: Version::V2,
            mounts: BTreeMap::from([(UNIFIED.to_string(), mount.into())]),
            own: BTreeMap::new(),
        }
    }

    /// The version of this hierarchy.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Whether a controller is usable here (`memory`, `cpuset`…).
    pub fn has_controller(&self, controller: &str) -> bool {
        match self.version {
            Version::V1 => self.mounts.contains_key(controller),
            Version::V2 => self.mounts.get(UNIFIED).is_some_and(|mount| {
                read_text(&mount.join("cgroup.controllers"))
                    .is_ok_and(|text| text.split_whitespace().any(|name| name == controller))
            }),
        }
    }

    /// The directories a group named `name` under `parent` has in each tree.
    fn dirs_for(&self, parent: &str, name: &str) -> BTreeMap<String, PathBuf> {
        match self.version {
            Version::V1 => self
                .mounts
                .iter()
                .map(|(controller, mount)| {
                    let own = self.own.get(controller).map_or("/", String::as_str);
                    (controller.clone(), below(&below(mount, own), parent).join(name))
                })
                .collect(),
            Version::V2 => self
                .mounts
                .iter()
                .map(|(key, mount)| (key.clone(), below(mount, &format!("{parent}.slice")).join(name)))
                .collect(),
        }
    }

    /// Creates (or reuses) the group `name` below `parent` and applies
    /// `limits`. A limit whose controller is absent is an error, so a task
    /// never runs without a limit it asked for.
    pub fn create(&self, parent: &str, name: &str, limits: &Limits) -> Result<Cgroup, CreateCgroupError> {
        let dirs = self.dirs_for(parent, name);
        for dir in dirs.values() {
            std::fs::create_dir_all(dir).map_err(|source| CreateCgroupError::Create {
                path: dir.clone(),
                source,
            })?;
        }
        let cgroup = Cgroup {
            version: self.version,
            dirs,
            owned: true,
        };
        match self.version {
            Version::V1 => {
                if let Some(leaf) = cgroup.dirs.get("cpuset") {
                    let mount = self.mounts.get("cpuset").cloned().unwrap_or_default();
                    init_cpusets(&mount, leaf)?;
                }
            }
            Version::V2 => {
                if let Some(leaf) = cgroup.dirs.get(UNIFIED) {
                    let mount = self.mounts.get(UNIFIED).cloned().unwrap_or_default();
                    enable_v2_controllers(&mount, leaf);
                }
            }
        }
        cgroup.apply(self, limits)?;
        Ok(cgroup)
    }

    /// A group made by someone else (a task's `cgroup_v1_override` or
    /// `cgroup_v2_override`): it must exist, gets no limits, and is never
    /// removed by Drover.
    pub fn existing(&self, paths: &BTreeMap<String, String>) -> Result<Cgroup, CreateCgroupError> {
        let mut dirs = BTreeMap::new();
        for (controller, group) in paths {
            let (key, mount) = match self.version {
                Version::V1 => (
                    controller.clone(),
                    self.mounts
                        .get(controller)
                        .ok_or_else(|| CreateCgroupError::NoController {
                            controller: controller.clone(),
                        })?,
                ),
                Version::V2 => (
                    UNIFIED.to_string(),
                    self.mounts.get(UNIFIED).ok_or(CreateCgroupError::NoController {
                        controller: UNIFIED.to_string(),
                    })?,
                ),
            };
            let dir = if Path::new(group).starts_with(mount) {
                PathBuf::from(group)
            } else {
                below(mount, group)
            };
            if !dir.join("cgroup.procs").exists() {
                return Err(CreateCgroupError::Missing { path: dir });
            }
            dirs.insert(key, dir);
        }
        Ok(Cgroup {
            version: self.version,
            dirs,
            owned: false,
        })
    }
}

/// A new v1 cpuset group starts with no CPUs and no memory nodes, and
/// accepts no process until it has both: copy them down from the mount.
fn init_cpusets(mount: &Path, leaf: &Path) -> Result<(), CreateCgroupError> {
    let Ok(relative) = leaf.strip_prefix(mount) else {
        return Ok(());
    };
    let mut parent = mount.to_path_buf();
    for part in relative.components() {
        let dir = parent.join(part);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let current = read_text(&dir.join(file)).unwrap_or_default();
            if current.trim().is_empty() {
                let inherited = read_text(&parent.join(file)).unwrap_or_default();
                write_text(&dir.join(file), inherited.trim()).map_err(|source| CreateCgroupError::Limit {
                    path: dir.clone(),
                    file: file.to_string(),
                    source,
                })?;
            }
        }
        parent = dir;
    }
    Ok(())
}

/// Delegates the task controllers down to `leaf`'s parent, where the host
/// offers them. Best effort: a controller that cannot be enabled shows up as
/// an error when its limit is written.
fn enable_v2_controllers(mount: &Path, leaf: &Path) {
    let Some(parent_of_leaf) = leaf.parent() else { return };
    let Ok(relative) = parent_of_leaf.strip_prefix(mount) else {
        return;
    };
    let mut dir = mount.to_path_buf();
    let mut chain = vec![dir.clone()];
    for part in relative.components() {
        dir = dir.join(part);
        chain.push(dir.clone());
    }
    for dir in chain {
        let available = read_text(&dir.join("cgroup.controllers")).unwrap_or_default();
        for controller in V2_CONTROLLERS {
            if available.split_whitespace().any(|name| name == *controller)
                && let Err(error) = write_text(&dir.join("cgroup.subtree_control"), &format!("+{controller}"))
            {
                tracing::debug!(dir = %dir.display(), controller, %error, "could not enable cgroup controller");
            }
        }
    }
}

/// v1 cpu shares (2..262144) to a v2 cpu weight (1..10000), the kernel's
/// and runc's mapping.
fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// Reads `key value` lines (`memory.stat`, `cpu.stat`, `memory.events`).
fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        (fields.next()? == key).then(|| fields.next()?.parse().ok())?
    })
}

/// Writes `0` (the calling process) into each of `fds`, the group's
/// `cgroup.procs` files opened by [`Cgroup::open_procs`]. Meant for a
/// `pre_exec` hook: it only calls `write(2)`, which is async-signal-safe,
/// and allocates nothing.
pub fn join_self(fds: &[i32]) -> std::io::Result<()> {
    for fd in fds {
        // SAFETY: `fd` is an open descriptor owned by the caller for the
        // duration of this call; the buffer is a static one-byte slice.
        let written = unsafe { libc::write(*fd, b"0".as_ptr().cast(), 1) };
        if written < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// One task's control group: a directory per v1 controller or one unified
/// directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    /// The version the directories belong to.
    pub version: Version,
    /// v1: controller → directory; v2: `unified` → directory.
    pub dirs: BTreeMap<String, PathBuf>,
    /// Whether Drover made the group (and so removes it).
    pub owned: bool,
}

/// The `cgroup.procs` files of a group, open for writing, for [`join_self`].
#[derive(Debug)]
pub struct ProcsFiles(Vec<OwnedFd>);

impl ProcsFiles {
    /// The raw descriptors, for the `pre_exec` hook.
    pub fn raw(&self) -> Vec<i32> {
        self.0.iter().map(AsRawFd::as_raw_fd).collect()
    }
}

impl Cgroup {
    fn io_error(operation: &'static str, path: &Path, source: std::io::Error) -> CgroupIoError {
        CgroupIoError {
            operation,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Every distinct directory (co-mounted controllers share one).
    fn unique_dirs(&self) -> Vec<&PathBuf> {
        let mut dirs: Vec<&PathBuf> = self.dirs.values().collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// The directory whose `cgroup.procs` lists the members.
    fn membership_dir(&self) -> Option<&PathBuf> {
        ["freezer", "pids", "memory", "cpuacct", UNIFIED]
            .iter()
            .find_map(|key| self.dirs.get(*key))
            .or_else(|| self.dirs.values().next())
    }

    fn apply(&self, hierarchy: &Hierarchy, limits: &Limits) -> Result<(), CreateCgroupError> {
        let set = |controller: &str, file: &str, value: String| -> Result<(), CreateCgroupError> {
            let key = match self.version {
                Version::V1 => controller,
                Version::V2 => UNIFIED,
            };
            if self.version == Version::V2 && !hierarchy.has_controller(controller) {
                return Err(CreateCgroupError::NoController {
                    controller: controller.to_string(),
                });
            }
            let dir = self.dirs.get(key).ok_or_else(|| CreateCgroupError::NoController {
                controller: controller.to_string(),
            })?;
            write_text(&dir.join(file), &value).map_err(|source| CreateCgroupError::Limit {
                path: dir.clone(),
                file: file.to_string(),
                source,
            })
        };
        match self.version {
            Version::V1 => {
                if limits.cpu_shares > 0 {
                    set("cpu", "cpu.shares", limits.cpu_shares.max(2).to_string())?;
                }
                if !limits.cpuset_cpus.is_empty() {
                    set("cpuset", "cpuset.cpus", limits.cpuset_cpus.clone())?;
                }
                if limits.memory_bytes > 0 {
                    set("memory", "memory.limit_in_bytes", limits.memory_bytes.to_string())?;
                    // Swap counts against the same limit where it is
                    // accounted, so a task cannot swap its way past it.
                    if let Some(dir) = self.dirs.get("memory")
                        && dir.join("memory.memsw.limit_in_bytes").exists()
                    {
                        set("memory", "memory.memsw.limit_in_bytes", limits.memory_bytes.to_string())?;
                    }
                }
                if limits.memory_soft_bytes > 0 {
                    set(
                        "memory",
                        "memory.soft_limit_in_bytes",
                        limits.memory_soft_bytes.to_string(),
                    )?;
                }
                if limits.pids_max > 0 {
                    set("pids", "pids.max", limits.pids_max.to_string())?;
                }
            }
            Version::V2 => {
                if limits.cpu_shares > 0 {
                    set("cpu", "cpu.weight", shares_to_weight(limits.cpu_shares).to_string())?;
                }
                if !limits.cpuset_cpus.is_empty() {
                    set("cpuset", "cpuset.cpus", limits.cpuset_cpus.clone())?;
                }
                if limits.memory_bytes > 0 {
                    set("memory", "memory.max", limits.memory_bytes.to_string())?;
                }
                if limits.memory_soft_bytes > 0 {
                    set("memory", "memory.low", limits.memory_soft_bytes.to_string())?;
                }
                if limits.pids_max > 0 {
                    set("pids", "pids.max", limits.pids_max.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// Opens every `cgroup.procs` file for writing (close-on-exec), to be
    /// joined from a child with [`join_self`].
    pub fn open_procs(&self) -> Result<ProcsFiles, CgroupIoError> {
        let mut files = Vec::new();
        for dir in self.unique_dirs() {
            let path = dir.join("cgroup.procs");
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|source| Cgroup::io_error("open", &path, source))?;
            files.push(OwnedFd::from(file));
        }
        Ok(ProcsFiles(files))
    }

    /// Makes `command`'s child join the group before it execs, so it and
    /// everything it starts is inside from its first instruction. The
    /// returned files must stay alive until the child is spawned.
    pub fn join_on_spawn(&self, command: &mut std::process::Command) -> Result<ProcsFiles, CgroupIoError> {
        use std::os::unix::process::CommandExt;
        let procs = self.open_procs()?;
        let fds = procs.raw();
        // SAFETY: the hook runs between fork and exec and only calls
        // `join_self`, which makes `write(2)` calls on descriptors that the
        // returned `ProcsFiles` keeps open until the caller has spawned.
        unsafe {
            command.pre_exec(move || join_self(&fds));
        }
        Ok(procs)
    }

    /// Moves a running process into the group.
    pub fn add(&self, pid: i32) -> Result<(), CgroupIoError> {
        for dir in self.unique_dirs() {
            write_text(&dir.join("cgroup.procs"), &pid.to_string())
                .map_err(|source| Cgroup::io_error("join", dir, source))?;
        }
        Ok(())
    }

    /// The processes in the group.
    pub fn pids(&self) -> Vec<i32> {
        let Some(dir) = self.membership_dir() else {
            return Vec::new();
        };
        read_text(&dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }

    /// Whether no process is left in the group (a group whose directory is
    /// gone is empty).
    pub fn is_empty(&self) -> bool {
        self.pids().is_empty()
    }

    /// Whether the group's directories still exist.
    pub fn exists(&self) -> bool {
        self.membership_dir().is_some_and(|dir| dir.exists())
    }

    fn set_frozen(&self, frozen: bool) -> bool {
        match self.version {
            Version::V1 => {
                let Some(dir) = self.dirs.get("freezer") else {
                    return false;
                };
                let state = if frozen { "FROZEN" } else { "THAWED" };
                if write_text(&dir.join("freezer.state"), state).is_err() {
                    return false;
                }
                let deadline = std::time::Instant::now() + FREEZE_WAIT;
                while std::time::Instant::now() < deadline {
                    if read_text(&dir.join("freezer.state")).is_ok_and(|text| text.trim() == state) {
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                false
            }
            Version::V2 => self
                .dirs
                .get(UNIFIED)
                .is_some_and(|dir| write_text(&dir.join("cgroup.freeze"), if frozen { "1" } else { "0" }).is_ok()),
        }
    }

    /// Sends `signal` to every process in the group.
    pub fn signal_all(&self, signal: nix::sys::signal::Signal) {
        for pid in self.pids() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        }
    }

    /// SIGKILLs every process in the group, without a window in which a
    /// member could fork a survivor. Returns once the signals are sent; the
    /// members disappear as the kernel reaps them (see [`Cgroup::is_empty`]).
    pub fn kill_all(&self) -> Result<(), CgroupIoError> {
        if self.version == Version::V2
            && let Some(dir) = self.dirs.get(UNIFIED)
        {
            let kill_file = dir.join("cgroup.kill");
            if kill_file.exists() {
                return write_text(&kill_file, "1").map_err(|source| Cgroup::io_error("kill", dir, source));
            }
        }
        let frozen = self.set_frozen(true);
        self.signal_all(nix::sys::signal::Signal::SIGKILL);
        if frozen {
            self.set_frozen(false);
        }
        Ok(())
    }

    /// Memory, CPU time and process count of the group.
    pub fn stats(&self) -> CgroupStats {
        let mut stats = CgroupStats {
            pids: u32::try_from(self.pids().len()).unwrap_or(u32::MAX),
            ..CgroupStats::default()
        };
        let read = |key: &str, file: &str| self.dirs.get(key).and_then(|dir| read_text(&dir.join(file)).ok());
        match self.version {
            Version::V1 => {
                if let Some(text) = read("memory", "memory.stat") {
                    stats.rss_bytes = keyed_value(&text, "total_rss")
                        .or_else(|| keyed_value(&text, "rss"))
                        .unwrap_or(0);
                }
                stats.usage_bytes = read("memory", "memory.usage_in_bytes")
                    .and_then(|text| text.trim().parse().ok())
                    .unwrap_or(0);
                let nanos = read("cpuacct", "cpuacct.usage")
                    .and_then(|text| text.trim().parse().ok())
                    .unwrap_or(0);
                stats.cpu_time = Duration::from_nanos(nanos);
            }
            Version::V2 => {
                if let Some(text) = read(UNIFIED, "memory.stat") {
                    stats.rss_bytes = keyed_value(&text, "anon").unwrap_or(0);
                }
                stats.usage_bytes = read(UNIFIED, "memory.current")
                    .and_then(|text| text.trim().parse().ok())
                    .unwrap_or(0);
                let micros = read(UNIFIED, "cpu.stat")
                    .and_then(|text| keyed_value(&text, "usage_usec"))
                    .unwrap_or(0);
                stats.cpu_time = Duration::from_micros(micros);
            }
        }
        stats
    }

    /// How many times the kernel's OOM killer killed a member.
    pub fn oom_kills(&self) -> u64 {
        let (key, file) = match self.version {
            Version::V1 => ("memory", "memory.oom_control"),
            Version::V2 => (UNIFIED, "memory.events"),
        };
        self.dirs
            .get(key)
            .and_then(|dir| read_text(&dir.join(file)).ok())
            .and_then(|text| keyed_value(&text, "oom_kill"))
            .unwrap_or(0)
    }

    /// Removes the group's directories (a group Drover did not make is left
    /// alone). Fails while processes remain.
    pub fn destroy(&self) -> Result<(), CgroupIoError> {
        if !self.owned {
            return Ok(());
        }
        for dir in self.dirs.values() {
            match std::fs::remove_dir(dir) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(Cgroup::io_error("remove", dir, source)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:39 / /mnt/with\\040space rw - ext4 /dev/x rw
";

    #[test]
    fn mountinfo_gives_v1_controllers_and_the_v2_mount() {
        let (v1, v2) = parse_mountinfo(MOUNTINFO);
        assert_eq!(v1.get("cpu"), Some(&PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")));
        assert_eq!(v1.get("cpuacct"), Some(&PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")));
        assert_eq!(v1.get("memory"), Some(&PathBuf::from("/sys/fs/cgroup/memory")));
        assert!(!v1.contains_key("name=systemd"));
        assert_eq!(v2, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(unescape_mount("/mnt/with\\040space"), "/mnt/with space");
        assert_eq!(unescape_mount("/plain\\"), "/plain\\");
    }

    #[test]
    fn proc_cgroup_gives_our_place_in_each_tree() {
        let (v1, v2) = parse_proc_cgroup("4:memory:/agent/x\n1:cpu,cpuacct:/\n0::/user.slice\nbad line\n");
        assert_eq!(v1.get("memory").map(String::as_str), Some("/agent/x"));
        assert_eq!(v1.get("cpuacct").map(String::as_str), Some("/"));
        assert_eq!(v2.as_deref(), Some("/user.slice"));
    }

    #[test]
    fn groups_nest_under_the_agent_in_v1_and_under_a_slice_in_v2() {
        let v1 = Hierarchy {
            version: Version::V1,
            mounts: BTreeMap::from([("memory".to_string(), PathBuf::from("/cg/memory"))]),
            own: BTreeMap::from([("memory".to_string(), "/agent/../x".to_string())]),
        };
        assert_eq!(
            v1.dirs_for("drover", "a1.web")["memory"],
            PathBuf::from("/cg/memory/agent/x/drover/a1.web")
        );
        let v2 = Hierarchy::v2_at("/cg");
        assert_eq!(
            v2.dirs_for("drover", "a1.web")[UNIFIED],
            PathBuf::from("/cg/drover.slice/a1.web")
        );
    }

    #[test]
    fn shares_map_onto_weights_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 1);
        assert_eq!(shares_to_weight(u64::MAX), 10_000);
    }

    #[test]
    fn keyed_values_parse_and_ignore_garbage() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed_value(text, "oom_kill"), Some(3));
        assert_eq!(keyed_value(text, "missing"), None);
        assert_eq!(keyed_value("oom_kill lots", "oom_kill"), None);
    }

    #[test]
    fn a_group_round_trips_through_json() {
        let group = Cgroup {
            version: Version::V1,
            dirs: BTreeMap::from([("memory".to_string(), PathBuf::from("/cg/memory/x"))]),
            owned: true,
        };
        let text = serde_json::to_string(&group).expect("encode");
        assert_eq!(serde_json::from_str::<Cgroup>(&text).expect("decode"), group);
    }
}
