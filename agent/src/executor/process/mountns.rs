//! A process task's private mount namespace: what it mounts, as a pure
//! [`plan`] (a list of [`MountOp`]s), and a small executor ([`install`])
//! that carries the plan out in the forked child, before exec.
//!
//! The child unshares its mount namespace, makes every mount a slave of the
//! host's (nothing the task mounts reaches the host; the host's later
//! mounts still reach the task), binds what it is given (named volumes'
//! directories, bind mounts, and whatever else a caller adds to
//! [`Request::binds`] — secret files, later), mounts each tmpfs as a real
//! tmpfs, and for a read-only root remounts every mount it inherited
//! read-only (keeping `/proc`, `/sys` and `/dev` as they are, as a
//! container keeps its own). The task's own mounts come before the
//! read-only remounts, because a bind takes the flags of the mount it is
//! made from. Finally it drops to the task's user, since the kernel only
//! lets root mount.
//!
//! Everything is computed before the fork: in the child only system calls
//! run (no allocation, no lock), which is what makes `pre_exec` sound.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::unistd::{Gid, Uid};

/// A bind of a host path at a path the task sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    pub target: PathBuf,
    pub readonly: bool,
}

/// A fresh tmpfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmpfs {
    pub target: PathBuf,
    /// 0: the kernel's default (half the memory).
    pub size_bytes: i64,
    /// 0: 1777, as Docker's.
    pub mode: u32,
}

/// What a task's namespace should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub binds: Vec<Bind>,
    pub tmpfs: Vec<Tmpfs>,
    pub read_only_root: bool,
}

impl Request {
    /// Whether the task needs a namespace of its own at all.
    pub fn is_empty(&self) -> bool {
        self.binds.is_empty() && self.tmpfs.is_empty() && !self.read_only_root
    }
}

/// One step in the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOp {
    /// `mount --make-rslave /`.
    SlaveAll,
    Bind {
        source: PathBuf,
        target: PathBuf,
    },
    Tmpfs {
        target: PathBuf,
        /// `size=…,mode=…`.
        options: String,
    },
    /// A bind remount with these per-mount flags (read-only among them).
    /// Not `strict`: an inherited mount the kernel will not remount (a
    /// namespace file, a mount hidden under another) is left as it is,
    /// rather than failing the task; the root and the task's own read-only
    /// binds are strict.
    Remount {
        target: PathBuf,
        flags: MsFlags,
        strict: bool,
    },
}

/// Where the host's mounts that a read-only root keeps writable are.
const KEPT_WRITABLE: &[&str] = &["/proc", "/sys", "/dev"];

/// The operations for `request`, given the host's mounts (the text of
/// `/proc/self/mountinfo`): the namespace's inherited mounts are the host's.
pub fn plan(request: &Request, mountinfo: &str) -> Vec<MountOp> {
    let mut ops = vec![MountOp::SlaveAll];
    for bind in &request.binds {
        ops.push(MountOp::Bind {
            source: bind.source.clone(),
            target: bind.target.clone(),
        });
    }
    for tmpfs in &request.tmpfs {
        let mode = if tmpfs.mode == 0 { 0o1777 } else { tmpfs.mode };
        let mut options = format!("mode={mode:o}");
        if tmpfs.size_bytes > 0 {
            options.push_str(&format!(",size={}", tmpfs.size_bytes));
        }
        ops.push(MountOp::Tmpfs {
            target: tmpfs.target.clone(),
            options,
        });
    }
    if request.read_only_root {
        let ours: Vec<&Path> = request
            .binds
            .iter()
            .map(|b| b.target.as_path())
            .chain(request.tmpfs.iter().map(|t| t.target.as_path()))
            .collect();
        for (point, flags) in host_mounts(mountinfo) {
            let kept = KEPT_WRITABLE
                .iter()
                .any(|k| point.starts_with(k) || ours.iter().any(|o| point.starts_with(o)));
            if !kept {
                ops.push(MountOp::Remount {
                    strict: point == Path::new("/"),
                    target: point,
                    flags: flags | MsFlags::MS_RDONLY,
                });
            }
        }
    }
    for bind in request.binds.iter().filter(|b| b.readonly) {
        ops.push(MountOp::Remount {
            target: bind.target.clone(),
            flags: MsFlags::MS_RDONLY,
            strict: true,
        });
    }
    ops
}

/// Mount points and their per-mount flags (nosuid, nodev, noexec, atime),
/// in mountinfo order (parents before children).
fn host_mounts(mountinfo: &str) -> Vec<(PathBuf, MsFlags)> {
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(point), Some(options)) = (fields.get(4), fields.get(5)) else {
            continue;
        };
        let point = PathBuf::from(unescape(point));
        if seen.contains(&point) {
            continue;
        }
        seen.push(point.clone());
        let mut flags = MsFlags::empty();
        for option in options.split(',') {
            flags |= match option {
                "nosuid" => MsFlags::MS_NOSUID,
                "nodev" => MsFlags::MS_NODEV,
                "noexec" => MsFlags::MS_NOEXEC,
                "noatime" => MsFlags::MS_NOATIME,
                "nodiratime" => MsFlags::MS_NODIRATIME,
                "relatime" => MsFlags::MS_RELATIME,
                "strictatime" => MsFlags::MS_STRICTATIME,
                _ => MsFlags::empty(),
            };
        }
        out.push((point, flags));
    }
    out
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if let (b'\\', Some(digits)) = (bytes[i], octal) {
            let value = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
            out.push(value as u8);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Who the task runs as, resolved before the fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    pub uid: Uid,
    pub gid: Gid,
}

/// Resolves `USER[:GROUP]` (names or IDs) on this node.
pub fn resolve_user(user: &str) -> Result<Credentials, String> {
    let (name, group) = match user.split_once(':') {
        Some((n, g)) => (n, Some(g)),
        None => (user, None),
    };
    let (uid, primary) = match name.parse::<u32>() {
        Ok(id) => {
            let found = nix::unistd::User::from_uid(Uid::from_raw(id))
                .ok()
                .flatten();
            (
                Uid::from_raw(id),
                found.map(|u| u.gid).unwrap_or(Gid::from_raw(id)),
            )
        }
        Err(_) => {
            let found = nix::unistd::User::from_name(name)
                .map_err(|e| format!("cannot look up user {name:?}: {e}"))?
                .ok_or_else(|| format!("no user {name:?} on this node"))?;
            (found.uid, found.gid)
        }
    };
    let gid = match group {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(id) => Gid::from_raw(id),
            Err(_) => {
                nix::unistd::Group::from_name(g)
                    .map_err(|e| format!("cannot look up group {g:?}: {e}"))?
                    .ok_or_else(|| format!("no group {g:?} on this node"))?
                    .gid
            }
        },
    };
    Ok(Credentials { uid, gid })
}

/// An operation with its strings ready for the child.
enum Prepared {
    SlaveAll,
    Bind(CString, CString),
    Tmpfs(CString, CString),
    Remount(CString, MsFlags, bool),
}

fn c_path(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("path {} holds a NUL byte", path.display()))
}

/// The plan and credentials in the form the child uses.
pub struct Installed {
    ops: Vec<Prepared>,
    credentials: Option<Credentials>,
}

/// Prepares `ops` (and a switch to `credentials`) for [`install`].
pub fn prepare(ops: &[MountOp], credentials: Option<Credentials>) -> Result<Installed, String> {
    let ops = ops
        .iter()
        .map(|op| {
            Ok(match op {
                MountOp::SlaveAll => Prepared::SlaveAll,
                MountOp::Bind { source, target } => {
                    Prepared::Bind(c_path(source)?, c_path(target)?)
                }
                MountOp::Tmpfs { target, options } => Prepared::Tmpfs(
                    c_path(target)?,
                    CString::new(options.as_str()).map_err(|e| e.to_string())?,
                ),
                MountOp::Remount {
                    target,
                    flags,
                    strict,
                } => Prepared::Remount(c_path(target)?, *flags, *strict),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Installed { ops, credentials })
}

/// Makes `command` carry out `installed` in its child before exec. Runs
/// after every hook registered before it (cgroups, umask): the switch of
/// user must be the last thing before exec.
#[allow(unsafe_code)]
pub fn install(command: &mut tokio::process::Command, installed: Arc<Installed>) {
    // SAFETY: runs in the forked child before exec, where only
    // async-signal-safe calls are sound: unshare(2), mount(2), setgroups(2),
    // setgid(2) and setuid(2) are system calls, every string was made
    // before the fork (CStr paths are passed as they are, without copying),
    // and nothing allocates or takes a lock.
    unsafe {
        command.pre_exec(move || run(&installed));
    }
}

fn run(installed: &Installed) -> std::io::Result<()> {
    let none: Option<&std::ffi::CStr> = None;
    if !installed.ops.is_empty() {
        unshare(CloneFlags::CLONE_NEWNS)?;
    }
    for op in &installed.ops {
        match op {
            Prepared::SlaveAll => {
                mount(none, c"/", none, MsFlags::MS_REC | MsFlags::MS_SLAVE, none)?
            }
            Prepared::Bind(source, target) => mount(
                Some(source.as_c_str()),
                target.as_c_str(),
                none,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                none,
            )?,
            Prepared::Tmpfs(target, options) => mount(
                Some(c"tmpfs"),
                target.as_c_str(),
                Some(c"tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(options.as_c_str()),
            )?,
            Prepared::Remount(target, flags, strict) => {
                let done = mount(
                    none,
                    target.as_c_str(),
                    none,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | *flags,
                    none,
                );
                if *strict {
                    done?
                }
            }
        }
    }
    if let Some(credentials) = installed.credentials {
        nix::unistd::setgroups(&[credentials.gid])?;
        nix::unistd::setgid(credentials.gid)?;
        nix::unistd::setuid(credentials.uid)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:5 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw
24 22 0:6 / /dev rw,nosuid shared:3 - devtmpfs udev rw
25 24 0:7 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw
26 22 0:8 / /tmp rw,nosuid,nodev shared:5 - tmpfs tmpfs rw
27 22 0:9 / /mnt/with\\040space rw,noexec shared:6 - tmpfs tmpfs rw
28 22 0:10 / /srv/data rw shared:7 - tmpfs tmpfs rw
";

    fn request() -> Request {
        Request {
            binds: vec![Bind {
                source: "/var/lib/shoal/volumes/db/_data".into(),
                target: "/srv/data".into(),
                readonly: false,
            }],
            tmpfs: vec![Tmpfs {
                target: "/run/cache".into(),
                size_bytes: 1 << 20,
                mode: 0,
            }],
            read_only_root: false,
        }
    }

    #[test]
    fn binds_and_tmpfs_come_after_making_mounts_slaves() {
        let ops = plan(&request(), MOUNTINFO);
        assert_eq!(
            ops,
            vec![
                MountOp::SlaveAll,
                MountOp::Bind {
                    source: "/var/lib/shoal/volumes/db/_data".into(),
                    target: "/srv/data".into(),
                },
                MountOp::Tmpfs {
                    target: "/run/cache".into(),
                    options: "mode=1777,size=1048576".into(),
                },
            ]
        );
    }

    #[test]
    fn a_read_only_root_remounts_inherited_mounts_but_not_the_tasks_own() {
        let mut req = request();
        req.read_only_root = true;
        req.binds.push(Bind {
            source: "/etc/app".into(),
            target: "/etc/app-config".into(),
            readonly: true,
        });
        let ops = plan(&req, MOUNTINFO);
        let remounts: Vec<(String, MsFlags)> = ops
            .iter()
            .filter_map(|op| match op {
                MountOp::Remount { target, flags, .. } => {
                    Some((target.display().to_string(), *flags))
                }
                _ => None,
            })
            .collect();
        let ro = MsFlags::MS_RDONLY;
        assert_eq!(
            remounts,
            vec![
                ("/".into(), MsFlags::MS_RELATIME | ro),
                ("/tmp".into(), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | ro),
                ("/mnt/with space".into(), MsFlags::MS_NOEXEC | ro),
                // The task's read-only bind, last.
                ("/etc/app-config".into(), ro),
            ]
        );
        // Every remount after every mount of the task's own.
        let last_mount = ops
            .iter()
            .rposition(|op| matches!(op, MountOp::Bind { .. } | MountOp::Tmpfs { .. }))
            .unwrap();
        let first_remount = ops
            .iter()
            .position(|op| matches!(op, MountOp::Remount { .. }))
            .unwrap();
        assert!(last_mount < first_remount);
    }

    #[test]
    fn numeric_users_need_no_entry() {
        let c = resolve_user("12345:23456").unwrap();
        assert_eq!((c.uid.as_raw(), c.gid.as_raw()), (12345, 23456));
        assert_eq!(resolve_user("root").unwrap().uid.as_raw(), 0);
        assert!(resolve_user("no-such-user-here")
            .unwrap_err()
            .contains("no user"));
    }
}
