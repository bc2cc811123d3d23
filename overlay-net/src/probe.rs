//! Can this node do overlay networking? The agent asks once at start and
//! reports the answer, so that tasks needing a network are not placed on a
//! node that cannot plumb them, with the reason in `service ps`.
//!
//! The probe does what the overlay will do, not what it might guess from
//! files: it creates a bridge, a veth pair and a VXLAN device (which loads
//! the `vxlan` module on demand) in a private, unnamed network namespace that
//! vanishes with the probe, so nothing on the node changes.

use std::fmt;

use rtnetlink::sys::{protocols::NETLINK_ROUTE, AsyncSocket, TokioSocket};
use rtnetlink::{LinkBridge, LinkVeth, LinkVxlan};

/// Why a node cannot do overlay networking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The daemon lacks CAP_NET_ADMIN (not root).
    NoNetAdmin,
    /// Network namespaces cannot be created.
    NoNamespaces(String),
    /// A device kind the overlay needs cannot be created (no module).
    MissingDevice { kind: &'static str, error: String },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoNetAdmin => write!(
                f,
                "overlay networks need CAP_NET_ADMIN: run the shoal daemon as root"
            ),
            Reason::NoNamespaces(e) => write!(f, "cannot create network namespaces: {e}"),
            Reason::MissingDevice { kind, error } => write!(
                f,
                "the kernel cannot create {kind} devices ({error}); load the module (`modprobe {kind}`) or use a kernel with it"
            ),
        }
    }
}

impl std::error::Error for Reason {}

/// CAP_NET_ADMIN's bit in the capability sets.
const CAP_NET_ADMIN: u32 = 12;

/// Whether a `/proc/PID/status` text shows CAP_NET_ADMIN in the effective set.
pub fn has_net_admin(status: &str) -> bool {
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

/// `Ok` if this process can build overlay networks, else why not.
pub async fn overlay_support() -> Result<(), Reason> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if !has_net_admin(&status) {
        return Err(Reason::NoNetAdmin);
    }
    let runtime = tokio::runtime::Handle::current();
    // A thread of its own unshares into a fresh namespace and opens the
    // socket there; the namespace lives exactly as long as the socket.
    let socket = tokio::task::spawn_blocking(move || {
        std::thread::spawn(move || -> Result<TokioSocket, Reason> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| Reason::NoNamespaces(e.to_string()))?;
            let _entered = runtime.enter();
            TokioSocket::new(NETLINK_ROUTE).map_err(|e| Reason::NoNamespaces(e.to_string()))
        })
        .join()
        .unwrap_or_else(|_| Err(Reason::NoNamespaces("probe thread panicked".into())))
    })
    .await
    .unwrap_or_else(|e| Err(Reason::NoNamespaces(e.to_string())))?;
    let (connection, handle, _) = rtnetlink::from_socket(socket);
    let connection = tokio::spawn(connection);
    let links = handle.link();
    let result = async {
        let missing = |kind| {
            move |e: rtnetlink::Error| Reason::MissingDevice {
                kind,
                error: e.to_string(),
            }
        };
        links
            .add(LinkBridge::new("probebr").build())
            .execute()
            .await
            .map_err(missing("bridge"))?;
        links
            .add(LinkVeth::new("probev0", "probev1").build())
            .execute()
            .await
            .map_err(missing("veth"))?;
        links
            .add(
                LinkVxlan::new("probevx", 42)
                    .port(crate::reconcile::VXLAN_PORT)
                    .local(std::net::Ipv4Addr::LOCALHOST)
                    .learning(false)
                    .proxy(true)
                    .build(),
            )
            .execute()
            .await
            .map_err(missing("vxlan"))
    }
    .await;
    drop(handle);
    connection.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_admin_is_read_from_the_effective_set() {
        let root = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        let none = "CapPrm:\t0000000000001000\nCapEff:\t0000000000000000\n";
        let only = "CapEff:\t0000000000001000\n";
        assert!(has_net_admin(root));
        assert!(!has_net_admin(none));
        assert!(has_net_admin(only));
        assert!(!has_net_admin("garbage"));
    }

    #[test]
    fn reasons_say_what_to_do() {
        assert!(Reason::NoNetAdmin
            .to_string()
            .contains("run the shoal daemon as root"));
        let missing = Reason::MissingDevice {
            kind: "vxlan",
            error: "Operation not supported".into(),
        };
        assert!(missing.to_string().contains("modprobe vxlan"));
    }
}
