//! The HTTP API: Nomad's `/v1/*` paths and JSON shapes over axum, plus a
//! small status page.
//!
//! [`app`] builds the router from an [`AppState`]; tests call it in-process
//! with `tower::ServiceExt::oneshot` or over a real socket. Every handler
//! returns `Result<_, ApiError>`, and [`ApiError`] maps to a status code in
//! one place: bad input is a 400 with its message, unknown IDs a 404,
//! internal failures a logged 500. Only this crate knows HTTP.

mod client_agent;
mod cluster;
mod deployments;
mod error;
mod exposure;
mod handlers;
mod limits;
mod logs;
mod query;
mod ui;

pub use client_agent::{ClientAppState, ServerDirectory, client_app};
pub use error::ApiError;
pub use exposure::exposure_warning;
pub use limits::{ApiLimits, DEFAULT_MAX_BODY_BYTES};

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use axum::{Extension, Router};
use server::Server;
use std::path::PathBuf;
use std::sync::Arc;

/// Facts about this agent for `/v1/agent/self`.
#[derive(Debug, Clone, Default)]
pub struct AgentInfo {
    pub node_name: String,
    pub datacenter: String,
    pub region: String,
    pub http_addr: String,
    pub rpc_addr: String,
    pub data_dir: String,
    pub version: String,
    pub dev_mode: bool,
    pub client_node_id: Option<String>,
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub server: Server,
    /// Where the local client keeps allocation directories
    /// (`<root>/<alloc_id>/alloc/logs/...`), when this agent runs a client.
    pub alloc_root: Option<PathBuf>,
    pub agent: Arc<AgentInfo>,
}

/// Builds the router, with the default [`ApiLimits`].
pub fn app(state: AppState) -> Router {
    app_with_limits(state, ApiLimits::default())
}

/// Builds the router with the given limits.
pub fn app_with_limits(state: AppState, api_limits: ApiLimits) -> Router {
    Router::new()
        .route(
            "/v1/jobs",
            get(handlers::list_jobs)
                .put(handlers::register_jobs)
                .post(handlers::register_jobs),
        )
        .route("/v1/jobs/parse", post(handlers::parse_job).put(handlers::parse_job))
        .route(
            "/v1/validate/job",
            post(handlers::validate_job).put(handlers::validate_job),
        )
        .route(
            "/v1/job/{id}",
            get(handlers::get_job)
                .post(handlers::register_job_by_id)
                .put(handlers::register_job_by_id)
                .delete(handlers::deregister_job),
        )
        .route("/v1/job/{id}/allocations", get(handlers::job_allocations))
        .route("/v1/job/{id}/evaluations", get(handlers::job_evaluations))
        .route("/v1/job/{id}/summary", get(handlers::job_summary))
        .route("/v1/job/{id}/versions", get(handlers::job_versions))
        .route("/v1/job/{id}/plan", post(handlers::plan_job).put(handlers::plan_job))
        .route(
            "/v1/job/{id}/revert",
            post(handlers::revert_job).put(handlers::revert_job),
        )
        .route(
            "/v1/job/{id}/stable",
            post(handlers::job_stable).put(handlers::job_stable),
        )
        .route(
            "/v1/job/{id}/scale",
            get(deployments::job_scale_status)
                .post(deployments::scale_job)
                .put(deployments::scale_job),
        )
        .route("/v1/job/{id}/deployments", get(deployments::job_deployments))
        .route("/v1/job/{id}/deployment", get(deployments::job_latest_deployment))
        .route("/v1/deployments", get(deployments::list_deployments))
        .route("/v1/deployment/{id}", get(deployments::get_deployment))
        .route(
            "/v1/deployment/allocations/{id}",
            get(deployments::deployment_allocations),
        )
        .route(
            "/v1/deployment/promote/{id}",
            post(deployments::promote).put(deployments::promote),
        )
        .route(
            "/v1/deployment/fail/{id}",
            post(deployments::fail).put(deployments::fail),
        )
        .route(
            "/v1/deployment/pause/{id}",
            post(deployments::pause).put(deployments::pause),
        )
        .route(
            "/v1/deployment/allocation-health/{id}",
            post(deployments::allocation_health).put(deployments::allocation_health),
        )
        .route(
            "/v1/deployment/unblock/{id}",
            post(deployments::unblock).put(deployments::unblock),
        )
        .route("/v1/allocations", get(handlers::list_allocations))
        .route("/v1/allocation/{id}", get(handlers::get_allocation))
        .route("/v1/evaluations", get(handlers::list_evaluations))
        .route("/v1/evaluation/{id}", get(handlers::get_evaluation))
        .route("/v1/evaluation/{id}/allocations", get(handlers::evaluation_allocations))
        .route("/v1/nodes", get(handlers::list_nodes))
        .route("/v1/node/{id}", get(handlers::get_node))
        .route("/v1/node/{id}/allocations", get(handlers::node_allocations))
        .route(
            "/v1/node/{id}/eligibility",
            post(deployments::node_eligibility).put(deployments::node_eligibility),
        )
        .route(
            "/v1/operator/scheduler/configuration",
            get(handlers::get_scheduler_config)
                .put(handlers::set_scheduler_config)
                .post(handlers::set_scheduler_config),
        )
        .route("/v1/agent/members", get(cluster::agent_members))
        .route("/v1/agent/servers", get(cluster::agent_servers))
        .route("/v1/agent/join", put(cluster::agent_join).post(cluster::agent_join))
        .route(
            "/v1/agent/force-leave",
            put(cluster::agent_force_leave).post(cluster::agent_force_leave),
        )
        .route("/v1/operator/raft/configuration", get(cluster::raft_configuration))
        .route("/v1/operator/raft/peer", delete(cluster::raft_remove_peer))
        .route(
            "/v1/operator/raft/transfer-leadership",
            put(cluster::raft_transfer_leadership).post(cluster::raft_transfer_leadership),
        )
        .route(
            "/v1/operator/snapshot",
            get(cluster::snapshot_save)
                .put(cluster::snapshot_restore)
                // A restore is one Raft entry, replicated in one frame.
                .layer(DefaultBodyLimit::max(cluster::MAX_RESTORE_BYTES)),
        )
        .route("/v1/system/gc", put(cluster::system_gc).post(cluster::system_gc))
        .route(
            "/v1/system/reconcile/summaries",
            put(cluster::system_reconcile_summaries).post(cluster::system_reconcile_summaries),
        )
        .route("/v1/namespaces", get(handlers::list_namespaces))
        .route(
            "/v1/namespace",
            post(handlers::apply_namespace).put(handlers::apply_namespace),
        )
        .route(
            "/v1/namespace/{name}",
            get(handlers::get_namespace)
                .post(handlers::apply_namespace_by_name)
                .put(handlers::apply_namespace_by_name)
                .delete(handlers::delete_namespace),
        )
        .route("/v1/status/leader", get(handlers::status_leader))
        .route("/v1/status/peers", get(handlers::status_peers))
        .route("/v1/agent/self", get(handlers::agent_self))
        .route("/v1/agent/health", get(handlers::agent_health))
        .route("/v1/regions", get(handlers::regions))
        .route("/v1/client/fs/logs/{alloc}", get(logs::logs))
        .route("/", get(ui::index))
        .route("/ui", get(ui::index))
        .route("/ui/", get(ui::index))
        .fallback(handlers::not_found)
        .layer(Extension(Arc::new(limits::Limits::new(api_limits))))
        // Every body is read through an extractor that honours this limit
        // (`Bytes`), answering 413 once the body passes it.
        .layer(DefaultBodyLimit::max(api_limits.max_body_bytes))
        .with_state(state)
}
