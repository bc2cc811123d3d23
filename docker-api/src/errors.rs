//! Errors as Docker answers them: a status code and `{"message": …}`.
//!
//! The docker CLI decides on the status code (a 404 makes `stack deploy`
//! create instead of update, `service logs` try a task after a service), so
//! every failure of the control API is mapped onto the code Docker would use.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// A failed request, answered as Docker's JSON error body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// An endpoint (or a use of one) shoal does not offer: 501, naming it,
    /// so that the CLI prints what was refused instead of guessing.
    pub fn unsupported(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "shoal does not support {what}: its Docker API serves swarm operations only \
                 (nodes, services, tasks, stacks, swarm); use the shoal CLI for the rest"
            ),
        )
    }
}

/// Where a control API failure lands in Docker's codes. `FailedPrecondition`
/// is shoal's code both for "not a manager" (Docker: 503) and for a conflict
/// with the current state — a stale spec version, a name in use — (409).
pub fn status_for(code: tonic::Code, message: &str) -> StatusCode {
    use tonic::Code;
    match code {
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::FailedPrecondition | Code::Aborted
            if message.contains("not a swarm manager")
                || message.contains("not part of a swarm") =>
        {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Code::FailedPrecondition | Code::Aborted => StatusCode::CONFLICT,
        Code::Unavailable | Code::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
        Code::PermissionDenied | Code::Unauthenticated => StatusCode::FORBIDDEN,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let message = status.message().to_string();
        ApiError::new(status_for(status.code(), &message), message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "message": self.message })),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_failures_get_dockers_codes() {
        let not_manager = "This node is not a swarm manager. Worker nodes can't be used";
        assert_eq!(
            status_for(tonic::Code::FailedPrecondition, not_manager),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status_for(
                tonic::Code::FailedPrecondition,
                "service abc was changed meanwhile (now at spec version 3): retry"
            ),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status_for(tonic::Code::NotFound, "No such service: web"),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status_for(tonic::Code::InvalidArgument, "bad image"),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status_for(tonic::Code::AlreadyExists, "web exists"),
            StatusCode::CONFLICT
        );
    }
}
