//! A node's credentials on disk: `certs/ca.pem`, `certs/node.pem` and
//! `certs/node.key` (mode 0600) under the data dir. Files are written to a
//! temporary name and renamed, so a crash never leaves half a certificate.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::SecurityError;

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
    pub fn load(data_dir: &Path) -> Result<Self, SecurityError> {
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
        // Certificates are public, but nothing in the data dir is anyone
        // else's business: one rule for every file is easier to check.
        write_atomic(&dir.join("ca.pem"), self.ca_pem.as_bytes(), 0o600)?;
        write_atomic(&dir.join("node.pem"), self.cert_pem.as_bytes(), 0o600)?;
        write_atomic(&dir.join("node.key"), self.key_pem.as_bytes(), 0o600)?;
        Ok(())
    }

    pub fn remove(data_dir: &Path) -> Result<(), SecurityError> {
        let dir = certs_dir(data_dir);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&dir)(e)),
            _ => Ok(()),
        }
    }
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
