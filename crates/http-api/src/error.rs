//! The one error type of the HTTP layer and its mapping to status codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use server::ServerError;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or the job invalid: 400 with the message.
    #[error("{0}")]
    BadRequest(String),
    /// The named object does not exist: 404.
    #[error("{0} not found")]
    NotFound(String),
    /// The method is not allowed here: 405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The caller may not do this: 403, Nomad's `Permission denied`.
    #[error("Permission denied")]
    PermissionDenied(String),
    /// The presented token is unknown or expired: 403 with the reason
    /// (Nomad's `ACL token not found` / `ACL token expired`).
    #[error("{0}")]
    TokenRejected(String),
    /// The request body passed the limit: 413.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// A server could not be reached in time: 503.
    #[error("server unavailable: {0}")]
    Unavailable(String),
    /// This server cannot take writes now: 503.
    #[error("no cluster leader{}", .0.as_deref().map(|leader| format!(" (leader is {leader})")).unwrap_or_default())]
    NoLeader(Option<String>),
    /// Something broke inside: logged, answered with a plain 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ServerError> for ApiError {
    fn from(error: ServerError) -> ApiError {
        match error {
            ServerError::BadRequest(message) => ApiError::BadRequest(message),
            ServerError::InvalidJob(errors) => ApiError::BadRequest(errors.to_string()),
            ServerError::NotFound(what) => ApiError::NotFound(what),
            ServerError::NotLeader { leader } => ApiError::NoLeader(leader),
            ServerError::NoLeader => ApiError::NoLeader(None),
            ServerError::Unavailable(message) => ApiError::Unavailable(message),
            ServerError::PermissionDenied(message) => ApiError::PermissionDenied(message),
            ServerError::Internal(message) => ApiError::Internal(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TokenRejected(_) => StatusCode::FORBIDDEN,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NoLeader(_) | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::PermissionDenied(reason) => {
                tracing::debug!(%reason, "request denied");
                StatusCode::FORBIDDEN
            }
            ApiError::Internal(message) => {
                tracing::error!(%message, "internal error answering an HTTP request");
                return (StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n").into_response();
            }
        };
        (status, format!("{self}\n")).into_response()
    }
}
