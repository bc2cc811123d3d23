//! Keeping the daemon's files to itself. The data dir holds the root CA key,
//! the join tokens (in the Raft store), task environments and logs: any
//! local user who can read it can take the cluster. So the daemon
//!
//! - sets its umask to 077 before it creates anything (every file 0600,
//!   every directory 0700, the sled store and the socket included — no window
//!   between creating a file and restricting it);
//! - makes the data dir 0700 and tightens an existing installation on start
//!   (files written by older releases with group or world bits), saying so
//!   once;
//! - opens its socket to one group only when asked (`--group`, dockerd's
//!   `root:docker 0660`), and refuses a per-user default socket directory
//!   that another user owns or can write to (someone else's daemon — or a
//!   trap — could be listening there).
//!
//! Process tasks get Docker's umask (022) back when they start
//! (`agent::executor::process`): their own files are theirs to share.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use nix::sys::stat::Mode;

/// The umask of the daemon: nothing it creates is readable by others.
pub fn restrict_umask() {
    nix::sys::stat::umask(Mode::from_bits_truncate(0o077));
}

/// Creates the data dir (0700) if needed and strips group and world bits
/// from everything under it. Returns how many entries were tightened.
pub fn prepare_data_dir(data_dir: &Path) -> anyhow::Result<usize> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    let tightened = tighten(data_dir)?;
    if tightened > 0 {
        tracing::warn!(
            data_dir = %data_dir.display(),
            tightened,
            "made files of the data dir private (owner only): an older release left them readable by other users"
        );
    }
    Ok(tightened)
}

/// The mode `mode` should have: the owner's bits, nothing for group or world
/// (and no set-ID bits, which nothing in a data dir needs).
fn private_mode(mode: u32) -> u32 {
    mode & 0o700
}

/// Strips group and world bits from `path` and, for a directory, everything
/// under it. Symlinks are left alone (their mode means nothing), and so are
/// sockets of tasks, which are not ours to change.
fn tighten(path: &Path) -> anyhow::Result<usize> {
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        return Ok(0);
    }
    let mut tightened = 0;
    let mode = meta.permissions().mode() & 0o7777;
    if (file_type.is_dir() || file_type.is_file()) && mode != private_mode(mode) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(private_mode(mode)))
            .with_context(|| format!("cannot make {} private", path.display()))?;
        tightened += 1;
    }
    if file_type.is_dir() {
        for entry in
            std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
        {
            let entry = entry.with_context(|| format!("cannot list {}", path.display()))?;
            tightened += tighten(&entry.path())?;
        }
    }
    Ok(tightened)
}

/// Who may use the local socket besides the daemon's own user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketGroup {
    pub gid: u32,
}

impl SocketGroup {
    /// Looks `name` (or a numeric GID) up in the system's group database.
    pub fn lookup(name: &str) -> anyhow::Result<SocketGroup> {
        if let Ok(gid) = name.parse::<u32>() {
            return Ok(SocketGroup { gid });
        }
        match nix::unistd::Group::from_name(name) {
            Ok(Some(group)) => Ok(SocketGroup {
                gid: group.gid.as_raw(),
            }),
            Ok(None) => anyhow::bail!(
                "no such group {name:?}: create it (groupadd {name}) or name an existing group with --group"
            ),
            Err(e) => anyhow::bail!("cannot look up the group {name:?}: {e}"),
        }
    }
}

/// Opens the freshly bound socket to `group` (0660, group-owned). Without a
/// group it stays as the umask made it: the daemon's user only.
pub fn share_socket(path: &Path, group: Option<SocketGroup>) -> anyhow::Result<()> {
    let Some(group) = group else {
        return Ok(());
    };
    nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(group.gid)))
        .with_context(|| format!("cannot give {} to group {}", path.display(), group.gid))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("cannot set permissions of {}", path.display()))?;
    Ok(())
}

/// Lets `group` reach a socket in `dir`, a directory the daemon just created
/// for it: group-owned, 0710 (enter, not list).
pub fn share_dir(dir: &Path, group: SocketGroup) -> anyhow::Result<()> {
    nix::unistd::chown(dir, None, Some(nix::unistd::Gid::from_raw(group.gid)))
        .with_context(|| format!("cannot give {} to group {}", dir.display(), group.gid))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o710))
        .with_context(|| format!("cannot set permissions of {}", dir.display()))?;
    Ok(())
}

/// Refuses a default socket directory that is not this user's alone: under
/// a shared `/tmp` another user could have created it first and be listening
/// in our place (collecting join tokens sent to `swarm join`).
pub fn check_own_dir(dir: &Path, uid: u32) -> anyhow::Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let problem = dir_problem(meta.is_dir(), meta.uid(), meta.mode(), uid);
    match problem {
        None => Ok(()),
        Some(problem) => anyhow::bail!(
            "refusing the socket directory {}: {problem}; remove it, or choose a socket with --socket / -H",
            dir.display()
        ),
    }
}

/// What is wrong with a per-user socket directory, if anything (pure).
fn dir_problem(is_dir: bool, owner: u32, mode: u32, uid: u32) -> Option<String> {
    if !is_dir {
        return Some("it is not a directory".into());
    }
    if owner != uid {
        return Some(format!("it belongs to uid {owner}, not to you (uid {uid})"));
    }
    if mode & 0o022 != 0 {
        return Some(format!(
            "other users can write to it (mode {:o})",
            mode & 0o777
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_mode_keeps_only_the_owner_bits() {
        assert_eq!(private_mode(0o644), 0o600);
        assert_eq!(private_mode(0o755), 0o700);
        assert_eq!(private_mode(0o600), 0o600);
        assert_eq!(private_mode(0o4755), 0o700);
        assert_eq!(private_mode(0o070), 0o000);
    }

    #[test]
    fn tightening_strips_group_and_world_bits_everywhere_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("certs")).unwrap();
        std::fs::write(root.join("certs/ca.pem"), "x").unwrap();
        std::fs::write(root.join("state.json"), "{}").unwrap();
        for (path, mode) in [
            (root.clone(), 0o755),
            (root.join("certs"), 0o755),
            (root.join("certs/ca.pem"), 0o644),
            (root.join("state.json"), 0o600),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        assert_eq!(prepare_data_dir(&root).unwrap(), 3);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("certs")), 0o700);
        assert_eq!(mode(&root.join("certs/ca.pem")), 0o600);
        // A second start has nothing left to do.
        assert_eq!(prepare_data_dir(&root).unwrap(), 0);
    }

    #[test]
    fn a_socket_dir_of_another_user_or_writable_by_others_is_refused() {
        assert_eq!(dir_problem(true, 1000, 0o700, 1000), None);
        assert!(dir_problem(true, 1001, 0o700, 1000)
            .unwrap()
            .contains("belongs to uid 1001"));
        assert!(dir_problem(true, 1000, 0o777, 1000)
            .unwrap()
            .contains("other users can write"));
        assert!(dir_problem(false, 1000, 0o600, 1000)
            .unwrap()
            .contains("not a directory"));
    }
}
