//! The one place where failures become caller answers: HTTP status, error code
//! and text. Each front renders these in its own body shape.
//!
//! Texts are fixed or built from field names and statuses only; the token and
//! CRM values never reach them.

use axum::http::StatusCode;

use crate::mapping::ApplyError;
use crate::upstream::UpstreamError;

/// Why a lookup produced no card.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The token is empty, too long, or holds control characters.
    #[error("invalid token: {0}")]
    BadToken(String),
    /// The CRM exchange failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The mapping could not build a valid card from the CRM's answer.
    #[error("mapping failed: {0}")]
    Mapping(#[from] ApplyError),
    /// The lookup deadline (`server.request_timeout_ms`) passed.
    #[error("lookup did not finish in time")]
    Deadline,
    /// A bug or an unexpected condition.
    #[error("internal error: {0}")]
    Internal(String),
}

/// How an error is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorAnswer {
    pub status: StatusCode,
    /// The `errorCode` of the Auth API.
    pub code: &'static str,
    /// A fixed, low-cardinality label for metrics and logs.
    pub outcome: &'static str,
}

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

impl LookupError {
    /// Status, code and metric label for this error.
    pub fn answer(&self) -> ErrorAnswer {
        use codes::*;
        let (status, code, outcome) = match self {
            LookupError::BadToken(_) => (StatusCode::BAD_REQUEST, BAD_TOKEN, "bad_token"),
            LookupError::Upstream(UpstreamError::Unrepresentable(_)) => {
                (StatusCode::BAD_REQUEST, BAD_TOKEN, "bad_token")
            }
            LookupError::Upstream(UpstreamError::Timeout) | LookupError::Deadline => {
                (StatusCode::GATEWAY_TIMEOUT, TIMEOUT, "crm_timeout")
            }
            LookupError::Upstream(UpstreamError::Unreachable) => {
                (StatusCode::BAD_GATEWAY, UNREACHABLE, "crm_unreachable")
            }
            LookupError::Upstream(UpstreamError::Status(_) | UpstreamError::Redirect(_)) => {
                (StatusCode::BAD_GATEWAY, BAD_STATUS, "crm_bad_status")
            }
            LookupError::Upstream(
                UpstreamError::TooLarge(_)
                | UpstreamError::InvalidJson
                | UpstreamError::Body
                | UpstreamError::MissingValue(_)
                | UpstreamError::FanOutTooLarge(_),
            ) => (StatusCode::BAD_GATEWAY, BAD_RESPONSE, "crm_bad_response"),
            LookupError::Upstream(UpstreamError::CircuitOpen) => (
                StatusCode::SERVICE_UNAVAILABLE,
                CIRCUIT_OPEN,
                "circuit_open",
            ),
            LookupError::Upstream(UpstreamError::Overloaded) => {
                (StatusCode::SERVICE_UNAVAILABLE, OVERLOADED, "overloaded")
            }
            LookupError::Upstream(UpstreamError::Auth(_)) => {
                (StatusCode::BAD_GATEWAY, CRM_AUTH, "crm_auth_failed")
            }
            LookupError::Mapping(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, MAPPING, "mapping_error")
            }
            LookupError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                INTERNAL,
                "internal_error",
            ),
        };
        ErrorAnswer {
            status,
            code,
            outcome,
        }
    }
}
