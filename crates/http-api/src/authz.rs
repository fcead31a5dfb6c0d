//! Authorization: before any handler runs, the request's token
//! (`X-Nomad-Token`, or `Authorization: Bearer`) is resolved to a
//! [`Caller`] and the route's entry in the one table
//! ([`acl::table::HTTP_ROUTES`]) is checked. A route without an entry is
//! refused. Handlers that answer about many namespaces, or about an object
//! whose namespace they only learn by finding it, get the [`Caller`] as a
//! request extension and filter or check with it.

use crate::AppState;
use crate::error::ApiError;
use crate::limits::Limits;
use acl::Need;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use server::Caller;
use std::sync::Arc;

/// Routes whose `?namespace=*` means "every namespace the token may see"
/// (the handler filters); elsewhere `*` reads as `default`, as the
/// handlers do.
const ALL_NAMESPACE_ROUTES: &[&str] = &[
    "/v1/jobs",
    "/v1/allocations",
    "/v1/evaluations",
    "/v1/deployments",
    "/v1/evaluations/count",
];

/// The secret a request presents, if any.
pub(crate) fn request_token(headers: &HeaderMap) -> Option<String> {
    if let Some(token) = headers.get("x-nomad-token").and_then(|value| value.to_str().ok()) {
        return Some(token.trim().to_string());
    }
    let bearer = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = bearer.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
}

fn denied() -> ApiError {
    ApiError::PermissionDenied(String::new())
}

/// The `namespace` query parameter, raw.
fn query_namespace(request: &Request) -> Option<String> {
    let query = request.uri().query()?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == "namespace").then(|| percent_decode(value))
    })
}

pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'%' if at + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[at + 1..at + 3]).ok();
                match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        at += 3;
                    }
                    None => {
                        out.push(b'%');
                        at += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                at += 1;
            }
            byte => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The namespace of the job in a register or validate body (the
/// handlers read it the same way: the job's `Namespace`, else `default`).
fn body_namespace(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(rename = "Job")]
        job: Option<JobPart>,
    }
    #[derive(serde::Deserialize)]
    struct JobPart {
        #[serde(rename = "Namespace")]
        namespace: Option<String>,
    }
    serde_json::from_slice::<Body>(body)
        .ok()
        .and_then(|body| body.job)
        .and_then(|job| job.namespace)
        .filter(|namespace| !namespace.is_empty())
        .unwrap_or_else(|| types::DEFAULT_NAMESPACE.to_string())
}

/// Checks the route's need; on success the handler runs with the caller
/// as a request extension.
pub(crate) async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match check(&state, request).await {
        Ok(request) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

async fn check(state: &AppState, mut request: Request) -> Result<Request, ApiError> {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_string())
        .unwrap_or_default();
    let method = request.method().as_str().to_string();
    let Some(need) = acl::http_need(&method, &path) else {
        tracing::error!(%method, %path, "route has no entry in the ACL table; refused");
        return Err(denied());
    };
    let caller = if state.server.acl_enabled() {
        let secret = request_token(request.headers());
        state
            .server
            .resolve_token(secret.as_deref())
            .map_err(|error| match error {
                server::ServerError::PermissionDenied(message) => ApiError::TokenRejected(message),
                other => ApiError::from(other),
            })?
    } else {
        Caller::unrestricted()
    };
    let acl = Arc::clone(&caller.acl);
    let allowed = match need {
        Need::Anyone => true,
        Need::Token => caller.token.is_some() || acl.is_management(),
        Need::Management => acl.is_management(),
        Need::Namespace(capability) => {
            let namespace = query_namespace(&request).filter(|namespace| !namespace.is_empty());
            match namespace.as_deref() {
                Some("*") if ALL_NAMESPACE_ROUTES.contains(&path.as_str()) => acl.allow_in_some_namespace(capability),
                Some("*") | None => acl.allow_namespace_op(types::DEFAULT_NAMESPACE, capability),
                Some(namespace) => acl.allow_namespace_op(namespace, capability),
            }
        }
        Need::JobBody(capability) => {
            if acl.is_management() {
                true
            } else {
                let limit = request
                    .extensions()
                    .get::<Arc<Limits>>()
                    .map(|limits| limits.limits.max_body_bytes)
                    .unwrap_or(crate::DEFAULT_MAX_BODY_BYTES);
                let (parts, body) = request.into_parts();
                let bytes = axum::body::to_bytes(body, limit)
                    .await
                    .map_err(|_| ApiError::PayloadTooLarge(limit))?;
                let namespace = body_namespace(&bytes);
                request = Request::from_parts(parts, Body::from(bytes));
                acl.allow_namespace_op(&namespace, capability)
            }
        }
        Need::ObjectNamespace(capability) => acl.allow_in_some_namespace(capability),
        Need::Node(level) => acl.allow_node(level),
        Need::Agent(level) => acl.allow_agent(level),
        Need::Operator(level) => acl.allow_operator(level),
        // The handler checks the variable's path (`require_variable`).
        Need::NamespaceVisible | Need::AclPolicyRead | Need::Variable(_) => true,
    };
    if !allowed {
        return Err(denied());
    }
    request.extensions_mut().insert(caller);
    Ok(request)
}

/// Refuses unless the caller holds `capability` in `namespace` (for
/// handlers that learn the namespace from the object they found).
pub(crate) fn require_namespace_op(caller: &Caller, namespace: &str, capability: &str) -> Result<(), ApiError> {
    if caller.acl.allow_namespace_op(namespace, capability) {
        Ok(())
    } else {
        Err(denied())
    }
}

/// Refuses unless the caller holds `capability` on the variable at `path`
/// in `namespace`.
pub(crate) fn require_variable(caller: &Caller, namespace: &str, path: &str, capability: &str) -> Result<(), ApiError> {
    if caller.acl.allow_variable(namespace, path, capability) {
        Ok(())
    } else {
        Err(denied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_either_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(request_token(&headers), None);
        headers.insert("authorization", "Bearer abc".parse().expect("header"));
        assert_eq!(request_token(&headers).as_deref(), Some("abc"));
        headers.insert("x-nomad-token", "xyz".parse().expect("header"));
        assert_eq!(request_token(&headers).as_deref(), Some("xyz"));
        let mut basic = HeaderMap::new();
        basic.insert("authorization", "Basic abc".parse().expect("header"));
        assert_eq!(request_token(&basic), None);
    }

    #[test]
    fn body_namespace_defaults() {
        assert_eq!(body_namespace(br#"{"Job":{"Namespace":"prod"}}"#), "prod");
        assert_eq!(body_namespace(br#"{"Job":{"ID":"x"}}"#), "default");
        assert_eq!(body_namespace(b"not json"), "default");
        assert_eq!(percent_decode("a%2Ab+c"), "a*b c");
        assert_eq!(percent_decode("bad%zz%"), "bad%zz%");
    }
}
