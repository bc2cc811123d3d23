//! Encryption at rest of the managers' Raft stores, and autolock: what is
//! on a manager's disk holds none of the swarm's secrets, and an autolocked
//! manager serves again only after `swarm unlock` with the right key.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::{eventually, managers_cluster, marker_program, patience, Daemon, Run, TestDir};

/// Every regular file under `dir` (sled's files, snapshots, keys,
/// certificates, state), with its raw bytes.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files.extend(files_under(&path));
        } else if kind.is_file() {
            files.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body")
}

/// The uncompressed P-256 point of a certificate's public key: the one
/// 66-byte BIT STRING (`03 42 00 04…`) of the DER.
fn public_point(cert_pem: &str) -> Vec<u8> {
    let der = pem_der(cert_pem);
    let at = der
        .windows(4)
        .position(|w| w == [0x03, 0x42, 0x00, 0x04])
        .expect("an EC public key in the certificate");
    der[at + 3..at + 3 + 65].to_vec()
}

/// Pieces of a private key's PEM body that any file holding that PEM
/// contains: a PKCS#8 P-256 key ends with its public point, so its base64
/// holds that point's base64 at one of three alignments. 16-character pieces
/// (96 bits each: no false match) survive the PEM's line breaks.
fn pem_pieces_of_key_with(point: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine;
    let mut pieces = Vec::new();
    for skip in 0..3 {
        let usable = (point.len() - skip) / 3 * 3;
        let text = base64::engine::general_purpose::STANDARD.encode(&point[skip..skip + usable]);
        for piece in text.as_bytes().chunks_exact(16) {
            pieces.push(piece.to_vec());
        }
    }
    pieces
}

fn holds_key(bytes: &[u8], pieces: &[Vec<u8>]) -> bool {
    pieces.iter().any(|p| contains(bytes, p))
}

/// `shoal swarm unlock` with `key` on its stdin.
fn unlock(daemon: &Daemon, key: &str) -> Run {
    let mut child = Command::new(crate::util::shoal_bin())
        .arg("-H")
        .arg(&daemon.socket)
        .args(["swarm", "unlock"])
        .env_remove("SHOAL_HOST")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run shoal");
    writeln!(child.stdin.take().unwrap(), "{key}").unwrap();
    Run::from(child.wait_with_output().unwrap())
}

fn raft_key_protection(daemon: &Daemon) -> String {
    daemon.info()["RaftKeyProtection"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// What a search of one manager's data dir found.
fn secrets_on_disk(
    manager: &Daemon,
    ca_pieces: &[Vec<u8>],
    tokens: &[String],
    secret: &[u8],
) -> Vec<String> {
    let mut found = Vec::new();
    for (path, bytes) in files_under(&manager.data_dir) {
        if contains(&bytes, secret) {
            found.push(format!("a secret's data in {}", path.display()));
        }
        // Certificates carry the public point too, in the clear by design:
        // they are the only files the key's pieces may appear in.
        let certificate = path.extension().is_some_and(|e| e == "pem");
        if !certificate && holds_key(&bytes, ca_pieces) {
            found.push(format!("the root CA key in {}", path.display()));
        }
        // The node's own key (certs/) is a PEM private key by design; no
        // other file may hold one.
        if !path.starts_with(manager.data_dir.join("certs")) && contains(&bytes, b"PRIVATE KEY") {
            found.push(format!("a PEM private key in {}", path.display()));
        }
        for token in tokens {
            // The token's secret part alone: the CA digest before it is public.
            let secret = token.rsplit('-').next().unwrap();
            if contains(&bytes, secret.as_bytes()) {
                found.push(format!("a join token in {}", path.display()));
            }
        }
    }
    found
}

#[test]
fn no_manager_disk_holds_the_ca_key_or_a_join_token_and_autolock_needs_the_key() {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (mut managers, _) = managers_cluster(&dir, 3, 0);
    // A secret's data goes through the Raft log like every object; it is
    // written before the service, whose arrival on every replica below
    // means the secret's entry arrived too.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let secret = format!("secret-bytes-{}-{nanos:x}", std::process::id());
    let secret_file = dir.dir.path().join("secret.txt");
    std::fs::write(&secret_file, &secret).unwrap();
    managers[0].ok(&[
        "secret",
        "create",
        "db_password",
        secret_file.to_str().unwrap(),
    ]);
    managers[0].ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "2",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    let tokens: Vec<String> = ["worker", "manager"]
        .iter()
        .map(|role| {
            managers[0]
                .ok(&["swarm", "join-token", "-q", role])
                .trim()
                .to_string()
        })
        .collect();
    let ca_pem = std::fs::read_to_string(managers[0].data_dir.join("certs/ca.pem")).unwrap();
    let ca_pieces = pem_pieces_of_key_with(&public_point(&ca_pem));

    // The search itself finds a key it is given: each node's own key file
    // holds the key of its certificate.
    for manager in &managers {
        let node_pem = std::fs::read_to_string(manager.data_dir.join("certs/node.pem")).unwrap();
        let node_key = std::fs::read(manager.data_dir.join("certs/node.key")).unwrap();
        assert!(
            holds_key(&node_key, &pem_pieces_of_key_with(&public_point(&node_pem))),
            "the search does not find {}'s own key in its key file",
            manager.name
        );
    }

    // Every manager has applied the service (its log and state hold the
    // cluster object since the first entry), and flushed: the search covers
    // what Raft wrote.
    for manager in &managers {
        eventually(patience(), "the service in every replica", || {
            let services = manager.local_services();
            if services.contains_key("web") {
                Ok(())
            } else {
                Err(format!("{services:?}"))
            }
        });
    }
    for manager in &managers {
        let found = secrets_on_disk(manager, &ca_pieces, &tokens, secret.as_bytes());
        assert!(found.is_empty(), "{}: {found:?}", manager.name);
        assert_eq!(raft_key_protection(manager), "key file");
    }

    // Autolock on: every manager re-wraps its store key with the unlock key.
    let output = managers[0].ok(&["swarm", "update", "--autolock=true"]);
    let key = output
        .split_whitespace()
        .find(|w| w.starts_with("SWMKEY-1-"))
        .unwrap_or_else(|| panic!("no unlock key printed: {output}"))
        .to_string();
    assert_eq!(
        managers[1].ok(&["swarm", "unlock-key", "-q"]).trim(),
        key,
        "one key for every manager"
    );
    for manager in &managers {
        eventually(
            patience(),
            "the store key wrapped by the unlock key",
            || match raft_key_protection(manager).as_str() {
                "unlock key" => Ok(()),
                other => Err(other.to_string()),
            },
        );
    }
    let keys_json = std::fs::read_to_string(managers[1].data_dir.join("raft/keys.json")).unwrap();
    assert!(!keys_json.contains("\"kek\""), "{keys_json}");
    assert!(!contains(keys_json.as_bytes(), key.as_bytes()));

    // A restarted manager is locked: nothing of the swarm until unlocked.
    let restarted = 1;
    managers[restarted].terminate();
    managers[restarted].start();
    assert_eq!(managers[restarted].info()["LocalNodeState"], "locked");
    managers[restarted]
        .shoal(&["service", "ls"])
        .assert_error("This manager is locked");
    eventually(
        patience(),
        "the locked manager seen Down",
        || match managers[0]
            .node_status(&managers[restarted].name)
            .as_deref()
        {
            Some("Down") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    for manager in &managers {
        let found = secrets_on_disk(manager, &ca_pieces, &tokens, secret.as_bytes());
        assert!(found.is_empty(), "{}: {found:?}", manager.name);
    }

    // A wrong key is refused and changes nothing; a malformed one is named as such.
    let wrong = format!("SWMKEY-1-{}", "A".repeat(43));
    unlock(&managers[restarted], &wrong).assert_error("invalid unlock key");
    unlock(&managers[restarted], "not-a-key").assert_error("invalid unlock key format");
    assert_eq!(managers[restarted].info()["LocalNodeState"], "locked");

    // The right key: the manager rejoins, is Ready and serves writes.
    let run = unlock(&managers[restarted], &key);
    assert_eq!(run.status, 0, "unlock failed: {}", run.stderr);
    assert_eq!(managers[restarted].info()["LocalNodeState"], "active");
    eventually(
        patience(),
        "the unlocked manager Ready",
        || match managers[0]
            .node_status(&managers[restarted].name)
            .as_deref()
        {
            Some("Ready") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    eventually(patience(), "a write through the unlocked manager", || {
        let run = managers[restarted].shoal(&["service", "scale", "-d", "web=3"]);
        if run.status == 0 {
            Ok(())
        } else {
            Err(run.stderr)
        }
    });
    eventually(
        patience(),
        "the write in the unlocked manager's replica",
        || {
            let services = managers[restarted].local_services();
            if services.get("web").map(String::as_str) == Some("3") {
                Ok(())
            } else {
                Err(format!("{services:?}"))
            }
        },
    );
    unlock(&managers[restarted], &key).assert_error("not locked");

    // Rotation: every running manager re-wraps its key (its key file
    // changes); after a restart the old key is refused and the new one opens.
    let key_file = managers[restarted].data_dir.join("raft/keys.json");
    let wrapped_before = std::fs::read(&key_file).unwrap();
    let rotated = managers[0]
        .ok(&["swarm", "unlock-key", "--rotate", "-q"])
        .trim()
        .to_string();
    assert!(
        rotated.starts_with("SWMKEY-1-") && rotated != key,
        "{rotated}"
    );
    eventually(
        patience(),
        "the key file re-wrapped with the new key",
        || {
            if std::fs::read(&key_file).unwrap() != wrapped_before {
                Ok(())
            } else {
                Err("unchanged".into())
            }
        },
    );
    managers[restarted].terminate();
    managers[restarted].start();
    unlock(&managers[restarted], &key).assert_error("invalid unlock key");
    let run = unlock(&managers[restarted], &rotated);
    assert_eq!(
        run.status, 0,
        "unlock with the rotated key failed: {}",
        run.stderr
    );

    // Autolock off again: a restart needs no key.
    managers[0].ok(&["swarm", "update", "--autolock=false"]);
    eventually(
        patience(),
        "the store key back in the key file",
        || match raft_key_protection(&managers[2]).as_str() {
            "key file" => Ok(()),
            other => Err(other.to_string()),
        },
    );
    managers[2].terminate();
    managers[2].start();
    assert_eq!(managers[2].info()["LocalNodeState"], "active");
    managers[0]
        .shoal(&["swarm", "unlock-key"])
        .assert_error("no unlock key is set");
}
