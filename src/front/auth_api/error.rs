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
    /// Answered by the HTTP layer before the path is known (see
    /// `app::http_refusals`), in both fronts' shapes at once.
    pub const MALFORMED: &str = "1400";
    pub const URI_TOO_LONG: &str = "1414";
    pub const HEADERS_TOO_LARGE: &str = "1431";
}

/// Which requests a row of [`TABLE`] can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A lookup, `GET /rest/chat/client/id/{token}`.
    Lookup,
    /// A request no route takes: an unknown path, or a wrong method.
    Routing,
}

/// One answer of the README's error table.
#[derive(Debug, Clone, Copy)]
pub struct ErrorRow {
    pub status: StatusCode,
    pub code: &'static str,
    /// When it is answered (the README's "when", shortened).
    pub when: &'static str,
    /// An `errorText` it is answered with.
    pub example: &'static str,
    pub scope: Scope,
}

const fn row(
    status: StatusCode,
    code: &'static str,
    when: &'static str,
    example: &'static str,
) -> ErrorRow {
    ErrorRow {
        status,
        code,
        when,
        example,
        scope: Scope::Lookup,
    }
}

/// Every error answer of this front, as the README's error table lists
/// them: the OpenAPI document is written from it, and tests keep the README,
/// this table and the answers the code gives in step.
pub const TABLE: &[ErrorRow] = {
    use codes::*;
    &[
        row(
            StatusCode::BAD_REQUEST,
            BAD_TOKEN,
            "The token is empty, longer than server.max_token_bytes, has control characters, \
             does not match server.token_pattern, is not UTF-8 after percent-decoding, or is \
             `.`/`..` where it would be a path segment.",
            "invalid token: the token is empty",
        ),
        row(
            StatusCode::NOT_FOUND,
            NOT_FOUND,
            "The CRM says the client does not exist.",
            "Client not found",
        ),
        row(
            StatusCode::INTERNAL_SERVER_ERROR,
            MAPPING,
            "The mapping cannot build a valid card from the CRM's answer, or exceeded its budget.",
            "mapping failed: client.surname: required, but the mapping produced no value",
        ),
        row(
            StatusCode::BAD_GATEWAY,
            UNREACHABLE,
            "The CRM is unreachable (connection refused, reset, closed before answering).",
            "CRM is unreachable",
        ),
        row(
            StatusCode::BAD_GATEWAY,
            BAD_STATUS,
            "The CRM answered an unexpected status or a redirect.",
            "CRM answered with HTTP status 503",
        ),
        row(
            StatusCode::BAD_GATEWAY,
            BAD_RESPONSE,
            "The CRM's body is not JSON, is cut short or too large, or lacks a value a later \
             pipeline request needs.",
            "CRM response is not valid JSON",
        ),
        row(
            StatusCode::BAD_GATEWAY,
            CRM_AUTH,
            "The CRM's credentials failed (OAuth2 token endpoint refused or unreachable).",
            "CRM authentication failed: the token endpoint refused the client credentials",
        ),
        row(
            StatusCode::GATEWAY_TIMEOUT,
            TIMEOUT,
            "The CRM did not answer in time (upstream.timeout_ms, upstream.deadline_ms or \
             server.request_timeout_ms).",
            "CRM did not answer in time",
        ),
        row(
            StatusCode::INTERNAL_SERVER_ERROR,
            INTERNAL,
            "A bug (a panic is caught and answered, never its text).",
            "Internal error",
        ),
        row(
            StatusCode::SERVICE_UNAVAILABLE,
            CIRCUIT_OPEN,
            "The circuit breaker is open and no stale card is at hand.",
            "CRM is failing; requests are paused (circuit open)",
        ),
        row(
            StatusCode::SERVICE_UNAVAILABLE,
            OVERLOADED,
            "Too many CRM requests in flight and the wait queue is full.",
            "too many CRM requests in flight; try again",
        ),
        row(
            StatusCode::TOO_MANY_REQUESTS,
            RATE_LIMITED,
            "The caller's IP exceeded server.access.rate_limit_per_ip.",
            "Too many requests",
        ),
        row(
            StatusCode::UNAUTHORIZED,
            UNAUTHORIZED,
            "server.access requires a shared secret and it is missing or wrong.",
            "Missing or wrong credentials",
        ),
        row(
            StatusCode::FORBIDDEN,
            FORBIDDEN,
            "The caller's address is outside server.access.allow_cidrs.",
            "Caller network not allowed",
        ),
        ErrorRow {
            scope: Scope::Routing,
            ..row(
                StatusCode::NOT_FOUND,
                NO_ROUTE,
                "No such endpoint.",
                "No such endpoint",
            )
        },
        ErrorRow {
            scope: Scope::Routing,
            ..row(
                StatusCode::METHOD_NOT_ALLOWED,
                BAD_METHOD,
                "Wrong method on an endpoint.",
                "Method not allowed",
            )
        },
        row(
            StatusCode::BAD_REQUEST,
            MALFORMED,
            "The HTTP layer cannot parse the request (malformed request line or header).",
            "Malformed HTTP request",
        ),
        row(
            StatusCode::URI_TOO_LONG,
            URI_TOO_LONG,
            "The request URI is over the HTTP layer's limit.",
            "URI too long",
        ),
        row(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HEADERS_TOO_LARGE,
            "The header section is too large or has too many fields.",
            "Request headers too large",
        ),
    ]
};

/// The status and `errorCode` of a failed lookup (the README's error table).
fn status_and_code(failure: Failure) -> (StatusCode, &'static str) {
    use codes::*;
    match failure {
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
        let (status, code) = status_and_code(err.failure());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_answers_a_row_of_the_table() {
        for failure in Failure::ALL {
            let (status, code) = status_and_code(failure);
            assert!(
                TABLE.iter().any(|r| r.status == status && r.code == code),
                "{failure:?} answers {status} {code}, which the table lacks"
            );
        }
    }

    #[test]
    fn each_code_has_one_row() {
        for row in TABLE {
            let same = TABLE.iter().filter(|r| r.code == row.code).count();
            assert_eq!(same, 1, "{} is listed {same} times", row.code);
        }
    }
}
