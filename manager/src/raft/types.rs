//! The openraft type configuration: Raft log entries carry store
//! [`Command`]s and return what they [`Applied`]; managers are known by a
//! random `u64` Raft ID and reached at their advertise address.

use std::io::Cursor;

use crate::store::{Applied, Command};

openraft::declare_raft_types!(
    /// shoal's Raft types.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = u64,
        Node = openraft::BasicNode,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<u64>;
pub type StoredMembership = openraft::StoredMembership<u64, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<u64, openraft::BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<u64>;
