//! The Raft state machine: applies committed commands to the shared
//! [`ClusterState`], and snapshots it.
//!
//! The applied state lives in memory; the latest snapshot is kept in sled.
//! On restart the state is loaded from that snapshot and openraft re-applies
//! the committed log after it, so nothing acknowledged is lost between
//! snapshots. The stored snapshot is sealed with the manager's
//! data-encryption key ([`super::encryption`]) like every log value.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use super::encryption::{place, DataKey};
use super::storage_error;
use super::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::store::{Applied, ClusterState, Command, SharedStore, StoreEvent};

const KEY_SNAPSHOT: &[u8] = b"current";
pub(crate) const SNAPSHOT_TREE: &str = "snapshot";

/// What a snapshot holds: the state and where in the log it stands.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    state: ClusterState,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

pub struct StateMachine {
    store: Arc<SharedStore>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    snapshots: sled::Tree,
    db: sled::Db,
    dek: DataKey,
}

impl StateMachine {
    /// Opens the state machine, restoring the latest snapshot into `store`;
    /// the snapshot is sealed with `dek`.
    pub fn open(
        db: &sled::Db,
        store: Arc<SharedStore>,
        dek: DataKey,
    ) -> Result<Self, StorageError> {
        let snapshots = db
            .open_tree(SNAPSHOT_TREE)
            .map_err(|e| storage_error(ErrorSubject::StateMachine, ErrorVerb::Read, e))?;
        let mut sm = StateMachine {
            store,
            last_applied: None,
            last_membership: StoredMembership::default(),
            snapshots,
            db: db.clone(),
            dek,
        };
        if let Some(stored) = sm.stored_snapshot()? {
            sm.restore(&stored.data)?;
        }
        Ok(sm)
    }

    pub fn store(&self) -> &Arc<SharedStore> {
        &self.store
    }

    fn stored_snapshot(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        let bytes = self
            .snapshots
            .get(KEY_SNAPSHOT)
            .map_err(|e| storage_error(ErrorSubject::StateMachine, ErrorVerb::Read, e))?;
        let Some(sealed) = bytes else {
            return Ok(None);
        };
        let plain = self
            .dek
            .open(&place(SNAPSHOT_TREE, KEY_SNAPSHOT), &sealed, || {
                "the snapshot".to_string()
            })
            .map_err(|e| storage_error(ErrorSubject::StateMachine, ErrorVerb::Read, e))?;
        bincode::deserialize(&plain)
            .map(Some)
            .map_err(|e| storage_error(ErrorSubject::StateMachine, ErrorVerb::Read, e))
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), StorageError> {
        let snapshot: SnapshotData = bincode::deserialize(data)
            .map_err(|e| storage_error(ErrorSubject::StateMachine, ErrorVerb::Read, e))?;
        self.last_applied = snapshot.last_applied;
        self.last_membership = snapshot.last_membership;
        self.store.write(|state, events| {
            *state = snapshot.state;
            events.push(StoreEvent::Reset);
        });
        Ok(())
    }

    async fn save_snapshot(&self, meta: &SnapshotMeta, data: Vec<u8>) -> Result<(), StorageError> {
        let signature = meta.signature();
        let stored = bincode::serialize(&StoredSnapshot {
            meta: meta.clone(),
            data,
        })
        .map_err(|e| {
            storage_error(
                ErrorSubject::Snapshot(Some(signature.clone())),
                ErrorVerb::Write,
                e,
            )
        })?;
        let sealed = self.dek.seal(&place(SNAPSHOT_TREE, KEY_SNAPSHOT), &stored);
        self.snapshots.insert(KEY_SNAPSHOT, sealed).map_err(|e| {
            storage_error(
                ErrorSubject::Snapshot(Some(signature.clone())),
                ErrorVerb::Write,
                e,
            )
        })?;
        self.db.flush_async().await.map_err(|e| {
            storage_error(ErrorSubject::Snapshot(Some(signature)), ErrorVerb::Write, e)
        })?;
        Ok(())
    }
}

/// Builds a snapshot from a copy of the state taken when openraft asked for
/// the builder, so applying can go on meanwhile.
pub struct SnapshotBuilder {
    data: SnapshotData,
    snapshots: sled::Tree,
    db: sled::Db,
    dek: DataKey,
    store: Arc<SharedStore>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let started = std::time::Instant::now();
        let bytes = bincode::serialize(&self.data)
            .map_err(|e| storage_error(ErrorSubject::StateMachine, ErrorVerb::Read, e))?;
        let snapshot_id = match self.data.last_applied {
            Some(id) => format!("{}-{}", id.leader_id, id.index),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta {
            last_log_id: self.data.last_applied,
            last_membership: self.data.last_membership.clone(),
            snapshot_id,
        };
        let sm = StateMachine {
            store: self.store.clone(),
            last_applied: None,
            last_membership: StoredMembership::default(),
            snapshots: self.snapshots.clone(),
            db: self.db.clone(),
            dek: self.dek.clone(),
        };
        sm.save_snapshot(&meta, bytes.clone()).await?;
        // The scale benchmark reads its figures from this line.
        tracing::info!(
            bytes = bytes.len(),
            tasks = self.data.state.tasks.len(),
            ms = started.elapsed().as_millis() as u64,
            "snapshot built"
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let mut last_applied = self.last_applied;
        let mut last_membership = self.last_membership.clone();
        let results = self.store.write(|state, events| {
            entries
                .into_iter()
                .map(|entry| {
                    last_applied = Some(entry.log_id);
                    match entry.payload {
                        EntryPayload::Blank => Applied::One(Ok(())),
                        EntryPayload::Normal(Command::Batch(commands)) => Applied::Many(
                            commands
                                .into_iter()
                                .map(|command| state.apply(command, events))
                                .collect(),
                        ),
                        EntryPayload::Normal(command) => Applied::One(state.apply(command, events)),
                        EntryPayload::Membership(membership) => {
                            last_membership = StoredMembership::new(Some(entry.log_id), membership);
                            Applied::One(Ok(()))
                        }
                    }
                })
                .collect()
        });
        self.last_applied = last_applied;
        self.last_membership = last_membership;
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            data: SnapshotData {
                last_applied: self.last_applied,
                last_membership: self.last_membership.clone(),
                state: self.store.read(Clone::clone),
            },
            snapshots: self.snapshots.clone(),
            db: self.db.clone(),
            dek: self.dek.clone(),
            store: self.store.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let started = std::time::Instant::now();
        let data = snapshot.into_inner();
        let bytes = data.len();
        self.restore(&data)?;
        self.save_snapshot(meta, data).await?;
        tracing::info!(
            bytes,
            ms = started.elapsed().as_millis() as u64,
            "snapshot installed"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        Ok(self.stored_snapshot()?.map(|stored| Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}
