//! `shoal secret create | ls | inspect | rm` and `shoal config …`, with
//! Docker's output shapes. Secret data is read from a file or standard input
//! and sent once, to the managers; nothing here prints or keeps it (the
//! control API never returns it). Configs' inspect shows their data in
//! base64 as `Spec.Data`, as Docker's does.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use base64::Engine;
use serde_json::{json, Value};
use shoal_proto::v1::{
    Config, ConfigSpec, CreateConfigRequest, CreateSecretRequest, GetConfigRequest,
    GetSecretRequest, ListConfigsRequest, ListSecretsRequest, Meta, RemoveConfigRequest,
    RemoveSecretRequest, Secret, SecretSpec,
};

use crate::args::{ConfigCommand, Format, ObjectCreateArgs, ObjectLsArgs, SecretCommand};
use crate::client;
use crate::output;

/// Docker's limit, checked here too so that a huge file is not sent at all.
const MAX_DATA_BYTES: u64 = 500 * 1024;

/// Reads a secret's or config's data from `file`, or stdin for "-".
pub fn read_data(kind: &str, file: &str) -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    let source = if file == "-" {
        "standard input".to_string()
    } else {
        file.to_string()
    };
    let result = if file == "-" {
        std::io::stdin()
            .take(MAX_DATA_BYTES + 1)
            .read_to_end(&mut data)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(MAX_DATA_BYTES + 1).read_to_end(&mut data))
    };
    result.map_err(|e| anyhow::anyhow!("cannot read the {kind}'s data from {source}: {e}"))?;
    if data.len() as u64 > MAX_DATA_BYTES {
        anyhow::bail!(
            "the {kind}'s data in {source} is over {MAX_DATA_BYTES} bytes: {kind}s are limited to 500 KB"
        );
    }
    if data.is_empty() {
        anyhow::bail!("the {kind}'s data in {source} is empty: give a non-empty file");
    }
    Ok(data)
}

fn labels(entries: &[String]) -> anyhow::Result<HashMap<String, String>> {
    entries
        .iter()
        .map(|entry| match entry.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ if !entry.is_empty() && !entry.contains('=') => Ok((entry.clone(), String::new())),
            _ => Err(anyhow::anyhow!(
                "invalid --label {entry:?}: expected KEY=VALUE"
            )),
        })
        .collect()
}

fn meta_json(meta: Option<&Meta>) -> (Value, Value, Value) {
    let meta = meta.cloned().unwrap_or_default();
    (
        json!({"Index": meta.version}),
        json!(output::rfc3339(meta.created_at_ms)),
        json!(output::rfc3339(meta.updated_at_ms)),
    )
}

/// One `secret inspect` element, in Docker's shape (no `Data`, ever).
pub fn secret_json(secret: &Secret) -> Value {
    let spec = secret.spec.clone().unwrap_or_default();
    let (version, created, updated) = meta_json(secret.meta.as_ref());
    let labels: BTreeMap<_, _> = spec.labels.into_iter().collect();
    json!({
        "ID": secret.id,
        "Version": version,
        "CreatedAt": created,
        "UpdatedAt": updated,
        "Spec": {"Name": spec.name, "Labels": labels},
    })
}

/// One `config inspect` element, with its data in base64 as Docker shows it.
pub fn config_json(config: &Config) -> Value {
    let spec = config.spec.clone().unwrap_or_default();
    let (version, created, updated) = meta_json(config.meta.as_ref());
    let labels: BTreeMap<_, _> = spec.labels.into_iter().collect();
    json!({
        "ID": config.id,
        "Version": version,
        "CreatedAt": created,
        "UpdatedAt": updated,
        "Spec": {
            "Name": spec.name,
            "Labels": labels,
            "Data": base64::engine::general_purpose::STANDARD.encode(&spec.data),
        },
    })
}

fn print_list(rows: Vec<(String, String, Option<&Meta>)>, args: &ObjectLsArgs) {
    if args.quiet {
        for (id, _, _) in rows {
            println!("{id}");
        }
        return;
    }
    let now = std::time::SystemTime::now();
    if args.format == Format::Json {
        for (id, name, meta) in rows {
            let meta = meta.cloned().unwrap_or_default();
            println!(
                "{}",
                json!({"ID": id, "Name": name, "CreatedAt": output::rfc3339(meta.created_at_ms), "UpdatedAt": output::rfc3339(meta.updated_at_ms)})
            );
        }
        return;
    }
    let table: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(id, name, meta)| {
            let meta = meta.cloned().unwrap_or_default();
            vec![
                id,
                name,
                output::ago(meta.created_at_ms, now),
                output::ago(meta.updated_at_ms, now),
            ]
        })
        .collect();
    output::table(&["ID", "NAME", "CREATED", "UPDATED"], &table);
}

fn name_of_secret(s: &Secret) -> String {
    s.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default()
}

fn name_of_config(c: &Config) -> String {
    c.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default()
}

pub async fn run_secret(host: Option<&str>, command: SecretCommand) -> anyhow::Result<()> {
    let mut control = client::control(client::connect(host).await?);
    match command {
        SecretCommand::Create(ObjectCreateArgs { label, name, file }) => {
            let spec = SecretSpec {
                name,
                labels: labels(&label)?,
                data: read_data("secret", &file)?,
                driver: String::new(),
            };
            let secret = control
                .create_secret(CreateSecretRequest { spec: Some(spec) })
                .await?
                .into_inner();
            println!("{}", secret.id);
        }
        SecretCommand::Ls(args) => {
            let mut secrets = control
                .list_secrets(ListSecretsRequest {})
                .await?
                .into_inner()
                .secrets;
            secrets.sort_by_key(name_of_secret);
            let rows = secrets
                .iter()
                .map(|s| (s.id.clone(), name_of_secret(s), s.meta.as_ref()))
                .collect();
            print_list(rows, &args);
        }
        SecretCommand::Inspect { format: _, secrets } => {
            let mut found = Vec::new();
            for secret in secrets {
                let secret = control
                    .get_secret(GetSecretRequest { secret })
                    .await?
                    .into_inner();
                found.push(secret_json(&secret));
            }
            println!("{}", serde_json::to_string_pretty(&found)?);
        }
        SecretCommand::Rm { secrets } => {
            // Every name must resolve before anything is removed.
            let mut ids = Vec::new();
            for secret in &secrets {
                let found = control
                    .get_secret(GetSecretRequest {
                        secret: secret.clone(),
                    })
                    .await?
                    .into_inner();
                ids.push((found.id, secret.clone()));
            }
            for (id, name) in ids {
                control
                    .remove_secret(RemoveSecretRequest { secret: id })
                    .await?;
                println!("{name}");
            }
        }
    }
    Ok(())
}

pub async fn run_config(host: Option<&str>, command: ConfigCommand) -> anyhow::Result<()> {
    let mut control = client::control(client::connect(host).await?);
    match command {
        ConfigCommand::Create(ObjectCreateArgs { label, name, file }) => {
            let spec = ConfigSpec {
                name,
                labels: labels(&label)?,
                data: read_data("config", &file)?,
            };
            let config = control
                .create_config(CreateConfigRequest { spec: Some(spec) })
                .await?
                .into_inner();
            println!("{}", config.id);
        }
        ConfigCommand::Ls(args) => {
            let mut configs = control
                .list_configs(ListConfigsRequest {})
                .await?
                .into_inner()
                .configs;
            configs.sort_by_key(name_of_config);
            let rows = configs
                .iter()
                .map(|c| (c.id.clone(), name_of_config(c), c.meta.as_ref()))
                .collect();
            print_list(rows, &args);
        }
        ConfigCommand::Inspect { format: _, configs } => {
            let mut found = Vec::new();
            for config in configs {
                let config = control
                    .get_config(GetConfigRequest { config })
                    .await?
                    .into_inner();
                found.push(config_json(&config));
            }
            println!("{}", serde_json::to_string_pretty(&found)?);
        }
        ConfigCommand::Rm { configs } => {
            let mut ids = Vec::new();
            for config in &configs {
                let found = control
                    .get_config(GetConfigRequest {
                        config: config.clone(),
                    })
                    .await?
                    .into_inner();
                ids.push((found.id, config.clone()));
            }
            for (id, name) in ids {
                control
                    .remove_config(RemoveConfigRequest { config: id })
                    .await?;
                println!("{name}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_shows_a_configs_data_and_never_a_secrets() {
        let config = Config {
            id: "c1".into(),
            meta: None,
            spec: Some(ConfigSpec {
                name: "app".into(),
                labels: HashMap::new(),
                data: b"port=80".to_vec(),
            }),
        };
        assert_eq!(config_json(&config)["Spec"]["Data"], "cG9ydD04MA==");
        let secret = Secret {
            id: "s1".into(),
            meta: None,
            spec: Some(SecretSpec {
                name: "pw".into(),
                data: b"hunter2".to_vec(),
                ..Default::default()
            }),
        };
        let shown = secret_json(&secret).to_string();
        assert!(
            !shown.contains("Data") && !shown.contains("aHVudGVyMg"),
            "{shown}"
        );
    }

    #[test]
    fn data_over_500_kb_is_refused_before_sending() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 500 * 1024 + 1]).unwrap();
        let e = read_data("secret", big.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("500 KB"), "{e}");
        let ok = dir.path().join("ok");
        std::fs::write(&ok, vec![b'x'; 500 * 1024]).unwrap();
        assert_eq!(
            read_data("secret", ok.to_str().unwrap()).unwrap().len(),
            500 * 1024
        );
    }
}
