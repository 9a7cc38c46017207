//! What can go wrong talking to the CRM. Messages name the failure only: never
//! the URL (it may hold the token), never the body (it holds personal data).

/// A failed CRM exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The CRM did not answer within the configured timeout.
    #[error("CRM did not answer in time")]
    Timeout,
    /// No connection could be made, or it broke before an answer.
    #[error("CRM is unreachable")]
    Unreachable,
    /// The CRM answered with a status that is neither success nor "not found".
    #[error("CRM answered with HTTP status {0}")]
    Status(u16),
    /// The CRM answered with a redirect, which authbridge does not follow.
    #[error("CRM answered with a redirect (HTTP {0}); redirects are not followed")]
    Redirect(u16),
    /// The body was larger than `upstream.max_body_bytes`.
    #[error("CRM response is larger than the {0}-byte limit")]
    TooLarge(usize),
    /// The body was not JSON.
    #[error("CRM response is not valid JSON")]
    InvalidJson,
    /// The connection broke while the body was being read.
    #[error("CRM response body could not be read")]
    Body,
    /// The token cannot be placed in the request (e.g. `..` as a path segment).
    #[error("token cannot be sent to the CRM: {0}")]
    Unrepresentable(&'static str),
    /// A pipeline step needs a value an earlier answer does not have.
    #[error("CRM response lacks a value a later request needs ({0})")]
    MissingValue(String),
    /// A fan-out step selected more items than `upstream.max_fan_out`.
    #[error("CRM response lists more than {0} items to fetch")]
    FanOutTooLarge(usize),
    /// The CRM's credentials were refused, or no access token could be had.
    #[error("CRM authentication failed: {0}")]
    Auth(&'static str),
    /// The circuit breaker is open: the CRM has been failing.
    #[error("CRM is failing; requests are paused (circuit open)")]
    CircuitOpen,
    /// Too many CRM requests are in flight and the wait queue is full.
    #[error("too many CRM requests in flight; try again")]
    Overloaded,
}

impl UpstreamError {
    /// A fixed, low-cardinality label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            UpstreamError::Timeout => "timeout",
            UpstreamError::Unreachable => "unreachable",
            UpstreamError::Status(_) => "bad_status",
            UpstreamError::Redirect(_) => "redirect",
            UpstreamError::TooLarge(_) => "too_large",
            UpstreamError::InvalidJson => "invalid_json",
            UpstreamError::Body => "body_error",
            UpstreamError::Unrepresentable(_) => "unrepresentable_token",
            UpstreamError::MissingValue(_) => "missing_value",
            UpstreamError::FanOutTooLarge(_) => "fan_out_too_large",
            UpstreamError::Auth(_) => "auth_failed",
            UpstreamError::CircuitOpen => "circuit_open",
            UpstreamError::Overloaded => "overloaded",
        }
    }

    /// True for failures of the CRM rather than answers about the request:
    /// a stale card may stand in for the fresh one.
    pub fn is_crm_failure(&self) -> bool {
        match self {
            UpstreamError::Timeout
            | UpstreamError::Unreachable
            | UpstreamError::Body
            | UpstreamError::InvalidJson
            | UpstreamError::TooLarge(_)
            | UpstreamError::Redirect(_)
            | UpstreamError::CircuitOpen
            | UpstreamError::Overloaded => true,
            UpstreamError::Status(s) => *s >= 500,
            _ => false,
        }
    }

    /// True when the failure says the CRM itself is sick (what the breaker
    /// counts): no connection, no answer in time, a broken connection, 5xx,
    /// a redirect (a CRM moved or behind a misrouted proxy). A body that is
    /// not JSON or too large, or a 4xx, is about one record or request: the
    /// CRM answered.
    pub fn is_crm_sick(&self) -> bool {
        match self {
            UpstreamError::Timeout
            | UpstreamError::Unreachable
            | UpstreamError::Body
            | UpstreamError::Redirect(_) => true,
            UpstreamError::Status(s) => *s >= 500,
            _ => false,
        }
    }
}
