//! Why a lookup produced no card: the core's error, shared by every front.
//! It knows nothing of HTTP; each front decides how to answer it (the Auth
//! API in `front::auth_api::error`, the users front in
//! `front::users_api::errors`).
//!
//! Texts are fixed or built from field names and statuses only; the token and
//! CRM values never reach them.

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

impl LookupError {
    /// A fixed, low-cardinality name of this failure, for metric labels and
    /// logs (the same for every front).
    pub fn outcome(&self) -> &'static str {
        match self {
            LookupError::BadToken(_) | LookupError::Upstream(UpstreamError::Unrepresentable(_)) => {
                "bad_token"
            }
            LookupError::Upstream(UpstreamError::Timeout) | LookupError::Deadline => "crm_timeout",
            LookupError::Upstream(UpstreamError::Unreachable) => "crm_unreachable",
            LookupError::Upstream(UpstreamError::Status(_) | UpstreamError::Redirect(_)) => {
                "crm_bad_status"
            }
            LookupError::Upstream(
                UpstreamError::TooLarge(_)
                | UpstreamError::InvalidJson
                | UpstreamError::Body
                | UpstreamError::MissingValue(_)
                | UpstreamError::FanOutTooLarge(_),
            ) => "crm_bad_response",
            LookupError::Upstream(UpstreamError::CircuitOpen) => "circuit_open",
            LookupError::Upstream(UpstreamError::Overloaded) => "overloaded",
            LookupError::Upstream(UpstreamError::Auth(_)) => "crm_auth_failed",
            LookupError::Mapping(_) => "mapping_error",
            LookupError::Internal(_) => "internal_error",
        }
    }
}
