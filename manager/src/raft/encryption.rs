//! Encryption at rest of the Raft store: the keys and the sealing of values.
//!
//! Every value the log store and the state machine write to sled (log
//! entries, vote, commit index, purge point, snapshot) is sealed with the
//! manager's **data-encryption key** (DEK) by [`DataKey::seal`]:
//! XChaCha20-Poly1305 with a random 24-byte nonce per value and the value's
//! tree and key as associated data, so a value moved to another index (or
//! tree) fails to open just as a changed byte does. Keys (log indexes, the
//! names `vote`, `current`…) stay plain: they carry nothing secret and keep
//! sled's order.
//!
//! The DEK is kept in `raft/keys.json` **wrapped** (sealed) by a
//! key-encryption key (KEK). Without autolock the KEK is in the same file
//! (0600, in the private data dir): the store is safe from a copied sled
//! file alone, not from whoever reads the whole data dir. With autolock the
//! file holds only the wrapped DEK, and the KEK is the cluster's unlock key
//! (`SWMKEY-1-…`), which an operator types after a restart; it reaches the
//! other managers through the (encrypted) Raft log, so one key unlocks every
//! manager, as in Swarm. Each manager's DEK stays its own and never leaves
//! its disk; changing the KEK only re-wraps the DEK ([`RaftKeys::protect`]).
//!
//! Everything here is synchronous and small; the policy of *which* KEK to
//! use is the pure [`wanted_protection`].

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Length of every key (DEK and KEK): 256 bits.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// First byte of a sealed value: the format, so that a later one can be told apart.
const SEALED_V1: u8 = 1;
/// Associated data of the wrapped DEK.
const DEK_AAD: &[u8] = b"shoal raft data-encryption key v1";
/// The key file, inside the Raft directory: removing the store removes its keys.
pub const KEY_FILE: &str = "keys.json";
/// How Docker prints an unlock key; shoal's are the same shape.
const UNLOCK_KEY_PREFIX: &str = "SWMKEY-1-";

/// What went wrong opening the store's keys or values.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    #[error(
        "this manager is locked: its Raft store is encrypted with the swarm's unlock key; \
         run `shoal swarm unlock` and enter the key (`shoal swarm unlock-key` on an unlocked \
         manager shows it)"
    )]
    Locked,
    #[error(
        "invalid unlock key: it does not decrypt this manager's Raft store (if the key was \
         rotated while this manager was down, use the key from before the rotation)"
    )]
    InvalidUnlockKey,
    #[error("invalid unlock key format: {0}")]
    MalformedUnlockKey(String),
    #[error(
        "cannot decrypt {what} of the Raft store: authentication failed (the data was changed \
         on disk, or belongs to another place or another manager)"
    )]
    Tampered { what: String },
    #[error("the Raft key file {path} is unreadable: {message}")]
    KeyFile { path: String, message: String },
}

/// A 256-bit key-encryption key; with autolock, the swarm's unlock key.
#[derive(Clone, PartialEq, Eq)]
pub struct Kek([u8; KEY_LEN]);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(…)")
    }
}

impl Kek {
    pub fn generate() -> Self {
        let mut key = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Kek(key)
    }

    /// `SWMKEY-1-` and the key in unpadded base64, as Docker prints it.
    pub fn to_unlock_key(&self) -> String {
        format!("{UNLOCK_KEY_PREFIX}{}", STANDARD_NO_PAD.encode(self.0))
    }

    /// Parses what [`Kek::to_unlock_key`] prints (surrounding space ignored).
    pub fn parse_unlock_key(text: &str) -> Result<Self, EncryptionError> {
        let text = text.trim();
        let body = text.strip_prefix(UNLOCK_KEY_PREFIX).ok_or_else(|| {
            EncryptionError::MalformedUnlockKey(format!(
                "an unlock key starts with {UNLOCK_KEY_PREFIX}"
            ))
        })?;
        let bytes = STANDARD_NO_PAD.decode(body).map_err(|_| {
            EncryptionError::MalformedUnlockKey(format!(
                "the part after {UNLOCK_KEY_PREFIX} is not base64"
            ))
        })?;
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|b: Vec<u8>| {
            EncryptionError::MalformedUnlockKey(format!(
                "it holds {} bytes, an unlock key {KEY_LEN}",
                b.len()
            ))
        })?;
        Ok(Kek(key))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }
}

/// The data-encryption key every value of one manager's store is sealed with.
#[derive(Clone)]
pub struct DataKey {
    key: [u8; KEY_LEN],
    cipher: XChaCha20Poly1305,
    /// Benchmarks only (`SHOAL_BENCH_UNENCRYPTED_RAFT=1`): values pass
    /// through unsealed, to measure what encryption costs side by side.
    passthrough: bool,
}

/// The environment variable that turns encryption off, for the control-plane
/// benchmark's side-by-side figures only. Never for a real cluster: a store
/// written with it cannot be read without it, and the reverse.
pub const BENCH_UNENCRYPTED_ENV: &str = "SHOAL_BENCH_UNENCRYPTED_RAFT";

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(…)")
    }
}

impl DataKey {
    pub fn generate() -> Self {
        let mut key = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut key);
        DataKey::from_bytes(key)
    }

    fn from_bytes(key: [u8; KEY_LEN]) -> Self {
        DataKey {
            cipher: XChaCha20Poly1305::new((&key).into()),
            key,
            passthrough: false,
        }
    }

    /// The same key, sealing nothing when the benchmark-only variable
    /// [`BENCH_UNENCRYPTED_ENV`] is `1` (said loudly in the log).
    pub fn unless_benchmark_disables(mut self) -> Self {
        if std::env::var(BENCH_UNENCRYPTED_ENV).as_deref() == Ok("1") {
            tracing::warn!(
                "{BENCH_UNENCRYPTED_ENV}=1: the Raft store is written UNENCRYPTED (benchmarks only)"
            );
            self.passthrough = true;
        }
        self
    }

    /// `plain` sealed: format byte, random nonce, ciphertext and tag.
    /// `place` (tree and key) is authenticated, not stored.
    pub fn seal(&self, place: &[u8], plain: &[u8]) -> Vec<u8> {
        if self.passthrough {
            return plain.to_vec();
        }
        seal_with(&self.cipher, place, plain)
    }

    /// Opens what [`DataKey::seal`] made for the same `place`; `what` names
    /// the value in the error.
    pub fn open(
        &self,
        place: &[u8],
        sealed: &[u8],
        what: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, EncryptionError> {
        if self.passthrough {
            return Ok(sealed.to_vec());
        }
        open_with(&self.cipher, place, sealed)
            .ok_or_else(|| EncryptionError::Tampered { what: what() })
    }
}

fn seal_with(cipher: &XChaCha20Poly1305, aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
        .expect("XChaCha20-Poly1305 encrypts any length sled can hold");
    let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
    out.push(SEALED_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

fn open_with(cipher: &XChaCha20Poly1305, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let (&format, rest) = sealed.split_first()?;
    if format != SEALED_V1 || rest.len() < NONCE_LEN {
        return None;
    }
    let (nonce, body) = rest.split_at(NONCE_LEN);
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad })
        .ok()
}

/// The associated data of a value: its tree and key, so values cannot be
/// moved between places.
pub fn place(tree: &str, key: &[u8]) -> Vec<u8> {
    let mut place = Vec::with_capacity(tree.len() + 1 + key.len());
    place.extend_from_slice(tree.as_bytes());
    place.push(0);
    place.extend_from_slice(key);
    place
}

/// What `raft/keys.json` holds.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    version: u32,
    /// The DEK sealed by the KEK (base64).
    wrapped_dek: String,
    /// The KEK itself (base64) when autolock is off; absent when the
    /// operator holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kek: Option<String>,
}

/// Which KEK a manager's DEK should be wrapped with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protection {
    /// A random KEK kept in the key file (autolock off).
    KeyFile,
    /// The cluster's unlock key, held by the operator (autolock on).
    UnlockKey(Kek),
}

/// The protection the cluster object asks for (pure): the unlock key when
/// autolock is on and a key is set, else the key file.
pub fn wanted_protection(cluster: &shoal_proto::v1::Cluster) -> Protection {
    let autolock = cluster
        .spec
        .as_ref()
        .and_then(|s| s.encryption.as_ref())
        .is_some_and(|e| e.auto_lock_managers);
    match (autolock, Kek::parse_unlock_key(&cluster.unlock_key)) {
        (true, Ok(key)) => Protection::UnlockKey(key),
        _ => Protection::KeyFile,
    }
}

/// What `swarm update --autolock=… / unlock-key --rotate` changes (pure):
/// `None` for nothing, else autolock on or off and the unlock key (a new one
/// when autolock is turned on or the key rotated, the current one when it
/// stays on). Errors say what the operator asked for that cannot be.
pub fn autolock_change(
    cluster: &shoal_proto::v1::Cluster,
    autolock: Option<bool>,
    rotate: bool,
) -> Result<Option<(bool, String)>, String> {
    let on = matches!(wanted_protection(cluster), Protection::UnlockKey(_));
    let enabled = autolock.unwrap_or(on);
    if rotate && !enabled {
        return Err(
            "autolock is off, so there is no unlock key to rotate: turn it on with \
             `shoal swarm update --autolock=true`"
                .into(),
        );
    }
    Ok(match (on, enabled) {
        (false, false) => None,
        (true, false) => Some((false, String::new())),
        (false, true) => Some((true, Kek::generate().to_unlock_key())),
        (true, true) if rotate => Some((true, Kek::generate().to_unlock_key())),
        (true, true) => None,
    })
}

/// One manager's keys, opened.
pub struct RaftKeys {
    path: PathBuf,
    dek: DataKey,
    kek: Kek,
    /// Whether the KEK is the operator's (not in the file).
    autolocked: bool,
}

impl std::fmt::Debug for RaftKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftKeys")
            .field("path", &self.path)
            .field("autolocked", &self.autolocked)
            .finish_non_exhaustive()
    }
}

/// The key file of the store in `raft_dir`.
pub fn key_file(raft_dir: &Path) -> PathBuf {
    raft_dir.join(KEY_FILE)
}

/// Whether the store in `raft_dir` needs the unlock key to open.
pub fn is_locked(raft_dir: &Path) -> Result<bool, EncryptionError> {
    let path = key_file(raft_dir);
    match read_key_file(&path)? {
        Some(file) => Ok(file.kek.is_none()),
        None => Ok(false),
    }
}

fn key_file_error(path: &Path, message: impl std::fmt::Display) -> EncryptionError {
    EncryptionError::KeyFile {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn read_key_file(path: &Path) -> Result<Option<KeyFile>, EncryptionError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(key_file_error(path, e)),
    };
    let file: KeyFile = serde_json::from_str(&text).map_err(|e| key_file_error(path, e))?;
    if file.version != 1 {
        return Err(key_file_error(
            path,
            format!("version {} is not one this release reads", file.version),
        ));
    }
    Ok(Some(file))
}

impl RaftKeys {
    /// Opens the keys of the store in `raft_dir`, creating them (a DEK, and
    /// a key-file KEK unless `unlock_key` is given) when there are none. A
    /// locked store needs `unlock_key`.
    pub fn open(raft_dir: &Path, unlock_key: Option<&Kek>) -> Result<Self, EncryptionError> {
        let path = key_file(raft_dir);
        let Some(file) = read_key_file(&path)? else {
            // A new store: wrapped by the unlock key from the start when
            // one is given (`swarm init --autolock`), so no KEK ever
            // touches this disk.
            let keys = RaftKeys {
                path,
                dek: DataKey::generate(),
                kek: unlock_key.cloned().unwrap_or_else(Kek::generate),
                autolocked: unlock_key.is_some(),
            };
            keys.save()?;
            return Ok(keys);
        };
        let decode = |text: &str| STANDARD.decode(text).map_err(|e| key_file_error(&path, e));
        let wrapped = decode(&file.wrapped_dek)?;
        let (kek, autolocked) = match &file.kek {
            Some(kek) => {
                let bytes: [u8; KEY_LEN] = decode(kek)?
                    .try_into()
                    .map_err(|_| key_file_error(&path, "the KEK is not 32 bytes"))?;
                (Kek(bytes), false)
            }
            None => (unlock_key.ok_or(EncryptionError::Locked)?.clone(), true),
        };
        let dek = open_with(&kek.cipher(), DEK_AAD, &wrapped).ok_or(if autolocked {
            EncryptionError::InvalidUnlockKey
        } else {
            EncryptionError::Tampered {
                what: format!("the data-encryption key in {}", path.display()),
            }
        })?;
        let dek: [u8; KEY_LEN] = dek
            .try_into()
            .map_err(|_| key_file_error(&path, "the data-encryption key is not 32 bytes"))?;
        Ok(RaftKeys {
            path,
            dek: DataKey::from_bytes(dek),
            kek,
            autolocked,
        })
    }

    pub fn dek(&self) -> &DataKey {
        &self.dek
    }

    /// Whether the DEK is wrapped by the operator's unlock key.
    pub fn autolocked(&self) -> bool {
        self.autolocked
    }

    /// The protection in force now.
    pub fn protection(&self) -> Protection {
        if self.autolocked {
            Protection::UnlockKey(self.kek.clone())
        } else {
            Protection::KeyFile
        }
    }

    /// Re-wraps the DEK as `wanted` says (a no-op when it already is):
    /// with the unlock key (no KEK left in the file), or with a new random
    /// KEK kept in the file. The file is replaced atomically, so a crash
    /// leaves the old wrapping or the new one.
    pub fn protect(&mut self, wanted: &Protection) -> Result<bool, EncryptionError> {
        if self.protection() == *wanted {
            return Ok(false);
        }
        let (kek, autolocked) = match wanted {
            Protection::UnlockKey(key) => (key.clone(), true),
            Protection::KeyFile => (Kek::generate(), false),
        };
        let next = RaftKeys {
            path: self.path.clone(),
            dek: self.dek.clone(),
            kek,
            autolocked,
        };
        next.save()?;
        *self = next;
        Ok(true)
    }

    fn save(&self) -> Result<(), EncryptionError> {
        let file = KeyFile {
            version: 1,
            wrapped_dek: STANDARD.encode(seal_with(&self.kek.cipher(), DEK_AAD, &self.dek.key)),
            kek: (!self.autolocked).then(|| STANDARD.encode(self.kek.0)),
        };
        let text = serde_json::to_string_pretty(&file).expect("the key file serializes");
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| key_file_error(dir, e))?;
        }
        shoal_security::files::write_atomic(&self.path, text.as_bytes(), 0o600)
            .map_err(|e| key_file_error(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_to_itself_and_hides_its_bytes() {
        let dek = DataKey::generate();
        let plain = b"-----BEGIN PRIVATE KEY----- secret";
        let sealed = dek.seal(b"raft_log\0one", plain);
        assert!(!sealed.windows(6).any(|w| w == b"SECRET" || w == b"secret"));
        assert_eq!(
            dek.open(b"raft_log\0one", &sealed, || "x".into()).unwrap(),
            plain
        );
        // A fresh nonce each time: the same value never seals the same.
        assert_ne!(sealed, dek.seal(b"raft_log\0one", plain));
    }

    #[test]
    fn a_flipped_byte_anywhere_is_refused_clearly() {
        let dek = DataKey::generate();
        let sealed = dek.seal(b"p", b"some log entry");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            let err = dek.open(b"p", &bad, || "log entry 7".into()).unwrap_err();
            assert!(
                err.to_string().contains(
                    "cannot decrypt log entry 7 of the Raft store: authentication failed"
                ),
                "{err}"
            );
        }
        assert!(dek.open(b"p", &sealed[..10], || "x".into()).is_err());
        assert!(dek.open(b"p", &[], || "x".into()).is_err());
    }

    #[test]
    fn a_value_moved_to_another_place_is_refused() {
        let dek = DataKey::generate();
        let sealed = dek.seal(&place("raft_log", &7u64.to_be_bytes()), b"entry 7");
        assert!(dek
            .open(&place("raft_log", &8u64.to_be_bytes()), &sealed, || "x"
                .into())
            .is_err());
        assert!(dek
            .open(&place("raft_meta", &7u64.to_be_bytes()), &sealed, || "x"
                .into())
            .is_err());
    }

    #[test]
    fn another_managers_key_opens_nothing() {
        let sealed = DataKey::generate().seal(b"p", b"v");
        assert!(DataKey::generate()
            .open(b"p", &sealed, || "x".into())
            .is_err());
    }

    #[test]
    fn unlock_keys_print_and_parse_like_dockers() {
        let key = Kek::generate();
        let text = key.to_unlock_key();
        assert!(text.starts_with("SWMKEY-1-"));
        assert_eq!(text.len(), "SWMKEY-1-".len() + 43, "{text}");
        assert_eq!(Kek::parse_unlock_key(&format!(" {text}\n")).unwrap(), key);
        for bad in [
            "",
            "SWMKEY-1-",
            "SWMKEY-2-abc",
            "SWMKEY-1-!!!!",
            "SWMKEY-1-YWJj",
        ] {
            assert!(
                matches!(
                    Kek::parse_unlock_key(bad),
                    Err(EncryptionError::MalformedUnlockKey(_))
                ),
                "{bad:?}"
            );
        }
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn without_autolock_the_keys_reopen_from_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let keys = RaftKeys::open(dir.path(), None).unwrap();
        assert!(!keys.autolocked());
        assert_eq!(mode(&key_file(dir.path())), 0o600);
        assert!(!is_locked(dir.path()).unwrap());
        let sealed = keys.dek().seal(b"p", b"v");
        let again = RaftKeys::open(dir.path(), None).unwrap();
        assert_eq!(
            again.dek().open(b"p", &sealed, || "x".into()).unwrap(),
            b"v"
        );
    }

    #[test]
    fn with_autolock_only_the_unlock_key_opens_and_rotation_refuses_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = RaftKeys::open(dir.path(), None).unwrap();
        let sealed = keys.dek().seal(b"p", b"v");
        let first = Kek::generate();
        assert!(keys.protect(&Protection::UnlockKey(first.clone())).unwrap());
        assert!(!keys.protect(&Protection::UnlockKey(first.clone())).unwrap());
        assert!(is_locked(dir.path()).unwrap());
        let text = std::fs::read_to_string(key_file(dir.path())).unwrap();
        assert!(!text.contains("\"kek\""), "{text}");
        assert_eq!(mode(&key_file(dir.path())), 0o600);

        assert!(matches!(
            RaftKeys::open(dir.path(), None),
            Err(EncryptionError::Locked)
        ));
        let wrong = RaftKeys::open(dir.path(), Some(&Kek::generate())).unwrap_err();
        assert!(
            wrong.to_string().starts_with("invalid unlock key"),
            "{wrong}"
        );
        let mut unlocked = RaftKeys::open(dir.path(), Some(&first)).unwrap();
        assert!(unlocked.autolocked());
        // Same DEK: what was written before still opens.
        assert_eq!(
            unlocked.dek().open(b"p", &sealed, || "x".into()).unwrap(),
            b"v"
        );

        // Rotation re-wraps: the new key opens, the old one no longer does.
        let second = Kek::generate();
        assert!(unlocked
            .protect(&Protection::UnlockKey(second.clone()))
            .unwrap());
        assert!(matches!(
            RaftKeys::open(dir.path(), Some(&first)),
            Err(EncryptionError::InvalidUnlockKey)
        ));
        let rotated = RaftKeys::open(dir.path(), Some(&second)).unwrap();
        assert_eq!(
            rotated.dek().open(b"p", &sealed, || "x".into()).unwrap(),
            b"v"
        );

        // Autolock off: a KEK in the file again, no key needed.
        let mut rotated = rotated;
        assert!(rotated.protect(&Protection::KeyFile).unwrap());
        assert!(!is_locked(dir.path()).unwrap());
        let plain = RaftKeys::open(dir.path(), None).unwrap();
        assert_eq!(
            plain.dek().open(b"p", &sealed, || "x".into()).unwrap(),
            b"v"
        );
    }

    #[test]
    fn a_changed_key_file_is_refused_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        RaftKeys::open(dir.path(), None).unwrap();
        let path = key_file(dir.path());
        let text = std::fs::read_to_string(&path).unwrap();
        let mut file: KeyFile = serde_json::from_str(&text).unwrap();
        let mut kek = STANDARD.decode(file.kek.as_ref().unwrap()).unwrap();
        kek[0] ^= 1;
        file.kek = Some(STANDARD.encode(kek));
        std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
        let err = RaftKeys::open(dir.path(), None).unwrap_err();
        assert!(err.to_string().contains("authentication failed"), "{err}");
    }

    #[test]
    fn autolock_changes_make_rotate_or_keep_the_key() {
        use shoal_proto::v1::{Cluster, ClusterSpec, EncryptionConfig};
        let key = Kek::generate().to_unlock_key();
        let off = Cluster::default();
        let on = Cluster {
            spec: Some(ClusterSpec {
                encryption: Some(EncryptionConfig {
                    auto_lock_managers: true,
                }),
                ..Default::default()
            }),
            unlock_key: key.clone(),
            ..Default::default()
        };
        assert_eq!(autolock_change(&off, None, false), Ok(None));
        assert_eq!(autolock_change(&off, Some(false), false), Ok(None));
        let (enabled, new) = autolock_change(&off, Some(true), false).unwrap().unwrap();
        assert!(enabled && Kek::parse_unlock_key(&new).is_ok());
        assert_eq!(autolock_change(&on, Some(true), false), Ok(None));
        assert_eq!(
            autolock_change(&on, Some(false), false),
            Ok(Some((false, String::new())))
        );
        let (enabled, rotated) = autolock_change(&on, None, true).unwrap().unwrap();
        assert!(enabled && rotated != key);
        assert!(autolock_change(&off, None, true)
            .unwrap_err()
            .contains("no unlock key to rotate"));
        assert!(autolock_change(&on, Some(false), true).is_err());
    }

    #[test]
    fn the_cluster_object_decides_the_protection() {
        use shoal_proto::v1::{Cluster, ClusterSpec, EncryptionConfig};
        let key = Kek::generate();
        let cluster = |autolock: bool, unlock_key: String| Cluster {
            spec: Some(ClusterSpec {
                encryption: Some(EncryptionConfig {
                    auto_lock_managers: autolock,
                }),
                ..Default::default()
            }),
            unlock_key,
            ..Default::default()
        };
        assert_eq!(
            wanted_protection(&cluster(true, key.to_unlock_key())),
            Protection::UnlockKey(key.clone())
        );
        assert_eq!(
            wanted_protection(&cluster(false, key.to_unlock_key())),
            Protection::KeyFile
        );
        assert_eq!(
            wanted_protection(&cluster(true, String::new())),
            Protection::KeyFile
        );
        assert_eq!(wanted_protection(&Cluster::default()), Protection::KeyFile);
    }
}
