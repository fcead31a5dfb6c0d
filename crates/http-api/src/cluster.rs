//! Cluster endpoints: the servers as the membership sees them
//! (`/v1/agent/members`, `/v1/agent/servers`, `join`, `force-leave`), the
//! Raft configuration and its operator actions (`/v1/operator/raft/*`),
//! and whole-state snapshots (`/v1/operator/snapshot`).

use crate::AppState;
use crate::error::ApiError;
use crate::query::index_headers;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::HeaderValue;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::collections::BTreeMap;

type Answer = Result<axum::response::Response, ApiError>;

/// The largest snapshot a restore takes: it becomes one Raft entry, which
/// must fit in one RPC frame (64 MiB) with room to spare.
pub const MAX_RESTORE_BYTES: usize = 48 << 20;

/// Every value of a repeatable query parameter (`?address=a&address=b`).
fn all_values(raw: Option<&str>, name: &str) -> Vec<String> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    raw.split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then(|| percent_decode(value))
        })
        .filter(|value| !value.is_empty())
        .collect()
}

/// Decodes `%XX` escapes and `+` (query-string form).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = |byte: u8| (byte as char).to_digit(16);
                match (hex(bytes[index + 1]), hex(bytes[index + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        index += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn split_addr(addr: &str) -> (String, u16) {
    match addr.rsplit_once(':') {
        Some((host, port)) => (host.to_string(), port.parse().unwrap_or(0)),
        None => (addr.to_string(), 0),
    }
}

/// `GET /v1/agent/members`.
pub async fn agent_members(State(state): State<AppState>) -> Answer {
    let members = state.server.members().await;
    let voters: BTreeMap<u64, bool> = state
        .server
        .raft_configuration()
        .into_iter()
        .map(|peer| (peer.id, peer.voter))
        .collect();
    let rendered: Vec<Value> = members
        .iter()
        .map(|(member, status)| {
            let (addr, port) = split_addr(&member.rpc_addr);
            json!({
                "Name": member.name,
                "Addr": addr,
                "Port": port,
                "Status": status.as_str(),
                "Tags": {
                    "role": "nomad",
                    "region": member.region,
                    "dc": member.datacenter,
                    "build": member.version,
                    "port": port.to_string(),
                    "rpc_addr": addr,
                    "expect": member.bootstrap_expect.to_string(),
                    "id": member.id.to_string(),
                    "raft_vsn": "3",
                    "voter": voters.get(&member.id).copied().unwrap_or(false).to_string(),
                },
                "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
                "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4,
            })
        })
        .collect();
    let config = state.server.config();
    let body = json!({
        "LeaderID": state.server.raft().leader_id().map(|id| id.to_string()).unwrap_or_default(),
        "ServerName": config.name,
        "ServerRegion": config.region,
        "ServerDC": config.datacenter,
        "Members": rendered,
    });
    Ok((index_headers(state.server.state().index(), &state.server), Json(body)).into_response())
}

/// `GET /v1/agent/servers`: the servers' RPC addresses.
pub async fn agent_servers(State(state): State<AppState>) -> Answer {
    Ok(Json(state.server.peers()).into_response())
}

/// `PUT /v1/agent/join?address=…`: adds servers to contact.
pub async fn agent_join(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Answer {
    let addresses = all_values(raw.as_deref(), "address");
    if addresses.is_empty() {
        return Err(ApiError::BadRequest("missing address to join".to_string()));
    }
    for address in &addresses {
        if address
            .rsplit_once(':')
            .is_none_or(|(_, port)| port.parse::<u16>().is_err())
        {
            return Err(ApiError::BadRequest(format!(
                "address {address:?} must be host:port (the server's RPC address)"
            )));
        }
    }
    let joined = state.server.join(addresses);
    Ok(Json(json!({ "num_joined": joined, "error": "" })).into_response())
}

/// Query parameters naming a server.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct ServerQuery {
    pub id: Option<String>,
    pub address: Option<String>,
    pub node: Option<String>,
}

/// The Raft ID named by `id`, `address` or (member) `node` name.
async fn resolve_server(state: &AppState, query: &ServerQuery) -> Result<u64, ApiError> {
    if let Some(id) = &query.id {
        return id
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("invalid server ID {id:?}")));
    }
    if let Some(address) = &query.address {
        return state
            .server
            .raft_configuration()
            .into_iter()
            .find(|peer| peer.addr == *address)
            .map(|peer| peer.id)
            .ok_or_else(|| ApiError::NotFound(format!("raft peer with address {address:?}")));
    }
    if let Some(node) = &query.node {
        let members = state.server.members().await;
        return members
            .into_iter()
            .find(|(member, _)| member.name == *node || member.name.split('.').next() == Some(node.as_str()))
            .map(|(member, _)| member.id)
            .ok_or_else(|| ApiError::NotFound(format!("server {node:?}")));
    }
    Err(ApiError::BadRequest(
        "name the server with ?id= or ?address=".to_string(),
    ))
}

/// `POST /v1/agent/force-leave?node=NAME`: marks a failed server as left
/// so it is no longer pinged.
pub async fn agent_force_leave(State(state): State<AppState>, Query(query): Query<ServerQuery>) -> Answer {
    let id = resolve_server(&state, &query).await?;
    state.server.force_leave(id);
    Ok(Json(json!({})).into_response())
}

/// `GET /v1/operator/raft/configuration`.
pub async fn raft_configuration(State(state): State<AppState>) -> Answer {
    let names: BTreeMap<u64, String> = state
        .server
        .members()
        .await
        .into_iter()
        .map(|(member, _)| (member.id, member.name))
        .collect();
    let servers: Vec<Value> = state
        .server
        .raft_configuration()
        .into_iter()
        .map(|peer| {
            json!({
                "ID": peer.id.to_string(),
                "Node": names.get(&peer.id).cloned().unwrap_or_default(),
                "Address": peer.addr,
                "Leader": peer.leader,
                "Voter": peer.voter,
                "RaftProtocol": "3",
            })
        })
        .collect();
    let index = state.server.raft().stats().last_log_index;
    let body = json!({ "Servers": servers, "Index": index });
    Ok((index_headers(index, &state.server), Json(body)).into_response())
}

/// `DELETE /v1/operator/raft/peer?id=…|address=…`.
pub async fn raft_remove_peer(State(state): State<AppState>, Query(query): Query<ServerQuery>) -> Answer {
    let id = resolve_server(&state, &query).await?;
    state.server.remove_raft_peer(id).await?;
    Ok(Json(json!({})).into_response())
}

/// `PUT /v1/operator/raft/transfer-leadership[?id=…|address=…]`.
pub async fn raft_transfer_leadership(State(state): State<AppState>, Query(query): Query<ServerQuery>) -> Answer {
    let target = if query.id.is_some() || query.address.is_some() || query.node.is_some() {
        Some(resolve_server(&state, &query).await?)
    } else {
        None
    };
    let leader = state.server.transfer_leadership(target).await?;
    Ok(Json(json!({ "Leader": leader.to_string() })).into_response())
}

/// `GET /v1/operator/snapshot`: the whole state as a snapshot file.
pub async fn snapshot_save(State(state): State<AppState>) -> Answer {
    let (index, bytes) = state.server.snapshot_save().await?;
    let mut headers = index_headers(index, &state.server);
    headers.insert("Content-Type", HeaderValue::from_static("application/octet-stream"));
    Ok((headers, bytes).into_response())
}

/// `PUT /v1/operator/snapshot`: replaces the state with the body's.
pub async fn snapshot_restore(State(state): State<AppState>, body: Bytes) -> Answer {
    if body.is_empty() {
        return Err(ApiError::BadRequest(
            "request body is empty: send a snapshot file".to_string(),
        ));
    }
    let index = state.server.snapshot_restore(body.to_vec()).await?;
    Ok((index_headers(index, &state.server), Json(json!({ "Index": index }))).into_response())
}

/// `PUT /v1/system/gc`: collects every eligible object now, whatever its
/// age (Nomad's forced GC).
pub async fn system_gc(State(state): State<AppState>) -> Answer {
    let (_, index) = state.server.collect_garbage(true).await?;
    Ok((index_headers(index, &state.server), Json(json!({}))).into_response())
}

/// `PUT /v1/system/reconcile/summaries`: Drover derives job summaries
/// from the allocations on every read, so there is nothing to reconcile;
/// answered as Nomad does once it has reconciled.
pub async fn system_reconcile_summaries(State(state): State<AppState>) -> Answer {
    let index = state.server.read_state(false).await?.index();
    Ok((index_headers(index, &state.server), Json(json!({}))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_query_values_are_collected_and_decoded() {
        assert_eq!(
            all_values(Some("address=10.0.0.1%3A4647&stale&address=b:1&other=x"), "address"),
            vec!["10.0.0.1:4647", "b:1"]
        );
        assert!(all_values(None, "address").is_empty());
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz+y"), "%zz y");
    }
}
