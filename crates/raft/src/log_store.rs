//! The Raft log, vote and committed pointer, persisted in redb. Every write
//! is committed (fsync) before openraft is told it is durable, so an
//! acknowledged write survives a crash. Entries are stored in the wire
//! encoding (`rpc::codec`, MessagePack), and the bytes appended since the
//! last snapshot are counted so snapshots can be taken by size too.

use crate::TypeConfig;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, RaftLogReader, StorageError, StorageIOError, Vote};
use redb::{Database, ReadableTable, TableDefinition};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_logs");
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_LAST_PURGED: &str = "last_purged";

type NodeId = u64;

fn read_err(error: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_logs(AnyError::new(&error)).into()
}

fn write_err(error: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(AnyError::new(&error)).into()
}

/// Decodes every stored entry and metadata value. Run at start-up, so a
/// damaged log is reported with its file name before openraft reads it.
pub(crate) fn verify(db: &Database) -> Result<(), String> {
    let txn = db.begin_read().map_err(|error| error.to_string())?;
    let logs = txn.open_table(LOGS).map_err(|error| error.to_string())?;
    for item in logs.iter().map_err(|error| error.to_string())? {
        let (index, bytes) = item.map_err(|error| error.to_string())?;
        rpc::decode::<Entry<TypeConfig>>(bytes.value())
            .map_err(|error| format!("log entry {}: {error}", index.value()))?;
    }
    let meta = txn.open_table(META).map_err(|error| error.to_string())?;
    for item in meta.iter().map_err(|error| error.to_string())? {
        let (name, bytes) = item.map_err(|error| error.to_string())?;
        let valid = match name.value() {
            KEY_VOTE => rpc::decode::<Vote<NodeId>>(bytes.value()).map(drop),
            _ => rpc::decode::<Option<LogId<NodeId>>>(bytes.value()).map(drop),
        };
        valid.map_err(|error| format!("{}: {error}", name.value()))?;
    }
    Ok(())
}

/// The redb-backed log store. Cheap to clone: readers share the database.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// Bytes of entries appended since the last snapshot.
    appended_bytes: Arc<AtomicU64>,
}

impl LogStore {
    pub(crate) fn new(db: Arc<Database>, appended_bytes: Arc<AtomicU64>) -> LogStore {
        LogStore { db, appended_bytes }
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StorageError<NodeId>> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(META).map_err(read_err)?;
        let Some(bytes) = table.get(name).map_err(read_err)? else {
            return Ok(None);
        };
        rpc::decode(bytes.value()).map(Some).map_err(read_err)
    }

    fn put_meta<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<(), StorageError<NodeId>> {
        let bytes = rpc::encode(value).map_err(write_err)?;
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut table = txn.open_table(META).map_err(write_err)?;
            table.insert(name, bytes.as_slice()).map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }

    fn last_entry(&self) -> Result<Option<Entry<TypeConfig>>, StorageError<NodeId>> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(LOGS).map_err(read_err)?;
        let Some((_, bytes)) = table.last().map_err(read_err)? else {
            return Ok(None);
        };
        rpc::decode(bytes.value()).map(Some).map_err(read_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let start = match range.start_bound() {
            Bound::Included(&start) => start,
            Bound::Excluded(&start) => start.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(LOGS).map_err(read_err)?;
        let mut entries = Vec::new();
        for item in table.range(start..).map_err(read_err)? {
            let (index, bytes) = item.map_err(read_err)?;
            if !range.contains(&index.value()) {
                break;
            }
            entries.push(rpc::decode(bytes.value()).map_err(read_err)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.get_meta(KEY_LAST_PURGED)?;
        let last_log_id = match self.last_entry()? {
            Some(entry) => Some(entry.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.put_meta(KEY_VOTE, vote)
            .map_err(|error| StorageIOError::write_vote(AnyError::new(&error)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.get_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        self.put_meta(KEY_COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.get_meta::<Option<LogId<NodeId>>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let txn = self.db.begin_write().map_err(write_err)?;
        let mut appended = 0u64;
        {
            let mut table = txn.open_table(LOGS).map_err(write_err)?;
            let mut bytes = Vec::new();
            for entry in entries {
                bytes.clear();
                rpc::codec::encode_into(&entry, &mut bytes).map_err(write_err)?;
                appended += bytes.len() as u64;
                table.insert(entry.log_id.index, bytes.as_slice()).map_err(write_err)?;
            }
        }
        self.appended_bytes.fetch_add(appended, Ordering::Relaxed);
        // redb commits durably (fsync) by default: only then is the write acknowledged.
        let committed = txn.commit();
        match committed {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(error) => {
                callback.log_io_completed(Err(std::io::Error::other(error.to_string())));
                Err(write_err(error))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut table = txn.open_table(LOGS).map_err(write_err)?;
            table.retain_in(log_id.index.., |_, _| false).map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let bytes = rpc::encode(&Some(log_id)).map_err(write_err)?;
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut meta = txn.open_table(META).map_err(write_err)?;
            meta.insert(KEY_LAST_PURGED, bytes.as_slice()).map_err(write_err)?;
            let mut table = txn.open_table(LOGS).map_err(write_err)?;
            table.retain_in(..=log_id.index, |_, _| false).map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }
}
