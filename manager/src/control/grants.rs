//! What a secret or config object and a service's grants must be, as pure
//! checks over the store: Docker's naming rule and size bound, grants named
//! by name or ID resolved to IDs (unknown ones refused), file targets and
//! owners checked, and inspect answers without a secret's data. The calls
//! themselves are in [`super::secrets`].

use shoal_proto::v1::{Config, Secret, ServiceSpec};
use tonic::Status;

use crate::store::secrets::MAX_DATA_BYTES;
use crate::store::ClusterState;

/// Docker's rule for secret and config names: letters, digits, and `-_.`
/// inside, at most 64 characters.
pub fn validate_object_name(kind: &str, name: &str) -> Result<(), Status> {
    let inner_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let ends_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 64 || !inner_ok || !ends_ok {
        return Err(Status::invalid_argument(format!(
            "invalid {kind} name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        )));
    }
    Ok(())
}

pub(super) fn check_size(kind: &str, name: &str, len: usize) -> Result<(), Status> {
    if len == 0 {
        return Err(Status::invalid_argument(format!(
            "{kind} {name} has no data: give a non-empty file (or standard input)"
        )));
    }
    if len > MAX_DATA_BYTES {
        return Err(Status::invalid_argument(format!(
            "{kind} {name} is {len} bytes: {kind}s are limited to {MAX_DATA_BYTES} bytes (500 KB)"
        )));
    }
    Ok(())
}

/// A secret as clients see it: everything but the data.
pub fn redact_secret(mut secret: Secret) -> Secret {
    if let Some(spec) = secret.spec.as_mut() {
        spec.data = Vec::new();
    }
    secret
}

/// Finds one object by ID, name or unique ID prefix.
fn resolve<'a, T>(
    kind: &str,
    objects: &'a std::collections::BTreeMap<String, T>,
    name_of: impl Fn(&T) -> &str,
    reference: &str,
) -> Result<&'a T, Status> {
    if reference.is_empty() {
        return Err(Status::invalid_argument(format!(
            "a {kind} name or ID is required"
        )));
    }
    if let Some(found) = objects.get(reference) {
        return Ok(found);
    }
    if let Some(found) = objects.values().find(|o| name_of(o) == reference) {
        return Ok(found);
    }
    let found: Vec<&T> = objects
        .iter()
        .filter(|(id, _)| id.starts_with(reference))
        .map(|(_, o)| o)
        .collect();
    match found.len() {
        1 => Ok(found[0]),
        0 => Err(Status::not_found(format!(
            "{kind} {reference} not found: create it with `shoal {kind} create {reference} FILE`, or see `shoal {kind} ls`"
        ))),
        n => Err(Status::failed_precondition(format!(
            "{kind} {reference} is ambiguous ({n} matches): use the full ID or the name"
        ))),
    }
}

pub fn resolve_secret<'a>(state: &'a ClusterState, reference: &str) -> Result<&'a Secret, Status> {
    resolve(
        "secret",
        &state.secrets,
        |s| s.spec.as_ref().map(|s| s.name.as_str()).unwrap_or(""),
        reference,
    )
}

pub fn resolve_config<'a>(state: &'a ClusterState, reference: &str) -> Result<&'a Config, Status> {
    resolve(
        "config",
        &state.configs,
        |c| c.spec.as_ref().map(|s| s.name.as_str()).unwrap_or(""),
        reference,
    )
}

/// Where a granted file appears in the task: the rule the managers and
/// agents share.
pub use shoal_proto::grants::{config_path, secret_path};

fn check_target(kind: &str, source: &str, target: &str) -> Result<(), Status> {
    if target.split('/').any(|part| part == "..") || target.ends_with('/') {
        return Err(Status::invalid_argument(format!(
            "invalid target {target:?} for {kind} {source}: give a file name or an absolute file path without '..'"
        )));
    }
    Ok(())
}

fn check_owner(kind: &str, source: &str, what: &str, value: &str) -> Result<(), Status> {
    if !value.is_empty() && value.parse::<u32>().is_err() {
        return Err(Status::invalid_argument(format!(
            "invalid {what} {value:?} for {kind} {source}: give a numeric ID"
        )));
    }
    Ok(())
}

/// Rewrites the spec's secret and config grants to IDs (keeping the names
/// they were granted by), fills in default targets, and refuses unknown
/// objects, bad targets and two grants on one path.
pub fn resolve_spec_grants(state: &ClusterState, spec: &mut ServiceSpec) -> Result<(), Status> {
    let Some(task) = spec.task.as_mut() else {
        return Ok(());
    };
    let mut paths: Vec<String> = Vec::new();
    let mut claim = |path: String, what: &str| {
        if paths.contains(&path) {
            return Err(Status::invalid_argument(format!(
                "{what} would be written at {path}, where another secret or config already is: give it another target"
            )));
        }
        paths.push(path);
        Ok(())
    };
    for grant in &mut task.secrets {
        let reference = if grant.secret_id.is_empty() {
            grant.secret_name.clone()
        } else {
            grant.secret_id.clone()
        };
        let secret = resolve_secret(state, &reference)?;
        let name = secret
            .spec
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        grant.secret_id = secret.id.clone();
        grant.secret_name = name.clone();
        let file = grant.file.get_or_insert_with(Default::default);
        if file.name.is_empty() {
            file.name = name.clone();
        }
        check_target("secret", &name, &file.name)?;
        check_owner("secret", &name, "uid", &file.uid)?;
        check_owner("secret", &name, "gid", &file.gid)?;
        if file.mode > 0o7777 {
            return Err(Status::invalid_argument(format!(
                "invalid mode {:o} for secret {name}: give octal permission bits such as 0400",
                file.mode
            )));
        }
        claim(secret_path(&file.name), &format!("secret {name}"))?;
    }
    for grant in &mut task.configs {
        let reference = if grant.config_id.is_empty() {
            grant.config_name.clone()
        } else {
            grant.config_id.clone()
        };
        let config = resolve_config(state, &reference)?;
        let name = config
            .spec
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        grant.config_id = config.id.clone();
        grant.config_name = name.clone();
        let file = grant.file.get_or_insert_with(Default::default);
        if file.name.is_empty() {
            file.name = format!("/{name}");
        }
        check_target("config", &name, &file.name)?;
        check_owner("config", &name, "uid", &file.uid)?;
        check_owner("config", &name, "gid", &file.gid)?;
        if file.mode > 0o7777 {
            return Err(Status::invalid_argument(format!(
                "invalid mode {:o} for config {name}: give octal permission bits such as 0444",
                file.mode
            )));
        }
        claim(config_path(&file.name), &format!("config {name}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::v1::{FileTarget, SecretReference, SecretSpec, TaskSpec};

    fn state_with_secret(name: &str) -> ClusterState {
        let mut state = ClusterState::default();
        state.secrets.insert(
            "s1".into(),
            Secret {
                id: "s1".into(),
                meta: None,
                spec: Some(SecretSpec {
                    name: name.into(),
                    data: b"hunter2".to_vec(),
                    ..Default::default()
                }),
            },
        );
        state
    }

    fn spec_granting(references: Vec<SecretReference>) -> ServiceSpec {
        ServiceSpec {
            name: "web".into(),
            task: Some(TaskSpec {
                secrets: references,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn grants_by_name_are_stored_by_id_with_the_default_target() {
        let state = state_with_secret("db_password");
        let mut spec = spec_granting(vec![SecretReference {
            secret_id: "db_password".into(),
            ..Default::default()
        }]);
        resolve_spec_grants(&state, &mut spec).unwrap();
        let grant = &spec.task.unwrap().secrets[0];
        assert_eq!(grant.secret_id, "s1");
        assert_eq!(grant.secret_name, "db_password");
        assert_eq!(grant.file.as_ref().unwrap().name, "db_password");
    }

    #[test]
    fn unknown_secrets_clashing_targets_and_bad_owners_are_refused() {
        let state = state_with_secret("db_password");
        let mut missing = spec_granting(vec![SecretReference {
            secret_id: "nope".into(),
            ..Default::default()
        }]);
        let e = resolve_spec_grants(&state, &mut missing).unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert!(
            e.message().contains("secret nope not found"),
            "{}",
            e.message()
        );

        let twice = SecretReference {
            secret_id: "db_password".into(),
            ..Default::default()
        };
        let mut clash = spec_granting(vec![twice.clone(), twice]);
        let e = resolve_spec_grants(&state, &mut clash).unwrap_err();
        assert!(
            e.message().contains("/run/secrets/db_password"),
            "{}",
            e.message()
        );

        let mut bad_uid = spec_granting(vec![SecretReference {
            secret_id: "db_password".into(),
            file: Some(FileTarget {
                uid: "root".into(),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        assert!(resolve_spec_grants(&state, &mut bad_uid).is_err());
    }

    #[test]
    fn names_follow_dockers_rule_and_data_is_bounded() {
        assert!(validate_object_name("secret", "db_password.v2").is_ok());
        assert!(validate_object_name("secret", "-x").is_err());
        assert!(validate_object_name("secret", "a/b").is_err());
        assert!(check_size("secret", "x", MAX_DATA_BYTES).is_ok());
        let e = check_size("secret", "x", MAX_DATA_BYTES + 1).unwrap_err();
        assert!(e.message().contains("500 KB"), "{}", e.message());
    }

    #[test]
    fn inspect_never_carries_the_data() {
        let state = state_with_secret("db_password");
        let secret = redact_secret(state.secrets["s1"].clone());
        assert!(secret.spec.unwrap().data.is_empty());
    }
}
