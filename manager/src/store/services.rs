//! Applying service commands.

use shoal_proto::v1::{Service, ServiceSpec, TaskState};

use super::{bump, Change, ClusterState, CommandResult, ObjectKind, StoreError, StoreEvent};

impl ClusterState {
    pub(super) fn create_service(
        &mut self,
        service: Service,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let name = service
            .spec
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        if self.service_by_name(&name).is_some() {
            return Err(StoreError::Conflict(format!(
                "name conflicts with an existing object: service {name} already exists"
            )));
        }
        if self.services.contains_key(&service.id) {
            return Err(StoreError::AlreadyExists {
                kind: ObjectKind::Service,
                id: service.id,
            });
        }
        events.push(StoreEvent::Service(Change::Created, service.clone()));
        self.services.insert(service.id.clone(), service);
        Ok(())
    }

    pub(super) fn update_service_spec(
        &mut self,
        service_id: &str,
        spec: ServiceSpec,
        expected_version: u64,
        at_ms: i64,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let service = self
            .services
            .get_mut(service_id)
            .ok_or(StoreError::NotFound {
                kind: ObjectKind::Service,
                id: service_id.to_string(),
            })?;
        if expected_version != 0 && service.spec_version != expected_version {
            return Err(StoreError::Conflict(format!(
                "service {service_id} was changed meanwhile (now at spec version {}): retry",
                service.spec_version
            )));
        }
        let current_name = service.spec.as_ref().map(|s| s.name.as_str()).unwrap_or("");
        if current_name != spec.name {
            return Err(StoreError::Conflict(format!(
                "renaming service {current_name} to {} is not supported",
                spec.name
            )));
        }
        service.previous_spec = service.spec.replace(spec);
        service.spec_version += 1;
        bump(&mut service.meta, at_ms);
        events.push(StoreEvent::Service(Change::Updated, service.clone()));
        Ok(())
    }

    pub(super) fn remove_service(
        &mut self,
        service_id: &str,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let service = self
            .services
            .remove(service_id)
            .ok_or(StoreError::NotFound {
                kind: ObjectKind::Service,
                id: service_id.to_string(),
            })?;
        for task in self
            .tasks
            .values_mut()
            .filter(|t| t.service_id == service_id)
        {
            if task.desired_state < TaskState::Shutdown as i32 {
                task.desired_state = TaskState::Shutdown as i32;
                events.push(StoreEvent::Task(Change::Updated, task.clone()));
            }
        }
        events.push(StoreEvent::Service(Change::Removed, service));
        Ok(())
    }
}
