//! The names of the kernel objects shoal makes, derived from the view alone.
//!
//! Every name is a function of a VNI or of a (task, network) pair, so a
//! restarted daemon finds what it made before and adopts it instead of
//! making a second one; and anything carrying a name of this form is
//! shoal's to remove (`cleanup_all`). Interface names stay within the
//! kernel's 15 characters.

/// The network's bridge on this node: `shbr-<vni>`.
pub fn bridge_name(vni: u32) -> String {
    format!("shbr-{vni}")
}

/// The network's VXLAN device on this node: `shvx-<vni>`.
pub fn vxlan_name(vni: u32) -> String {
    format!("shvx-{vni}")
}

const BRIDGE_PREFIX: &str = "shbr-";
const VXLAN_PREFIX: &str = "shvx-";
const VETH_PREFIX: &str = "shv";
const ALIAS_PREFIX: &str = "shoal task=";
const ALIAS_NET: &str = " net=";

/// The VNI in a bridge name made by [`bridge_name`].
pub fn parse_bridge_name(name: &str) -> Option<u32> {
    parse_vni(name.strip_prefix(BRIDGE_PREFIX)?)
}

/// The VNI in a VXLAN device name made by [`vxlan_name`].
pub fn parse_vxlan_name(name: &str) -> Option<u32> {
    parse_vni(name.strip_prefix(VXLAN_PREFIX)?)
}

fn parse_vni(digits: &str) -> Option<u32> {
    // Only the canonical spelling: `shbr-007` is not ours.
    let vni: u32 = digits.parse().ok()?;
    (vni.to_string() == digits && vni <= MAX_VNI).then_some(vni)
}

/// The largest VNI (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// The host end of a task's veth on one network: `shv` and 12 hex digits of
/// a hash of the task and network IDs (task IDs are too long for a name).
pub fn host_veth_name(task_id: &str, network_id: &str) -> String {
    // FNV-1a, 64 bits: stable across builds and platforms, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in task_id
        .bytes()
        .chain(std::iter::once(0))
        .chain(network_id.bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{VETH_PREFIX}{:012x}", hash >> 16)
}

/// Whether a link name has the form of [`host_veth_name`].
pub fn is_host_veth_name(name: &str) -> bool {
    name.strip_prefix(VETH_PREFIX).is_some_and(|hex| {
        hex.len() == 12
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

/// The interface alias of a task's host veth, which records whose it is
/// (the name is a hash and cannot be read back).
pub fn veth_alias(task_id: &str, network_id: &str) -> String {
    format!("{ALIAS_PREFIX}{task_id}{ALIAS_NET}{network_id}")
}

/// The (task ID, network ID) of an alias made by [`veth_alias`].
pub fn parse_veth_alias(alias: &str) -> Option<(String, String)> {
    let rest = alias.strip_prefix(ALIAS_PREFIX)?;
    let (task, net) = rest.split_once(ALIAS_NET)?;
    (!task.is_empty() && !net.is_empty()).then(|| (task.to_string(), net.to_string()))
}

/// The name of a task's interface on its `index`-th network: `eth<index>`.
pub fn task_ifname(index: usize) -> String {
    format!("eth{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_fit_the_kernel_limit_and_read_back() {
        for vni in [1, 4096, MAX_VNI] {
            assert!(bridge_name(vni).len() <= 15);
            assert!(vxlan_name(vni).len() <= 15);
            assert_eq!(parse_bridge_name(&bridge_name(vni)), Some(vni));
            assert_eq!(parse_vxlan_name(&vxlan_name(vni)), Some(vni));
        }
        // Names that merely look alike are not ours (the partition suite's
        // test bridge is `shbr<tag>`).
        for other in [
            "shbr12345",
            "shbr-",
            "shbr-007",
            "shbr-x",
            "shvx-16777216",
            "docker0",
        ] {
            assert_eq!(parse_bridge_name(other), None, "{other}");
            assert_eq!(parse_vxlan_name(other), None, "{other}");
        }
    }

    #[test]
    fn veth_names_are_stable_distinct_and_short() {
        let a = host_veth_name("task1", "net1");
        assert_eq!(a, host_veth_name("task1", "net1"));
        assert_ne!(a, host_veth_name("task1", "net2"));
        assert_ne!(a, host_veth_name("task2", "net1"));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(host_veth_name("ab", "c"), host_veth_name("a", "bc"));
        assert_eq!(a.len(), 15);
        assert!(is_host_veth_name(&a));
        assert!(!is_host_veth_name("shv12345h1"));
    }

    #[test]
    fn alias_reads_back() {
        let alias = veth_alias("t-1", "n 2");
        assert_eq!(
            parse_veth_alias(&alias),
            Some(("t-1".to_string(), "n 2".to_string()))
        );
        assert_eq!(parse_veth_alias("something else"), None);
        assert_eq!(parse_veth_alias("shoal task= net=x"), None);
    }
}
