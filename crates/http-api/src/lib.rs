//! The HTTP API: Nomad's `/v1/*` paths and JSON shapes over axum, plus a
//! small status page.
//!
//! [`app`] builds the router from an [`AppState`]; tests call it in-process
//! with `tower::ServiceExt::oneshot` or over a real socket. Every handler
//! returns `Result<_, ApiError>`, and [`ApiError`] maps to a status code in
//! one place: bad input is a 400 with its message, unknown IDs a 404,
//! internal failures a logged 500. Only this crate knows HTTP.

mod acl_handlers;
mod agent_monitor;
mod authz;
pub mod bexpr;
mod client_agent;
mod client_control;
mod client_fs;
mod cluster;
mod deployments;
mod drain;
mod encoding;
mod error;
mod evaluate;
mod events;
mod exposure;
mod handlers;
mod launches;
mod limits;
mod logs;
mod metrics;
mod node_pools;
mod query;
mod scaling;
mod search;
mod services;
mod tls_listener;
mod ui;
mod vars;

pub use agent_monitor::{LogBroadcast, LogLevel, log_timestamp};
pub use client_agent::{ClientAppState, ServerDirectory, client_app};
pub use error::ApiError;
pub use exposure::exposure_warning;
pub use limits::{ApiLimits, DEFAULT_MAX_BODY_BYTES};
pub use tls_listener::TlsListener;

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, get, on};
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
    /// The agent's log lines, for `/v1/agent/monitor` (the binary's
    /// tracing layer publishes into it).
    pub logs: LogBroadcast,
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub server: Server,
    /// Where the local client keeps allocation directories
    /// (`<root>/<alloc_id>/alloc/logs/...`), when this agent runs a client.
    pub alloc_root: Option<PathBuf>,
    /// The local client's controls (signal, restart, stats, GC), when this
    /// agent runs a client.
    pub client: Option<client::handle::ClientHandle>,
    pub agent: Arc<AgentInfo>,
}

/// Builds the router, with the default [`ApiLimits`].
pub fn app(state: AppState) -> Router {
    app_with_limits(state, ApiLimits::default())
}

/// Every route the server's router serves, as (method, path pattern), for
/// the test that checks each has an entry in the ACL table.
pub fn route_list() -> Vec<(String, &'static str)> {
    server_routes()
        .entries
        .into_iter()
        .map(|(method, path)| (method.as_str().to_string(), path))
        .collect()
}

/// A router that records every (method, path) it serves.
struct Routes {
    router: Router<AppState>,
    entries: Vec<(Method, &'static str)>,
}

impl Routes {
    fn new() -> Routes {
        Routes {
            router: Router::new(),
            entries: Vec::new(),
        }
    }

    /// Serves `method` on `path` with `handler`.
    fn on<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Routes
    where
        H: axum::handler::Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("routes use the standard methods");
        self.router = self.router.route(path, on(filter, handler));
        self.entries.push((method, path));
        self
    }

    /// Serves a prepared method router (one with its own layers) for
    /// exactly `methods`.
    fn with(mut self, methods: &[Method], path: &'static str, router: MethodRouter<AppState>) -> Routes {
        self.router = self.router.route(path, router);
        self.entries.extend(methods.iter().map(|method| (method.clone(), path)));
        self
    }
}

fn server_routes() -> Routes {
    use Method as M;
    Routes::new()
        .on(M::GET, "/v1/jobs", handlers::list_jobs)
        .on(M::PUT, "/v1/jobs", handlers::register_jobs)
        .on(M::POST, "/v1/jobs", handlers::register_jobs)
        .on(M::POST, "/v1/jobs/parse", handlers::parse_job)
        .on(M::PUT, "/v1/jobs/parse", handlers::parse_job)
        .on(M::POST, "/v1/validate/job", handlers::validate_job)
        .on(M::PUT, "/v1/validate/job", handlers::validate_job)
        .on(M::GET, "/v1/job/{id}", handlers::get_job)
        .on(M::POST, "/v1/job/{id}", handlers::register_job_by_id)
        .on(M::PUT, "/v1/job/{id}", handlers::register_job_by_id)
        .on(M::DELETE, "/v1/job/{id}", handlers::deregister_job)
        .on(M::GET, "/v1/job/{id}/allocations", handlers::job_allocations)
        .on(M::GET, "/v1/job/{id}/evaluations", handlers::job_evaluations)
        .on(M::GET, "/v1/job/{id}/summary", handlers::job_summary)
        .on(M::GET, "/v1/job/{id}/versions", handlers::job_versions)
        .on(M::POST, "/v1/job/{id}/plan", handlers::plan_job)
        .on(M::PUT, "/v1/job/{id}/plan", handlers::plan_job)
        .on(M::POST, "/v1/job/{id}/revert", handlers::revert_job)
        .on(M::PUT, "/v1/job/{id}/revert", handlers::revert_job)
        .on(M::POST, "/v1/job/{id}/stable", handlers::job_stable)
        .on(M::PUT, "/v1/job/{id}/stable", handlers::job_stable)
        .on(M::GET, "/v1/job/{id}/scale", deployments::job_scale_status)
        .on(M::POST, "/v1/job/{id}/scale", deployments::scale_job)
        .on(M::PUT, "/v1/job/{id}/scale", deployments::scale_job)
        .on(M::POST, "/v1/job/{id}/periodic/force", launches::periodic_force)
        .on(M::PUT, "/v1/job/{id}/periodic/force", launches::periodic_force)
        .on(M::POST, "/v1/job/{id}/dispatch", launches::dispatch_job)
        .on(M::PUT, "/v1/job/{id}/dispatch", launches::dispatch_job)
        .on(M::GET, "/v1/scaling/policies", scaling::list_policies)
        .on(M::GET, "/v1/scaling/policy/{id}", scaling::get_policy)
        .on(M::POST, "/v1/job/{id}/evaluate", evaluate::job_evaluate)
        .on(M::PUT, "/v1/job/{id}/evaluate", evaluate::job_evaluate)
        .on(M::POST, "/v1/node/{id}/evaluate", evaluate::node_evaluate)
        .on(M::PUT, "/v1/node/{id}/evaluate", evaluate::node_evaluate)
        .on(M::POST, "/v1/node/{id}/drain", drain::node_drain)
        .on(M::PUT, "/v1/node/{id}/drain", drain::node_drain)
        .on(M::POST, "/v1/node/{id}/eligibility", deployments::node_eligibility)
        .on(M::PUT, "/v1/node/{id}/eligibility", deployments::node_eligibility)
        .on(M::GET, "/v1/job/{id}/deployments", deployments::job_deployments)
        .on(M::GET, "/v1/job/{id}/deployment", deployments::job_latest_deployment)
        .on(M::GET, "/v1/deployments", deployments::list_deployments)
        .on(M::GET, "/v1/deployment/{id}", deployments::get_deployment)
        .on(
            M::GET,
            "/v1/deployment/allocations/{id}",
            deployments::deployment_allocations,
        )
        .on(M::POST, "/v1/deployment/promote/{id}", deployments::promote)
        .on(M::PUT, "/v1/deployment/promote/{id}", deployments::promote)
        .on(M::POST, "/v1/deployment/fail/{id}", deployments::fail)
        .on(M::PUT, "/v1/deployment/fail/{id}", deployments::fail)
        .on(M::POST, "/v1/deployment/pause/{id}", deployments::pause)
        .on(M::PUT, "/v1/deployment/pause/{id}", deployments::pause)
        .on(
            M::POST,
            "/v1/deployment/allocation-health/{id}",
            deployments::allocation_health,
        )
        .on(
            M::PUT,
            "/v1/deployment/allocation-health/{id}",
            deployments::allocation_health,
        )
        .on(M::POST, "/v1/deployment/unblock/{id}", deployments::unblock)
        .on(M::PUT, "/v1/deployment/unblock/{id}", deployments::unblock)
        .on(M::GET, "/v1/allocations", handlers::list_allocations)
        .on(M::GET, "/v1/allocation/{id}", handlers::get_allocation)
        .on(M::GET, "/v1/allocation/{id}/services", services::alloc_services)
        .on(M::GET, "/v1/job/{id}/services", services::job_services)
        .on(M::GET, "/v1/services", services::list_services)
        .on(M::GET, "/v1/service/{name}", services::get_service)
        .on(M::DELETE, "/v1/service/{name}/{id}", services::delete_service)
        .on(M::GET, "/v1/evaluations", handlers::list_evaluations)
        .on(M::GET, "/v1/evaluation/{id}", handlers::get_evaluation)
        .on(
            M::GET,
            "/v1/evaluation/{id}/allocations",
            handlers::evaluation_allocations,
        )
        .on(M::GET, "/v1/nodes", handlers::list_nodes)
        .on(M::GET, "/v1/node/{id}", handlers::get_node)
        .on(M::GET, "/v1/node/{id}/allocations", handlers::node_allocations)
        .on(
            M::GET,
            "/v1/operator/scheduler/configuration",
            handlers::get_scheduler_config,
        )
        .on(
            M::PUT,
            "/v1/operator/scheduler/configuration",
            handlers::set_scheduler_config,
        )
        .on(
            M::POST,
            "/v1/operator/scheduler/configuration",
            handlers::set_scheduler_config,
        )
        .on(M::GET, "/v1/agent/members", cluster::agent_members)
        .on(M::GET, "/v1/agent/servers", cluster::agent_servers)
        .on(M::PUT, "/v1/agent/join", cluster::agent_join)
        .on(M::POST, "/v1/agent/join", cluster::agent_join)
        .on(M::PUT, "/v1/agent/force-leave", cluster::agent_force_leave)
        .on(M::POST, "/v1/agent/force-leave", cluster::agent_force_leave)
        .on(M::GET, "/v1/operator/raft/configuration", cluster::raft_configuration)
        .on(M::DELETE, "/v1/operator/raft/peer", cluster::raft_remove_peer)
        .on(
            M::PUT,
            "/v1/operator/raft/transfer-leadership",
            cluster::raft_transfer_leadership,
        )
        .on(
            M::POST,
            "/v1/operator/raft/transfer-leadership",
            cluster::raft_transfer_leadership,
        )
        .on(M::GET, "/v1/operator/keyring/keys", vars::list_keys)
        .on(M::PUT, "/v1/operator/keyring/rotate", vars::rotate_key)
        .on(M::POST, "/v1/operator/keyring/rotate", vars::rotate_key)
        .on(M::GET, "/v1/vars", vars::list_vars)
        .on(M::GET, "/v1/var/{*path}", vars::get_var)
        .on(M::PUT, "/v1/var/{*path}", vars::put_var)
        .on(M::POST, "/v1/var/{*path}", vars::put_var)
        .on(M::DELETE, "/v1/var/{*path}", vars::delete_var)
        .with(
            &[M::GET, M::PUT],
            "/v1/operator/snapshot",
            get(cluster::snapshot_save)
                .put(cluster::snapshot_restore)
                // A restore is one Raft entry, replicated in one frame.
                .layer(DefaultBodyLimit::max(cluster::MAX_RESTORE_BYTES)),
        )
        .on(M::PUT, "/v1/system/gc", cluster::system_gc)
        .on(M::POST, "/v1/system/gc", cluster::system_gc)
        .on(
            M::PUT,
            "/v1/system/reconcile/summaries",
            cluster::system_reconcile_summaries,
        )
        .on(
            M::POST,
            "/v1/system/reconcile/summaries",
            cluster::system_reconcile_summaries,
        )
        .on(M::GET, "/v1/namespaces", handlers::list_namespaces)
        .on(M::POST, "/v1/namespace", handlers::apply_namespace)
        .on(M::PUT, "/v1/namespace", handlers::apply_namespace)
        .on(M::GET, "/v1/namespace/{name}", handlers::get_namespace)
        .on(M::POST, "/v1/namespace/{name}", handlers::apply_namespace_by_name)
        .on(M::PUT, "/v1/namespace/{name}", handlers::apply_namespace_by_name)
        .on(M::DELETE, "/v1/namespace/{name}", handlers::delete_namespace)
        .on(M::GET, "/v1/status/leader", handlers::status_leader)
        .on(M::GET, "/v1/status/peers", handlers::status_peers)
        .on(M::GET, "/v1/agent/self", handlers::agent_self)
        .on(M::GET, "/v1/agent/health", handlers::agent_health)
        .on(M::GET, "/v1/regions", handlers::regions)
        .on(M::GET, "/v1/client/fs/logs/{alloc}", logs::logs)
        .on(M::GET, "/v1/client/fs/ls/{alloc}", client_fs::ls)
        .on(M::GET, "/v1/client/fs/stat/{alloc}", client_fs::stat)
        .on(M::GET, "/v1/client/fs/cat/{alloc}", client_fs::cat)
        .on(M::GET, "/v1/client/fs/readat/{alloc}", client_fs::readat)
        .on(M::PUT, "/v1/client/allocation/{id}/signal", client_control::signal)
        .on(M::POST, "/v1/client/allocation/{id}/signal", client_control::signal)
        .on(M::PUT, "/v1/client/allocation/{id}/restart", client_control::restart)
        .on(M::POST, "/v1/client/allocation/{id}/restart", client_control::restart)
        .on(M::GET, "/v1/client/allocation/{id}/stats", client_control::stats)
        .on(M::GET, "/v1/client/allocation/{id}/checks", client_control::checks)
        .on(M::GET, "/v1/client/allocation/{id}/gc", client_control::alloc_gc)
        .on(M::PUT, "/v1/client/allocation/{id}/gc", client_control::alloc_gc)
        .on(M::GET, "/v1/client/gc", client_control::client_gc)
        .on(M::PUT, "/v1/client/gc", client_control::client_gc)
        .on(M::GET, "/v1/client/stats", client_control::client_stats)
        .on(M::GET, "/", ui::index)
        .on(M::GET, "/ui", ui::index)
        .on(M::GET, "/ui/", ui::index)
        .on(M::PUT, "/v1/acl/bootstrap", acl_handlers::bootstrap)
        .on(M::POST, "/v1/acl/bootstrap", acl_handlers::bootstrap)
        .on(M::GET, "/v1/acl/policies", acl_handlers::list_policies)
        .on(M::GET, "/v1/acl/policy/{name}", acl_handlers::get_policy)
        .on(M::PUT, "/v1/acl/policy/{name}", acl_handlers::put_policy)
        .on(M::POST, "/v1/acl/policy/{name}", acl_handlers::put_policy)
        .on(M::DELETE, "/v1/acl/policy/{name}", acl_handlers::delete_policy)
        .on(M::GET, "/v1/acl/tokens", acl_handlers::list_tokens)
        .on(M::PUT, "/v1/acl/token", acl_handlers::create_token)
        .on(M::POST, "/v1/acl/token", acl_handlers::create_token)
        .on(M::GET, "/v1/acl/token/self", acl_handlers::token_self)
        .on(M::GET, "/v1/acl/token/{id}", acl_handlers::get_token)
        .on(M::PUT, "/v1/acl/token/{id}", acl_handlers::update_token)
        .on(M::POST, "/v1/acl/token/{id}", acl_handlers::update_token)
        .on(M::DELETE, "/v1/acl/token/{id}", acl_handlers::delete_token)
        .on(M::GET, "/v1/acl/roles", acl_handlers::list_roles)
        .on(M::PUT, "/v1/acl/role", acl_handlers::create_role)
        .on(M::POST, "/v1/acl/role", acl_handlers::create_role)
        .on(M::GET, "/v1/acl/role/{id}", acl_handlers::get_role)
        .on(M::PUT, "/v1/acl/role/{id}", acl_handlers::update_role)
        .on(M::POST, "/v1/acl/role/{id}", acl_handlers::update_role)
        .on(M::DELETE, "/v1/acl/role/{id}", acl_handlers::delete_role)
        .on(M::GET, "/v1/acl/role/name/{name}", acl_handlers::get_role_by_name)
        .on(M::GET, "/v1/event/stream", events::stream)
        .on(M::GET, "/v1/metrics", metrics::metrics)
        .on(M::POST, "/v1/search", search::prefix)
        .on(M::PUT, "/v1/search", search::prefix)
        .on(M::POST, "/v1/search/fuzzy", search::fuzzy)
        .on(M::PUT, "/v1/search/fuzzy", search::fuzzy)
        .on(M::GET, "/v1/node/pools", node_pools::list)
        .on(M::GET, "/v1/node/pool/{name}", node_pools::get)
        .on(M::GET, "/v1/node/pool/{name}/jobs", node_pools::jobs)
        .on(M::GET, "/v1/node/pool/{name}/nodes", node_pools::nodes)
        .on(M::GET, "/v1/evaluations/count", node_pools::eval_count)
        .on(M::GET, "/v1/agent/monitor", agent_monitor::monitor)
        .on(M::GET, "/v1/agent/host", agent_monitor::host)
}

/// Builds the router with the given limits. Every route is behind the
/// authorization layer ([`authz`]), which checks the route's entry in the
/// ACL table.
pub fn app_with_limits(state: AppState, api_limits: ApiLimits) -> Router {
    server_routes()
        .router
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), authz::authorize))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            encoding::region_guard,
        ))
        .fallback(handlers::not_found)
        .layer(Extension(Arc::new(limits::Limits::new(api_limits))))
        // Every body is read through an extractor that honours this limit
        // (`Bytes`), answering 413 once the body passes it.
        .layer(DefaultBodyLimit::max(api_limits.max_body_bytes))
        .layer(axum::middleware::from_fn(encoding::encode))
        .with_state(state)
}
