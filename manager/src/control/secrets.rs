//! The control API's secret and config calls (`secret|config
//! create|ls|inspect|rm`) and the grant half of `service create|update`:
//! granted objects named by name or ID are stored as IDs, unknown ones
//! refused, file targets checked.
//!
//! A secret's data goes into the store and from there only to the nodes
//! that run a task granted it ([`crate::dispatcher`]); no call here returns
//! it. Configs are not secret: `config inspect` returns their data, as
//! Docker's does.

use shoal_proto::v1::{
    Config, CreateConfigRequest, CreateSecretRequest, GetConfigRequest, GetSecretRequest,
    ListConfigsRequest, ListConfigsResponse, ListSecretsRequest, ListSecretsResponse, Meta,
    RemoveConfigRequest, RemoveConfigResponse, RemoveSecretRequest, RemoveSecretResponse, Secret,
    ServiceSpec,
};
use tonic::{Request, Response, Status};

use super::ControlService;
use crate::store::secrets::MAX_DATA_BYTES;
use crate::store::{ClusterState, Command, StoreError};

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

fn check_size(kind: &str, name: &str, len: usize) -> Result<(), Status> {
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

fn store_status(e: crate::ManagerError) -> Status {
    match e {
        crate::ManagerError::Store(StoreError::Conflict(m)) if m.contains("already exists") => {
            Status::already_exists(m)
        }
        crate::ManagerError::Store(StoreError::Conflict(m)) => Status::failed_precondition(m),
        other => other.into(),
    }
}

fn in_use(kind: &str, name: &str, users: &[String]) -> Status {
    let plural = users.len() != 1;
    Status::failed_precondition(format!(
        "{kind} {name} is in use by service{} {}: remove {} or revoke it with `shoal service update --{kind}-rm {name} SERVICE` first",
        if plural { "s" } else { "" },
        users.join(", "),
        if plural { "them" } else { "it" },
    ))
}

fn new_meta() -> Meta {
    let now = crate::now_ms();
    Meta {
        version: 1,
        created_at_ms: now,
        updated_at_ms: now,
    }
}

impl ControlService {
    pub(super) async fn create_secret_here(
        &self,
        request: Request<CreateSecretRequest>,
    ) -> Result<Response<Secret>, Status> {
        let mut spec = request
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("a secret spec is required"))?;
        validate_object_name("secret", &spec.name)?;
        check_size("secret", &spec.name, spec.data.len())?;
        if !spec.driver.is_empty() {
            return Err(Status::invalid_argument(format!(
                "secret driver {:?} is not supported: shoal keeps secrets in its own encrypted store (leave the driver out)",
                spec.driver
            )));
        }
        spec.driver.clear();
        if self
            .manager
            .store()
            .read(|s| s.secret_by_name(&spec.name).is_some())
        {
            return Err(Status::already_exists(format!(
                "secret {} already exists: secrets are immutable, create one under another name to rotate",
                spec.name
            )));
        }
        let secret = Secret {
            id: crate::new_id(),
            meta: Some(new_meta()),
            spec: Some(spec),
        };
        self.manager
            .propose(Command::CreateSecret(secret.clone()))
            .await
            .map_err(store_status)?;
        Ok(Response::new(redact_secret(secret)))
    }

    pub(super) async fn list_secrets_here(
        &self,
        _request: Request<ListSecretsRequest>,
    ) -> Result<Response<ListSecretsResponse>, Status> {
        let secrets = self
            .manager
            .store()
            .read(|s| s.secrets.values().cloned().map(redact_secret).collect());
        Ok(Response::new(ListSecretsResponse { secrets }))
    }

    pub(super) async fn get_secret_here(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<Secret>, Status> {
        let reference = request.into_inner().secret;
        let secret = self
            .manager
            .store()
            .read(|s| resolve_secret(s, &reference).cloned())?;
        Ok(Response::new(redact_secret(secret)))
    }

    pub(super) async fn remove_secret_here(
        &self,
        request: Request<RemoveSecretRequest>,
    ) -> Result<Response<RemoveSecretResponse>, Status> {
        let reference = request.into_inner().secret;
        let (id, name, users) = self.manager.store().read(|s| {
            let secret = resolve_secret(s, &reference)?;
            Ok::<_, Status>((
                secret.id.clone(),
                secret
                    .spec
                    .as_ref()
                    .map(|s| s.name.clone())
                    .unwrap_or_default(),
                s.services_granted_secret(&secret.id),
            ))
        })?;
        if !users.is_empty() {
            return Err(in_use("secret", &name, &users));
        }
        self.manager
            .propose(Command::RemoveSecret {
                secret_id: id.clone(),
            })
            .await
            .map_err(store_status)?;
        Ok(Response::new(RemoveSecretResponse { secret_id: id }))
    }

    pub(super) async fn create_config_here(
        &self,
        request: Request<CreateConfigRequest>,
    ) -> Result<Response<Config>, Status> {
        let spec = request
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("a config spec is required"))?;
        validate_object_name("config", &spec.name)?;
        check_size("config", &spec.name, spec.data.len())?;
        if self
            .manager
            .store()
            .read(|s| s.config_by_name(&spec.name).is_some())
        {
            return Err(Status::already_exists(format!(
                "config {} already exists: configs are immutable, create one under another name to rotate",
                spec.name
            )));
        }
        let config = Config {
            id: crate::new_id(),
            meta: Some(new_meta()),
            spec: Some(spec),
        };
        self.manager
            .propose(Command::CreateConfig(config.clone()))
            .await
            .map_err(store_status)?;
        Ok(Response::new(config))
    }

    pub(super) async fn list_configs_here(
        &self,
        _request: Request<ListConfigsRequest>,
    ) -> Result<Response<ListConfigsResponse>, Status> {
        let configs = self
            .manager
            .store()
            .read(|s| s.configs.values().cloned().collect());
        Ok(Response::new(ListConfigsResponse { configs }))
    }

    pub(super) async fn get_config_here(
        &self,
        request: Request<GetConfigRequest>,
    ) -> Result<Response<Config>, Status> {
        let reference = request.into_inner().config;
        let config = self
            .manager
            .store()
            .read(|s| resolve_config(s, &reference).cloned())?;
        Ok(Response::new(config))
    }

    pub(super) async fn remove_config_here(
        &self,
        request: Request<RemoveConfigRequest>,
    ) -> Result<Response<RemoveConfigResponse>, Status> {
        let reference = request.into_inner().config;
        let (id, name, users) = self.manager.store().read(|s| {
            let config = resolve_config(s, &reference)?;
            Ok::<_, Status>((
                config.id.clone(),
                config
                    .spec
                    .as_ref()
                    .map(|s| s.name.clone())
                    .unwrap_or_default(),
                s.services_granted_config(&config.id),
            ))
        })?;
        if !users.is_empty() {
            return Err(in_use("config", &name, &users));
        }
        self.manager
            .propose(Command::RemoveConfig {
                config_id: id.clone(),
            })
            .await
            .map_err(store_status)?;
        Ok(Response::new(RemoveConfigResponse { config_id: id }))
    }
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
