//! The one table of what every HTTP route and every RPC needs.
//!
//! `http-api` looks a request's route (its method and axum path pattern)
//! up here before any handler runs, and refuses a route that has no entry;
//! a test there walks the router and fails when a route is missing. The
//! server's RPC handler looks every request kind up the same way.

use crate::eval::Level;

/// What a caller must hold to use an HTTP route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone, with or without a token.
    Anyone,
    /// A valid token of any kind (not the anonymous one).
    Token,
    /// A management token.
    Management,
    /// A namespace capability in the request's namespace (`?namespace=`,
    /// `default` when absent). For `*`, some namespace must grant it and
    /// the handler filters the answer to the namespaces that do.
    Namespace(&'static str),
    /// A namespace capability in the namespace of the job in the request
    /// body (the job's `Namespace`, else the request's).
    JobBody(&'static str),
    /// A namespace capability in the namespace of the object the path
    /// names (an allocation, an evaluation): the handler checks it once it
    /// has found the object; before that, some namespace must grant it.
    ObjectNamespace(&'static str),
    /// A `node` rule.
    Node(Level),
    /// An `agent` rule.
    Agent(Level),
    /// An `operator` rule.
    Operator(Level),
    /// Namespaces are listed and read where the token holds any
    /// capability (the handler filters).
    NamespaceVisible,
    /// An ACL policy: management, or a policy attached to the token (the
    /// handler checks which).
    AclPolicyRead,
    /// A variables capability (`read`, `list`, `write`, `destroy`) on the
    /// variable path in the request's namespace: the handler checks it
    /// with `Acl::allow_variable` once it knows the path (a list filters
    /// its answer to the paths the token may list).
    Variable(&'static str),
}

use Level::{Read, Write};
use Need::*;

/// Every HTTP route: (method, axum path pattern, need).
pub const HTTP_ROUTES: &[(&str, &str, Need)] = &[
    ("GET", "/v1/jobs", Namespace("list-jobs")),
    ("PUT", "/v1/jobs", JobBody("submit-job")),
    ("POST", "/v1/jobs", JobBody("submit-job")),
    ("PUT", "/v1/jobs/parse", Namespace("parse-job")),
    ("POST", "/v1/jobs/parse", Namespace("parse-job")),
    ("PUT", "/v1/validate/job", JobBody("read-job")),
    ("POST", "/v1/validate/job", JobBody("read-job")),
    ("GET", "/v1/job/{id}", Namespace("read-job")),
    ("PUT", "/v1/job/{id}", JobBody("submit-job")),
    ("POST", "/v1/job/{id}", JobBody("submit-job")),
    ("DELETE", "/v1/job/{id}", Namespace("submit-job")),
    ("GET", "/v1/job/{id}/allocations", Namespace("read-job")),
    ("GET", "/v1/job/{id}/evaluations", Namespace("read-job")),
    ("GET", "/v1/job/{id}/summary", Namespace("read-job")),
    ("GET", "/v1/job/{id}/versions", Namespace("read-job")),
    ("GET", "/v1/allocations", Namespace("read-job")),
    ("GET", "/v1/allocation/{id}", ObjectNamespace("read-job")),
    ("GET", "/v1/evaluations", Namespace("read-job")),
    ("GET", "/v1/evaluation/{id}", ObjectNamespace("read-job")),
    ("GET", "/v1/evaluation/{id}/allocations", ObjectNamespace("read-job")),
    ("GET", "/v1/nodes", Node(Read)),
    ("GET", "/v1/node/{id}", Node(Read)),
    ("GET", "/v1/node/{id}/allocations", Node(Read)),
    ("GET", "/v1/operator/scheduler/configuration", Operator(Read)),
    ("PUT", "/v1/operator/scheduler/configuration", Operator(Write)),
    ("POST", "/v1/operator/scheduler/configuration", Operator(Write)),
    ("GET", "/v1/agent/members", Node(Read)),
    ("GET", "/v1/agent/servers", Agent(Read)),
    ("PUT", "/v1/agent/join", Agent(Write)),
    ("POST", "/v1/agent/join", Agent(Write)),
    ("PUT", "/v1/agent/force-leave", Agent(Write)),
    ("POST", "/v1/agent/force-leave", Agent(Write)),
    ("GET", "/v1/operator/raft/configuration", Operator(Read)),
    ("DELETE", "/v1/operator/raft/peer", Operator(Write)),
    ("PUT", "/v1/operator/raft/transfer-leadership", Operator(Write)),
    ("POST", "/v1/operator/raft/transfer-leadership", Operator(Write)),
    ("GET", "/v1/operator/keyring/keys", Operator(Read)),
    ("PUT", "/v1/operator/keyring/rotate", Operator(Write)),
    ("POST", "/v1/operator/keyring/rotate", Operator(Write)),
    ("GET", "/v1/vars", Variable("list")),
    ("GET", "/v1/var/{*path}", Variable("read")),
    ("PUT", "/v1/var/{*path}", Variable("write")),
    ("POST", "/v1/var/{*path}", Variable("write")),
    ("DELETE", "/v1/var/{*path}", Variable("destroy")),
    ("GET", "/v1/operator/snapshot", Management),
    ("PUT", "/v1/operator/snapshot", Management),
    ("PUT", "/v1/system/gc", Management),
    ("POST", "/v1/system/gc", Management),
    ("PUT", "/v1/system/reconcile/summaries", Management),
    ("POST", "/v1/system/reconcile/summaries", Management),
    ("GET", "/v1/namespaces", NamespaceVisible),
    ("PUT", "/v1/namespace", Management),
    ("POST", "/v1/namespace", Management),
    ("GET", "/v1/namespace/{name}", NamespaceVisible),
    ("PUT", "/v1/namespace/{name}", Management),
    ("POST", "/v1/namespace/{name}", Management),
    ("DELETE", "/v1/namespace/{name}", Management),
    ("GET", "/v1/status/leader", Anyone),
    ("GET", "/v1/status/peers", Anyone),
    ("GET", "/v1/agent/self", Agent(Read)),
    ("GET", "/v1/agent/health", Anyone),
    ("GET", "/v1/regions", Anyone),
    ("GET", "/v1/client/fs/logs/{alloc}", ObjectNamespace("read-logs")),
    // Runtime (issue 11): the handlers check the allocation's namespace.
    ("GET", "/v1/client/fs/ls/{alloc}", ObjectNamespace("read-fs")),
    ("GET", "/v1/client/fs/stat/{alloc}", ObjectNamespace("read-fs")),
    ("GET", "/v1/client/fs/cat/{alloc}", ObjectNamespace("read-fs")),
    ("GET", "/v1/client/fs/readat/{alloc}", ObjectNamespace("read-fs")),
    (
        "PUT",
        "/v1/client/allocation/{id}/signal",
        ObjectNamespace("alloc-lifecycle"),
    ),
    (
        "POST",
        "/v1/client/allocation/{id}/signal",
        ObjectNamespace("alloc-lifecycle"),
    ),
    (
        "PUT",
        "/v1/client/allocation/{id}/restart",
        ObjectNamespace("alloc-lifecycle"),
    ),
    (
        "POST",
        "/v1/client/allocation/{id}/restart",
        ObjectNamespace("alloc-lifecycle"),
    ),
    ("GET", "/v1/client/allocation/{id}/stats", ObjectNamespace("read-job")),
    (
        "GET",
        "/v1/client/allocation/{id}/gc",
        ObjectNamespace("alloc-lifecycle"),
    ),
    (
        "PUT",
        "/v1/client/allocation/{id}/gc",
        ObjectNamespace("alloc-lifecycle"),
    ),
    ("GET", "/v1/client/gc", Node(Write)),
    ("PUT", "/v1/client/gc", Node(Write)),
    ("GET", "/v1/client/stats", Node(Read)),
    // Deployments (issue 15): by ID, the handlers check the deployment's
    // namespace.
    // Versions, plan and scale (issue 15).
    ("POST", "/v1/job/{id}/plan", JobBody("submit-job")),
    ("PUT", "/v1/job/{id}/plan", JobBody("submit-job")),
    ("POST", "/v1/job/{id}/revert", Namespace("submit-job")),
    ("PUT", "/v1/job/{id}/revert", Namespace("submit-job")),
    ("POST", "/v1/job/{id}/stable", Namespace("submit-job")),
    ("PUT", "/v1/job/{id}/stable", Namespace("submit-job")),
    ("GET", "/v1/job/{id}/scale", Namespace("read-job-scaling")),
    ("POST", "/v1/job/{id}/scale", Namespace("scale-job")),
    ("PUT", "/v1/job/{id}/scale", Namespace("scale-job")),
    ("POST", "/v1/job/{id}/periodic/force", Namespace("submit-job")),
    ("PUT", "/v1/job/{id}/periodic/force", Namespace("submit-job")),
    ("POST", "/v1/job/{id}/dispatch", Namespace("dispatch-job")),
    ("PUT", "/v1/job/{id}/dispatch", Namespace("dispatch-job")),
    ("GET", "/v1/scaling/policies", Namespace("list-scaling-policies")),
    ("GET", "/v1/scaling/policy/{id}", ObjectNamespace("read-scaling-policy")),
    ("POST", "/v1/job/{id}/evaluate", Namespace("submit-job")),
    ("PUT", "/v1/job/{id}/evaluate", Namespace("submit-job")),
    ("POST", "/v1/node/{id}/evaluate", Node(Write)),
    ("PUT", "/v1/node/{id}/evaluate", Node(Write)),
    ("POST", "/v1/node/{id}/drain", Node(Write)),
    ("PUT", "/v1/node/{id}/drain", Node(Write)),
    ("POST", "/v1/node/{id}/eligibility", Node(Write)),
    ("PUT", "/v1/node/{id}/eligibility", Node(Write)),
    ("GET", "/v1/job/{id}/deployments", Namespace("read-job")),
    ("GET", "/v1/job/{id}/deployment", Namespace("read-job")),
    ("GET", "/v1/deployments", Namespace("read-job")),
    ("GET", "/v1/deployment/{id}", ObjectNamespace("read-job")),
    ("GET", "/v1/deployment/allocations/{id}", ObjectNamespace("read-job")),
    ("POST", "/v1/deployment/promote/{id}", ObjectNamespace("submit-job")),
    ("PUT", "/v1/deployment/promote/{id}", ObjectNamespace("submit-job")),
    ("POST", "/v1/deployment/fail/{id}", ObjectNamespace("submit-job")),
    ("PUT", "/v1/deployment/fail/{id}", ObjectNamespace("submit-job")),
    ("POST", "/v1/deployment/pause/{id}", ObjectNamespace("submit-job")),
    ("PUT", "/v1/deployment/pause/{id}", ObjectNamespace("submit-job")),
    (
        "POST",
        "/v1/deployment/allocation-health/{id}",
        ObjectNamespace("submit-job"),
    ),
    (
        "PUT",
        "/v1/deployment/allocation-health/{id}",
        ObjectNamespace("submit-job"),
    ),
    ("POST", "/v1/deployment/unblock/{id}", ObjectNamespace("submit-job")),
    ("PUT", "/v1/deployment/unblock/{id}", ObjectNamespace("submit-job")),
    ("GET", "/", Anyone),
    ("GET", "/ui", Anyone),
    ("GET", "/ui/", Anyone),
    ("PUT", "/v1/acl/bootstrap", Anyone),
    ("POST", "/v1/acl/bootstrap", Anyone),
    ("GET", "/v1/acl/policies", Token),
    ("GET", "/v1/acl/policy/{name}", AclPolicyRead),
    ("PUT", "/v1/acl/policy/{name}", Management),
    ("POST", "/v1/acl/policy/{name}", Management),
    ("DELETE", "/v1/acl/policy/{name}", Management),
    ("GET", "/v1/acl/tokens", Management),
    ("PUT", "/v1/acl/token", Management),
    ("POST", "/v1/acl/token", Management),
    ("GET", "/v1/acl/token/self", Token),
    ("GET", "/v1/acl/token/{id}", Management),
    ("PUT", "/v1/acl/token/{id}", Management),
    ("POST", "/v1/acl/token/{id}", Management),
    ("DELETE", "/v1/acl/token/{id}", Management),
    ("GET", "/v1/acl/roles", Management),
    ("PUT", "/v1/acl/role", Management),
    ("POST", "/v1/acl/role", Management),
    ("GET", "/v1/acl/role/{id}", Management),
    ("PUT", "/v1/acl/role/{id}", Management),
    ("POST", "/v1/acl/role/{id}", Management),
    ("DELETE", "/v1/acl/role/{id}", Management),
    ("GET", "/v1/acl/role/name/{name}", Management),
    // Issue 13. The event stream checks each requested topic (management
    // for `*` and ACL topics, read-job in the namespace, node:read) and
    // filters every namespaced event by the token.
    ("GET", "/v1/event/stream", Anyone),
    // Nomad: metrics need no token (Prometheus scrapes without one).
    ("GET", "/v1/metrics", Anyone),
    // Search answers only what the token may read, per context.
    ("POST", "/v1/search", Anyone),
    ("PUT", "/v1/search", Anyone),
    ("POST", "/v1/search/fuzzy", Anyone),
    ("PUT", "/v1/search/fuzzy", Anyone),
    // Node pools: Drover's policies have no node_pool rule; node:read.
    ("GET", "/v1/node/pools", Node(Read)),
    ("GET", "/v1/node/pool/{name}", Node(Read)),
    ("GET", "/v1/node/pool/{name}/jobs", Node(Read)),
    ("GET", "/v1/node/pool/{name}/nodes", Node(Read)),
    ("GET", "/v1/evaluations/count", Namespace("read-job")),
    ("GET", "/v1/agent/monitor", Agent(Read)),
    ("GET", "/v1/agent/host", Agent(Read)),
    // Native services (issue 14): reading is read-job, deleting
    // submit-job, as in Nomad.
    ("GET", "/v1/services", Namespace("read-job")),
    ("GET", "/v1/service/{name}", Namespace("read-job")),
    ("DELETE", "/v1/service/{name}/{id}", Namespace("submit-job")),
    ("GET", "/v1/allocation/{id}/services", ObjectNamespace("read-job")),
    ("GET", "/v1/job/{id}/services", Namespace("read-job")),
    ("GET", "/v1/client/allocation/{id}/checks", ObjectNamespace("read-job")),
];

/// What an HTTP route needs; `None` for a route missing from the table
/// (which the middleware refuses).
pub fn http_need(method: &str, path_pattern: &str) -> Option<Need> {
    HTTP_ROUTES
        .iter()
        .find(|(route_method, route_path, _)| *route_method == method && *route_path == path_pattern)
        .map(|(_, _, need)| *need)
}

/// What an RPC caller must prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcNeed {
    /// A server: with TLS, a server certificate from the cluster's CA;
    /// without, a peer that has not proved a client identity.
    Server,
    /// A node registering: with TLS, a client or server certificate; a
    /// node already known must also present its secret.
    NodeRegister,
    /// A registered node: its node secret (and, with TLS, a certificate).
    NodeSecret,
}

/// Every RPC request kind (`rpc::Request::kind`) and its need.
pub const RPC_CALLS: &[(&str, RpcNeed)] = &[
    ("node-register", RpcNeed::NodeRegister),
    ("node-heartbeat", RpcNeed::NodeSecret),
    ("node-get-allocs", RpcNeed::NodeSecret),
    ("alloc-update", RpcNeed::NodeSecret),
    ("service-update", RpcNeed::NodeSecret),
    ("service-watch", RpcNeed::NodeSecret),
    ("raft", RpcNeed::Server),
    ("server", RpcNeed::Server),
];

/// What an RPC needs; `None` for a kind missing from the table (which the
/// server refuses).
pub fn rpc_need(kind: &str) -> Option<RpcNeed> {
    RPC_CALLS.iter().find(|(call, _)| *call == kind).map(|(_, need)| *need)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for (method, path, _) in HTTP_ROUTES {
            assert!(seen.insert((method, path)), "{method} {path} appears twice");
        }
    }
}
