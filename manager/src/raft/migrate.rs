//! Opening a manager's Raft directory: its keys, and the one-time migration
//! of a store written before encryption at rest.
//!
//! A store from an older release has no key file and plain values. It is
//! rewritten, not edited in place: every value of every tree is copied,
//! sealed, into a new database beside it (`raft.encrypting/`, with its key
//! file), which then replaces the old directory, and the old one is
//! deleted. sled is log-structured, so sealing values in place would leave
//! the plain ones in dead segments of the same file. Each step is
//! restartable: a crash leaves either the old store (the half-built copy is
//! thrown away and rebuilt) or the new one.

use std::path::{Path, PathBuf};

use super::encryption::{key_file, place, DataKey, EncryptionError, Kek, RaftKeys};
use super::log_store::{LOG_TREE, META_TREE};
use super::state_machine::SNAPSHOT_TREE;

/// Every tree the Raft parts keep values in.
const TREES: [&str; 3] = [LOG_TREE, META_TREE, SNAPSHOT_TREE];

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Keys(#[from] EncryptionError),
    #[error("{0}")]
    Sled(#[from] sled::Error),
    #[error("cannot encrypt the Raft store written by an older release: {0}")]
    Migration(String),
}

/// Opens the database in `raft_dir` and its keys (creating both for a new
/// store; migrating a plain one first). A locked store needs `unlock_key`.
pub fn open_store(
    raft_dir: &Path,
    unlock_key: Option<&Kek>,
) -> Result<(sled::Db, RaftKeys), OpenError> {
    finish_interrupted_migration(raft_dir)?;
    if !key_file(raft_dir).exists() && raft_dir.exists() {
        migrate(raft_dir)?;
    }
    let keys = RaftKeys::open(raft_dir, unlock_key)?;
    let db = super::open_db(raft_dir)?;
    Ok((db, keys))
}

fn sibling(raft_dir: &Path, suffix: &str) -> PathBuf {
    let mut name = raft_dir.file_name().unwrap_or_default().to_owned();
    name.push(suffix);
    raft_dir.with_file_name(name)
}

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> OpenError {
    let context = format!("{what} {}", path.display());
    move |e| OpenError::Migration(format!("{context}: {e}"))
}

/// Completes or discards what a crash interrupted.
fn finish_interrupted_migration(raft_dir: &Path) -> Result<(), OpenError> {
    let building = sibling(raft_dir, ".encrypting");
    let old = sibling(raft_dir, ".unencrypted");
    if !raft_dir.exists() && building.exists() && key_file(&building).exists() {
        // Crashed between the two renames: the copy is complete.
        std::fs::rename(&building, raft_dir).map_err(io("cannot move into place", &building))?;
    }
    if building.exists() {
        // A copy that never finished: the old store is still in place.
        std::fs::remove_dir_all(&building).map_err(io("cannot remove", &building))?;
    }
    if old.exists() && key_file(raft_dir).exists() {
        std::fs::remove_dir_all(&old).map_err(io("cannot remove", &old))?;
    }
    Ok(())
}

/// Rewrites the plain store in `raft_dir` sealed; nothing to do for an
/// empty one. Returns how many values were sealed.
fn migrate(raft_dir: &Path) -> Result<usize, OpenError> {
    let plain = super::open_db(raft_dir)?;
    let mut values = 0;
    for tree in TREES {
        values += plain.open_tree(tree)?.len();
    }
    if values == 0 {
        return Ok(0);
    }
    let building = sibling(raft_dir, ".encrypting");
    let keys = RaftKeys::open(&building, None)?;
    let sealed = super::open_db(&building)?;
    copy_sealed(&plain, &sealed, keys.dek())?;
    sealed.flush()?;
    drop(sealed);
    drop(plain);
    let old = sibling(raft_dir, ".unencrypted");
    std::fs::rename(raft_dir, &old).map_err(io("cannot move aside", raft_dir))?;
    std::fs::rename(&building, raft_dir).map_err(io("cannot move into place", &building))?;
    std::fs::remove_dir_all(&old).map_err(io("cannot remove", &old))?;
    tracing::warn!(
        store = %raft_dir.display(),
        values,
        "encrypted the Raft store written by an older release (every value rewritten; the unencrypted files were deleted)"
    );
    Ok(values)
}

fn copy_sealed(from: &sled::Db, to: &sled::Db, dek: &DataKey) -> Result<(), OpenError> {
    for name in TREES {
        let source = from.open_tree(name)?;
        let target = to.open_tree(name)?;
        let mut batch = sled::Batch::default();
        for item in source.iter() {
            let (key, value) = item?;
            batch.insert(key.as_ref(), dek.seal(&place(name, &key), &value));
        }
        target.apply_batch(batch)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file under `dir`, read as raw bytes.
    pub(crate) fn raw_bytes_under(dir: &Path) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                all.extend(raw_bytes_under(&path));
            } else {
                all.extend(std::fs::read(&path).unwrap());
            }
        }
        all
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn a_plain_store_of_an_older_release_is_rewritten_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let raft_dir = dir.path().join("raft");
        let secret = b"-----BEGIN PRIVATE KEY-----MIGRATE-ME";
        {
            // What the release before encryption wrote: plain values.
            let db = crate::raft::open_db(&raft_dir).unwrap();
            db.open_tree(LOG_TREE)
                .unwrap()
                .insert(1u64.to_be_bytes(), &secret[..])
                .unwrap();
            db.open_tree(META_TREE)
                .unwrap()
                .insert(b"vote", &b"plain vote"[..])
                .unwrap();
            db.flush().unwrap();
        }
        assert!(contains(&raw_bytes_under(&raft_dir), b"MIGRATE-ME"));

        let (db, keys) = open_store(&raft_dir, None).unwrap();
        let sealed = db
            .open_tree(LOG_TREE)
            .unwrap()
            .get(1u64.to_be_bytes())
            .unwrap()
            .unwrap();
        let opened = keys
            .dek()
            .open(&place(LOG_TREE, &1u64.to_be_bytes()), &sealed, || {
                "x".into()
            })
            .unwrap();
        assert_eq!(opened, secret);
        drop(db);
        assert!(!contains(&raw_bytes_under(&raft_dir), b"MIGRATE-ME"));
        assert!(!sibling(&raft_dir, ".unencrypted").exists());
        assert!(!sibling(&raft_dir, ".encrypting").exists());

        // A second start finds the keys and migrates nothing.
        let (db, _) = open_store(&raft_dir, None).unwrap();
        assert_eq!(db.open_tree(META_TREE).unwrap().len(), 1);
    }

    #[test]
    fn a_new_store_gets_keys_and_an_empty_database() {
        let dir = tempfile::tempdir().unwrap();
        let raft_dir = dir.path().join("raft");
        let (db, keys) = open_store(&raft_dir, None).unwrap();
        assert!(!keys.autolocked());
        assert!(key_file(&raft_dir).exists());
        assert_eq!(db.open_tree(LOG_TREE).unwrap().len(), 0);
    }

    #[test]
    fn a_copy_interrupted_before_it_was_complete_is_thrown_away() {
        let dir = tempfile::tempdir().unwrap();
        let raft_dir = dir.path().join("raft");
        {
            let db = crate::raft::open_db(&raft_dir).unwrap();
            db.open_tree(LOG_TREE)
                .unwrap()
                .insert(1u64.to_be_bytes(), &b"entry"[..])
                .unwrap();
            db.flush().unwrap();
        }
        let building = sibling(&raft_dir, ".encrypting");
        std::fs::create_dir_all(&building).unwrap();
        std::fs::write(building.join("db"), b"half").unwrap();
        let (db, _) = open_store(&raft_dir, None).unwrap();
        assert_eq!(db.open_tree(LOG_TREE).unwrap().len(), 1);
        assert!(!building.exists());
    }
}
