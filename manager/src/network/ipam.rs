//! IPv4 address management as pure functions: parsing subnets, overlap
//! checks, carving subnets out of the default pools, picking free addresses
//! and VXLAN IDs.
//!
//! Nothing here keeps state. Every caller passes in what is taken — built
//! from the Raft store by [`super::usage`] — so the answer is the same on
//! every manager and after every leader change, and an address is free
//! exactly when no live object in the store holds it.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

/// The pool networks without `--subnet` come from, as Docker's default.
pub const DEFAULT_POOL: &str = "10.0.0.0/8";
/// Prefix length of the subnets carved from the pools, as Docker's default.
pub const DEFAULT_SUBNET_SIZE: u8 = 24;
/// The first VXLAN ID handed out (libnetwork's overlay driver starts there).
pub const FIRST_VNI: u32 = 4096;
/// The largest VXLAN ID (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;
/// The shortest prefix a network may have: a /8 already holds 16 million
/// addresses.
pub const MIN_PREFIX: u8 = 8;
/// The longest: a /30 holds the gateway and one address.
pub const MAX_PREFIX: u8 = 30;

/// An IPv4 subnet whose address is its network address (`10.0.1.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    base: u32,
    prefix: u8,
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix as u32)
    }
}

impl Subnet {
    /// The subnet of `addr`/`prefix` (host bits cleared). `prefix` ≤ 32.
    pub fn containing(addr: Ipv4Addr, prefix: u8) -> Subnet {
        assert!(prefix <= 32, "prefix {prefix} > 32");
        Subnet {
            base: u32::from(addr) & mask(prefix),
            prefix,
        }
    }

    /// Parses `A.B.C.D/N`. Host bits must be zero: `10.0.1.5/24` is refused
    /// with the subnet it probably meant, as Docker does.
    pub fn parse(text: &str) -> Result<Subnet, String> {
        let (addr, prefix) = text.split_once('/').ok_or_else(|| {
            format!("invalid subnet {text:?}: expected CIDR notation, e.g. 10.0.9.0/24")
        })?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("invalid subnet {text:?}: {addr:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(|| {
            format!("invalid subnet {text:?}: the prefix length must be a number from 0 to 32")
        })?;
        let subnet = Subnet::containing(addr, prefix);
        if subnet.base != u32::from(addr) {
            return Err(format!("invalid subnet {text}: it should be {subnet}"));
        }
        Ok(subnet)
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base)
    }

    fn first(&self) -> u64 {
        self.base as u64
    }

    fn last(&self) -> u64 {
        self.base as u64 + (1u64 << (32 - self.prefix as u32)) - 1
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        (u32::from(addr) & mask(self.prefix)) == self.base
    }

    /// Whether `inner` lies wholly inside this subnet.
    pub fn covers(&self, inner: &Subnet) -> bool {
        inner.prefix >= self.prefix && self.contains(inner.network())
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    /// The addresses a host may have: all but the network and broadcast
    /// addresses (a /31 or /32 has none).
    pub fn hosts(&self) -> Option<(u32, u32)> {
        if self.prefix >= 31 {
            return None;
        }
        Some(((self.first() + 1) as u32, (self.last() - 1) as u32))
    }

    /// `addr/prefix`, as task and VIP addresses are written.
    pub fn with_prefix(&self, addr: Ipv4Addr) -> String {
        format!("{addr}/{}", self.prefix)
    }
}

/// A network's addressing, checked: the subnet, the gateway (held by the
/// network's bridge on every node) and the range tasks and VIPs come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addressing {
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    pub range: Subnet,
}

impl Addressing {
    /// Checks what an operator asked for: the gateway must be a host address
    /// of the subnet (default: its first), the range a part of it (default:
    /// all of it).
    pub fn new(subnet: &str, gateway: &str, ip_range: &str) -> Result<Addressing, String> {
        let subnet = Subnet::parse(subnet)?;
        if !(MIN_PREFIX..=MAX_PREFIX).contains(&subnet.prefix) {
            return Err(format!(
                "invalid subnet {subnet}: the prefix length must be from /{MIN_PREFIX} to /{MAX_PREFIX}"
            ));
        }
        let (first, last) = subnet.hosts().expect("prefix ≤ 30 has hosts");
        let gateway = if gateway.is_empty() {
            Ipv4Addr::from(first)
        } else {
            let addr: Ipv4Addr = gateway.parse().map_err(|_| {
                format!("invalid gateway {gateway:?}: expected an IPv4 address, e.g. 10.0.9.1")
            })?;
            if !subnet.contains(addr) {
                return Err(format!(
                    "invalid gateway {addr}: it is not in the subnet {subnet}"
                ));
            }
            let n = u32::from(addr);
            if n < first || n > last {
                return Err(format!(
                    "invalid gateway {addr}: it is the network or broadcast address of {subnet}; use a host address between {} and {}",
                    Ipv4Addr::from(first),
                    Ipv4Addr::from(last)
                ));
            }
            addr
        };
        let range = if ip_range.is_empty() {
            subnet
        } else {
            let range = Subnet::parse(ip_range).map_err(|e| e.replacen("subnet", "ip-range", 1))?;
            if !subnet.covers(&range) {
                return Err(format!(
                    "invalid ip-range {range}: it is not inside the subnet {subnet}"
                ));
            }
            range
        };
        let addressing = Addressing {
            subnet,
            gateway,
            range,
        };
        if addressing.capacity() == 0 {
            return Err(format!(
                "invalid ip-range {range}: it leaves no address for tasks once the gateway {gateway} is taken"
            ));
        }
        Ok(addressing)
    }

    /// The addresses tasks and VIPs may get: the range's part of the
    /// subnet's host addresses.
    fn bounds(&self) -> (u32, u32) {
        let (first, last) = self.subnet.hosts().expect("checked at creation");
        let r_first = self.range.first().max(first as u64) as u32;
        let r_last = self.range.last().min(last as u64) as u32;
        (r_first, r_last)
    }

    /// How many addresses tasks and VIPs can have in all.
    pub fn capacity(&self) -> u64 {
        let (first, last) = self.bounds();
        if first > last {
            return 0;
        }
        let gateway_inside = (first..=last).contains(&u32::from(self.gateway));
        (last - first) as u64 + 1 - gateway_inside as u64
    }

    /// The lowest free address (`taken` holds addresses as `u32`; the
    /// gateway is never handed out).
    ///
    /// **Lowest first, not round-robin as libnetwork's newer IPAM:** a task's
    /// MAC is derived from its address on every node and forwarding is
    /// pushed by the managers, so a reused address meets no stale ARP or
    /// FDB entry; lowest-first keeps the allocator a function of what is
    /// taken, with no cursor to replicate.
    pub fn first_free(&self, taken: &BTreeSet<u32>) -> Option<Ipv4Addr> {
        let (first, last) = self.bounds();
        let gateway = u32::from(self.gateway);
        // Walks past taken addresses only: at most |taken| + 2 steps.
        let mut candidate = first as u64;
        while candidate <= last as u64 {
            let n = candidate as u32;
            if n != gateway && !taken.contains(&n) {
                return Some(Ipv4Addr::from(n));
            }
            candidate += 1;
        }
        None
    }

    /// Whether `addr` may be handed out at all (ignoring who holds what).
    pub fn assignable(&self, addr: Ipv4Addr) -> bool {
        let (first, last) = self.bounds();
        let n = u32::from(addr);
        n >= first && n <= last && addr != self.gateway
    }
}

/// Reads `"10.0.1.5/24"` (or a bare address) as the address.
pub fn address_of(text: &str) -> Option<Ipv4Addr> {
    text.split('/').next()?.parse().ok()
}

/// The first subnet of `size` in `pools` (in order) that overlaps none of
/// `existing`, or `None` when the pools are exhausted.
pub fn carve(pools: &[Subnet], size: u8, existing: &[Subnet]) -> Option<Subnet> {
    for pool in pools {
        if size < pool.prefix || size > 32 {
            continue;
        }
        let step = 1u64 << (32 - size as u32);
        let mut candidate = pool.first();
        while candidate + step - 1 <= pool.last() {
            let subnet = Subnet {
                base: candidate as u32,
                prefix: size,
            };
            match existing.iter().find(|e| e.overlaps(&subnet)) {
                None => return Some(subnet),
                // Jump past the overlapping subnet, aligned to `size`.
                Some(e) => {
                    let next = e.last() + 1;
                    candidate = next.div_ceil(step) * step;
                }
            }
        }
    }
    None
}

/// The lowest VXLAN ID from [`FIRST_VNI`] not in `taken`.
pub fn free_vni(taken: &BTreeSet<u32>) -> Option<u32> {
    let mut candidate = FIRST_VNI;
    for &used in taken.range(FIRST_VNI..) {
        if used > candidate {
            break;
        }
        candidate = used + 1;
    }
    (candidate <= MAX_VNI).then_some(candidate)
}

/// Reads `swarm init --default-addr-pool` values and the mask length:
/// pools that do not overlap, and a size they can be carved into.
pub fn parse_pools(pools: &[String], size: u32) -> Result<(Vec<Subnet>, u8), String> {
    let size = if size == 0 {
        DEFAULT_SUBNET_SIZE
    } else {
        u8::try_from(size)
            .ok()
            .filter(|s| (MIN_PREFIX..=MAX_PREFIX).contains(s))
            .ok_or_else(|| {
                format!(
                    "invalid --default-addr-pool-mask-length {size}: expected {MIN_PREFIX} to {MAX_PREFIX}"
                )
            })?
    };
    let texts: Vec<&str> = if pools.is_empty() {
        vec![DEFAULT_POOL]
    } else {
        pools.iter().map(String::as_str).collect()
    };
    let mut parsed: Vec<Subnet> = Vec::new();
    for text in texts {
        let pool = Subnet::parse(text).map_err(|e| format!("invalid --default-addr-pool: {e}"))?;
        if pool.prefix > size {
            return Err(format!(
                "invalid --default-addr-pool {pool}: it is smaller than the /{size} subnets carved from it (--default-addr-pool-mask-length)"
            ));
        }
        if let Some(other) = parsed.iter().find(|p| p.overlaps(&pool)) {
            return Err(format!(
                "invalid --default-addr-pool {pool}: it overlaps {other}"
            ));
        }
        parsed.push(pool);
    }
    Ok((parsed, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn subnet(text: &str) -> Subnet {
        Subnet::parse(text).unwrap()
    }

    #[test]
    fn subnets_parse_strictly() {
        assert_eq!(subnet("10.0.1.0/24").to_string(), "10.0.1.0/24");
        assert_eq!(
            Subnet::parse("10.0.1.5/24").unwrap_err(),
            "invalid subnet 10.0.1.5/24: it should be 10.0.1.0/24"
        );
        assert!(Subnet::parse("10.0.1.0").unwrap_err().contains("CIDR"));
        assert!(Subnet::parse("10.0.300.0/24")
            .unwrap_err()
            .contains("not an IPv4 address"));
        assert!(Subnet::parse("10.0.1.0/33")
            .unwrap_err()
            .contains("0 to 32"));
    }

    #[test]
    fn gateway_and_range_are_checked_against_the_subnet() {
        let a = Addressing::new("10.0.9.0/24", "", "").unwrap();
        assert_eq!(a.gateway, Ipv4Addr::new(10, 0, 9, 1));
        assert_eq!(a.capacity(), 253);
        assert_eq!(
            Addressing::new("10.0.9.0/24", "10.0.10.1", "").unwrap_err(),
            "invalid gateway 10.0.10.1: it is not in the subnet 10.0.9.0/24"
        );
        assert!(Addressing::new("10.0.9.0/24", "10.0.9.255", "")
            .unwrap_err()
            .contains("broadcast"));
        assert!(Addressing::new("10.0.9.0/24", "", "10.0.8.0/25")
            .unwrap_err()
            .contains("not inside the subnet"));
        assert!(Addressing::new("16.0.0.0/4", "", "")
            .unwrap_err()
            .contains("/8 to /30"));
        let ranged = Addressing::new("10.0.9.0/24", "", "10.0.9.128/25").unwrap();
        assert_eq!(
            ranged.first_free(&BTreeSet::new()),
            Some(Ipv4Addr::new(10, 0, 9, 128))
        );
        assert_eq!(ranged.capacity(), 127);
    }

    #[test]
    fn addresses_skip_the_gateway_and_what_is_taken() {
        let a = Addressing::new("10.0.9.0/29", "10.0.9.3", "").unwrap();
        let mut taken = BTreeSet::new();
        let mut got = Vec::new();
        while let Some(addr) = a.first_free(&taken) {
            got.push(addr.to_string());
            taken.insert(u32::from(addr));
        }
        assert_eq!(
            got,
            ["10.0.9.1", "10.0.9.2", "10.0.9.4", "10.0.9.5", "10.0.9.6"]
        );
        assert_eq!(a.capacity(), 5);
        // A released address is the next one handed out.
        taken.remove(&u32::from(Ipv4Addr::new(10, 0, 9, 2)));
        assert_eq!(a.first_free(&taken), Some(Ipv4Addr::new(10, 0, 9, 2)));
    }

    #[test]
    fn pools_are_carved_around_existing_subnets() {
        let pools = [subnet("10.0.0.0/8")];
        assert_eq!(carve(&pools, 24, &[]), Some(subnet("10.0.0.0/24")));
        let existing = [subnet("10.0.0.0/24"), subnet("10.0.1.128/25")];
        assert_eq!(carve(&pools, 24, &existing), Some(subnet("10.0.2.0/24")));
        // A user's /16 inside the pool is skipped whole.
        assert_eq!(
            carve(&pools, 24, &[subnet("10.0.0.0/16")]),
            Some(subnet("10.1.0.0/24"))
        );
        let small = [subnet("192.168.0.0/23")];
        assert_eq!(
            carve(
                &small,
                24,
                &[subnet("192.168.0.0/24"), subnet("192.168.1.0/24")]
            ),
            None
        );
        // The next pool is used once the first is full.
        let two = [subnet("192.168.0.0/24"), subnet("172.30.0.0/16")];
        assert_eq!(
            carve(&two, 24, &[subnet("192.168.0.0/24")]),
            Some(subnet("172.30.0.0/24"))
        );
    }

    #[test]
    fn vnis_start_at_4096_and_fill_gaps() {
        assert_eq!(free_vni(&BTreeSet::new()), Some(4096));
        assert_eq!(free_vni(&[4096, 4097, 4099].into()), Some(4098));
        assert_eq!(free_vni(&[1, 2, 4096].into()), Some(4097));
    }

    #[test]
    fn default_pool_flags_are_checked() {
        let (pools, size) = parse_pools(&[], 0).unwrap();
        assert_eq!((pools, size), (vec![subnet("10.0.0.0/8")], 24));
        assert!(parse_pools(&["10.20.0.0/16".into()], 8)
            .unwrap_err()
            .contains("smaller than the /8"));
        assert!(
            parse_pools(&["10.20.0.0/16".into(), "10.20.5.0/24".into()], 24)
                .unwrap_err()
                .contains("overlaps 10.20.0.0/16")
        );
        assert!(parse_pools(&["10.20.0.0/16".into()], 31)
            .unwrap_err()
            .contains("mask-length 31"));
    }

    fn arb_subnet() -> impl Strategy<Value = Subnet> {
        (any::<u32>(), 8u8..=30).prop_map(|(a, p)| Subnet::containing(Ipv4Addr::from(a), p))
    }

    proptest! {
        /// Whatever is taken, the address handed out is assignable and free,
        /// and none is handed out while a free one exists.
        #[test]
        fn first_free_is_free_and_lowest(
            prefix in 24u8..=30,
            base in any::<u32>(),
            taken_offsets in proptest::collection::btree_set(0u32..256, 0..256),
            gateway_offset in 1u32..3,
        ) {
            let subnet = Subnet::containing(Ipv4Addr::from(base), prefix);
            let gateway = Ipv4Addr::from(u32::from(subnet.network()) + gateway_offset);
            let a = Addressing::new(&subnet.to_string(), &gateway.to_string(), "").unwrap();
            let taken: BTreeSet<u32> = taken_offsets
                .iter()
                .map(|o| u32::from(subnet.network()).wrapping_add(*o))
                .collect();
            let (first, last) = a.bounds();
            let free: Vec<u32> = (first..=last)
                .filter(|n| !taken.contains(n) && *n != u32::from(gateway))
                .collect();
            match a.first_free(&taken) {
                Some(addr) => {
                    prop_assert!(a.assignable(addr));
                    prop_assert!(!taken.contains(&u32::from(addr)));
                    prop_assert_eq!(Some(&u32::from(addr)), free.first());
                }
                None => prop_assert!(free.is_empty()),
            }
        }

        /// Allocating until exhausted hands out every assignable address
        /// exactly once: capacity() of them.
        #[test]
        fn allocation_never_repeats_and_exhausts_exactly(prefix in 26u8..=30, base in any::<u32>()) {
            let subnet = Subnet::containing(Ipv4Addr::from(base), prefix);
            let a = Addressing::new(&subnet.to_string(), "", "").unwrap();
            let mut taken = BTreeSet::new();
            while let Some(addr) = a.first_free(&taken) {
                prop_assert!(taken.insert(u32::from(addr)), "{} handed out twice", addr);
            }
            prop_assert_eq!(taken.len() as u64, a.capacity());
        }

        /// A carved subnet lies in a pool and overlaps nothing existing; when
        /// none is found, no free aligned subnet of that size exists.
        #[test]
        fn carved_subnets_never_overlap(
            existing in proptest::collection::vec(arb_subnet(), 0..12),
            size in 16u8..=26,
        ) {
            let pools = [Subnet::parse("10.0.0.0/12").unwrap()];
            let existing: Vec<Subnet> = existing
                .into_iter()
                .map(|s| Subnet::containing(Ipv4Addr::from(0x0A00_0000 | (u32::from(s.network()) & 0x000F_FFFF)), s.prefix()))
                .collect();
            match carve(&pools, size, &existing) {
                Some(s) => {
                    prop_assert!(pools[0].covers(&s));
                    prop_assert_eq!(s.prefix(), size);
                    prop_assert!(existing.iter().all(|e| !e.overlaps(&s)));
                }
                None => {
                    let step = 1u64 << (32 - size as u32);
                    let mut c = pools[0].first();
                    while c + step - 1 <= pools[0].last() {
                        let s = Subnet { base: c as u32, prefix: size };
                        prop_assert!(existing.iter().any(|e| e.overlaps(&s)));
                        c += step;
                    }
                }
            }
        }

        #[test]
        fn overlap_is_symmetric_and_matches_containment(a in arb_subnet(), b in arb_subnet()) {
            prop_assert_eq!(a.overlaps(&b), b.overlaps(&a));
            // Aligned power-of-two blocks overlap only by containment.
            prop_assert_eq!(a.overlaps(&b), a.covers(&b) || b.covers(&a));
        }

        #[test]
        fn parse_never_panics(text in ".{0,24}") {
            let _ = Subnet::parse(&text);
            let _ = Addressing::new(&text, &text, &text);
        }
    }
}
