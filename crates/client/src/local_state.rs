//! Local state for reattaching after an agent restart: one small JSON file
//! per allocation under `<data_dir>/client/allocs/`, holding the allocation,
//! its job, the task states and the driver handles of running tasks.
//!
//! Files are replaced atomically (write to a temporary name, then rename),
//! so a crash mid-write leaves the previous version. They are not fsynced:
//! they must survive the agent being killed, not the machine losing power.

use crate::error::LocalStateError;
use driver_api::TaskHandle;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use types::{AllocClientStatus, Allocation, Job, TaskState};

/// What the client remembers about one allocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalAllocState {
    /// The allocation as the servers last sent it.
    pub alloc: Allocation,
    /// The job version it runs.
    pub job: Job,
    /// The status last derived from the tasks.
    pub client_status: AllocClientStatus,
    /// Its human-readable description.
    pub client_description: String,
    /// Every task's state, with its events.
    pub task_states: BTreeMap<String, TaskState>,
    /// Handles of tasks that were running when the state was written.
    pub handles: BTreeMap<String, TaskHandle>,
}

/// The directory of allocation state files.
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
}

impl LocalStore {
    /// A store in `<client_dir>/allocs`.
    pub fn new(client_dir: &std::path::Path) -> LocalStore {
        LocalStore {
            dir: client_dir.join("allocs"),
        }
    }

    fn path(&self, alloc_id: &str) -> PathBuf {
        self.dir.join(format!("{alloc_id}.json"))
    }

    /// Writes (replaces) the state of one allocation.
    pub fn save(&self, state: &LocalAllocState) -> Result<(), LocalStateError> {
        let bytes = serde_json::to_vec(state).map_err(|source| LocalStateError::Encode {
            alloc_id: state.alloc.id.clone(),
            source,
        })?;
        std::fs::create_dir_all(&self.dir).map_err(|source| LocalStateError::Write {
            path: self.dir.clone(),
            source,
        })?;
        let path = self.path(&state.alloc.id);
        let temporary = path.with_extension("json.tmp");
        // The job inside may carry secrets in its environment.
        crate::secure::write_private(&temporary, &bytes).map_err(|source| LocalStateError::Write {
            path: temporary.clone(),
            source,
        })?;
        std::fs::rename(&temporary, &path).map_err(|source| LocalStateError::Write { path, source })
    }

    /// Forgets one allocation.
    pub fn remove(&self, alloc_id: &str) -> Result<(), LocalStateError> {
        let path = self.path(alloc_id);
        match std::fs::remove_file(&path) {
            Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                Err(LocalStateError::Write { path, source })
            }
            _ => Ok(()),
        }
    }

    /// Every stored allocation. Unreadable files are reported and skipped.
    pub fn load_all(&self) -> Vec<LocalAllocState> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut states = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|ext| ext.to_str()) != Some("json") {
                continue;
            }
            match Self::load(&path) {
                Ok(state) => states.push(state),
                Err(error) => tracing::warn!(%error, "skipping local allocation state"),
            }
        }
        states.sort_by(|a, b| a.alloc.id.cmp(&b.alloc.id));
        states
    }

    fn load(path: &std::path::Path) -> Result<LocalAllocState, LocalStateError> {
        let bytes = std::fs::read(path).map_err(|source| LocalStateError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| LocalStateError::Decode {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_bad_files_are_skipped() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(tmp.path());
        assert!(store.load_all().is_empty());
        let mut state = LocalAllocState {
            alloc: Allocation {
                id: "a1".into(),
                ..Allocation::default()
            },
            job: Job::default(),
            client_status: AllocClientStatus::Running,
            client_description: String::new(),
            task_states: BTreeMap::new(),
            handles: BTreeMap::new(),
        };
        state.handles.insert(
            "web".into(),
            TaskHandle {
                driver: "raw_exec".into(),
                state: serde_json::json!({"pid": 7}),
                ..TaskHandle::default()
            },
        );
        store.save(&state).expect("save");
        store.save(&state).expect("save again");
        std::fs::write(tmp.path().join("allocs/broken.json"), b"{not json").expect("write");
        assert_eq!(store.load_all(), vec![state]);
        store.remove("a1").expect("remove");
        store.remove("a1").expect("remove twice");
        assert!(store.load_all().is_empty());
    }
}
