//! What a task may mount, and the cluster's bind-mount policy: pure checks
//! of `TaskSpec.mounts`, `read_only` and `user`, called by
//! [`super::validate_service_spec`] for every spec whichever client sent it,
//! and [`check_bind_policy`] with the cluster's `MountPolicy` (the control
//! API has the cluster at hand; the spec alone does not).
//!
//! The rules are Docker's (`docker service create --mount`): a bind names an
//! absolute host path, a tmpfs names none, targets are absolute and unique.
//! Process tasks add theirs: a volume is a directory of the node, so it needs
//! a name and takes no driver or driver options.

use shoal_proto::v1::{Mount, MountPolicy, MountType, TaskSpec};

/// Docker's volume name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate_volume_name(name: &str) -> Result<(), String> {
    let ok = name.len() >= 2
        && name.len() <= 255
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid volume name {name:?}: use 2-255 letters, digits, '_', '.' and '-', \
             starting with a letter or digit"
        ))
    }
}

/// A path without `.`/`..` components or doubled slashes, trailing slash
/// dropped: how targets are compared for duplicates and binds for prefixes.
pub fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

fn has_dot_dot(path: &str) -> bool {
    path.split('/').any(|p| p == "..")
}

/// The mount's type, or why its number is not one.
pub fn mount_type(mount: &Mount) -> Result<MountType, String> {
    MountType::try_from(mount.r#type).map_err(|_| {
        format!(
            "unknown mount type {} for target {:?}: expected volume, bind or tmpfs",
            mount.r#type, mount.target
        )
    })
}

/// Checks the task's mounts, read-only root and user.
pub fn validate_task_mounts(task: &TaskSpec) -> Result<(), String> {
    let process = task.runtime == "process";
    let mut targets: Vec<String> = Vec::new();
    let mut drivers: Vec<(&str, &str)> = Vec::new();
    for mount in &task.mounts {
        let kind = mount_type(mount)?;
        let target = mount.target.trim();
        if target.is_empty() {
            return Err(format!(
                "a {} mount needs a target: add target=/PATH (the path in the task)",
                type_name(kind)
            ));
        }
        if !target.starts_with('/') || has_dot_dot(target) {
            return Err(format!(
                "invalid mount target {target:?}: use an absolute path without '..'"
            ));
        }
        let normalized = normalize(target);
        if normalized == "/" {
            return Err("invalid mount target \"/\": the root cannot be a mount target".into());
        }
        if targets.contains(&normalized) {
            return Err(format!(
                "duplicate mount target {normalized:?}: each target can be mounted once"
            ));
        }
        targets.push(normalized);
        let has_volume_options = !mount.volume_driver.is_empty()
            || !mount.volume_opts.is_empty()
            || !mount.volume_labels.is_empty();
        let has_tmpfs_options = mount.tmpfs_size != 0 || mount.tmpfs_mode != 0;
        match kind {
            MountType::Bind => {
                if mount.source.is_empty() {
                    return Err(format!(
                        "the bind mount at {target:?} needs a source: add source=/HOST/PATH"
                    ));
                }
                if !mount.source.starts_with('/') {
                    return Err(format!(
                        "invalid bind source {:?}: a bind mount's source must be an absolute \
                         host path (for a named volume use type=volume)",
                        mount.source
                    ));
                }
                if has_dot_dot(&mount.source) {
                    return Err(format!(
                        "invalid bind source {:?}: '..' is not allowed",
                        mount.source
                    ));
                }
                if has_volume_options || has_tmpfs_options {
                    return Err(format!(
                        "the bind mount at {target:?} takes no volume or tmpfs options"
                    ));
                }
            }
            MountType::Tmpfs => {
                if !mount.source.is_empty() {
                    return Err(format!(
                        "the tmpfs mount at {target:?} cannot have a source ({:?}): remove source=",
                        mount.source
                    ));
                }
                if has_volume_options {
                    return Err(format!(
                        "the tmpfs mount at {target:?} takes no volume options"
                    ));
                }
                if mount.tmpfs_size < 0 {
                    return Err(format!(
                        "invalid tmpfs-size {} at {target:?}: must not be negative",
                        mount.tmpfs_size
                    ));
                }
                if mount.tmpfs_mode > 0o7777 {
                    return Err(format!(
                        "invalid tmpfs-mode {:o} at {target:?}: expected octal permissions up to 7777",
                        mount.tmpfs_mode
                    ));
                }
            }
            MountType::Volume => {
                if has_tmpfs_options {
                    return Err(format!(
                        "the volume mount at {target:?} takes no tmpfs options"
                    ));
                }
                if mount.source.is_empty() {
                    if process {
                        return Err(format!(
                            "the volume mount at {target:?} needs a name for a process task: \
                             add source=NAME"
                        ));
                    }
                } else {
                    validate_volume_name(&mount.source)?;
                }
                let driver = driver_of(mount);
                if process && (driver != "local" || !mount.volume_opts.is_empty()) {
                    return Err(format!(
                        "the volume {:?} of a process task cannot have a driver or driver \
                         options: process volumes are directories on the node (use the \
                         docker runtime for volume drivers)",
                        mount.source
                    ));
                }
                if !mount.source.is_empty() {
                    if let Some((_, other)) = drivers.iter().find(|(name, _)| *name == mount.source)
                    {
                        if *other != driver {
                            return Err(format!(
                                "volume {:?} is mounted with two drivers ({other} and {driver}): \
                                 use one",
                                mount.source
                            ));
                        }
                    }
                    drivers.push((&mount.source, driver));
                }
            }
        }
    }
    if !task.user.is_empty() {
        validate_user(&task.user)?;
    }
    Ok(())
}

/// The mount's volume driver, "local" when none is named.
pub fn driver_of(mount: &Mount) -> &str {
    if mount.volume_driver.is_empty() {
        "local"
    } else {
        &mount.volume_driver
    }
}

pub fn type_name(kind: MountType) -> &'static str {
    match kind {
        MountType::Volume => "volume",
        MountType::Bind => "bind",
        MountType::Tmpfs => "tmpfs",
    }
}

/// `USER[:GROUP]`, each a name or a number, as `docker run --user`.
pub fn validate_user(user: &str) -> Result<(), String> {
    let word_ok = |w: &str| {
        !w.is_empty()
            && w.len() <= 32
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    };
    let (name, group) = match user.split_once(':') {
        Some((n, g)) => (n, Some(g)),
        None => (user, None),
    };
    if word_ok(name) && group.is_none_or(word_ok) {
        Ok(())
    } else {
        Err(format!(
            "invalid user {user:?}: expected USER or USER:GROUP (names or numeric IDs)"
        ))
    }
}

/// Refuses a bind whose source is outside the cluster's allowed prefixes
/// (`swarm update --bind-mount-prefix`). No prefixes: every path is allowed,
/// as Docker allows them.
pub fn check_bind_policy(task: &TaskSpec, policy: Option<&MountPolicy>) -> Result<(), String> {
    let Some(policy) = policy.filter(|p| !p.bind_prefixes.is_empty()) else {
        return Ok(());
    };
    for mount in &task.mounts {
        if mount.r#type != MountType::Bind as i32 {
            continue;
        }
        let source = normalize(&mount.source);
        let allowed = policy
            .bind_prefixes
            .iter()
            .any(|prefix| is_under(&source, &normalize(prefix)));
        if !allowed {
            return Err(format!(
                "bind mount source {source:?} is not allowed by the cluster's policy: allowed \
                 prefixes are {} (swarm update --bind-mount-prefix changes them)",
                policy.bind_prefixes.join(", ")
            ));
        }
    }
    Ok(())
}

/// `path` is `prefix` or below it, by whole components (`/data2` is not
/// under `/data`).
pub fn is_under(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Checks the prefixes an operator gives: absolute paths without `..`.
pub fn validate_bind_prefixes(prefixes: &[String]) -> Result<(), String> {
    for prefix in prefixes {
        if !prefix.starts_with('/') || has_dot_dot(prefix) {
            return Err(format!(
                "invalid --bind-mount-prefix {prefix:?}: use an absolute host path without '..'"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(kind: MountType, source: &str, target: &str) -> Mount {
        Mount {
            r#type: kind as i32,
            source: source.into(),
            target: target.into(),
            ..Default::default()
        }
    }

    fn task(runtime: &str, mounts: Vec<Mount>) -> TaskSpec {
        TaskSpec {
            runtime: runtime.into(),
            mounts,
            ..Default::default()
        }
    }

    #[test]
    fn accepts_docker_style_mounts() {
        let good = task(
            "docker",
            vec![
                mount(MountType::Volume, "db-data", "/var/lib/postgresql/data"),
                mount(MountType::Volume, "", "/cache"),
                mount(
                    MountType::Bind,
                    "/var/run/docker.sock",
                    "/var/run/docker.sock",
                ),
                Mount {
                    tmpfs_size: 1 << 20,
                    tmpfs_mode: 0o1777,
                    ..mount(MountType::Tmpfs, "", "/tmp")
                },
            ],
        );
        validate_task_mounts(&good).unwrap();
        validate_task_mounts(&task(
            "process",
            vec![mount(MountType::Volume, "data", "/srv/data")],
        ))
        .unwrap();
    }

    #[test]
    fn refuses_bad_mounts_with_reasons() {
        let cases = [
            (
                task("docker", vec![mount(MountType::Bind, "data", "/data")]),
                "must be an absolute host path",
            ),
            (
                task("docker", vec![mount(MountType::Bind, "", "/data")]),
                "needs a source",
            ),
            (
                task("docker", vec![mount(MountType::Volume, "v1", "")]),
                "needs a target",
            ),
            (
                task("docker", vec![mount(MountType::Volume, "v1", "data")]),
                "absolute path",
            ),
            (
                task(
                    "docker",
                    vec![
                        mount(MountType::Volume, "v1", "/data"),
                        mount(MountType::Tmpfs, "", "/data/"),
                    ],
                ),
                "duplicate mount target \"/data\"",
            ),
            (
                task("docker", vec![mount(MountType::Tmpfs, "x", "/tmp")]),
                "cannot have a source",
            ),
            (
                task(
                    "docker",
                    vec![Mount {
                        r#type: 7,
                        ..mount(MountType::Volume, "v1", "/data")
                    }],
                ),
                "unknown mount type",
            ),
            (
                task("docker", vec![mount(MountType::Volume, "a/b", "/data")]),
                "invalid volume name",
            ),
            (
                task("process", vec![mount(MountType::Volume, "", "/data")]),
                "needs a name for a process task",
            ),
            (
                task(
                    "process",
                    vec![Mount {
                        volume_driver: "nfs".into(),
                        ..mount(MountType::Volume, "v1", "/data")
                    }],
                ),
                "cannot have a driver",
            ),
            (
                task(
                    "docker",
                    vec![
                        mount(MountType::Volume, "v1", "/a"),
                        Mount {
                            volume_driver: "other".into(),
                            ..mount(MountType::Volume, "v1", "/b")
                        },
                    ],
                ),
                "two drivers",
            ),
        ];
        for (spec, expected) in cases {
            let err = validate_task_mounts(&spec).unwrap_err();
            assert!(err.contains(expected), "{err} should say {expected}");
        }
        let mut bad_user = task("process", Vec::new());
        bad_user.user = "root:".into();
        assert!(validate_task_mounts(&bad_user)
            .unwrap_err()
            .contains("invalid user"));
    }

    #[test]
    fn bind_policy_allows_all_by_default_and_only_prefixes_when_set() {
        let spec = task(
            "docker",
            vec![mount(MountType::Bind, "/var/run/docker.sock", "/s")],
        );
        check_bind_policy(&spec, None).unwrap();
        check_bind_policy(&spec, Some(&MountPolicy::default())).unwrap();
        let policy = MountPolicy {
            bind_prefixes: vec!["/srv/".into(), "/var/run/docker.sock".into()],
        };
        check_bind_policy(&spec, Some(&policy)).unwrap();
        let outside = task("docker", vec![mount(MountType::Bind, "/srv2/x", "/s")]);
        let err = check_bind_policy(&outside, Some(&policy)).unwrap_err();
        assert!(err.contains("not allowed by the cluster's policy"), "{err}");
        let inside = task("docker", vec![mount(MountType::Bind, "/srv/a/b", "/s")]);
        check_bind_policy(&inside, Some(&policy)).unwrap();
        assert!(validate_bind_prefixes(&["relative".into()]).is_err());
    }
}
