//! The mount flags of `service create|update`: `--mount`, `--mount-add`,
//! `--mount-rm TARGET`, `--read-only` and `--user`, in Docker's syntax
//! (`type=volume,source=db,target=/data,readonly,volume-driver=local,
//! volume-opt=k=v,volume-label=k=v,tmpfs-size=64m,tmpfs-mode=1770`). The
//! manager validates the result again (`shoal_manager::spec::mounts`); this
//! parses and says which flag was wrong.

use shoal_proto::v1::{Mount, MountType, ServiceSpec};

/// One `--mount` value.
pub fn parse_mount(flag: &str, text: &str) -> anyhow::Result<Mount> {
    let mut mount = Mount::default();
    let mut kind = None;
    for field in text.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v)),
            None => (field.trim(), None),
        };
        let value_of = |what: &str| {
            value.ok_or_else(|| {
                anyhow::anyhow!("invalid {flag} {text:?}: {what} needs a value ({what}=…)")
            })
        };
        match key {
            "type" => {
                kind = Some(match value_of("type")? {
                    "volume" => MountType::Volume,
                    "bind" => MountType::Bind,
                    "tmpfs" => MountType::Tmpfs,
                    other => anyhow::bail!(
                        "invalid {flag} {text:?}: unknown mount type {other:?}: expected volume, bind or tmpfs"
                    ),
                })
            }
            "source" | "src" => mount.source = value_of(key)?.to_string(),
            "target" | "destination" | "dst" => mount.target = value_of(key)?.to_string(),
            "readonly" | "ro" => {
                mount.readonly = match value {
                    None | Some("true") | Some("1") => true,
                    Some("false") | Some("0") => false,
                    Some(other) => anyhow::bail!(
                        "invalid {flag} {text:?}: readonly={other:?}: expected true or false"
                    ),
                }
            }
            "volume-driver" => mount.volume_driver = value_of(key)?.to_string(),
            "volume-opt" | "volume-label" => {
                let pair = value_of(key)?;
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    anyhow::anyhow!("invalid {flag} {text:?}: {key} expects KEY=VALUE, got {pair:?}")
                })?;
                let map = if key == "volume-opt" {
                    &mut mount.volume_opts
                } else {
                    &mut mount.volume_labels
                };
                map.insert(k.to_string(), v.to_string());
            }
            "volume-nocopy" => {}
            "tmpfs-size" => {
                let v = value_of(key)?;
                mount.tmpfs_size = shoal_proto::syntax::parse_byte_size(v)
                    .map_err(|e| anyhow::anyhow!("invalid {flag} {text:?}: tmpfs-size {v:?}: {e}"))?;
            }
            "tmpfs-mode" => {
                let v = value_of(key)?;
                mount.tmpfs_mode = u32::from_str_radix(v.trim_start_matches("0o"), 8)
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "invalid {flag} {text:?}: tmpfs-mode {v:?} is not octal permissions (e.g. 1777)"
                        )
                    })?;
            }
            other => anyhow::bail!(
                "invalid {flag} {text:?}: unknown field {other:?}; expected type, source, target, \
                 readonly, volume-driver, volume-opt, volume-label, tmpfs-size or tmpfs-mode"
            ),
        }
    }
    mount.r#type = kind.unwrap_or(MountType::Volume) as i32;
    if mount.target.is_empty() {
        anyhow::bail!("invalid {flag} {text:?}: target=/PATH is missing");
    }
    Ok(mount)
}

/// `create`: the mounts, read-only root and user of a new service.
pub fn apply_create(
    spec: &mut ServiceSpec,
    mounts: &[String],
    read_only: Option<bool>,
    user: Option<&str>,
) -> anyhow::Result<()> {
    let parsed = mounts
        .iter()
        .map(|m| parse_mount("--mount", m))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let task = spec.task.get_or_insert_with(Default::default);
    task.mounts = parsed;
    if let Some(read_only) = read_only {
        task.read_only = read_only;
    }
    if let Some(user) = user {
        task.user = user.to_string();
    }
    Ok(())
}

/// `update`: mounts removed by target, then added (an added target replaces
/// the mount there); `--read-only[=false]` and `--user` when given.
pub fn apply_update(
    spec: &mut ServiceSpec,
    remove: &[String],
    add: &[String],
    read_only: Option<bool>,
    user: Option<&str>,
) -> anyhow::Result<()> {
    let parsed = add
        .iter()
        .map(|m| parse_mount("--mount-add", m))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let task = spec.task.get_or_insert_with(Default::default);
    let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    for target in remove {
        if !task.mounts.iter().any(|m| same(&m.target, target)) {
            anyhow::bail!("invalid --mount-rm {target}: the service has no mount at that target");
        }
    }
    task.mounts
        .retain(|m| !remove.iter().any(|t| same(&m.target, t)));
    for mount in parsed {
        task.mounts.retain(|m| !same(&m.target, &mount.target));
        task.mounts.push(mount);
    }
    if let Some(read_only) = read_only {
        task.read_only = read_only;
    }
    if let Some(user) = user {
        task.user = user.to_string();
    }
    Ok(())
}

/// `service inspect`'s `Mounts`, as Docker shows them.
pub fn inspect(mounts: &[Mount]) -> serde_json::Value {
    let list: Vec<serde_json::Value> = mounts
        .iter()
        .map(|m| {
            let kind = MountType::try_from(m.r#type).unwrap_or(MountType::Volume);
            let mut value = serde_json::json!({
                "Type": match kind {
                    MountType::Volume => "volume",
                    MountType::Bind => "bind",
                    MountType::Tmpfs => "tmpfs",
                },
                "Source": m.source,
                "Target": m.target,
            });
            if m.readonly {
                value["ReadOnly"] = true.into();
            }
            if kind == MountType::Volume
                && (!m.volume_driver.is_empty()
                    || !m.volume_opts.is_empty()
                    || !m.volume_labels.is_empty())
            {
                value["VolumeOptions"] = serde_json::json!({
                    "Labels": m.volume_labels,
                    "DriverConfig": {"Name": m.volume_driver, "Options": m.volume_opts},
                });
            }
            if kind == MountType::Tmpfs && (m.tmpfs_size > 0 || m.tmpfs_mode > 0) {
                value["TmpfsOptions"] = serde_json::json!({
                    "SizeBytes": m.tmpfs_size,
                    "Mode": m.tmpfs_mode,
                });
            }
            value
        })
        .collect();
    serde_json::Value::Array(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dockers_mount_syntax() {
        let m = parse_mount(
            "--mount",
            "type=volume,source=db,target=/data,readonly,volume-driver=local,volume-opt=type=tmpfs,volume-label=tier=db",
        )
        .unwrap();
        assert_eq!(m.r#type, MountType::Volume as i32);
        assert_eq!(
            (m.source.as_str(), m.target.as_str(), m.readonly),
            ("db", "/data", true)
        );
        assert_eq!(m.volume_opts.get("type").unwrap(), "tmpfs");
        assert_eq!(m.volume_labels.get("tier").unwrap(), "db");
        let t = parse_mount(
            "--mount",
            "type=tmpfs,dst=/tmp,tmpfs-size=64m,tmpfs-mode=1770",
        )
        .unwrap();
        assert_eq!((t.tmpfs_size, t.tmpfs_mode), (64 << 20, 0o1770));
        for (bad, says) in [
            ("type=nfs,target=/x", "unknown mount type \"nfs\""),
            ("type=bind,source=/x", "target=/PATH is missing"),
            ("type=tmpfs,target=/t,tmpfs-mode=9", "not octal"),
            (
                "type=volume,target=/t,colour=red",
                "unknown field \"colour\"",
            ),
        ] {
            let err = parse_mount("--mount", bad).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn update_removes_by_target_and_replaces_a_target() {
        let mut spec = ServiceSpec::default();
        apply_create(
            &mut spec,
            &[
                "type=volume,source=a,target=/a".into(),
                "type=tmpfs,target=/t".into(),
            ],
            None,
            None,
        )
        .unwrap();
        apply_update(
            &mut spec,
            &["/t/".into()],
            &["type=volume,source=b,target=/a".into()],
            Some(true),
            Some("1000"),
        )
        .unwrap();
        let task = spec.task.unwrap();
        assert_eq!(task.mounts.len(), 1);
        assert_eq!(task.mounts[0].source, "b");
        assert!(task.read_only);
        assert_eq!(task.user, "1000");
        let mut spec = ServiceSpec::default();
        let err = apply_update(&mut spec, &["/nope".into()], &[], None, None).unwrap_err();
        assert!(err.to_string().contains("no mount at that target"));
    }
}
