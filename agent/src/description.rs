//! What a node reports about itself when its session starts.

use shoal_proto::v1::{MountCapability, NodeDescription, OverlayCapability, Platform, Resources};

/// Runtimes every node has. Others (docker) are detected by their executors.
pub const BUILTIN_RUNTIMES: &[&str] = &["process"];

/// `overlay`: what the overlay probe found at start
/// ([`crate::overlay::Overlay::capability`]).
pub fn describe(hostname: &str, overlay: OverlayCapability) -> NodeDescription {
    NodeDescription {
        hostname: hostname.to_string(),
        platform: Some(Platform {
            os: std::env::consts::OS.to_string(),
            architecture: std::env::consts::ARCH.to_string(),
        }),
        resources: Some(Resources {
            nano_cpus: std::thread::available_parallelism()
                .map(|n| n.get() as i64 * 1_000_000_000)
                .unwrap_or(1_000_000_000),
            memory_bytes: advertised_memory_bytes()
                .unwrap_or_else(|| total_memory_bytes().unwrap_or(0)),
        }),
        runtimes: BUILTIN_RUNTIMES.iter().map(|r| r.to_string()).collect(),
        engine_version: String::new(),
        overlay: Some(overlay),
        secrets: None,
        ingress: Some(crate::ingress::capability()),
        mounts: Some(mount_capability()),
    }
}

/// Whether process tasks can have mounts here: a private mount namespace,
/// bind and tmpfs mounts and setuid need root. `SHOAL_MOUNTS_UNSUPPORTED`
/// (the reason, in words) turns it off, so that the managers' placement
/// rule can be tested end to end on a machine where the daemon is root.
fn mount_capability() -> MountCapability {
    if let Ok(reason) = std::env::var("SHOAL_MOUNTS_UNSUPPORTED") {
        if !reason.is_empty() {
            return MountCapability {
                supported: false,
                reason,
            };
        }
    }
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        MountCapability {
            supported: true,
            reason: String::new(),
        }
    } else {
        MountCapability {
            supported: false,
            reason: format!("the daemon runs as uid {uid}, not root"),
        }
    }
}

/// The description with the runtimes found at start (docker, when its
/// engine answered) beside the built-in ones.
pub fn describe_with(
    hostname: &str,
    runtimes: &crate::executor::runtimes::NodeRuntimes,
    overlay: OverlayCapability,
) -> NodeDescription {
    let mut description = describe(hostname, overlay);
    if let Some(docker) = runtimes.docker.as_ref() {
        description.runtimes.push("docker".to_string());
        description.engine_version = docker.engine_version().to_string();
    }
    description.secrets = Some(runtimes.secrets.capability());
    description
}

/// `SHOAL_ADVERTISE_MEMORY_BYTES`: the memory the node offers the scheduler
/// instead of all it has — room kept for what runs beside shoal, or a small
/// node faked in tests (the provisioning suite makes a cluster too small for
/// a service this way). Ignored unless a positive number of bytes.
fn advertised_memory_bytes() -> Option<i64> {
    std::env::var("SHOAL_ADVERTISE_MEMORY_BYTES")
        .ok()?
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|b| *b > 0)
}

/// MemTotal from /proc/meminfo (Linux), in bytes.
fn total_memory_bytes() -> Option<i64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_total(&meminfo)
}

fn parse_mem_total(meminfo: &str) -> Option<i64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_mem_total_in_bytes() {
        let sample = "MemTotal:       24615484 kB\nMemFree:         1000 kB\n";
        assert_eq!(super::parse_mem_total(sample), Some(24615484 * 1024));
        assert_eq!(super::parse_mem_total("nothing"), None);
    }
}
