//! The openraft state machine over `state::StateSnapshot`.
//!
//! The state lives in memory and is shared with readers through a lock that
//! is held only to swap in a new snapshot or clone the current one (O(1)).
//! Durability comes from the Raft log plus snapshots written to redb: on
//! start the last snapshot is loaded and openraft re-applies the committed
//! log after it, which `apply` does deterministically.

use crate::TypeConfig;
use crate::log_store::META;
use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, StorageError, StorageIOError,
    StoredMembership,
};
use redb::{Database, TableDefinition};
use serde::{Deserialize, Serialize};
use state::{CommandResult, StateSnapshot};
use std::io::Cursor;
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

type NodeId = u64;

const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_snapshot");
const KEY_SNAPSHOT: &str = "current";

/// What a snapshot file holds besides the state itself.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
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

fn snap_write_err(error: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, AnyError::new(&error)).into()
}

/// The shared, readable side of the state machine.
#[derive(Clone)]
pub struct SharedState {
    state: Arc<RwLock<StateSnapshot>>,
    applied_tx: Arc<watch::Sender<u64>>,
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

    fn replace(&self, new_state: StateSnapshot) {
        let index = new_state.index();
        match self.state.write() {
            Ok(mut guard) => *guard = new_state,
            Err(poisoned) => *poisoned.into_inner() = new_state,
        }
        self.applied_tx.send_replace(index);
    }
}

/// The state machine openraft drives.
pub struct StateMachine {
    db: Arc<Database>,
    shared: SharedState,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    snapshot_seq: u64,
}

impl StateMachine {
    /// Opens the state machine, loading the last snapshot from `db`.
    pub(crate) fn open(db: Arc<Database>) -> Result<StateMachine, StorageError<NodeId>> {
        let (applied_tx, _) = watch::channel(0);
        let mut machine = StateMachine {
            db,
            shared: SharedState {
                state: Arc::new(RwLock::new(StateSnapshot::new())),
                applied_tx: Arc::new(applied_tx),
            },
            last_applied: None,
            membership: StoredMembership::default(),
            snapshot_seq: 0,
        };
        if let Some(stored) = machine.read_stored_snapshot()? {
            machine.load_body(&stored.data)?;
        }
        Ok(machine)
    }

    pub(crate) fn shared(&self) -> SharedState {
        self.shared.clone()
    }

    fn load_body(&mut self, data: &[u8]) -> Result<(), StorageError<NodeId>> {
        let body: SnapshotBody = serde_json::from_slice(data).map_err(sm_read_err)?;
        self.last_applied = body.last_applied;
        self.membership = body.membership;
        self.shared.replace(body.state);
        Ok(())
    }

    fn read_stored_snapshot(&self) -> Result<Option<StoredSnapshot>, StorageError<NodeId>> {
        let txn = self.db.begin_read().map_err(sm_read_err)?;
        let table = match txn.open_table(SNAPSHOTS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(error) => return Err(sm_read_err(error)),
        };
        let Some(bytes) = table.get(KEY_SNAPSHOT).map_err(sm_read_err)? else {
            return Ok(None);
        };
        serde_json::from_slice(bytes.value()).map(Some).map_err(sm_read_err)
    }

    fn write_stored_snapshot(db: &Database, stored: &StoredSnapshot) -> Result<(), StorageError<NodeId>> {
        let bytes = serde_json::to_vec(stored).map_err(snap_write_err)?;
        let txn = db.begin_write().map_err(snap_write_err)?;
        {
            let mut table = txn.open_table(SNAPSHOTS).map_err(snap_write_err)?;
            table.insert(KEY_SNAPSHOT, bytes.as_slice()).map_err(snap_write_err)?;
            // Touch the meta table so both exist after the first snapshot.
            let _ = txn.open_table(META).map_err(snap_write_err)?;
        }
        txn.commit().map_err(snap_write_err)
    }
}

/// Builds snapshots from a frozen copy of the state.
pub struct SnapshotBuilder {
    db: Arc<Database>,
    state: StateSnapshot,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    seq: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let body = SnapshotBody {
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            state: self.state.clone(),
        };
        let data = serde_json::to_vec(&body).map_err(snap_write_err)?;
        let snapshot_id = match self.last_applied {
            Some(log_id) => format!("{}-{}-{}", log_id.leader_id, log_id.index, self.seq),
            None => format!("empty-{}", self.seq),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        StateMachine::write_stored_snapshot(&self.db, &stored)?;
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
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => results.push(CommandResult {
                    index: entry.log_id.index,
                    ..CommandResult::default()
                }),
                EntryPayload::Normal(command) => results.push(next.apply(entry.log_id.index, command)),
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), membership);
                    results.push(CommandResult {
                        index: entry.log_id.index,
                        ..CommandResult::default()
                    });
                }
            }
        }
        self.shared.replace(next);
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshot_seq += 1;
        SnapshotBuilder {
            db: Arc::clone(&self.db),
            state: self.shared.snapshot(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            seq: self.snapshot_seq,
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
        StateMachine::write_stored_snapshot(
            &self.db,
            &StoredSnapshot {
                meta: meta.clone(),
                data,
            },
        )
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.read_stored_snapshot()?.map(|stored| Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}
