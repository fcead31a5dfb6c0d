//! Support for the driver conformance suite (`tests/conformance.rs`): one
//! set of tests run against every built-in driver, each driver asked to run
//! the same POSIX shell scripts.
//!
//! [`DriverKind`] knows, per driver, how to build the driver and how to
//! phrase "run this script" in its config; [`TaskSpec`] lays out a task's
//! directories the way the client does. The `driver-host` binary uses the
//! same pieces to play a client that is `kill -9`ed in the reattach test.

use driver_api::{Driver, LogPaths, TaskConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use types::LogConfig;

/// The image the docker tests run (built by `scripts/docker-test-image.sh`).
pub const TEST_IMAGE: &str = "drover-test/busybox:latest";

/// A driver under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DriverKind {
    RawExec,
    Exec,
    Docker,
}

impl DriverKind {
    /// The driver, configured for tests (docker: no image GC, so the shared
    /// test image stays).
    pub fn driver(self) -> Arc<dyn Driver> {
        match self {
            DriverKind::RawExec => Arc::new(raw_exec::RawExecDriver::new()),
            DriverKind::Exec => Arc::new(exec::ExecDriver::default()),
            DriverKind::Docker => {
                let mut plugin = docker::config::DockerPluginConfig::default();
                plugin.gc.image = false;
                Arc::new(docker::DockerDriver::new(plugin))
            }
        }
    }

    /// The task config that runs `script` with `/bin/sh -c`.
    pub fn shell_config(self, script: &str) -> serde_json::Value {
        match self {
            DriverKind::RawExec | DriverKind::Exec => {
                serde_json::json!({"command": "/bin/sh", "args": ["-c", script]})
            }
            DriverKind::Docker => serde_json::json!({
                "image": TEST_IMAGE,
                "command": "/bin/sh",
                "args": ["-c", script],
            }),
        }
    }
}

/// What one conformance task looks like; serialisable so the host process
/// gets the same task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub kind: DriverKind,
    /// The allocation directory (`<root>/alloc`, `<root>/<task>`).
    pub root: PathBuf,
    pub alloc_id: String,
    pub task_name: String,
    pub script: String,
    pub env: BTreeMap<String, String>,
    pub max_files: u32,
    pub max_file_size_mb: u32,
    pub memory_mb: i64,
}

impl TaskSpec {
    /// A task named `web` of a fresh allocation under `root`.
    pub fn new(kind: DriverKind, root: &Path, alloc_id: &str, script: &str) -> TaskSpec {
        TaskSpec {
            kind,
            root: root.to_path_buf(),
            alloc_id: alloc_id.to_string(),
            task_name: "web".to_string(),
            script: script.to_string(),
            env: BTreeMap::from([(
                "PATH".to_string(),
                "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".to_string(),
            )]),
            max_files: 10,
            max_file_size_mb: 10,
            memory_mb: 0,
        }
    }

    /// The allocation's log layout.
    pub fn logs(&self) -> LogPaths {
        LogPaths::for_task(
            self.root.join("alloc/logs"),
            &self.task_name,
            LogConfig {
                max_files: self.max_files,
                max_file_size_mb: self.max_file_size_mb,
                disabled: false,
            },
        )
    }

    /// Creates the directories and returns the driver's config, writing to
    /// `stdout`/`stderr` (the collector's FIFOs).
    pub fn task_config(&self, stdout: &Path, stderr: &Path) -> TaskConfig {
        let task_dir = self.root.join(&self.task_name);
        for dir in [
            self.root.join("alloc/logs"),
            self.root.join("alloc/data"),
            task_dir.join("local"),
            task_dir.join("secrets"),
        ] {
            let _ = std::fs::create_dir_all(dir);
        }
        let mut config = TaskConfig {
            alloc_id: self.alloc_id.clone(),
            task_name: self.task_name.clone(),
            config: self.kind.shell_config(&self.script),
            env: self.env.clone(),
            alloc_dir: self.root.join("alloc"),
            task_dir,
            logs: self.logs(),
            stdout_path: stdout.to_path_buf(),
            stderr_path: stderr.to_path_buf(),
            ..TaskConfig::default()
        };
        config.resources.memory_mb = self.memory_mb;
        config
    }

    /// The path of the `index`th stdout file.
    pub fn stdout_file(&self, index: u32) -> PathBuf {
        self.logs().stdout_path(index)
    }
}
