//! The Auth API's error answers: `{"errorCode", "errorText"}` with the
//! status of the README's error table. A failed lookup becomes an
//! [`ApiError`], which answers itself (`IntoResponse`); the access guard, the
//! router's fallbacks and the handler all answer through it. The table from
//! the core's [`LookupError`] to status and `errorCode` is this front's: the
//! core knows nothing of HTTP.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::error::{Failure, LookupError};

/// Error codes; the README's error table lists the same rows.
pub mod codes {
    pub const NOT_FOUND: &str = "1001";
    pub const BAD_TOKEN: &str = "1002";
    pub const MAPPING: &str = "1003";
    pub const TIMEOUT: &str = "1004";
    pub const UNREACHABLE: &str = "1005";
    pub const BAD_STATUS: &str = "1006";
    pub const BAD_RESPONSE: &str = "1007";
    pub const CRM_AUTH: &str = "1008";
    pub const CIRCUIT_OPEN: &str = "1009";
    pub const OVERLOADED: &str = "1010";
    pub const RATE_LIMITED: &str = "1011";
    pub const UNAUTHORIZED: &str = "1012";
    pub const FORBIDDEN: &str = "1013";
    pub const INTERNAL: &str = "1000";
    pub const NO_ROUTE: &str = "1404";
    pub const BAD_METHOD: &str = "1405";
}

/// The status and `errorCode` of a failed lookup (the README's error table).
fn status_and_code(err: &LookupError) -> (StatusCode, &'static str) {
    use codes::*;
    match err.failure() {
        Failure::BadToken => (StatusCode::BAD_REQUEST, BAD_TOKEN),
        Failure::Timeout => (StatusCode::GATEWAY_TIMEOUT, TIMEOUT),
        Failure::Unreachable => (StatusCode::BAD_GATEWAY, UNREACHABLE),
        Failure::BadStatus => (StatusCode::BAD_GATEWAY, BAD_STATUS),
        Failure::BadResponse => (StatusCode::BAD_GATEWAY, BAD_RESPONSE),
        Failure::CircuitOpen => (StatusCode::SERVICE_UNAVAILABLE, CIRCUIT_OPEN),
        Failure::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, OVERLOADED),
        Failure::CrmAuth => (StatusCode::BAD_GATEWAY, CRM_AUTH),
        Failure::Mapping => (StatusCode::INTERNAL_SERVER_ERROR, MAPPING),
        Failure::Internal => (StatusCode::INTERNAL_SERVER_ERROR, INTERNAL),
    }
}

/// An error as this front answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// The `errorCode`.
    pub code: &'static str,
    /// The `errorText`: names what failed, never the token or CRM values.
    pub text: String,
}

impl ApiError {
    /// An error with its status, code and text.
    pub fn new(status: StatusCode, code: &'static str, text: impl Into<String>) -> Self {
        Self {
            status,
            code,
            text: text.into(),
        }
    }
}

impl From<&LookupError> for ApiError {
    fn from(err: &LookupError) -> Self {
        let (status, code) = status_and_code(err);
        let text = match err {
            // Internal details stay in the log.
            LookupError::Internal(_) => "Internal error".to_owned(),
            other => other.to_string(),
        };
        Self::new(status, code, text)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Every error answer of this front passes here: its code is the
        // request's (for the access log and the span).
        crate::telemetry::record::error_code(self.code);
        let body = serde_json::json!({ "errorCode": self.code, "errorText": self.text });
        crate::json_response::json(self.status, Bytes::from(body.to_string()))
    }
}

/// An error answer in the Auth API's shape.
pub fn error_body(status: StatusCode, code: &'static str, text: &str) -> Response {
    ApiError::new(status, code, text).into_response()
}
