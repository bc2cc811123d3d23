//! Network namespaces: creating, opening and deleting them, and doing work
//! inside one.
//!
//! Named namespaces are kept exactly as `ip netns` keeps them — a bind mount
//! of the namespace at `/run/netns/NAME` — so operators and tools
//! (`ip netns exec`, `ip -n`) see shoal's namespaces and shoal sees theirs.
//! A container's namespace is opened from its PID (`/proc/PID/ns/net`).
//!
//! The network namespace is a property of a *thread*. Work inside one always
//! happens on a dedicated, short-lived OS thread that `setns`es and then
//! exits: tokio's worker threads are never moved, so nothing else running on
//! the runtime ever finds itself in a task's namespace. Sockets (netlink
//! included) stay in the namespace they were created in, whichever thread
//! uses them later; that is how [`crate::kernel::Netlink::in_netns`] gets an
//! async netlink handle for a namespace without running a runtime in it.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// Where named namespaces live (the directory `ip netns` uses).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// An open network namespace: holding it keeps the namespace alive.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    /// The path it was opened from (`/run/netns/NAME`, `/proc/PID/ns/net`).
    path: PathBuf,
}

/// Errors naming the namespace and what was being done.
#[derive(Debug, thiserror::Error)]
pub enum NetNsError {
    #[error("network namespace {name:?}: {what}: {source}")]
    Io {
        name: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("network namespace name {0:?} is not valid: use letters, digits, '-', '_' or '.', at most 64 characters")]
    BadName(String),
    #[error("network namespace {0:?} already exists")]
    Exists(String),
}

fn io_err<'a>(name: &'a str, what: &'static str) -> impl FnOnce(io::Error) -> NetNsError + 'a {
    move |source| NetNsError::Io {
        name: name.to_string(),
        what,
        source,
    }
}

fn nix_err<'a>(name: &'a str, what: &'static str) -> impl FnOnce(nix::Error) -> NetNsError + 'a {
    move |e| NetNsError::Io {
        name: name.to_string(),
        what,
        source: io::Error::from(e),
    }
}

fn check_name(name: &str) -> Result<(), NetNsError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(NetNsError::BadName(name.to_string()))
    }
}

/// The bind-mount path of a named namespace.
pub fn named_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Makes `/run/netns` a shared mount point, as `ip netns add` does, so that
/// namespaces mounted there are visible in mount namespaces created later
/// (a container's, `ip netns exec`'s).
fn prepare_run_dir() -> Result<(), NetNsError> {
    let dir = Path::new(NETNS_RUN_DIR);
    std::fs::create_dir_all(dir).map_err(io_err(NETNS_RUN_DIR, "creating the directory"))?;
    let shared = || {
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        // Not a mount point yet: bind it onto itself first (iproute2 does the same).
        Err(nix::Error::EINVAL) => {
            mount(
                Some(dir),
                dir,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(nix_err(NETNS_RUN_DIR, "bind-mounting onto itself"))?;
            shared().map_err(nix_err(NETNS_RUN_DIR, "making it a shared mount"))
        }
        Err(e) => Err(nix_err(NETNS_RUN_DIR, "making it a shared mount")(e)),
    }
}

impl NetNs {
    /// Creates the named namespace `/run/netns/NAME` (what `ip netns add
    /// NAME` does). Fails if it exists.
    pub fn create(name: &str) -> Result<NetNs, NetNsError> {
        check_name(name)?;
        prepare_run_dir()?;
        let path = named_path(name);
        // create_new: two creators of one name cannot both succeed.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(NetNsError::Exists(name.to_string()))
            }
            Err(e) => return Err(io_err(name, "creating the mount point")(e)),
        }
        let target = path.clone();
        let owned = name.to_string();
        let made = std::thread::spawn(move || -> Result<(), NetNsError> {
            // A fresh namespace for this thread only, then pinned by a bind
            // mount of the thread's own namespace file; the thread then ends.
            unshare(CloneFlags::CLONE_NEWNET).map_err(nix_err(&owned, "unshare"))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(nix_err(&owned, "bind-mounting the namespace"))
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetNsError::Io {
                name: name.to_string(),
                what: "creating",
                source: io::Error::other("the namespace thread panicked"),
            })
        });
        if let Err(e) = made {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        NetNs::open(name)
    }

    /// Opens the existing named namespace `/run/netns/NAME`.
    pub fn open(name: &str) -> Result<NetNs, NetNsError> {
        check_name(name)?;
        NetNs::open_path(named_path(name))
    }

    /// Opens the namespace of a running process (a container's init).
    pub fn open_pid(pid: u32) -> Result<NetNs, NetNsError> {
        NetNs::open_path(PathBuf::from(format!("/proc/{pid}/ns/net")))
    }

    /// Opens the namespace of the calling thread.
    pub fn current() -> Result<NetNs, NetNsError> {
        NetNs::open_path(PathBuf::from("/proc/thread-self/ns/net"))
    }

    /// Opens a namespace file.
    pub fn open_path(path: PathBuf) -> Result<NetNs, NetNsError> {
        let file = File::open(&path).map_err(io_err(&path.display().to_string(), "opening"))?;
        Ok(NetNs { file, path })
    }

    /// Whether a named namespace exists.
    pub fn exists(name: &str) -> bool {
        check_name(name).is_ok() && named_path(name).exists()
    }

    /// Removes the named namespace's mount (`ip netns del NAME`). The
    /// namespace itself goes when nothing holds it any more (no process in
    /// it, no open `NetNs`). Deleting a name that does not exist is not an
    /// error, so cleanup can be repeated.
    pub fn delete(name: &str) -> Result<(), NetNsError> {
        check_name(name)?;
        let path = named_path(name);
        if !path.exists() {
            return Ok(());
        }
        match umount2(&path, MntFlags::MNT_DETACH) {
            // EINVAL: not mounted (a creation that failed half-way).
            Ok(()) | Err(nix::Error::EINVAL) => {}
            Err(e) => return Err(nix_err(name, "unmounting")(e)),
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(name, "removing the mount point")(e)),
        }
    }

    /// The path this namespace was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Another handle on the same namespace.
    pub fn try_clone(&self) -> io::Result<NetNs> {
        Ok(NetNs {
            file: self.file.try_clone()?,
            path: self.path.clone(),
        })
    }

    /// Runs `f` on a new OS thread that has entered this namespace, and
    /// returns its result. Sockets `f` creates stay in the namespace.
    pub fn run<T, F>(&self, f: F) -> io::Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let file = self.file.try_clone()?;
        std::thread::spawn(move || -> io::Result<T> {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            Ok(f())
        })
        .join()
        .map_err(|_| io::Error::other("the thread inside the namespace panicked"))?
    }

    /// Runs `f` on a thread inside this namespace without blocking the async
    /// runtime (the thread is still a dedicated one, not a runtime worker).
    pub async fn run_async<T, F>(&self, f: F) -> io::Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let ns = self.try_clone()?;
        tokio::task::spawn_blocking(move || ns.run(f))
            .await
            .map_err(|e| io::Error::other(format!("namespace thread: {e}")))?
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for NetNs {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("shoal-t1").is_ok());
        assert!(check_name("a.b_c-1").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(65)] {
            assert!(
                matches!(check_name(bad), Err(NetNsError::BadName(_))),
                "{bad:?} accepted"
            );
        }
    }
}
