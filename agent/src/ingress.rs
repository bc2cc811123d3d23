//! Published ports on this node: which path serves them, and the userspace
//! fallback.
//!
//! A node whose daemon has CAP_NET_ADMIN serves published ports through the
//! kernel (the routing mesh of `shoal_overlay_net::ingress`: nftables DNAT,
//! the client's address kept). Without it, the agent itself listens on each
//! published port and forwards connections (TCP) and datagram flows (UDP)
//! to the service's backends — [`proxy`]. The path is judged once at start
//! ([`capability`]) and reported in the node description, so `node inspect`
//! shows it.
//!
//! # Layout
//! - [`mesh`]: the managers' ingress view as the kernel mesh and the proxy take it (pure).
//! - [`proxy`]: the L4 proxy for one port, and the set of them
//!   ([`proxy::Proxies`]) kept equal to what is published.

pub mod mesh;
pub mod proxy;

use shoal_proto::v1::IngressCapability;

/// The kernel path's name in `node inspect`.
pub const KERNEL: &str = "kernel";
/// The userspace path's name in `node inspect`.
pub const USERSPACE: &str = "userspace";

/// How this node serves published ports, and why. `SHOAL_INGRESS_USERSPACE=1`
/// forces the proxy (for nodes where the kernel path is possible but
/// unwanted, and to test the fallback as root).
pub fn capability() -> IngressCapability {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let forced = std::env::var("SHOAL_INGRESS_USERSPACE").as_deref() == Ok("1");
    judge(shoal_overlay_net::probe::has_net_admin(&status), forced)
}

fn judge(net_admin: bool, forced: bool) -> IngressCapability {
    match (net_admin, forced) {
        (true, false) => IngressCapability {
            mode: KERNEL.into(),
            reason: "nftables routing mesh (CAP_NET_ADMIN): the client's address is kept".into(),
        },
        (true, true) => IngressCapability {
            mode: USERSPACE.into(),
            reason: "userspace proxy: SHOAL_INGRESS_USERSPACE=1".into(),
        },
        (false, _) => IngressCapability {
            mode: USERSPACE.into(),
            reason: "userspace proxy: the daemon lacks CAP_NET_ADMIN, so the kernel mesh is not possible; backends see this node's address (a PROXY protocol header can carry the client's)".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_follows_the_capability_and_says_why() {
        assert_eq!(judge(true, false).mode, KERNEL);
        let fallback = judge(false, false);
        assert_eq!(fallback.mode, USERSPACE);
        assert!(fallback.reason.contains("CAP_NET_ADMIN"));
        assert_eq!(judge(true, true).mode, USERSPACE);
    }
}
