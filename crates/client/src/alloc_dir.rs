//! The on-disk layout of an allocation, as Nomad lays it out:
//!
//! ```text
//! <data_dir>/alloc/<alloc_id>/alloc/{logs,data,tmp}     shared by the group's tasks
//! <data_dir>/alloc/<alloc_id>/<task>/{local,secrets,tmp} one per task
//! ```

use crate::error::BuildAllocDirError;
use std::path::{Path, PathBuf};

/// One allocation's directory tree. Building it is idempotent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocDir {
    root: PathBuf,
}

impl AllocDir {
    /// The directory of `alloc_id` under `alloc_root` (`<data_dir>/alloc`).
    pub fn new(alloc_root: &Path, alloc_id: &str) -> AllocDir {
        AllocDir {
            root: alloc_root.join(alloc_id),
        }
    }

    /// `<alloc_id>/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<alloc_id>/alloc`: shared by every task (`NOMAD_ALLOC_DIR`).
    pub fn shared_dir(&self) -> PathBuf {
        self.root.join("alloc")
    }

    /// `<alloc_id>/alloc/logs`.
    pub fn logs_dir(&self) -> PathBuf {
        self.shared_dir().join("logs")
    }

    /// `<alloc_id>/<task>`: the task's working directory.
    pub fn task_dir(&self, task: &str) -> PathBuf {
        self.root.join(task)
    }

    /// `<alloc_id>/<task>/local` (`NOMAD_TASK_DIR`).
    pub fn local_dir(&self, task: &str) -> PathBuf {
        self.task_dir(task).join("local")
    }

    /// `<alloc_id>/<task>/secrets` (`NOMAD_SECRETS_DIR`).
    pub fn secrets_dir(&self, task: &str) -> PathBuf {
        self.task_dir(task).join("secrets")
    }

    /// A task's log file: `<alloc_id>/alloc/logs/<task>.<stream>.<index>`,
    /// where `stream` is `stdout` or `stderr`.
    pub fn log_file(&self, task: &str, stream: &str, index: u32) -> PathBuf {
        self.logs_dir().join(format!("{task}.{stream}.{index}"))
    }

    /// Creates the shared directories and those of `tasks`. A task name
    /// that could leave the allocation's directory (`..`, a `/`, a NUL) is
    /// refused before anything is created, whatever the servers accepted.
    pub fn build<'a>(&self, tasks: impl IntoIterator<Item = &'a str>) -> Result<(), BuildAllocDirError> {
        let tasks: Vec<&str> = tasks.into_iter().collect();
        for task in &tasks {
            if let Err(problem) = types::limits::check_path_name(task) {
                return Err(BuildAllocDirError {
                    path: self.root.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("task name {task:?} cannot be a directory name: {problem}"),
                    ),
                });
            }
        }
        let shared = self.shared_dir();
        let mut dirs = vec![shared.join("logs"), shared.join("data"), shared.join("tmp")];
        let mut secrets = Vec::new();
        for task in tasks {
            let task_dir = self.task_dir(task);
            dirs.extend([task_dir.join("local"), task_dir.join("tmp")]);
            secrets.push(self.secrets_dir(task));
        }
        for dir in dirs {
            std::fs::create_dir_all(&dir).map_err(|source| BuildAllocDirError { path: dir, source })?;
        }
        // Secrets are the owner's only (0700, files 0600), also when the
        // directory is there from before.
        for dir in secrets {
            crate::secure::ensure_secrets_dir(&dir).map_err(|source| BuildAllocDirError { path: dir, source })?;
        }
        Ok(())
    }

    /// Removes the whole tree.
    pub fn destroy(&self) -> std::io::Result<()> {
        match std::fs::remove_dir_all(&self.root) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_nomad_layout() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = AllocDir::new(tmp.path(), "a1");
        dir.build(["web", "sidecar"]).expect("build");
        dir.build(["web"]).expect("build again");
        for path in [
            "a1/alloc/logs",
            "a1/alloc/data",
            "a1/alloc/tmp",
            "a1/web/local",
            "a1/web/secrets",
            "a1/web/tmp",
            "a1/sidecar/local",
        ] {
            assert!(tmp.path().join(path).is_dir(), "{path} missing");
        }
        assert_eq!(
            dir.log_file("web", "stdout", 0),
            tmp.path().join("a1/alloc/logs/web.stdout.0")
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777;
        assert_eq!(mode(&dir.secrets_dir("web")), 0o700);
        // A secrets dir left world-readable (an older version) is fixed on
        // the next build, files included.
        let secrets = dir.secrets_dir("sidecar");
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(secrets.join("token"), b"t").expect("write");
        std::fs::set_permissions(secrets.join("token"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
        dir.build(["web", "sidecar"]).expect("build again");
        assert_eq!(mode(&secrets), 0o700);
        assert_eq!(mode(&secrets.join("token")), 0o600);
        dir.destroy().expect("destroy");
        assert!(!tmp.path().join("a1").exists());
        dir.destroy().expect("destroy twice");
    }

    #[test]
    fn task_names_that_leave_the_directory_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = AllocDir::new(&tmp.path().join("alloc"), "a1");
        for name in ["..", ".", "../../etc", "a/b", "a\0b", ""] {
            let error = dir.build(["web", name]).expect_err("refused");
            assert_eq!(error.source.kind(), std::io::ErrorKind::InvalidInput, "{name:?}");
        }
        assert!(!tmp.path().join("alloc").exists(), "nothing was created");
    }
}
