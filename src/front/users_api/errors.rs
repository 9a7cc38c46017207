//! The users front's failure answers, all in the platform's one error shape,
//! `{"error": {"message": ...}}`.
//!
//! The platform counts **any answer without `error` as success**: for OTP
//! confirm and login that is a sign-in without a valid code. So the shape is
//! not left to each handler: [`guard`] wraps the whole front and rewrites
//! every non-2xx answer that did not come from [`error`] — axum's own 404,
//! 405 and 413, an extractor's rejection, a panic — into that shape.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::UsersMessages;
use crate::error::{Failure, LookupError};
use crate::metrics::Metrics;

/// Marks an answer that is already in the platform's shape.
#[derive(Debug, Clone, Copy)]
struct Shaped;

/// A JSON answer of the front (success or error), never stored by proxies.
pub fn answer(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = crate::json_response::json(status, body);
    response.extensions_mut().insert(Shaped);
    response
}

/// The platform's error shape.
pub fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({"error": {"message": message}});
    answer(status, body.to_string().into_bytes())
}

/// This front's status for a failed lookup or forward: a 400 when the
/// identifier cannot be asked for, else a 5xx naming whose side failed
/// (timeout 504, paused or overloaded 503, the CRM 502, ours 500).
pub fn status_for(e: &LookupError) -> StatusCode {
    status_of(e.failure())
}

fn status_of(failure: Failure) -> StatusCode {
    use Failure as F;
    match failure {
        F::BadToken => StatusCode::BAD_REQUEST,
        F::Timeout => StatusCode::GATEWAY_TIMEOUT,
        F::CircuitOpen | F::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        F::Unreachable | F::BadStatus | F::BadResponse | F::CrmAuth => StatusCode::BAD_GATEWAY,
        F::Mapping | F::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// One status this front answers with, and when.
#[derive(Debug, Clone, Copy)]
pub struct StatusRow {
    pub status: StatusCode,
    pub when: &'static str,
}

const fn row(status: StatusCode, when: &'static str) -> StatusRow {
    StatusRow { status, when }
}

/// Every error status of this front (each with `{"error": {"message"}}`),
/// as the README's "Second front" section lists them: the OpenAPI document
/// is written from it, and the tests below keep the code's answers in it.
pub const STATUSES: &[StatusRow] = &[
    row(
        StatusCode::BAD_REQUEST,
        "The body is not a JSON object, or a required field is missing, empty, too long \
         or has control characters; or the HTTP layer cannot parse the request.",
    ),
    row(
        StatusCode::UNAUTHORIZED,
        "A wrong or missing platform key; for OTP confirm a wrong code, for login a wrong \
         login or password.",
    ),
    row(
        StatusCode::NOT_FOUND,
        "The CRM does not know the user (update, OTP request, order history), or no call \
         is at this path under the calls' shared prefix.",
    ),
    row(
        StatusCode::METHOD_NOT_ALLOWED,
        "A wrong method on a call's path.",
    ),
    row(
        StatusCode::REQUEST_TIMEOUT,
        "The body did not arrive within server.request_timeout_ms.",
    ),
    row(
        StatusCode::PAYLOAD_TOO_LARGE,
        "The body is over users_api.max_body_bytes.",
    ),
    row(
        StatusCode::URI_TOO_LONG,
        "The request URI is over the HTTP layer's limit.",
    ),
    row(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "A Content-Type that is not JSON (none at all is read as JSON).",
    ),
    row(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "The header section is too large or has too many fields.",
    ),
    row(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The mapping cannot build a valid answer from the CRM's (an order history without \
         its orders array included), or a bug.",
    ),
    row(
        StatusCode::BAD_GATEWAY,
        "The CRM is unreachable, answered an unexpected status or an unusable body, or \
         refused authbridge's credentials.",
    ),
    row(
        StatusCode::SERVICE_UNAVAILABLE,
        "The CRM is paused (circuit open) or too many CRM requests are in flight.",
    ),
    row(
        StatusCode::GATEWAY_TIMEOUT,
        "The CRM did not answer in time.",
    ),
];

/// Why a request is refused before anything is forwarded.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    BadRequest,
    Unauthorized,
    /// A `Content-Type` that is not JSON (none at all is read as JSON).
    NotJson,
    /// Over `users_api.max_body_bytes`.
    TooLarge,
    /// The body did not arrive within the request deadline.
    SlowBody,
}

impl Refusal {
    /// The status this refusal is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::BadRequest => StatusCode::BAD_REQUEST,
            Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            Refusal::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::SlowBody => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

/// The message shown for a status that no handler chose a text for.
fn message_for(messages: &UsersMessages, status: StatusCode) -> &str {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => &messages.unauthorized,
        s if s.is_client_error() => &messages.bad_request,
        _ => &messages.unavailable,
    }
}

/// Wraps the front so that no answer of it can leave without `error` unless
/// it is a success: panics become 500, and any unshaped non-2xx answer
/// (whoever produced it) is replaced by the shaped one with the same status.
/// Panics count in `metrics`.
pub fn guard<S>(router: Router<S>, messages: Arc<UsersMessages>, metrics: Metrics) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let on_panic = messages.clone();
    router
        .layer(CatchPanicLayer::custom(move |_panic| {
            // The panic text may hold request data: it is never shown.
            metrics
                .counter("authbridge_users_panics_total")
                .increment(1);
            error(StatusCode::INTERNAL_SERVER_ERROR, &on_panic.unavailable)
        }))
        .layer(axum::middleware::map_response_with_state(
            messages,
            ensure_shaped,
        ))
}

async fn ensure_shaped(State(messages): State<Arc<UsersMessages>>, response: Response) -> Response {
    let status = response.status();
    if status.is_success() || response.extensions().get::<Shaped>().is_some() {
        return response;
    }
    // A 2xx is only ever produced by the handlers; anything else that was
    // not shaped by them (1xx/3xx included) is a failure to the platform.
    let status = if status.is_client_error() || status.is_server_error() {
        status
    } else {
        StatusCode::BAD_GATEWAY
    };
    error(status, message_for(&messages, status))
}

/// The longest run of whole leading path segments the paths share
/// (`/users/get` + `/users/otp/request` → `/users`), or `None` when they
/// share none: unknown paths under it are this front's to answer.
pub fn common_prefix<'a>(paths: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut paths = paths.into_iter();
    let first: Vec<&str> = paths.next()?.trim_matches('/').split('/').collect();
    // A path's last segment is the call itself, never part of the prefix.
    let mut shared = first.len().saturating_sub(1);
    for path in paths {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let common = first
            .iter()
            .zip(&segments[..segments.len().saturating_sub(1)])
            .take_while(|(a, b)| a == b)
            .count();
        shared = shared.min(common);
    }
    (shared > 0).then(|| format!("/{}", first[..shared].join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_and_failure_status_is_in_the_table() {
        let listed = |status: StatusCode| STATUSES.iter().any(|r| r.status == status);
        let refusals = [
            Refusal::BadRequest,
            Refusal::Unauthorized,
            Refusal::NotJson,
            Refusal::TooLarge,
            Refusal::SlowBody,
        ];
        for refusal in refusals {
            assert!(listed(refusal.status()), "{refusal:?}");
        }
        for failure in Failure::ALL {
            assert!(listed(status_of(failure)), "{failure:?}");
        }
    }

    #[test]
    fn prefix_is_whole_shared_segments_short_of_the_call() {
        assert_eq!(
            common_prefix(["/users/get", "/users/otp/request", "/users/login"]),
            Some("/users".into())
        );
        assert_eq!(
            common_prefix(["/api/imshop/get", "/api/imshop/login"]),
            Some("/api/imshop".into())
        );
        assert_eq!(common_prefix(["/users/get", "/user/login"]), None);
        assert_eq!(common_prefix(["/get", "/login"]), None);
        assert_eq!(common_prefix(["/users", "/users/login"]), None);
    }
}
