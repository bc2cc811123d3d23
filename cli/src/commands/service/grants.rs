//! The secret and config flags of `service create|update`: `--secret`,
//! `--secret-add`, `--secret-rm` and the same for `--config`, in Docker's
//! syntax (`NAME` or `source=NAME,target=…,uid=…,gid=…,mode=0400`). Sources
//! are sent by name; the manager resolves them and fills in default targets.

use shoal_proto::v1::{ConfigReference, FileTarget, SecretReference, ServiceSpec};

/// A parsed grant: its source name and file target.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub source: String,
    pub file: FileTarget,
}

/// Parses one `--secret`/`--config` value.
pub fn parse_grant(flag: &str, text: &str) -> anyhow::Result<Grant> {
    if text.is_empty() {
        anyhow::bail!("invalid {flag} \"\": expected a name, or source=NAME,target=…");
    }
    if !text.contains('=') {
        return Ok(Grant {
            source: text.to_string(),
            file: FileTarget::default(),
        });
    }
    let mut grant = Grant {
        source: String::new(),
        file: FileTarget::default(),
    };
    for part in text.split(',') {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("invalid {flag} {text:?}: {part:?} is not KEY=VALUE"))?;
        match key.trim().to_ascii_lowercase().as_str() {
            "source" | "src" => grant.source = value.to_string(),
            "target" => grant.file.name = value.to_string(),
            "uid" => grant.file.uid = numeric(flag, text, "uid", value)?,
            "gid" => grant.file.gid = numeric(flag, text, "gid", value)?,
            "mode" => {
                grant.file.mode = u32::from_str_radix(value, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "invalid {flag} {text:?}: mode {value:?} is not octal permission bits such as 0400"
                        )
                    })?
            }
            other => anyhow::bail!(
                "invalid {flag} {text:?}: unknown option {other:?} (use source, target, uid, gid, mode)"
            ),
        }
    }
    if grant.source.is_empty() {
        anyhow::bail!("invalid {flag} {text:?}: the source=NAME is missing");
    }
    Ok(grant)
}

fn numeric(flag: &str, text: &str, what: &str, value: &str) -> anyhow::Result<String> {
    value
        .parse::<u32>()
        .map(|_| value.to_string())
        .map_err(|_| {
            anyhow::anyhow!("invalid {flag} {text:?}: {what} {value:?} is not a numeric ID")
        })
}

fn secret_reference(grant: Grant) -> SecretReference {
    SecretReference {
        secret_id: grant.source.clone(),
        secret_name: grant.source,
        file: Some(grant.file),
    }
}

fn config_reference(grant: Grant) -> ConfigReference {
    ConfigReference {
        config_id: grant.source.clone(),
        config_name: grant.source,
        file: Some(grant.file),
    }
}

/// `create`: the service's grants.
pub fn apply_create(
    spec: &mut ServiceSpec,
    secrets: &[String],
    configs: &[String],
) -> anyhow::Result<()> {
    let task = spec.task.get_or_insert_with(Default::default);
    for text in secrets {
        task.secrets
            .push(secret_reference(parse_grant("--secret", text)?));
    }
    for text in configs {
        task.configs
            .push(config_reference(parse_grant("--config", text)?));
    }
    Ok(())
}

/// `update`: revoke (by name) then grant, as Docker applies `-rm` before `-add`.
pub fn apply_update(
    spec: &mut ServiceSpec,
    secret_add: &[String],
    secret_rm: &[String],
    config_add: &[String],
    config_rm: &[String],
) -> anyhow::Result<()> {
    let task = spec.task.get_or_insert_with(Default::default);
    for name in secret_rm {
        let before = task.secrets.len();
        task.secrets
            .retain(|r| r.secret_name != *name && r.secret_id != *name);
        if task.secrets.len() == before {
            anyhow::bail!("invalid --secret-rm {name}: the service is not granted secret {name}");
        }
    }
    for name in config_rm {
        let before = task.configs.len();
        task.configs
            .retain(|r| r.config_name != *name && r.config_id != *name);
        if task.configs.len() == before {
            anyhow::bail!("invalid --config-rm {name}: the service is not granted config {name}");
        }
    }
    for text in secret_add {
        task.secrets
            .push(secret_reference(parse_grant("--secret-add", text)?));
    }
    for text in config_add {
        task.configs
            .push(config_reference(parse_grant("--config-add", text)?));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_and_long_forms_parse_as_dockers() {
        let short = parse_grant("--secret", "db_password").unwrap();
        assert_eq!(short.source, "db_password");
        assert_eq!(short.file, FileTarget::default());
        let long = parse_grant(
            "--secret",
            "source=db_password,target=pw,uid=999,gid=998,mode=0400",
        )
        .unwrap();
        assert_eq!(long.source, "db_password");
        assert_eq!(
            long.file,
            FileTarget {
                name: "pw".into(),
                uid: "999".into(),
                gid: "998".into(),
                mode: 0o400
            }
        );
    }

    #[test]
    fn bad_grants_say_what_is_wrong() {
        for (text, expected) in [
            ("target=pw", "source=NAME is missing"),
            ("source=a,mode=999", "octal"),
            ("source=a,uid=root", "numeric"),
            ("source=a,colour=red", "unknown option"),
        ] {
            let e = parse_grant("--secret", text).unwrap_err().to_string();
            assert!(e.contains(expected), "{text}: {e}");
        }
    }

    #[test]
    fn update_revokes_by_name_then_grants() {
        let mut spec = ServiceSpec::default();
        apply_create(&mut spec, &["old".into()], &[]).unwrap();
        apply_update(&mut spec, &["new".into()], &["old".into()], &[], &[]).unwrap();
        let names: Vec<_> = spec
            .task
            .as_ref()
            .unwrap()
            .secrets
            .iter()
            .map(|r| r.secret_name.clone())
            .collect();
        assert_eq!(names, ["new"]);
        assert!(apply_update(&mut spec, &[], &["nope".into()], &[], &[]).is_err());
    }
}
