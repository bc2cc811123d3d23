//! openraft's storage conformance suite against the sled log store and the
//! state machine, both encrypting (every store is: there is no plain mode),
//! and what a user notices of the encryption through the store: values on
//! disk unreadable, a changed byte or a moved value refused clearly.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};

use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::types::{StorageError, TypeConfig};
use crate::store::SharedStore;

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for SledBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (db, keys) =
            super::migrate::open_store(&dir.path().join("raft"), None).expect("open sled");
        let log = LogStore::open(&db, keys.dek().clone()).expect("log store");
        let sm = StateMachine::open(&db, Arc::new(SharedStore::default()), keys.dek().clone())?;
        Ok((dir, log, sm))
    }
}

#[test]
fn sled_store_passes_openraft_storage_suite() -> Result<(), StorageError> {
    Suite::test_all(SledBuilder)
}

mod at_rest {
    use std::sync::Arc;

    use openraft::storage::RaftStateMachine;
    use openraft::{CommittedLeaderId, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder};

    use super::super::encryption::Kek;
    use super::super::log_store::{LogStore, LOG_TREE};
    use super::super::migrate::open_store;
    use super::super::state_machine::StateMachine;
    use super::super::types::Entry;
    use crate::store::{Command, SharedStore};
    use shoal_proto::v1::{Cluster, JoinTokens, RootCa};

    const CA_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg-CA-KEY-BODY\n";
    const TOKEN: &str = "SHTKN-1-abcdefghijklmnopqrstuvwxyz-secretsecretsecret";

    fn cluster_entry(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command::CreateCluster(Cluster {
                id: "c".into(),
                root_ca: Some(RootCa {
                    key_pem: CA_KEY.into(),
                    ..Default::default()
                }),
                join_tokens: Some(JoinTokens {
                    worker: TOKEN.into(),
                    manager: TOKEN.into(),
                }),
                ..Default::default()
            })),
        }
    }

    fn raw_files(dir: &std::path::Path) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                all.extend(raw_files(&path));
            } else {
                all.extend(std::fs::read(&path).unwrap());
            }
        }
        all
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    /// Opens the store again once the previous handles are gone: the log
    /// store's flusher task holds the database until it sees its channel
    /// close, which needs the runtime to run it.
    async fn reopen(
        raft_dir: &std::path::Path,
        key: Option<&Kek>,
    ) -> Result<(sled::Db, super::super::encryption::RaftKeys), String> {
        for _ in 0..1000 {
            match open_store(raft_dir, key) {
                Err(e) if e.to_string().contains("could not acquire lock") => {
                    tokio::task::yield_now().await
                }
                other => return other.map_err(|e| e.to_string()),
            }
        }
        Err("the database stayed locked".into())
    }

    async fn append(log: &mut LogStore, entries: Vec<Entry>) {
        // The conformance suite covers openraft's callback; here only the
        // bytes matter, so write through the same path and flush.
        log.append_for_test(entries).await;
    }

    #[tokio::test]
    async fn log_entries_and_snapshots_round_trip_and_hide_the_ca_key_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let raft_dir = dir.path().join("raft");
        {
            let (db, keys) = open_store(&raft_dir, None).unwrap();
            let mut log = LogStore::open(&db, keys.dek().clone()).unwrap();
            append(&mut log, vec![cluster_entry(1), cluster_entry(2)]).await;
            let read = log.try_get_log_entries(1..3).await.unwrap();
            assert_eq!(read.len(), 2);
            assert_eq!(
                format!("{:?}", read[0].payload),
                format!("{:?}", cluster_entry(1).payload)
            );
            let store = Arc::new(SharedStore::default());
            let mut sm = StateMachine::open(&db, store.clone(), keys.dek().clone()).unwrap();
            sm.apply(vec![cluster_entry(1)]).await.unwrap();
            sm.get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap();
            db.flush_async().await.unwrap();
        }
        let raw = raw_files(&raft_dir);
        assert!(
            !contains(&raw, "CA-KEY-BODY"),
            "the CA key is on disk in the clear"
        );
        assert!(!contains(&raw, "PRIVATE KEY"));
        assert!(
            !contains(&raw, "secretsecretsecret"),
            "a join token is on disk"
        );
        // Reopened (a restart): the snapshot restores the cluster object.
        let (db, keys) = reopen(&raft_dir, None).await.unwrap();
        let store = Arc::new(SharedStore::default());
        let _sm = StateMachine::open(&db, store.clone(), keys.dek().clone()).unwrap();
        let key = store.read(|s| s.cluster.as_ref().unwrap().root_ca.clone().unwrap().key_pem);
        assert_eq!(key, CA_KEY);
    }

    #[tokio::test]
    async fn a_changed_byte_or_a_moved_entry_is_a_clear_error_not_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let (db, keys) = open_store(&dir.path().join("raft"), None).unwrap();
        let mut log = LogStore::open(&db, keys.dek().clone()).unwrap();
        append(&mut log, vec![cluster_entry(1), cluster_entry(2)]).await;
        let tree = db.open_tree(LOG_TREE).unwrap();
        let first = tree.get(1u64.to_be_bytes()).unwrap().unwrap();

        // Entry 1 copied over entry 2: it decrypts only where it was written.
        tree.insert(2u64.to_be_bytes(), first.clone()).unwrap();
        let err = log.try_get_log_entries(2..3).await.unwrap_err().to_string();
        assert!(err.contains("cannot decrypt log entry 2"), "{err}");
        assert!(err.contains("authentication failed"), "{err}");

        // One flipped bit in entry 1.
        let mut flipped = first.to_vec();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x04;
        tree.insert(1u64.to_be_bytes(), flipped).unwrap();
        let err = log.try_get_log_entries(1..2).await.unwrap_err().to_string();
        assert!(err.contains("cannot decrypt log entry 1"), "{err}");
    }

    #[tokio::test]
    async fn an_autolocked_store_opens_only_with_its_unlock_key() {
        let dir = tempfile::tempdir().unwrap();
        let raft_dir = dir.path().join("raft");
        let key = Kek::generate();
        {
            let (db, keys) = open_store(&raft_dir, Some(&key)).unwrap();
            assert!(keys.autolocked());
            let mut log = LogStore::open(&db, keys.dek().clone()).unwrap();
            append(&mut log, vec![cluster_entry(1)]).await;
        }
        let locked = reopen(&raft_dir, None).await.unwrap_err();
        assert!(locked.contains("this manager is locked"), "{locked}");
        let wrong = reopen(&raft_dir, Some(&Kek::generate())).await.unwrap_err();
        assert!(wrong.starts_with("invalid unlock key"), "{wrong}");
        let (db, keys) = reopen(&raft_dir, Some(&key)).await.unwrap();
        let mut log = LogStore::open(&db, keys.dek().clone()).unwrap();
        assert_eq!(log.try_get_log_entries(1..2).await.unwrap().len(), 1);
    }
}
