//! The control API's secret and config calls (`secret|config
//! create|ls|inspect|rm`); what objects and grants must be is
//! [`super::grants`].
//!
//! A secret's data goes into the store and from there only to the nodes
//! that run a task granted it ([`crate::dispatcher`]); no call here returns
//! it. Configs are not secret: `config inspect` returns their data, as
//! Docker's does.

use shoal_proto::v1::{
    Config, CreateConfigRequest, CreateSecretRequest, GetConfigRequest, GetSecretRequest,
    ListConfigsRequest, ListConfigsResponse, ListSecretsRequest, ListSecretsResponse, Meta,
    RemoveConfigRequest, RemoveConfigResponse, RemoveSecretRequest, RemoveSecretResponse, Secret,
};
use tonic::{Request, Response, Status};

use super::grants::{
    check_size, redact_secret, resolve_config, resolve_secret, validate_object_name,
};
use super::ControlService;
use crate::store::{Command, StoreError};

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
