//! Applying service commands, including the bookkeeping of rollouts: a
//! change of the task spec starts an update (`UpdateStatus` UPDATING), a
//! rollback swaps the spec with the previous one and starts rolling back, and
//! any update of a paused service resumes it. How the rollout proceeds is the
//! orchestrator's ([`crate::orchestrator`]); this module only records it.

use shoal_proto::v1::{Service, ServiceSpec, TaskState, UpdateState, UpdateStatus};

use crate::network;

use super::state::{bump, Change, ClusterState, CommandResult, ObjectKind, StoreError, StoreEvent};

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
        let vips = service
            .endpoint
            .as_ref()
            .map(|e| e.virtual_ips.as_slice())
            .unwrap_or(&[]);
        self.check_vips_free(&service.id, vips)?;
        self.check_grants(&service)?;
        let mut service = service;
        self.allocate_ports(&mut service)?;
        events.push(StoreEvent::Service(Change::Created, service.clone()));
        self.services.insert(service.id.clone(), service);
        Ok(())
    }

    /// The service, if it is still at `expected_version` (0: any): writes
    /// made from a version someone else changed meanwhile are refused.
    fn service_at_version(
        &mut self,
        service_id: &str,
        expected_version: u64,
    ) -> Result<&mut Service, StoreError> {
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
        Ok(service)
    }

    pub(super) fn update_service_spec(
        &mut self,
        service_id: &str,
        spec: ServiceSpec,
        expected_version: u64,
        at_ms: i64,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        // A secret or config removed since the control API resolved it.
        self.check_grants(&Service {
            spec: Some(spec.clone()),
            ..Default::default()
        })?;
        // The ports first: a clash refuses the whole update.
        let ports = {
            let current = self.service_at_version(service_id, expected_version)?;
            let previous = network::ports::endpoint_ports(current).to_vec();
            let wanted = spec
                .endpoint
                .as_ref()
                .map(|e| e.ports.as_slice())
                .unwrap_or(&[]);
            network::ports::assign_ports(self, service_id, wanted, &previous)
                .map_err(StoreError::Conflict)?
        };
        let service = self.service_at_version(service_id, expected_version)?;
        if network::ports::endpoint_ports(service) != ports.as_slice() {
            service.endpoint.get_or_insert_with(Default::default).ports = ports;
        }
        let current_name = service.spec.as_ref().map(|s| s.name.as_str()).unwrap_or("");
        if current_name != spec.name {
            return Err(StoreError::Conflict(format!(
                "renaming service {current_name} to {} is not supported",
                spec.name
            )));
        }
        let state = service
            .update_status
            .as_ref()
            .map(|s| s.state())
            .unwrap_or_default();
        let task_changed =
            service.spec.as_ref().and_then(|s| s.task.as_ref()) != spec.task.as_ref();
        if service.spec.as_ref() != Some(&spec) {
            service.previous_spec = service.spec.replace(spec);
            service.spec_version += 1;
        }
        if task_changed {
            service.update_status = Some(update_status(
                UpdateState::Updating,
                at_ms,
                "update in progress",
            ));
        } else if state == UpdateState::Paused {
            // Any update of a paused service resumes it; failures before now
            // no longer count.
            service.update_status = Some(update_status(
                UpdateState::Updating,
                at_ms,
                "update resumed",
            ));
        } else if state == UpdateState::RollbackPaused {
            service.update_status = Some(update_status(
                UpdateState::RollbackStarted,
                at_ms,
                "rollback resumed",
            ));
        }
        bump(&mut service.meta, at_ms);
        events.push(StoreEvent::Service(Change::Updated, service.clone()));
        Ok(())
    }

    pub(super) fn rollback_service(
        &mut self,
        service_id: &str,
        expected_version: u64,
        message: String,
        at_ms: i64,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let service = self.service_at_version(service_id, expected_version)?;
        let name = service
            .spec
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let Some(previous) = service.previous_spec.clone() else {
            return Err(StoreError::Conflict(format!(
                "service {name} has no previous spec to roll back to: it was never updated"
            )));
        };
        // The previous spec's ports may be taken by now: then the rollback
        // is refused as a whole, naming the holder.
        let mut rolled = service.clone();
        rolled.previous_spec = rolled.spec.replace(previous);
        self.allocate_ports(&mut rolled)?;
        let service = self.services.get_mut(service_id).expect("checked above");
        *service = rolled;
        service.spec_version += 1;
        service.update_status = Some(update_status(UpdateState::RollbackStarted, at_ms, &message));
        bump(&mut service.meta, at_ms);
        events.push(StoreEvent::Service(Change::Updated, service.clone()));
        Ok(())
    }

    pub(super) fn set_update_status(
        &mut self,
        service_id: &str,
        expected_version: u64,
        status: UpdateStatus,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let Some(service) = self.services.get_mut(service_id) else {
            return Ok(());
        };
        // A stale decision about an older spec is dropped, not an error: the
        // orchestrator decides again from the current state.
        if service.spec_version != expected_version
            || service.update_status.as_ref() == Some(&status)
        {
            return Ok(());
        }
        let at_ms = status.completed_at_ms.max(status.started_at_ms);
        service.update_status = Some(status);
        bump(&mut service.meta, at_ms);
        events.push(StoreEvent::Service(Change::Updated, service.clone()));
        Ok(())
    }

    pub(super) fn autoscale_service(
        &mut self,
        service_id: &str,
        expected_version: u64,
        replicas: u64,
        event: shoal_proto::v1::AutoscaleEvent,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let service = self.service_at_version(service_id, expected_version)?;
        let Some(spec) = service.spec.as_mut().filter(|s| s.autoscale.is_some()) else {
            return Err(StoreError::Conflict(format!(
                "service {service_id} is no longer autoscaled"
            )));
        };
        if spec.replicas != replicas {
            spec.replicas = replicas;
            service.spec_version += 1;
        }
        let at_ms = event.at_ms;
        service.autoscale_events.push(event);
        let excess = service
            .autoscale_events
            .len()
            .saturating_sub(AUTOSCALE_EVENTS_KEPT);
        service.autoscale_events.drain(..excess);
        bump(&mut service.meta, at_ms);
        events.push(StoreEvent::Service(Change::Updated, service.clone()));
        Ok(())
    }

    /// Sets `service.endpoint.ports` from its spec ([`network::ports`]);
    /// what the proposer planned is kept where it is still free.
    fn allocate_ports(&self, service: &mut Service) -> CommandResult {
        let previous = network::ports::endpoint_ports(service).to_vec();
        let ports = network::ports::assign_ports(
            self,
            &service.id,
            network::ports::spec_ports(service),
            &previous,
        )
        .map_err(StoreError::Conflict)?;
        if !ports.is_empty() || service.endpoint.is_some() {
            service.endpoint.get_or_insert_with(Default::default).ports = ports;
        }
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

/// Autoscaling events kept per service (`service inspect` shows them).
pub const AUTOSCALE_EVENTS_KEPT: usize = 10;

fn update_status(state: UpdateState, at_ms: i64, message: &str) -> UpdateStatus {
    UpdateStatus {
        state: state as i32,
        started_at_ms: at_ms,
        completed_at_ms: 0,
        message: message.to_string(),
    }
}
