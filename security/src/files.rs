//! A node's credentials on disk: `certs/ca.pem`, `certs/node.pem` and
//! `certs/node.key` (mode 0600) under the data dir.
//!
//! The three files change together (a renewed certificate comes with a new
//! key), so a set is written as a small journal: first complete and synced
//! in `certs/pending/`, then marked done (`pending/complete`), then renamed
//! into place one by one. A crash before the mark leaves the old set (the
//! unfinished one is discarded on the next load); a crash after it is rolled
//! forward on the next load. Either way a node never starts with a
//! certificate and a key that do not belong together.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::SecurityError;

/// The root CA certificate, this node's certificate and its private key.
#[derive(Clone)]
pub struct NodeCredentials {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for NodeCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCredentials").finish_non_exhaustive()
    }
}

fn certs_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("certs")
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SecurityError + '_ {
    move |source| SecurityError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl NodeCredentials {
    /// The node's credentials, after finishing (or discarding) a set a crash
    /// left half-written. Only for the daemon that owns `data_dir`: finishing
    /// the journal writes to it, which would race that daemon's own saves.
    pub fn load(data_dir: &Path) -> Result<Self, SecurityError> {
        finish_pending(&certs_dir(data_dir))?;
        Self::read_in_place(data_dir)
    }

    /// The set in place now, read without touching the journal: for anyone
    /// watching another process's data dir (tests, tools) while its daemon
    /// may be saving. During a save this may mix the old and the new set.
    pub fn read_in_place(data_dir: &Path) -> Result<Self, SecurityError> {
        let dir = certs_dir(data_dir);
        let read = |name: &str| {
            let path = dir.join(name);
            fs::read_to_string(&path).map_err(io_err(&path))
        };
        Ok(NodeCredentials {
            ca_pem: read("ca.pem")?,
            cert_pem: read("node.pem")?,
            key_pem: read("node.key")?,
        })
    }

    pub fn save(&self, data_dir: &Path) -> Result<(), SecurityError> {
        let dir = certs_dir(data_dir);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io_err(&dir))?;
        let pending = dir.join(PENDING);
        match fs::remove_dir_all(&pending) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&pending)(e)),
            _ => {}
        }
        fs::create_dir(&pending).map_err(io_err(&pending))?;
        for (name, bytes) in [
            ("ca.pem", &self.ca_pem),
            ("node.pem", &self.cert_pem),
            ("node.key", &self.key_pem),
        ] {
            write_atomic(&pending.join(name), bytes.as_bytes(), 0o600)?;
        }
        write_atomic(&pending.join(COMPLETE), b"", 0o600)?;
        sync_dir(&pending)?;
        finish_pending(&dir)
    }

    pub fn remove(data_dir: &Path) -> Result<(), SecurityError> {
        let dir = certs_dir(data_dir);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&dir)(e)),
            _ => Ok(()),
        }
    }
}

/// The journal directory of a credentials set being written, and its mark.
const PENDING: &str = "pending";
const COMPLETE: &str = "complete";
const FILES: [&str; 3] = ["ca.pem", "node.pem", "node.key"];

/// Completes (or discards) a set left in `pending/`: moved into place if it
/// was marked complete, removed otherwise. Idempotent, so a crash while it
/// runs is finished by the next call.
fn finish_pending(dir: &Path) -> Result<(), SecurityError> {
    let pending = dir.join(PENDING);
    if !pending.exists() {
        return Ok(());
    }
    if pending.join(COMPLETE).exists() {
        for name in FILES {
            let from = pending.join(name);
            if from.exists() {
                let to = dir.join(name);
                fs::rename(&from, &to).map_err(io_err(&to))?;
            }
        }
        sync_dir(dir)?;
    }
    fs::remove_dir_all(&pending).map_err(io_err(&pending))
}

fn sync_dir(dir: &Path) -> Result<(), SecurityError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Writes `bytes` to `path` through a temporary file beside it, fsync,
/// rename and an fsync of the directory: a reader (a restarted daemon) finds
/// the old file or the new one, never half of one, and the new one survives
/// a power loss once this returns. The one atomic write of the workspace.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SecurityError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(tag: &str) -> NodeCredentials {
        NodeCredentials {
            ca_pem: format!("ca {tag}"),
            cert_pem: format!("cert {tag}"),
            key_pem: format!("key {tag}"),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("shoal-files-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_saved_set_replaces_the_old_one_whole() {
        let dir = temp_dir("replace");
        creds("old").save(&dir).unwrap();
        creds("new").save(&dir).unwrap();
        let loaded = NodeCredentials::load(&dir).unwrap();
        assert_eq!(loaded.cert_pem, "cert new");
        assert_eq!(loaded.key_pem, "key new");
        assert!(!dir.join("certs/pending").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reading_in_place_leaves_a_save_in_progress_to_its_writer() {
        let dir = temp_dir("observer");
        creds("old").save(&dir).unwrap();
        // A daemon's save, marked complete but not yet moved into place.
        let pending = dir.join("certs/pending");
        fs::create_dir(&pending).unwrap();
        for (name, text) in [
            ("ca.pem", "ca"),
            ("node.pem", "cert new"),
            ("node.key", "key new"),
        ] {
            fs::write(pending.join(name), text).unwrap();
        }
        fs::write(pending.join("complete"), "").unwrap();
        let seen = NodeCredentials::read_in_place(&dir).unwrap();
        assert_eq!(seen.cert_pem, "cert old");
        assert!(
            pending.join("node.pem").exists(),
            "the writer's journal was moved"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unfinished_set_is_discarded_and_a_marked_one_rolled_forward() {
        let dir = temp_dir("journal");
        creds("old").save(&dir).unwrap();
        // A crash after the new certificate was written but before the mark.
        let pending = dir.join("certs/pending");
        fs::create_dir(&pending).unwrap();
        fs::write(pending.join("node.pem"), "cert new").unwrap();
        let loaded = NodeCredentials::load(&dir).unwrap();
        assert_eq!(
            (loaded.cert_pem.as_str(), loaded.key_pem.as_str()),
            ("cert old", "key old")
        );
        // A crash after the mark, with one file already moved into place.
        fs::create_dir(&pending).unwrap();
        fs::write(pending.join("ca.pem"), "ca new").unwrap();
        fs::write(pending.join("node.key"), "key new").unwrap();
        fs::write(pending.join("complete"), "").unwrap();
        fs::write(dir.join("certs/node.pem"), "cert new").unwrap();
        let loaded = NodeCredentials::load(&dir).unwrap();
        assert_eq!(
            (loaded.cert_pem.as_str(), loaded.key_pem.as_str()),
            ("cert new", "key new")
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
