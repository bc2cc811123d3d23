//! Applying secret and config commands. Both are named, immutable blobs a
//! service's tasks are granted: a name is taken once per kind, the data never
//! changes (rotation is a new object), and an object a service's spec grants
//! cannot be removed. The data is replicated like every value, so it is
//! sealed at rest by the Raft store's encryption ([`crate::raft`]).

use shoal_proto::v1::{Config, Secret, Service};

use super::state::{Change, ClusterState, CommandResult, ObjectKind, StoreError, StoreEvent};

/// Docker's limit on a secret's or config's data (`500 * 1024` bytes).
pub const MAX_DATA_BYTES: usize = 500 * 1024;

/// The IDs of the secrets a service's spec grants.
pub fn granted_secrets(service: &Service) -> Vec<&str> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.task.as_ref())
        .map(|t| t.secrets.iter().map(|r| r.secret_id.as_str()).collect())
        .unwrap_or_default()
}

/// The IDs of the configs a service's spec grants.
pub fn granted_configs(service: &Service) -> Vec<&str> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.task.as_ref())
        .map(|t| t.configs.iter().map(|r| r.config_id.as_str()).collect())
        .unwrap_or_default()
}

fn service_name(service: &Service) -> String {
    service
        .spec
        .as_ref()
        .map(|s| s.name.clone())
        .unwrap_or_default()
}

impl ClusterState {
    /// Names of the services whose spec grants secret `secret_id`, sorted.
    pub fn services_granted_secret(&self, secret_id: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .services
            .values()
            .filter(|s| granted_secrets(s).contains(&secret_id))
            .map(service_name)
            .collect();
        names.sort();
        names
    }

    /// Names of the services whose spec grants config `config_id`, sorted.
    pub fn services_granted_config(&self, config_id: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .services
            .values()
            .filter(|s| granted_configs(s).contains(&config_id))
            .map(service_name)
            .collect();
        names.sort();
        names
    }

    pub fn secret_by_name(&self, name: &str) -> Option<&Secret> {
        self.secrets
            .values()
            .find(|s| s.spec.as_ref().is_some_and(|spec| spec.name == name))
    }

    pub fn config_by_name(&self, name: &str) -> Option<&Config> {
        self.configs
            .values()
            .find(|c| c.spec.as_ref().is_some_and(|spec| spec.name == name))
    }

    /// Refuses a service spec that grants a secret or config the store does
    /// not hold (one removed since the control API checked).
    pub(super) fn check_grants(&self, service: &Service) -> CommandResult {
        for id in granted_secrets(service) {
            if !self.secrets.contains_key(id) {
                return Err(StoreError::NotFound {
                    kind: ObjectKind::Secret,
                    id: id.to_string(),
                });
            }
        }
        for id in granted_configs(service) {
            if !self.configs.contains_key(id) {
                return Err(StoreError::NotFound {
                    kind: ObjectKind::Config,
                    id: id.to_string(),
                });
            }
        }
        Ok(())
    }

    pub(super) fn create_secret(
        &mut self,
        secret: Secret,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let spec = secret.spec.clone().unwrap_or_default();
        if spec.data.len() > MAX_DATA_BYTES {
            return Err(StoreError::Conflict(format!(
                "secret {} is {} bytes: at most {MAX_DATA_BYTES} bytes (500 KB)",
                spec.name,
                spec.data.len()
            )));
        }
        if self.secret_by_name(&spec.name).is_some() {
            return Err(StoreError::Conflict(format!(
                "secret {} already exists: secrets are immutable, create one under another name to rotate",
                spec.name
            )));
        }
        if self.secrets.contains_key(&secret.id) {
            return Err(StoreError::AlreadyExists {
                kind: ObjectKind::Secret,
                id: secret.id,
            });
        }
        events.push(StoreEvent::Secret(Change::Created, secret.id.clone()));
        self.secrets.insert(secret.id.clone(), secret);
        Ok(())
    }

    pub(super) fn remove_secret(
        &mut self,
        secret_id: &str,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let users = self.services_granted_secret(secret_id);
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "secret {secret_id} is in use by service {}",
                users.join(", ")
            )));
        }
        self.secrets.remove(secret_id).ok_or(StoreError::NotFound {
            kind: ObjectKind::Secret,
            id: secret_id.to_string(),
        })?;
        events.push(StoreEvent::Secret(Change::Removed, secret_id.to_string()));
        Ok(())
    }

    pub(super) fn create_config(
        &mut self,
        config: Config,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let spec = config.spec.clone().unwrap_or_default();
        if spec.data.len() > MAX_DATA_BYTES {
            return Err(StoreError::Conflict(format!(
                "config {} is {} bytes: at most {MAX_DATA_BYTES} bytes (500 KB)",
                spec.name,
                spec.data.len()
            )));
        }
        if self.config_by_name(&spec.name).is_some() {
            return Err(StoreError::Conflict(format!(
                "config {} already exists: configs are immutable, create one under another name to rotate",
                spec.name
            )));
        }
        if self.configs.contains_key(&config.id) {
            return Err(StoreError::AlreadyExists {
                kind: ObjectKind::Config,
                id: config.id,
            });
        }
        events.push(StoreEvent::Config(Change::Created, config.id.clone()));
        self.configs.insert(config.id.clone(), config);
        Ok(())
    }

    pub(super) fn remove_config(
        &mut self,
        config_id: &str,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let users = self.services_granted_config(config_id);
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "config {config_id} is in use by service {}",
                users.join(", ")
            )));
        }
        self.configs.remove(config_id).ok_or(StoreError::NotFound {
            kind: ObjectKind::Config,
            id: config_id.to_string(),
        })?;
        events.push(StoreEvent::Config(Change::Removed, config_id.to_string()));
        Ok(())
    }
}
