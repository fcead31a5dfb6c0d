//! The openraft state machine over `state::StateSnapshot`.
//!
//! The state lives in memory and is shared with readers through a lock that
//! is held only to swap in a new snapshot or clone the current one (O(1)).
//! Durability comes from the Raft log plus snapshots written to
//! `snapshot.bin` (atomically replaced, checksummed): on start the last
//! snapshot is loaded and openraft re-applies the committed log after it,
//! which `apply` does deterministically. Snapshots are encoded and written
//! on a blocking thread from an O(1) copy of the state, so applying goes on
//! meanwhile.

use crate::TypeConfig;
use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use state::{CommandResult, StateSnapshot};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

use crate::events::{EventBroker, EventBufferConfig, EventFrame};

impl ApplyStats {
    fn record(&self, took: std::time::Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.total_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.max_nanos.fetch_max(nanos, Ordering::Relaxed);
    }
}

type NodeId = u64;

/// The snapshot file in the server directory.
pub(crate) const SNAPSHOT_FILE: &str = "snapshot.bin";
/// The first bytes of a snapshot file; the SHA-256 of the rest follows.
const SNAPSHOT_MAGIC: &[u8; 8] = b"DRVSNAP2";

/// What a snapshot file holds besides the state itself.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    state: StateSnapshot,
}

fn sm_read_err(error: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(AnyError::new(&error)).into()
}

fn snap_read_err(error: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_snapshot(None, AnyError::new(&error)).into()
}

fn snap_write_err(error: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, AnyError::new(&error)).into()
}

/// The shared, readable side of the state machine.
#[derive(Clone)]
pub struct SharedState {
    state: Arc<RwLock<StateSnapshot>>,
    applied_tx: Arc<watch::Sender<u64>>,
    events: EventBroker,
    apply_stats: Arc<ApplyStats>,
}

/// How long the state machine's applies took, cumulative (for metrics).
#[derive(Debug, Default)]
pub struct ApplyStats {
    /// Commands applied.
    pub count: AtomicU64,
    /// Their total apply time, in nanoseconds.
    pub total_nanos: AtomicU64,
    /// The longest one, in nanoseconds.
    pub max_nanos: AtomicU64,
}

impl SharedState {
    /// A cheap copy of the current state.
    pub fn snapshot(&self) -> StateSnapshot {
        match self.state.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Fires with the last applied index whenever the state changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    /// The events applies produced (ring buffer and live channel).
    pub fn events(&self) -> &EventBroker {
        &self.events
    }

    /// Cumulative apply times.
    pub fn apply_stats(&self) -> &ApplyStats {
        &self.apply_stats
    }

    fn replace(&self, new_state: StateSnapshot, applied: u64) {
        match self.state.write() {
            Ok(mut guard) => *guard = new_state,
            Err(poisoned) => *poisoned.into_inner() = new_state,
        }
        self.applied_tx.send_replace(applied);
    }
}

/// The state machine openraft drives.
pub struct StateMachine {
    dir: PathBuf,
    shared: SharedState,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    snapshot_seq: u64,
    /// Bytes appended to the log since the last snapshot (the log store
    /// adds, a snapshot resets).
    appended_bytes: Arc<AtomicU64>,
}

impl StateMachine {
    /// Opens the state machine, loading the last snapshot from `dir`.
    pub(crate) fn open(
        dir: &Path,
        appended_bytes: Arc<AtomicU64>,
        events: EventBufferConfig,
    ) -> Result<StateMachine, StorageError<NodeId>> {
        let (applied_tx, _) = watch::channel(0);
        let mut machine = StateMachine {
            dir: dir.to_path_buf(),
            shared: SharedState {
                state: Arc::new(RwLock::new(StateSnapshot::new())),
                applied_tx: Arc::new(applied_tx),
                events: EventBroker::new(events),
                apply_stats: Arc::new(ApplyStats::default()),
            },
            last_applied: None,
            membership: StoredMembership::default(),
            snapshot_seq: 0,
            appended_bytes,
        };
        if let Some(stored) = read_snapshot_file(dir)? {
            machine.load_body(&stored.data)?;
        }
        Ok(machine)
    }

    pub(crate) fn shared(&self) -> SharedState {
        self.shared.clone()
    }

    fn load_body(&mut self, data: &[u8]) -> Result<(), StorageError<NodeId>> {
        let body: SnapshotBody = rpc::decode(data).map_err(sm_read_err)?;
        self.last_applied = body.last_applied;
        self.membership = body.membership;
        let applied = self.last_applied.map(|log_id| log_id.index).unwrap_or(0);
        self.shared.replace(body.state, applied);
        Ok(())
    }
}

/// Reads and checks `snapshot.bin`; `None` when there is none yet.
fn read_snapshot_file(dir: &Path) -> Result<Option<StoredSnapshot>, StorageError<NodeId>> {
    let path = dir.join(SNAPSHOT_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(snap_read_err(error)),
    };
    let damaged = |reason: &str| snap_read_err(std::io::Error::other(format!("{}: {reason}", path.display())));
    if bytes.len() < SNAPSHOT_MAGIC.len() + 32 || &bytes[..SNAPSHOT_MAGIC.len()] != SNAPSHOT_MAGIC {
        return Err(damaged("not a Drover snapshot"));
    }
    let (checksum, body) = bytes[SNAPSHOT_MAGIC.len()..].split_at(32);
    if Sha256::digest(body).as_slice() != checksum {
        return Err(damaged("checksum mismatch"));
    }
    rpc::decode(body).map(Some).map_err(snap_read_err)
}

/// Writes `snapshot.bin` atomically, with its checksum.
fn write_snapshot_file(dir: &Path, stored: &StoredSnapshot) -> Result<(), StorageError<NodeId>> {
    let body = rpc::encode(stored).map_err(snap_write_err)?;
    let mut bytes = Vec::with_capacity(SNAPSHOT_MAGIC.len() + 32 + body.len());
    bytes.extend_from_slice(SNAPSHOT_MAGIC);
    bytes.extend_from_slice(&Sha256::digest(&body));
    bytes.extend_from_slice(&body);
    crate::datadir::write_private_file(&dir.join(SNAPSHOT_FILE), &bytes).map_err(snap_write_err)
}

/// Builds snapshots from a frozen copy of the state.
pub struct SnapshotBuilder {
    dir: PathBuf,
    state: StateSnapshot,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    seq: u64,
    appended_bytes: Arc<AtomicU64>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let body = SnapshotBody {
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            state: self.state.clone(),
        };
        let snapshot_id = match self.last_applied {
            Some(log_id) => format!("{}-{}-{}", log_id.leader_id, log_id.index, self.seq),
            None => format!("empty-{}", self.seq),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let dir = self.dir.clone();
        let file_meta = meta.clone();
        // Encoding a large state takes a while: keep it off the runtime.
        let data = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, StorageError<NodeId>> {
            let data = rpc::encode(&body).map_err(snap_write_err)?;
            let stored = StoredSnapshot { meta: file_meta, data };
            write_snapshot_file(&dir, &stored)?;
            Ok(stored.data)
        })
        .await
        .map_err(snap_write_err)??;
        self.appended_bytes.store(0, Ordering::Relaxed);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut next = self.shared.snapshot();
        let mut results = Vec::new();
        let mut frames = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => results.push(CommandResult {
                    index: entry.log_id.index,
                    ..CommandResult::default()
                }),
                EntryPayload::Normal(command) => {
                    let started = std::time::Instant::now();
                    let (result, events) = next.apply_with_events(entry.log_id.index, command);
                    self.shared.apply_stats.record(started.elapsed());
                    if !events.is_empty() {
                        frames.push(EventFrame {
                            index: entry.log_id.index,
                            events,
                        });
                    }
                    results.push(result);
                }
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), membership);
                    results.push(CommandResult {
                        index: entry.log_id.index,
                        ..CommandResult::default()
                    });
                }
            }
        }
        let applied = self.last_applied.map(|log_id| log_id.index).unwrap_or(0);
        self.shared.replace(next, applied);
        // After the state is visible: a subscriber that reads the state on
        // an event finds at least that event's change.
        self.shared.events.publish(frames);
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshot_seq += 1;
        SnapshotBuilder {
            dir: self.dir.clone(),
            state: self.shared.snapshot(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            seq: self.snapshot_seq,
            appended_bytes: Arc::clone(&self.appended_bytes),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        self.load_body(&data)?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        let dir = self.dir.clone();
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        tokio::task::spawn_blocking(move || write_snapshot_file(&dir, &stored))
            .await
            .map_err(snap_write_err)??;
        self.appended_bytes.store(0, Ordering::Relaxed);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let dir = self.dir.clone();
        let stored = tokio::task::spawn_blocking(move || read_snapshot_file(&dir))
            .await
            .map_err(snap_read_err)??;
        Ok(stored.map(|stored| Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_snapshot_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stored = StoredSnapshot {
            meta: SnapshotMeta::default(),
            data: rpc::encode(&SnapshotBody {
                last_applied: None,
                membership: StoredMembership::default(),
                state: StateSnapshot::new(),
            })
            .expect("encode"),
        };
        write_snapshot_file(dir.path(), &stored).expect("write");
        assert!(read_snapshot_file(dir.path()).expect("read").is_some());
        let path = dir.path().join(SNAPSHOT_FILE);
        let mut bytes = std::fs::read(&path).expect("bytes");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&path, &bytes).expect("flip");
        let error = read_snapshot_file(dir.path()).err().expect("damaged");
        assert!(error.to_string().contains("checksum"), "{error}");
        std::fs::write(&path, &bytes[..10]).expect("truncate");
        assert!(read_snapshot_file(dir.path()).is_err());
    }
}
