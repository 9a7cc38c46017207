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

/// The class of a failed lookup: what a caller needs to choose its answer.
/// Each front maps a class to its status (and the Auth API to its
/// `errorCode`); metrics and logs use [`Failure::label`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The token cannot be asked for (empty, too long, control characters,
    /// or not representable in the CRM request).
    BadToken,
    /// The CRM, or the whole lookup, ran out of time.
    Timeout,
    /// The CRM could not be reached.
    Unreachable,
    /// The CRM answered with an unexpected status (or a redirect).
    BadStatus,
    /// The CRM's answer could not be used (too large, not JSON, incomplete).
    BadResponse,
    /// The breaker is open: the CRM is given a pause.
    CircuitOpen,
    /// Too many CRM requests in flight.
    Overloaded,
    /// The CRM refused our credentials, or the token endpoint failed.
    CrmAuth,
    /// The mapping could not build a valid answer.
    Mapping,
    /// A bug or an unexpected condition.
    Internal,
}

impl Failure {
    /// Every class, for tables and tests that must cover them all.
    pub const ALL: [Failure; 10] = [
        Failure::BadToken,
        Failure::Timeout,
        Failure::Unreachable,
        Failure::BadStatus,
        Failure::BadResponse,
        Failure::CircuitOpen,
        Failure::Overloaded,
        Failure::CrmAuth,
        Failure::Mapping,
        Failure::Internal,
    ];

    /// A fixed, low-cardinality name, for metric labels and logs (the same
    /// for every front).
    pub fn label(self) -> &'static str {
        match self {
            Failure::BadToken => "bad_token",
            Failure::Timeout => "crm_timeout",
            Failure::Unreachable => "crm_unreachable",
            Failure::BadStatus => "crm_bad_status",
            Failure::BadResponse => "crm_bad_response",
            Failure::CircuitOpen => "circuit_open",
            Failure::Overloaded => "overloaded",
            Failure::CrmAuth => "crm_auth_failed",
            Failure::Mapping => "mapping_error",
            Failure::Internal => "internal_error",
        }
    }
}

impl LookupError {
    /// The class of this failure.
    pub fn failure(&self) -> Failure {
        match self {
            LookupError::BadToken(_) | LookupError::Upstream(UpstreamError::Unrepresentable(_)) => {
                Failure::BadToken
            }
            LookupError::Upstream(UpstreamError::Timeout) | LookupError::Deadline => {
                Failure::Timeout
            }
            LookupError::Upstream(UpstreamError::Unreachable) => Failure::Unreachable,
            LookupError::Upstream(UpstreamError::Status(_) | UpstreamError::Redirect(_)) => {
                Failure::BadStatus
            }
            LookupError::Upstream(
                UpstreamError::TooLarge(_)
                | UpstreamError::InvalidJson
                | UpstreamError::Body
                | UpstreamError::MissingValue(_)
                | UpstreamError::FanOutTooLarge(_),
            ) => Failure::BadResponse,
            LookupError::Upstream(UpstreamError::CircuitOpen) => Failure::CircuitOpen,
            LookupError::Upstream(UpstreamError::Overloaded) => Failure::Overloaded,
            LookupError::Upstream(UpstreamError::Auth(_)) => Failure::CrmAuth,
            LookupError::Mapping(_) => Failure::Mapping,
            LookupError::Internal(_) => Failure::Internal,
        }
    }

    /// [`Failure::label`] of this failure.
    pub fn outcome(&self) -> &'static str {
        self.failure().label()
    }
}
