//! `network create`, decided: the spec checked against the cluster and the
//! network's allocation (subnet, gateway, range, VXLAN ID) chosen, as one
//! pure function of the store. The store checks the result again when it
//! applies it (a concurrent create may have taken the subnet or VNI).

use shoal_proto::v1::{IpamConfig, Meta, Network, NetworkSpec};

use super::ipam::{self, Addressing, Subnet};
use crate::store::ClusterState;

/// The one driver shoal has.
pub const OVERLAY: &str = "overlay";

/// Driver options that set the task interfaces' MTU (Docker's two spellings).
pub const MTU_OPTIONS: [&str; 2] = ["mtu", "com.docker.network.driver.mtu"];

/// A network name: Docker's rule (letters, digits, `_`, `.`, `-`, starting
/// alphanumeric), at most 63 characters so `STACK_NET` names stay short.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a network name is required: shoal network create [OPTIONS] NAME".into());
    }
    let ok = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(format!(
            "invalid network name {name:?}: use up to 63 letters, digits, '_', '.' or '-', starting with a letter or digit"
        ));
    }
    Ok(())
}

/// The MTU a spec asks for, checked.
pub fn mtu(spec: &NetworkSpec) -> Result<Option<u32>, String> {
    let mut found = None;
    for key in MTU_OPTIONS {
        if let Some(value) = spec.driver_opts.get(key) {
            let mtu: u32 = value
                .parse()
                .ok()
                .filter(|m| (68..=65_535).contains(m))
                .ok_or_else(|| {
                    format!(
                        "invalid --opt {key}={value}: the MTU must be a number from 68 to 65535"
                    )
                })?;
            found = Some(mtu);
        }
    }
    Ok(found)
}

/// The cluster's default pools and subnet size.
fn pools(state: &ClusterState) -> (Vec<Subnet>, u8) {
    let (pools, size) = state
        .cluster
        .as_ref()
        .map(|c| (c.default_address_pool.clone(), c.subnet_size))
        .unwrap_or_default();
    // Checked at init; fall back to the defaults should a stored value not parse.
    ipam::parse_pools(&pools, size)
        .unwrap_or_else(|_| ipam::parse_pools(&[], 0).expect("the default pool parses"))
}

/// Checks `spec` against the cluster and allocates the network. `id` and
/// `now_ms` come from the caller (the store applies no randomness).
pub fn plan(
    state: &ClusterState,
    mut spec: NetworkSpec,
    id: String,
    now_ms: i64,
) -> Result<Network, String> {
    validate_name(&spec.name)?;
    if state
        .networks
        .values()
        .any(|n| n.spec.as_ref().is_some_and(|s| s.name == spec.name))
    {
        return Err(format!("network with name {} already exists", spec.name));
    }
    if spec.driver.is_empty() {
        spec.driver = OVERLAY.into();
    }
    if spec.driver != OVERLAY {
        return Err(format!(
            "network driver {:?} is not supported: shoal's networks are overlay networks (--driver overlay)",
            spec.driver
        ));
    }
    mtu(&spec)?;
    let asked = spec.ipam.clone().unwrap_or_default();
    let existing: Vec<(Subnet, String)> = state
        .networks
        .values()
        .filter_map(|n| {
            Some((
                super::usage::addressing(n)?.subnet,
                super::usage::network_name(n),
            ))
        })
        .collect();
    let addressing = if asked.subnet.is_empty() {
        if !asked.gateway.is_empty() || !asked.ip_range.is_empty() {
            return Err(
                "--gateway and --ip-range need --subnet: give the subnet they belong to".into(),
            );
        }
        let (pools, size) = pools(state);
        let taken: Vec<Subnet> = existing.iter().map(|(s, _)| *s).collect();
        let subnet = ipam::carve(&pools, size, &taken).ok_or_else(|| {
            let pools: Vec<String> = pools.iter().map(|p| p.to_string()).collect();
            format!(
                "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network: the default pools ({}) have no free /{size} left; remove unused networks or give --subnet",
                pools.join(", ")
            )
        })?;
        Addressing::new(&subnet.to_string(), "", "")?
    } else {
        let a = Addressing::new(&asked.subnet, &asked.gateway, &asked.ip_range)?;
        if let Some((other, name)) = existing.iter().find(|(s, _)| s.overlaps(&a.subnet)) {
            return Err(format!(
                "invalid subnet {}: it overlaps with network {name} ({other}); choose a subnet that does not",
                a.subnet
            ));
        }
        a
    };
    let vnis = state.networks.values().map(|n| n.vni).collect();
    let vni = ipam::free_vni(&vnis).ok_or("no VXLAN ID is left: remove unused networks")?;
    Ok(Network {
        id,
        meta: Some(Meta {
            version: 1,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }),
        spec: Some(spec),
        vni,
        ipam: Some(IpamConfig {
            subnet: addressing.subnet.to_string(),
            gateway: addressing.gateway.to_string(),
            ip_range: if addressing.range == addressing.subnet {
                String::new()
            } else {
                addressing.range.to_string()
            },
        }),
    })
}

/// Whether `network` may be stored beside what `state` holds: the apply-time
/// check of [`plan`]'s decision (name, VNI and subnet still free).
pub fn conflicts(state: &ClusterState, network: &Network) -> Option<String> {
    let name = super::usage::network_name(network);
    let subnet = super::usage::addressing(network).map(|a| a.subnet);
    for other in state.networks.values() {
        if super::usage::network_name(other) == name {
            return Some(format!("network with name {name} already exists"));
        }
        if other.vni == network.vni {
            return Some(format!(
                "VXLAN ID {} is taken by network {}: retry",
                network.vni,
                super::usage::network_name(other)
            ));
        }
        if let (Some(s), Some(o)) = (subnet, super::usage::addressing(other).map(|a| a.subnet)) {
            if s.overlaps(&o) {
                return Some(format!(
                    "invalid subnet {s}: it overlaps with network {} ({o}); choose a subnet that does not",
                    super::usage::network_name(other)
                ));
            }
        }
    }
    if subnet.is_none() {
        return Some(format!("network {name} has no valid subnet"));
    }
    None
}
