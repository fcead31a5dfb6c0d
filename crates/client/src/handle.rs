//! The client's control surface for its HTTP API: signal, restart and
//! stats of running tasks, garbage collection on request, and the node's
//! own stats. A [`ClientHandle`] is cheap to clone and outlives nothing:
//! once the client stops, every call answers that the allocation is gone.

use crate::artifact::ArtifactFetcher;
use crate::task_runner::TaskCommand;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long a signal or stats request waits for the task.
const TASK_ANSWER_WAIT: Duration = Duration::from_secs(10);
/// How long a restart waits (a stop may take the kill timeout, capped).
const RESTART_WAIT: Duration = Duration::from_secs(60);

/// The command senders of the running tasks, by allocation then task.
pub type TaskControls = Arc<Mutex<HashMap<String, BTreeMap<String, mpsc::UnboundedSender<TaskCommand>>>>>;

/// What the client loop itself does on request.
#[derive(Debug)]
pub enum ClientCommand {
    /// Collect one terminal allocation, or (None) every terminal one.
    Gc {
        alloc_id: Option<String>,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
}

/// Why a control request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Failed(String),
}

/// One task's usage, as the stats endpoint reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskUsage {
    pub stats: driver_api::TaskStats,
    pub timestamp: i64,
}

/// The node's memory, disk and uptime, and the artifact cache's counters.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostStats {
    pub memory: HostMemory,
    pub disk_stats: Vec<HostDisk>,
    pub uptime: u64,
    pub timestamp: i64,
    /// Drover's own: the artifact cache's hits, misses and size.
    pub artifact_cache: crate::artifact_cache::CacheStats,
    /// Allocations with running tasks on this client.
    pub running_allocations: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostMemory {
    pub total: u64,
    pub available: u64,
    pub used: u64,
    pub free: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostDisk {
    pub mountpoint: String,
    pub size: u64,
    pub used: u64,
    pub available: u64,
    pub used_percent: f64,
    pub inodes_used_percent: f64,
}

/// A handle on a client, for its HTTP API.
#[derive(Clone)]
pub struct ClientHandle {
    pub(crate) controls: TaskControls,
    pub(crate) commands: mpsc::UnboundedSender<ClientCommand>,
    pub(crate) artifacts: Arc<ArtifactFetcher>,
    pub(crate) data_dir: PathBuf,
    pub(crate) alloc_checks: crate::services::AllocChecks,
}

impl ClientHandle {
    /// The latest results of an allocation's checks on this client, by
    /// check ID (empty when it has none or does not run here).
    pub fn alloc_checks(&self, alloc_id: &str) -> BTreeMap<String, crate::services::CheckReport> {
        self.alloc_checks
            .lock()
            .expect("alloc checks lock")
            .get(alloc_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The command senders of `alloc_id`'s tasks, `task` only when named.
    fn senders(
        &self,
        alloc_id: &str,
        task: Option<&str>,
    ) -> Result<Vec<(String, mpsc::UnboundedSender<TaskCommand>)>, ControlError> {
        let controls = self.controls.lock().expect("task controls lock");
        let tasks = controls
            .get(alloc_id)
            .ok_or_else(|| ControlError::NotFound(format!("running allocation {alloc_id:?} on this client")))?;
        match task {
            Some(name) => tasks
                .get(name)
                .map(|sender| vec![(name.to_string(), sender.clone())])
                .ok_or_else(|| ControlError::NotFound(format!("running task {name:?} in allocation {alloc_id}"))),
            None => Ok(tasks
                .iter()
                .map(|(name, sender)| (name.clone(), sender.clone()))
                .collect()),
        }
    }

    async fn ask<T>(
        sender: &mpsc::UnboundedSender<TaskCommand>,
        task: &str,
        wait: Duration,
        make: impl FnOnce(oneshot::Sender<Result<T, String>>) -> TaskCommand,
    ) -> Result<T, ControlError> {
        let (reply, answer) = oneshot::channel();
        sender
            .send(make(reply))
            .map_err(|_| ControlError::NotFound(format!("running task {task:?}")))?;
        match tokio::time::timeout(wait, answer).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(error))) => Err(ControlError::Failed(format!("task {task:?}: {error}"))),
            Ok(Err(_)) => Err(ControlError::NotFound(format!("running task {task:?}"))),
            Err(_) => Err(ControlError::Failed(format!(
                "task {task:?} did not answer within {wait:?}: it is not running"
            ))),
        }
    }

    /// Sends `signal` to one task or to every task of the allocation.
    pub async fn signal(&self, alloc_id: &str, task: Option<&str>, signal: &str) -> Result<(), ControlError> {
        for (name, sender) in self.senders(alloc_id, task)? {
            let signal = signal.to_string();
            Self::ask(&sender, &name, TASK_ANSWER_WAIT, |reply| TaskCommand::Signal {
                signal,
                reply,
            })
            .await?;
        }
        Ok(())
    }

    /// Restarts one task or every task of the allocation in place (not
    /// counted by the restart policy).
    pub async fn restart(&self, alloc_id: &str, task: Option<&str>) -> Result<(), ControlError> {
        for (name, sender) in self.senders(alloc_id, task)? {
            Self::ask(&sender, &name, RESTART_WAIT, |reply| TaskCommand::Restart {
                reason: "Restart requested by an operator".to_string(),
                reply,
            })
            .await?;
        }
        Ok(())
    }

    /// The usage of every running task of the allocation.
    pub async fn alloc_stats(&self, alloc_id: &str) -> Result<BTreeMap<String, TaskUsage>, ControlError> {
        let mut usage = BTreeMap::new();
        for (name, sender) in self.senders(alloc_id, None)? {
            let stats = Self::ask(&sender, &name, TASK_ANSWER_WAIT, |reply| TaskCommand::Stats { reply }).await?;
            usage.insert(
                name,
                TaskUsage {
                    stats,
                    timestamp: crate::clock::unix_nanos(),
                },
            );
        }
        Ok(usage)
    }

    /// Collects one terminal allocation, or every terminal one.
    pub async fn gc(&self, alloc_id: Option<&str>) -> Result<(), ControlError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(ClientCommand::Gc {
                alloc_id: alloc_id.map(str::to_string),
                reply,
            })
            .map_err(|_| ControlError::Failed("the client is not running".to_string()))?;
        tokio::time::timeout(RESTART_WAIT, answer)
            .await
            .map_err(|_| ControlError::Failed("garbage collection did not finish in time".to_string()))?
            .map_err(|_| ControlError::Failed("the client is not running".to_string()))?
    }

    /// The node's memory, data disk and uptime.
    pub fn host_stats(&self) -> HostStats {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let field = |name: &str| -> u64 {
            meminfo
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kib| kib * 1024)
        };
        let total = field("MemTotal:");
        let available = field("MemAvailable:");
        let uptime = std::fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|text| text.split('.').next().and_then(|secs| secs.parse().ok()))
            .unwrap_or(0);
        let mut disk_stats = Vec::new();
        if let Ok(stats) = nix::sys::statvfs::statvfs(&self.data_dir) {
            let block = stats.fragment_size();
            let size = stats.blocks() * block;
            let available = stats.blocks_available() * block;
            let used = size.saturating_sub(stats.blocks_free() * block);
            let usage = crate::gc::disk_usage(&self.data_dir).unwrap_or_default();
            disk_stats.push(HostDisk {
                mountpoint: self.data_dir.display().to_string(),
                size,
                used,
                available,
                used_percent: usage.disk_percent,
                inodes_used_percent: usage.inode_percent,
            });
        }
        HostStats {
            memory: HostMemory {
                total,
                available,
                used: total.saturating_sub(available),
                free: field("MemFree:"),
            },
            disk_stats,
            uptime,
            timestamp: crate::clock::unix_nanos(),
            artifact_cache: self.artifacts.cache().stats(),
            running_allocations: self.controls.lock().expect("task controls lock").len() as u64,
        }
    }
}
