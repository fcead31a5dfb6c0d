//! Native service registrations on the servers: a node's registrations
//! (checked against the allocations it really holds), the blocking watch
//! that client agents' templates and DNS follow, and operators' deletes.

use crate::rpc_handler::RpcService;
use crate::{Server, ServerError};
use rpc::{RpcError, ServiceUpdateRequest, ServiceUpdateResponse, ServiceWatchRequest, ServiceWatchResponse};
use state::Command;
use std::time::Duration;
use types::service::{MAX_CHECK_OUTPUT_BYTES, MAX_REGISTRATIONS_PER_REQUEST};
use types::{Index, ServiceRegistration};

/// Longest a blocking service watch may wait.
const MAX_WATCH_WAIT: Duration = Duration::from_secs(300);
/// Longest service name, tag, meta key or value the servers store.
const MAX_FIELD_BYTES: usize = 512;
/// Most tags or meta entries of one registration.
const MAX_ITEMS: usize = 64;

/// Why a registration cannot be stored, or `None`.
fn registration_problem(registration: &ServiceRegistration) -> Option<String> {
    if registration.id.is_empty() || registration.id.len() > 4 * MAX_FIELD_BYTES {
        return Some("a registration needs an ID of at most 2048 bytes".to_string());
    }
    if registration.service_name.is_empty() || registration.service_name.len() > MAX_FIELD_BYTES {
        return Some(format!(
            "registration {:?} needs a service name of at most 512 bytes",
            registration.id
        ));
    }
    if registration.tags.len() > MAX_ITEMS
        || registration.meta.len() > MAX_ITEMS
        || registration.checks.len() > MAX_ITEMS
    {
        return Some(format!(
            "registration {:?} has more than {MAX_ITEMS} tags, meta entries or checks",
            registration.id
        ));
    }
    let too_long = registration
        .tags
        .iter()
        .chain(registration.meta.keys())
        .chain(registration.meta.values())
        .chain(std::iter::once(&registration.address))
        .any(|text| text.len() > MAX_FIELD_BYTES)
        || registration
            .checks
            .iter()
            .any(|check| check.output.len() > MAX_CHECK_OUTPUT_BYTES || check.name.len() > MAX_FIELD_BYTES);
    too_long.then(|| {
        format!(
            "registration {:?} has a field longer than Drover's limit",
            registration.id
        )
    })
}

impl RpcService {
    /// A node's registrations: each must belong to an allocation on that
    /// node; deletes touch only the node's own registrations.
    pub(crate) async fn service_update(
        &self,
        request: ServiceUpdateRequest,
    ) -> Result<ServiceUpdateResponse, RpcError> {
        let server = self.server();
        let state = server.state();
        self.check_secret(&state, &request.node_id, &request.secret_id)?;
        if request.upserts.len() + request.deletes.len() > MAX_REGISTRATIONS_PER_REQUEST {
            return Err(RpcError::BadRequest(format!(
                "more than {MAX_REGISTRATIONS_PER_REQUEST} registrations in one request"
            )));
        }
        for registration in &request.upserts {
            if let Some(problem) = registration_problem(registration) {
                return Err(RpcError::BadRequest(problem));
            }
            if let Some(alloc) = state.alloc(&registration.alloc_id)
                && alloc.node_id != request.node_id
            {
                return Err(RpcError::PermissionDenied(format!(
                    "allocation {} is not on node {}",
                    registration.alloc_id, request.node_id
                )));
            }
        }
        let deletes: Vec<String> = request
            .deletes
            .into_iter()
            .filter(|id| {
                state
                    .service_registration(id)
                    .is_some_and(|existing| existing.node_id == request.node_id)
            })
            .collect();
        let mut index = state.index();
        if !deletes.is_empty() {
            index = server
                .write_local(Command::ServiceRegistrationDelete { ids: deletes })
                .await?
                .index;
        }
        // Only what changed goes into the log.
        let upserts: Vec<ServiceRegistration> = request
            .upserts
            .into_iter()
            .filter(|registration| {
                state
                    .service_registration(&registration.id)
                    .is_none_or(|existing| !existing.same_content(registration))
            })
            .collect();
        if !upserts.is_empty() {
            index = server
                .write_local(Command::ServiceRegistrationUpsert { services: upserts })
                .await?
                .index;
        }
        Ok(ServiceUpdateResponse { index })
    }

    /// Answers once the registrations changed past `min_index`, or at the
    /// end of the wait.
    pub(crate) async fn service_watch(&self, request: ServiceWatchRequest) -> Result<ServiceWatchResponse, RpcError> {
        let server = self.server();
        let mut state = server.state();
        if state.node(&request.node_id).is_none() {
            state = server.read_state(false).await?;
        }
        self.check_secret(&state, &request.node_id, &request.secret_id)?;
        let wait = Duration::from_millis(request.max_wait_ms).min(MAX_WATCH_WAIT);
        let deadline = tokio::time::Instant::now() + wait;
        let mut applied = server.subscribe();
        loop {
            let state = server.state();
            let index: Index = state.table_indexes().services;
            if index > request.min_index || tokio::time::Instant::now() >= deadline {
                return Ok(ServiceWatchResponse {
                    index: index.max(request.min_index),
                    registrations: state
                        .service_registrations(None)
                        .into_iter()
                        .map(|registration| (*registration).clone())
                        .collect(),
                });
            }
            if tokio::time::timeout_at(deadline, applied.changed())
                .await
                .is_ok_and(|changed| changed.is_err())
            {
                return Err(RpcError::Internal("state watch closed".to_string()));
            }
        }
    }
}

impl Server {
    /// Deletes one registration (`DELETE /v1/service/:name/:id`). Its
    /// client registers it again when the instance changes (a check status,
    /// a task restart).
    pub async fn delete_service_registration(
        &self,
        namespace: &str,
        name: &str,
        id: &str,
    ) -> Result<Index, ServerError> {
        let state = self.state();
        match state.service_registration(id) {
            Some(existing) if existing.namespace == namespace && existing.service_name == name => {}
            _ => return Err(ServerError::NotFound(format!("service registration {id:?}"))),
        }
        let result = self
            .write(Command::ServiceRegistrationDelete {
                ids: vec![id.to_string()],
            })
            .await?;
        Ok(result.index)
    }
}
