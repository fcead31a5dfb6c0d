//! Nomad's access control: the HCL policy language ([`parse_policy`]),
//! policies compiled into an [`Acl`] that answers "may this token do that",
//! and the one table of what every HTTP route and every RPC needs
//! ([`table`]).
//!
//! Pure: no IO, no clock. The server stores policies, tokens and roles in
//! Raft; `http-api` resolves a request's token to an [`Acl`] and checks the
//! route's [`Need`] before the handler runs.

mod eval;
mod policy;
pub mod table;

pub use eval::{Acl, Level};
pub use policy::{
    HostVolumeRule, NamespaceRule, Policy, PolicyError, VariablesPathRule, namespace_capabilities, parse_policy,
};
pub use table::{Need, RpcNeed, http_need, rpc_need};
