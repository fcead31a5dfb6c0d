//! Native service discovery's endpoints, in Nomad's shapes:
//! `/v1/services`, `/v1/service/:name` (with `?choose=N|key` rendezvous
//! selection), `DELETE /v1/service/:name/:id`, `/v1/allocation/:id/services`
//! and `/v1/job/:id/services`. Reading needs `read-job` in the namespace,
//! deleting `submit-job`, as in Nomad.

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::{Answer, found, reply};
use crate::query::{QueryOptions, block_until, index_headers};
use axum::extract::{Extension, Path, Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use server::Caller;
use types::ServiceRegistration;

/// Query parameters of `/v1/service/:name`.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct ServiceQuery {
    /// `N|key`: the N instances rendezvous hashing gives `key`.
    pub choose: Option<String>,
}

fn api_list(registrations: &[std::sync::Arc<ServiceRegistration>]) -> Vec<api_types::ServiceRegistration> {
    registrations
        .iter()
        .map(|registration| api_types::ServiceRegistration::from(&**registration))
        .collect()
}

pub async fn list_services(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().services).await?;
    let snapshot = options.read(&state).await?;
    let registrations = snapshot.service_registrations(options.namespace());
    let visible = registrations
        .iter()
        .filter(|registration| caller.acl.allow_namespace_op(&registration.namespace, "read-job"))
        .map(|registration| &**registration);
    reply(
        &state,
        snapshot.table_indexes().services,
        &api_types::service_list(visible),
    )
}

pub async fn get_service(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(options): Query<QueryOptions>,
    Query(service_query): Query<ServiceQuery>,
) -> Answer {
    let choose = service_query
        .choose
        .as_deref()
        .map(types::service::parse_choose)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    block_until(&state, &options, |snapshot| snapshot.table_indexes().services).await?;
    let snapshot = options.read(&state).await?;
    let mut registrations: Vec<ServiceRegistration> = snapshot
        .service_registrations_by_name(options.single_namespace(), &name)
        .iter()
        .map(|registration| (**registration).clone())
        .collect();
    if let Some((count, key)) = choose {
        registrations = types::service::rendezvous_choose(registrations, count, &key);
    }
    let body: Vec<api_types::ServiceRegistration> =
        registrations.iter().map(api_types::ServiceRegistration::from).collect();
    reply(&state, snapshot.table_indexes().services, &body)
}

pub async fn delete_service(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    let index = state
        .server
        .delete_service_registration(options.single_namespace(), &name, &id)
        .await?;
    let headers = index_headers(index, &state.server);
    Ok((headers, axum::Json(serde_json::json!({}))).into_response())
}

pub async fn alloc_services(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().services).await?;
    let snapshot = options.read(&state).await?;
    let alloc = found(snapshot.alloc_by_prefix(&id), "allocation", &id)?;
    crate::authz::require_namespace_op(&caller, &alloc.namespace, "read-job")?;
    let body = api_list(&snapshot.service_registrations_by_alloc(&alloc.id));
    reply(&state, snapshot.table_indexes().services, &body)
}

pub async fn job_services(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().services).await?;
    let snapshot = options.read(&state).await?;
    if snapshot.job(options.single_namespace(), &id).is_none() {
        return Err(ApiError::NotFound(format!("job {id:?}")));
    }
    let body = api_list(&snapshot.service_registrations_by_job(options.single_namespace(), &id));
    reply(&state, snapshot.table_indexes().services, &body)
}
