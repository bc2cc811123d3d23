//! The Raft log, vote and commit index in sled.
//!
//! Keys in the `raft_log` tree are big-endian indexes so sled's order is log
//! order. Every write that openraft must see durable (append, vote,
//! truncate) is flushed to disk before it is reported done: an acknowledged
//! write survives a crash of every manager.
//!
//! Every value is sealed with the manager's data-encryption key
//! ([`super::encryption`]), bound to its tree and key: a log entry carries
//! the cluster object (root CA key, join tokens), so nothing readable of it
//! reaches the disk, and an entry copied to another index does not open.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;

use super::encryption::{place, DataKey};
use super::storage_error;
use super::types::{Entry, LogId, StorageError, TypeConfig};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";
pub(crate) const LOG_TREE: &str = "raft_log";
pub(crate) const META_TREE: &str = "raft_meta";

/// Cheap to clone: sled trees are shared handles.
#[derive(Clone)]
pub struct LogStore {
    db: sled::Db,
    logs: sled::Tree,
    meta: sled::Tree,
    dek: DataKey,
    flusher: mpsc::UnboundedSender<LogFlushed<TypeConfig>>,
}

impl LogStore {
    /// Opens the log trees and starts the flusher. Must run inside a tokio runtime.
    /// Values are sealed with `dek`.
    pub fn open(db: &sled::Db, dek: DataKey) -> Result<Self, sled::Error> {
        let (flusher, pending) = mpsc::unbounded_channel();
        tokio::spawn(group_commit(db.clone(), pending));
        Ok(LogStore {
            db: db.clone(),
            logs: db.open_tree(LOG_TREE)?,
            meta: db.open_tree(META_TREE)?,
            dek,
            flusher,
        })
    }

    fn get_meta<T: DeserializeOwned>(
        &self,
        key: &[u8],
        subject: ErrorSubject<u64>,
    ) -> Result<Option<T>, StorageError> {
        let bytes = self
            .meta
            .get(key)
            .map_err(|e| storage_error(subject.clone(), ErrorVerb::Read, e))?;
        let Some(sealed) = bytes else {
            return Ok(None);
        };
        let plain = self
            .dek
            .open(&place(META_TREE, key), &sealed, || {
                format!("the value {:?}", String::from_utf8_lossy(key))
            })
            .map_err(|e| storage_error(subject.clone(), ErrorVerb::Read, e))?;
        bincode::deserialize(&plain)
            .map(Some)
            .map_err(|e| storage_error(subject, ErrorVerb::Read, e))
    }

    fn put_meta<T: Serialize>(
        &self,
        key: &[u8],
        value: &T,
        subject: ErrorSubject<u64>,
    ) -> Result<(), StorageError> {
        let bytes = bincode::serialize(value)
            .map_err(|e| storage_error(subject.clone(), ErrorVerb::Write, e))?;
        self.meta
            .insert(key, self.dek.seal(&place(META_TREE, key), &bytes))
            .map_err(|e| storage_error(subject, ErrorVerb::Write, e))?;
        Ok(())
    }

    async fn flush(&self, subject: ErrorSubject<u64>) -> Result<(), StorageError> {
        self.db
            .flush_async()
            .await
            .map_err(|e| storage_error(subject, ErrorVerb::Write, e))?;
        Ok(())
    }

    fn last_entry(&self) -> Result<Option<Entry>, StorageError> {
        let last = self
            .logs
            .last()
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        last.map(|(k, v)| self.decode_entry(&k, &v)).transpose()
    }

    /// Seals and writes `entries` (not flushed).
    fn write_entries(&self, entries: impl IntoIterator<Item = Entry>) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = bincode::serialize(&entry)
                .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Write, e))?;
            let key = index_key(entry.log_id.index);
            batch.insert(&key, self.dek.seal(&place(LOG_TREE, &key), &bytes));
        }
        self.logs
            .apply_batch(batch)
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Write, e))
    }

    /// Appends and flushes without openraft's callback (which only openraft
    /// can make), for tests of what reaches the disk.
    #[cfg(test)]
    pub(crate) async fn append_for_test(&mut self, entries: Vec<Entry>) {
        self.write_entries(entries).expect("append");
        self.flush(ErrorSubject::Logs).await.expect("flush");
    }

    fn decode_entry(&self, key: &[u8], sealed: &[u8]) -> Result<Entry, StorageError> {
        let plain = self
            .dek
            .open(&place(LOG_TREE, key), sealed, || match key.try_into() {
                Ok(index) => format!("log entry {}", u64::from_be_bytes(index)),
                Err(_) => format!("the log entry at key {key:?}"),
            })
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        bincode::deserialize(&plain)
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))
    }
}

/// Completes appends in order, one fsync for everything appended since the
/// previous one. A flush covers every write made before it started, so each
/// callback it completes is truthful.
async fn group_commit(db: sled::Db, mut pending: mpsc::UnboundedReceiver<LogFlushed<TypeConfig>>) {
    while let Some(first) = pending.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = pending.try_recv() {
            batch.push(more);
        }
        let result = db.flush_async().await;
        for callback in batch {
            callback.log_io_completed(match &result {
                Ok(_) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            });
        }
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let mut entries = Vec::new();
        for item in self.logs.range(index_key(start)..) {
            let (key, value) =
                item.map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            let index = u64::from_be_bytes(key.as_ref().try_into().expect("8-byte log key"));
            if !range.contains(&index) {
                break;
            }
            entries.push(self.decode_entry(&key, &value)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> =
            self.get_meta(KEY_LAST_PURGED, ErrorSubject::Store)?;
        let last_log_id = self.last_entry()?.map(|e| e.log_id).or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        self.put_meta(KEY_VOTE, vote, ErrorSubject::Vote)?;
        self.flush(ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.get_meta(KEY_VOTE, ErrorSubject::Vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed: a lost commit index is recomputed by the leader, it
        // only saves replaying on restart.
        self.put_meta(KEY_COMMITTED, &committed, ErrorSubject::Store)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self
            .get_meta::<Option<LogId>>(KEY_COMMITTED, ErrorSubject::Store)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.write_entries(entries)?;
        // Durability is reported by the flusher once an fsync covers these
        // entries; meanwhile openraft goes on appending, so concurrent writes
        // share fsyncs (group commit) instead of queueing one fsync each.
        if let Err(unsent) = self.flusher.send(callback) {
            let flushed = self
                .db
                .flush_async()
                .await
                .map(|_| ())
                .map_err(std::io::Error::other);
            unsent.0.log_io_completed(flushed);
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for key in self.logs.range(index_key(log_id.index)..).keys() {
            batch.remove(key.map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?);
        }
        self.logs
            .apply_batch(batch)
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        self.flush(ErrorSubject::Logs).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first: entries at or before it are ignored
        // by openraft, so a crash between the two steps is harmless.
        self.put_meta(KEY_LAST_PURGED, &log_id, ErrorSubject::Store)?;
        let mut batch = sled::Batch::default();
        for key in self.logs.range(..=index_key(log_id.index)).keys() {
            batch.remove(key.map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?);
        }
        self.logs
            .apply_batch(batch)
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        Ok(())
    }
}
