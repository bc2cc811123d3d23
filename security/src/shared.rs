//! A node's credentials as the running daemon holds them: one value that a
//! renewal (or a role change) swaps, read by every connection the node opens.
//!
//! Connections read the credentials when they *connect* (see
//! [`tls::channel`](crate::tls::channel) and the listener's acceptor), so a
//! swap applies to every new connection at once while the connections that
//! are open keep going: a TLS session is not re-verified once established.
//! A copy fixed at start would keep presenting the old certificate until it
//! expired.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;

use crate::error::SecurityError;
use crate::files::NodeCredentials;

/// The current credentials; clones share the same value.
#[derive(Clone)]
pub struct SharedCredentials {
    current: Arc<watch::Sender<Arc<NodeCredentials>>>,
}

impl std::fmt::Debug for SharedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCredentials").finish_non_exhaustive()
    }
}

impl SharedCredentials {
    pub fn new(credentials: NodeCredentials) -> Self {
        SharedCredentials {
            current: Arc::new(watch::channel(Arc::new(credentials)).0),
        }
    }

    /// The credentials to use for a connection made now.
    pub fn current(&self) -> Arc<NodeCredentials> {
        self.current.borrow().clone()
    }

    /// Notified after every swap (e.g. to rebuild a server's TLS acceptor).
    pub fn subscribe(&self) -> watch::Receiver<Arc<NodeCredentials>> {
        self.current.subscribe()
    }

    /// Swaps in `credentials` in memory only (the caller saves them).
    pub fn replace(&self, credentials: NodeCredentials) {
        self.current.send_replace(Arc::new(credentials));
    }

    /// Saves `credentials` to `data_dir` and swaps them in — but only while
    /// the current certificate is still `expected_cert_pem`. A renewal that
    /// raced with another change (a promotion's new certificate, another
    /// renewal) is dropped rather than overwrite the newer one. Disk first:
    /// a node never runs on credentials it would not find again after a
    /// restart. Returns whether it swapped.
    pub fn install_if_current(
        &self,
        expected_cert_pem: &str,
        credentials: NodeCredentials,
        data_dir: &Path,
    ) -> Result<bool, SecurityError> {
        let mut result = Ok(false);
        // The check, the write and the swap happen under the value's write
        // lock, so two installs cannot interleave; readers wait for one save.
        self.current.send_if_modified(|current| {
            if current.cert_pem != expected_cert_pem {
                return false;
            }
            match credentials.save(data_dir) {
                Ok(()) => {
                    *current = Arc::new(credentials.clone());
                    result = Ok(true);
                    true
                }
                Err(e) => {
                    result = Err(e);
                    false
                }
            }
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(tag: &str) -> NodeCredentials {
        NodeCredentials {
            ca_pem: "ca".into(),
            cert_pem: format!("cert {tag}"),
            key_pem: format!("key {tag}"),
        }
    }

    #[test]
    fn an_install_over_a_certificate_that_changed_meanwhile_is_dropped() {
        let dir = std::env::temp_dir().join(format!("shoal-shared-{}", std::process::id()));
        let shared = SharedCredentials::new(creds("a"));
        let updates = shared.subscribe();
        shared.replace(creds("promoted"));
        assert!(!shared
            .install_if_current("cert a", creds("renewed"), &dir)
            .unwrap());
        assert_eq!(shared.current().cert_pem, "cert promoted");
        assert!(shared
            .install_if_current("cert promoted", creds("renewed"), &dir)
            .unwrap());
        assert_eq!(shared.current().cert_pem, "cert renewed");
        assert!(updates.has_changed().unwrap());
        assert_eq!(
            NodeCredentials::load(&dir).unwrap().cert_pem,
            "cert renewed"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
